"""Speed of a backbone: extraction images/s vs the machine's FLOP-bound estimate, and the
forward+backward cost of trainable top stages (``split``). Called by ``python -m dml_core bench``.

FLOP-bound estimate: FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``: 2 per
multiply-add of convolutions and matmuls; BatchNorm, activations and pooling are not counted)
divided by the measured float32 GEMM rate on the same threads. EfficientNet-Lite0 is mostly
depthwise and 1x1 convolutions on small maps, which are memory-bound, so expect a small
fraction of the GEMM peak.

Measured on the 2-core dev machine (AMD EPYC, AVX-512, torch 2.14, 1 thread, by CPU time),
EfficientNet-Lite0 at 128 px, images/s:
    batch            8     16     32     64
    plain          190    184    105     72
    channels_last  206    308    166    123
    BN folded      200    257    146     66
    both           238    380    259    185
hence the defaults: BN folded + channels_last, batch 16.
"""
from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dml_core.features.base import MODE_POOLED, Backbone
from dml_core.features.efficientnet import EfficientNetLite0Backbone, block_output_shape, set_batchnorm_eval
from dml_core.features.factory import DEFAULT_BACKBONE


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Temporarily run torch CPU ops on ``threads`` threads (None: leave as is)."""
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], min_seconds: float = 1.0, warmup: int = 1,
                  device: torch.device = torch.device("cpu")) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call of ``fn``, averaged over at least
    ``min_seconds`` of calls after ``warmup`` calls.

    Wall time is what a user waits for. CPU time is robust to other processes sharing the
    cores: ``threads * calls / cpu_seconds`` estimates the rate with the cores to ourselves.
    """
    for _ in range(warmup):
        fn()
    _synchronize(device)
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        calls += 1
        _synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls, (time.process_time() - cpu_start) / calls


