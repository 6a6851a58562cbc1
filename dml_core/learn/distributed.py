"""One model trained by several processes: torch.distributed with DistributedDataParallel.

    torchrun --standalone --nproc_per_node P -m dml_core train --task pose --method log_ratio --distributed

Every rank runs the same training loop (``learn.train.fit``) on its own batch, drawn around its own
anchors from its own random stream (rank 0 keeps the single-process stream); DDP averages the
gradients, so every rank takes the same optimiser step and rank 0 alone writes checkpoints
and the model. The process group uses gloo on CPU and NCCL on CUDA (one GPU per rank,
``LOCAL_RANK``). A step of P ranks with batch B each is one step on the combined batch of P·B:

- **Per-anchor losses** (log-ratio, dense triplet): each anchor's mini-batch lies inside one
  rank's batch and the loss is a mean over anchors' pairs, so with equal batches on every rank
  the average of the ranks' losses is the loss over the combined set of anchors, and DDP's
  average of their gradients is its gradient.
- **Batch-wide mining** (binary triplet, contrastive, Rank-N-Contrast): positives, negatives and
  the mined tuples are defined over the whole batch, so :func:`gather_batch` all-gathers the
  embeddings and the batch indices of every rank, in rank order, and the loss is computed on
  the combined batch, its masks built from the gathered indices (``learn.mining.binary_masks`` takes
  explicit masks, not class labels). Other ranks' embeddings are constants on each rank; the
  local ones carry the gradient scaled by the world size, so DDP's average is the combined
  batch's gradient. This is pytorch-metric-learning's ``DistributedLossWrapper`` construction
  (``efficient=False``), done here because PML's wrapper gathers class labels, which the k-NN
  positive relation of continuous labels does not have.

A resumed run restores rank 0's random stream from the checkpoint; the other ranks start new
streams from (seed, rank, step), so a resumed multi-process run draws other batches than an
uninterrupted one would (a single process resumes exactly).
"""
from __future__ import annotations

import datetime
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

#: How long a collective waits for a rank that fell behind (or died) before giving up.
TIMEOUT = datetime.timedelta(minutes=10)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """The rank that writes checkpoints, models and reports (the only one in one process)."""
    return rank() == 0


def init_from_env(device: str = "cpu") -> str:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT); returns this rank's torch device ("cpu" or "cuda:LOCAL_RANK")."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError("--distributed runs under torchrun, e.g. torchrun --standalone --nproc_per_node 2 -m dml_core "
                         f"train ... --distributed ({', '.join(missing)} not set)")
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {os.environ['RANK']} wants GPU {local_rank} but torch sees {torch.cuda.device_count()}; "
                             "use at most one process per GPU")
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
        if os.environ["MASTER_ADDR"] in LOOPBACK and sys.platform.startswith("linux"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: keep gloo's sockets on loopback
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_rng(seed: int, resumed_at: int = 0, rng: np.random.Generator | None = None) -> np.random.Generator:
    """This rank's batch stream: the single-process one on rank 0 (``rng`` when resuming), an
    independent one from (seed, rank[, step]) on every other rank."""
    if rank() == 0:
        return rng if rng is not None else np.random.default_rng(seed)
    return np.random.default_rng([seed, rank(), resumed_at] if resumed_at else [seed, rank()])


def wrap(model: nn.Module) -> nn.Module:
    """The module to run forward passes through: DDP around ``model`` in a process group, else
    ``model`` itself. The unwrapped ``model`` keeps the weights (checkpoints save it)."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def check_supported(sampling: str) -> None:
    if is_distributed() and sampling == "captions":
        raise ValueError("the cross-modal method trains in one process (its text head runs outside DDP's forward)")


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def _all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return parts


def gather_batch(embeddings: torch.Tensor, batch) -> tuple[torch.Tensor, np.ndarray]:
    """(embeddings, training indices) of the combined batch of every rank, in rank order (in one
    process: the arguments as they are). Every rank's batch must have the same size."""
    if not is_distributed():
        return embeddings, batch
    parts = _all_gather(embeddings.detach())
    # Each rank differentiates the same combined loss through its own part only; scaling by the
    # world size makes DDP's average the sum over ranks, the combined batch's gradient.
    parts[rank()] = _ScaleGradient.apply(embeddings, float(world_size()))
    indices = torch.as_tensor(np.asarray(batch, dtype=np.int64), device=embeddings.device)
    return torch.cat(parts), torch.cat(_all_gather(indices)).cpu().numpy()


def mean_over_ranks(value: float, device="cpu") -> float:
    """The mean of ``value`` over the ranks (``value`` in one process): the combined batch's
    loss, the same number on every rank, so all of them stop together on a non-finite loss."""
    if not is_distributed():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total) / world_size()
