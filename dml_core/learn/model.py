"""The embedding model every method trains: an MLP head (optionally after a trainable trunk), and
embedding arrays with it in batches."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingModel(nn.Module):
    """``[trunk] -> flatten -> [standardise] -> head -> [L2-normalise]``.

    in_shape: shape of one input (F,) or (C, H, W). dim: embedding width.
    hidden: hidden width of the two-layer MLP head (Linear-GELU-Linear); 0 for a linear head.
    normalize: L2-normalise the output. trunk: optional module applied to the input first
    (e.g. the top backbone stages on cached activations); its output is flattened.
    head_in: width of the flattened trunk output (the input width without a trunk).
    standardize: subtract ``input_mean`` and divide by ``input_std`` (buffers, per feature,
    set from the training inputs) before the head; used without a trunk.
    text_dim: width of sentence embeddings for the cross-modal text head (None: no text head).
    trunk_spec: JSON description that rebuilds the trunk in :func:`load_model`:
    ``{"builder": "dml_core.<module>:<function>", "kwargs": {...}}``, or None.
    """

    def __init__(self, in_shape, dim: int = 128, hidden: int = 512, normalize: bool = True,
                 trunk: nn.Module | None = None, head_in: int | None = None, standardize: bool = True,
                 text_dim: int | None = None, trunk_spec: dict | None = None):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.trunk = trunk
        self.head_in = int(head_in if head_in is not None else math.prod(self.in_shape))
        self.dim, self.hidden, self.normalize = int(dim), int(hidden), bool(normalize)
        self.standardize, self.text_dim, self.trunk_spec = bool(standardize), text_dim, trunk_spec
        if self.standardize:
            self.register_buffer("input_mean", torch.zeros(self.head_in))
            self.register_buffer("input_std", torch.ones(self.head_in))
        self.head = self._mlp(self.head_in)
        self.text_head = self._mlp(int(text_dim)) if text_dim else None

    def _mlp(self, width: int) -> nn.Module:
        if self.hidden <= 0:
            return nn.Linear(width, self.dim)
        return nn.Sequential(nn.Linear(width, self.hidden), nn.GELU(), nn.Linear(self.hidden, self.dim))

    def spec(self) -> dict:
        """JSON-serialisable constructor arguments (everything but the trunk module)."""
        return {"in_shape": list(self.in_shape), "dim": self.dim, "hidden": self.hidden,
                "normalize": self.normalize, "head_in": self.head_in, "standardize": self.standardize,
                "text_dim": self.text_dim, "has_trunk": self.trunk is not None, "trunk_spec": self.trunk_spec}

    def _finish(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=1) if self.normalize else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            x = self.trunk(x)
        x = torch.flatten(x, 1)
        if self.standardize:
            x = (x - self.input_mean) / self.input_std
        return self._finish(self.head(x))

    def embed_text(self, t: torch.Tensor) -> torch.Tensor:
        """Embed sentence embeddings (n, text_dim) into the joint space (cross-modal models)."""
        if self.text_head is None:
            raise ValueError("this model has no text head (train it with the cross_modal method)")
        return self._finish(self.text_head(t))


def as_tensor(array, device=None) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device=device, dtype=torch.float32)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not array.flags.writeable:  # a slice of a read-only memmap: torch wants memory it may write
        array = array.copy()
    return torch.from_numpy(array).to(device)


@torch.no_grad()
def embed(model: EmbeddingModel, inputs, batch_size: int = 256, device=None) -> np.ndarray:
    """(N, dim) float32 embeddings of cached inputs, in eval mode, in chunks of batch_size."""
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [model(as_tensor(inputs[s:s + batch_size], device)).cpu() for s in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.dim), np.float32)


@torch.no_grad()
def embed_text(model: EmbeddingModel, text_inputs, batch_size: int = 1024) -> np.ndarray:
    """(N, dim) float32 joint-space embeddings of sentence embeddings (cross-modal models)."""
    device = next(model.parameters()).device
    chunks = [model.embed_text(as_tensor(text_inputs[s:s + batch_size], device)).cpu()
              for s in range(0, len(text_inputs), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, model.dim), np.float32)