def matmul_gflops(size: int = 2048, min_seconds: float = 1.0, device: str | torch.device = "cpu") -> tuple[float, float]:
    """Measured float32 GEMM rate (2 size^3 FLOPs per product) on the current threads:
    (GFLOP/s by wall clock, GFLOP/s per process-CPU-second times the thread count)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    wall, cpu = time_per_call(lambda: a @ b, min_seconds, warmup=2, device=device)
    flops = 2 * size**3
    return flops / wall / 1e9, flops * torch.get_num_threads() / cpu / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn``, forward passes only (see the backward caveat below)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def benchmark_backbone(
    backbone: str | Backbone = DEFAULT_BACKBONE,
    resolutions: Iterable[int] = (128,),
    batch_sizes: Iterable[int] = (16,),
    layouts: Iterable[tuple[bool, bool]] = ((True, True),),
    splits: Iterable[str] = ("block10", "block12", "block13", "block14"),
    split_pool: str = MODE_POOLED,
    train_batch_size: int = 64,
    image_size: int = 128,
    threads: int | None = 2,
    min_seconds: float = 2.0,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = print,
) -> dict:
    """Measure extraction and fine-tuning throughput; returns a JSON-ready dict.

    Args:
        backbone: a registry name or a built backbone. The resolution and layout grid is
            swept only when a name of an EfficientNet-Lite0 config is given.
        resolutions, batch_sizes: extraction grid. Every point times ``preprocess`` (from
            uint8 ``image_size`` px images, the tasks' size) plus
            ``forward_features(mode="pooled")`` under ``torch.inference_mode``.
        layouts: (fold_bn, channels_last) pairs to compare (EfficientNet-Lite0 only).
        splits: split points for the fine-tuning rows: forward+backward of ``top`` (train
            mode, BatchNorm frozen, ``split_pool`` output, loss = mean square) on cached
            activations, batch ``train_batch_size``, at the first resolution.
        threads: torch CPU threads during the benchmark (restored afterwards).
        min_seconds: timing length per point.
        device: "cpu" or "cuda".
        log: called with one line per measured point (None: silent).

    Returns:
        {"machine", "torch", "threads", "device", "matmul_gflops", "cpu_matmul_gflops",
         "extraction": [{"backbone", "resolution", "batch_size", "fold_bn", "channels_last",
                         "images_per_s", "cpu_images_per_s", "gflop_per_image",
                         "achieved_gflops", "fraction_of_matmul_peak"}],
         "finetune": [{"split", "resolution", "activation_shape", "activation_kib_fp16",
                       "trainable_params", "fwd_bwd_images_per_s", "cpu_fwd_bwd_images_per_s",
                       "gflop_per_image" (fwd+bwd, = 3 x forward)}]}
        ``images_per_s`` is wall-clock; ``cpu_*`` = images per process-CPU-second times
        ``threads`` (what the rate would be without other load on the machine).
        ``fraction_of_matmul_peak`` = GFLOP/s achieved / float32 matmul GFLOP/s, both by
        CPU time: how close the backbone comes to its FLOP-bound speed.
    """
    from dml_core.features.factory import BACKBONE_CONFIGS, create_backbone

    device = torch.device(device)
    say = log or (lambda line: None)
    resolutions, batch_sizes, layouts = list(resolutions), list(batch_sizes), list(layouts)
    n_threads = threads or torch.get_num_threads()
    rng = np.random.default_rng(0)
    result: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": n_threads,
        "device": str(device),
    }
    with torch_threads(threads):
        wall_peak, cpu_peak = matmul_gflops(min_seconds=min(min_seconds, 1.0), device=device)
        result["matmul_gflops"], result["cpu_matmul_gflops"] = round(wall_peak, 1), round(cpu_peak, 1)
        say(f"float32 matmul 2048^3: {result['matmul_gflops']} GFLOP/s ({result['cpu_matmul_gflops']} by CPU time)")
        built = isinstance(backbone, Backbone)
        sweep = not built and BACKBONE_CONFIGS.get(backbone, {}).get("class") == "efficientnet_lite0"
        grid = [(r, layout) for r in resolutions for layout in layouts] if sweep else [(None, None)]
        result["extraction"] = []
        for resolution, layout in grid:
            if built:
                model = backbone
            elif sweep:
                model = create_backbone(backbone, resolution=resolution, fold_bn=layout[0], channels_last=layout[1])
            else:
                model = create_backbone(backbone)
            model = model.to(device).eval()
            one = rng.integers(0, 256, (1, image_size, image_size, 3), dtype=np.uint8)
            with torch.inference_mode():
                flops = count_flops(lambda: model.forward_features(model.preprocess(one)))
            for batch_size in batch_sizes:
                images = rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8)

                def step(images=images, model=model):
                    with torch.inference_mode():
                        model.forward_features(model.preprocess(images))

                wall, cpu = time_per_call(step, min_seconds, device=device)
                row = {
                    "backbone": model.name,
                    "resolution": model.resolution,
                    "batch_size": batch_size,
                    "fold_bn": getattr(model, "fold_bn", None),
                    "channels_last": getattr(model, "channels_last", None),
                    "images_per_s": round(batch_size / wall, 1),
                    "cpu_images_per_s": round(batch_size * n_threads / cpu, 1),
                    "gflop_per_image": round(flops / 1e9, 4),
                    "achieved_gflops": round(flops * batch_size / wall / 1e9, 2),
                }
                # Both rates by CPU time: robust to other load on a shared machine.
                row["fraction_of_matmul_peak"] = round(
                    flops * row["cpu_images_per_s"] / 1e9 / result["cpu_matmul_gflops"], 3
                )
                result["extraction"].append(row)
                say(
                    f"extract {row['backbone']} r={row['resolution']} bs={batch_size} "
                    f"fold_bn={row['fold_bn']} channels_last={row['channels_last']}: "
                    f"{row['images_per_s']} img/s ({row['cpu_images_per_s']} by CPU time), "
                    f"{row['gflop_per_image']} GFLOP/img, {row['fraction_of_matmul_peak']:.1%} of matmul peak"
                )
        result["finetune"] = []
        if sweep or isinstance(backbone, EfficientNetLite0Backbone):
            model = backbone if built else create_backbone(backbone, resolution=resolutions[0])
            for at in splits:
                _, top = model.split(at, pool=split_pool)
                top = set_batchnorm_eval(top.to(device).train())
                shape = block_output_shape(int(at[len("block"):]), model.resolution)
                acts = torch.randn(train_batch_size, *shape, device=device)

                def train_step(top=top, acts=acts):
                    top.zero_grad(set_to_none=True)
                    top(acts).square().mean().backward()

                # fwd+bwd ~ 3x forward. Counting the backward directly is wrong in torch 2.14:
                # FlopCounterMode's convolution_backward ignores groups, so each depthwise
                # conv's backward is overcounted ~C/2-fold (measured: 336x for 672 channels).
                with torch.no_grad():
                    flops = 3 * count_flops(lambda top=top, acts=acts: top(acts)) / train_batch_size
                wall, cpu = time_per_call(train_step, min_seconds, device=device)
                row = {
                    "split": at,
                    "resolution": model.resolution,
                    "activation_shape": list(shape),
                    "activation_kib_fp16": round(2 * int(np.prod(shape)) / 1024, 1),
                    "trainable_params": sum(p.numel() for p in top.parameters() if p.requires_grad),
                    "fwd_bwd_images_per_s": round(train_batch_size / wall, 1),
                    "cpu_fwd_bwd_images_per_s": round(train_batch_size * n_threads / cpu, 1),
                    "gflop_per_image": round(flops / 1e9, 4),
                }
                result["finetune"].append(row)
                say(
                    f"finetune top after {at} (acts {shape}, {row['activation_kib_fp16']} KiB fp16, "
                    f"{row['trainable_params'] / 1e6:.2f} M params): {row['fwd_bwd_images_per_s']} img/s "
                    f"fwd+bwd ({row['cpu_fwd_bwd_images_per_s']} by CPU time), {row['gflop_per_image']} GFLOP/img"
                )
    return result


__all__ = ["benchmark_backbone", "count_flops", "matmul_gflops", "time_per_call", "torch_threads"]
