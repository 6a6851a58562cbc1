"""Throughput of the log-ratio loss: batched closed form vs the official per-anchor loop.

``log_ratio_speed`` times loss + backward on the same random embeddings for
  * ``batched``: :func:`dml_core.losses.log_ratio_loss`, all anchors at once, O(B m) work;
  * ``batched_pairwise``: the (B, m, m) pair tensor written out, all anchors at once;
  * ``per_anchor``: one anchor per call, its m x m matrix built with ``repeat`` and a
    Python loop over anchors with a backward each, as the paper's official code does it.
Implementations run interleaved (round-robin) so that machine load hits all alike; the
median time of each is reported as triplets (anchor, i, j) per second.
"""
from __future__ import annotations

import statistics
import time

import torch

from .losses import log_ratio_loss, log_ratio_loss_pairwise, log_ratio_loss_reference


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def log_ratio_speed(n_anchors: int = 64, m: int = 127, dim: int = 128, repeats: int = 5,
                    threads: int | None = 2, seed: int = 0) -> dict:
    """Triplets per second of the three implementations (loss + backward), measured side by side.

    n_anchors: anchors per call (B). m: others per anchor (the official batch is 130 = anchor
    + 129). dim: embedding width. repeats: timed rounds (after one warm-up round).
    threads: torch intra-op threads during the measurement (restored after); None keeps them.
    Returns {"triplets": B m (m-1) / 2, "<impl>_triplets_per_s": ..., "<impl>_seconds": median,
    "speedup": batched vs per_anchor, "speedup_pairwise": batched_pairwise vs per_anchor,
    "threads", "n_anchors", "m", "dim", "max_abs_difference": largest loss difference}.
    """
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.randn(n_anchors, dim, generator=generator)
    others = torch.randn(n_anchors, m, dim, generator=generator)
    label_dist = torch.rand(n_anchors, m, generator=generator) + 0.01

    # Leaf tensors are made before the clock starts; only loss + backward are timed.
    def batched(loss_fn):
        def setup():
            a, o = anchor.clone().requires_grad_(), others.clone().requires_grad_()
            return lambda: loss_fn(a, o, label_dist).backward()
        return setup

    def per_anchor():
        leaves = [(anchor[b:b + 1].clone().requires_grad_(), others[b:b + 1].clone().requires_grad_())
                  for b in range(n_anchors)]

        def run():
            for b, (a, o) in enumerate(leaves):
                log_ratio_loss_reference(a, o, label_dist[b:b + 1]).backward()
        return run

    impls = {"batched": batched(log_ratio_loss), "batched_pairwise": batched(log_ratio_loss_pairwise),
             "per_anchor": per_anchor}
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            values = [float(f(anchor, others, label_dist)) for f in
                      (log_ratio_loss, log_ratio_loss_pairwise, log_ratio_loss_reference)]
        for setup in impls.values():
            setup()()                               # warm-up
        times = {name: [] for name in impls}
        for _ in range(repeats):
            for name, setup in impls.items():
                times[name].append(_timed(setup()))
    finally:
        torch.set_num_threads(previous)
    triplets = n_anchors * m * (m - 1) // 2
    result = {"triplets": triplets, "threads": threads or previous, "n_anchors": n_anchors, "m": m, "dim": dim,
              "max_abs_difference": max(values) - min(values)}
    for name, samples in times.items():
        seconds = statistics.median(samples)
        result[f"{name}_seconds"] = seconds
        result[f"{name}_triplets_per_s"] = triplets / seconds
    result["speedup"] = result["per_anchor_seconds"] / result["batched_seconds"]
    result["speedup_pairwise"] = result["per_anchor_seconds"] / result["batched_pairwise_seconds"]
    return result
