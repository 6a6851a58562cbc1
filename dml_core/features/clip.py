"""open_clip image/text encoders from local weights only.

``create_backbone("clip:ViT-B-32", pretrained="/path/to/open_clip_model.safetensors")``.
``pretrained`` is a checkpoint file (.safetensors, .bin, .pth, .pt) or a folder holding one
(an open_clip / Hugging Face cache folder works: ``snapshots/*/`` is searched). It is never
an open_clip tag such as ``"openai"``, because a tag means a download. Checkpoints are loaded
with ``weights_only=True`` (or safetensors), and the Hugging Face hub is switched to offline
mode for the duration of model creation, so a config that would need the hub (an HF text
tower or tokenizer that is not cached) fails with an error instead of downloading.

A model that is not built into open_clip can be described by an open_clip model-config JSON
(``{"embed_dim": ..., "vision_cfg": {...}, "text_cfg": {...}}``) passed as ``config=``; its
file name without ``.json`` is the model name, as in ``open_clip.add_model_config``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from dml_core.core.text import offline_hub
from dml_core.features.base import MODE_POOLED, Backbone, BackboneError, WeightsNotFoundError

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
#: Preferred file names inside a weights folder, best first (open_clip's own order).
PREFERRED_CHECKPOINT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)


def find_checkpoint(pretrained: str | os.PathLike | None, model_name: str) -> Path:
    """Resolve ``pretrained`` to one checkpoint file, or raise ``WeightsNotFoundError``.

    A file is used as is. In a folder, the preferred open_clip names win, then any single
    checkpoint file; Hugging Face cache layouts (``snapshots/<hash>/``) are searched too.
    """
    if pretrained is None or pretrained is True or pretrained == "":
        raise WeightsNotFoundError(
            f"clip:{model_name}: no weights given; pass pretrained=<an open_clip checkpoint file "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) or a folder holding one> (nothing is downloaded)"
        )
    path = Path(pretrained).expanduser()
    if path.is_file():
        if path.suffix not in CHECKPOINT_SUFFIXES:
            raise WeightsNotFoundError(f"{path}: not a checkpoint file (expected {', '.join(CHECKPOINT_SUFFIXES)})")
        return path
    if path.is_dir():
        candidates = [p for p in path.rglob("*") if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES]
        for preferred in PREFERRED_CHECKPOINT_NAMES:
            named = sorted(p for p in candidates if p.name == preferred)
            if named:
                return named[0]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            names = ", ".join(sorted(str(p.relative_to(path)) for p in candidates)[:5])
            raise WeightsNotFoundError(f"{path}: several checkpoints ({names}); pass the file itself")
        raise WeightsNotFoundError(f"{path}: no CLIP checkpoint for {model_name} in this folder")
    if os.path.sep not in str(pretrained) and not path.suffix:
        raise WeightsNotFoundError(
            f"clip:{model_name}: pretrained={str(pretrained)!r} is not a local file or folder "
            "(open_clip tags would download; download the weights yourself and pass their path)"
        )
    raise WeightsNotFoundError(f"{path}: CLIP weights for {model_name} not found")


def _file_identity(path: Path, chunk: int = 1 << 20) -> str:
    """Cheap content identity of a (possibly GB-sized) file: size + first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=8)
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()


def register_config(config: str | os.PathLike, model_name: str) -> None:
    """Add an open_clip model-config JSON named ``<model_name>.json`` to open_clip's registry."""
    import open_clip

    path = Path(config).expanduser()
    if not path.is_file():
        raise BackboneError(f"{path}: open_clip model config not found")
    if path.stem != model_name:
        raise BackboneError(f"{path}: config file name must be {model_name}.json to define model {model_name!r}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg):
        raise BackboneError(f"{path}: an open_clip model config needs embed_dim, vision_cfg and text_cfg")
    open_clip.add_model_config(path)


class ClipBackbone(Backbone):
    """An open_clip model: ``forward_features`` = image embeddings, ``encode_text`` = text.

    Features are the raw projected embeddings (``encode_image(normalize=False)``); L2-normalise
    them for cosine retrieval / zero-shot. Only the ``"pooled"`` mode exists.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | os.PathLike | None = None,
        config: str | os.PathLike | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        device: str | torch.device = "cpu",
    ):
        """
        Args:
            model_name: an open_clip architecture (``open_clip.list_models()``) or the name
                defined by ``config``.
            pretrained: local checkpoint file or folder (required; see ``find_checkpoint``).
            config: optional open_clip model-config JSON named ``<model_name>.json``.
            mean, std: input normalisation; default is the checkpoint folder's
                ``open_clip_config.json`` preprocess_cfg when present, else OpenAI CLIP's.
            device: torch device for the model.
        """
        super().__init__()
        import open_clip

        if ":" in model_name:
            raise BackboneError(f"clip:{model_name}: hub names are not supported (no downloads); pass a local config")
        if config is not None:
            register_config(config, model_name)
        if open_clip.get_model_config(model_name) is None:
            raise BackboneError(
                f"clip:{model_name}: unknown open_clip model; pass config=<path to {model_name}.json>"
            )
        checkpoint = find_checkpoint(pretrained, model_name)
        try:
            with offline_hub():
                model = open_clip.create_model(
                    model_name,
                    pretrained=str(checkpoint),
                    device=device,
                    weights_only=True,
                    pretrained_image=False,
                    pretrained_text=False,
                    require_pretrained=True,
                )
                self.tokenizer = open_clip.get_tokenizer(model_name)
        except WeightsNotFoundError:
            raise
        except Exception as error:
            raise BackboneError(f"{checkpoint}: cannot load as open_clip {model_name} ({type(error).__name__}: {error})") from error
        self.model = model.eval().requires_grad_(False)
        preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        preprocess_cfg.update(_folder_preprocess_cfg(checkpoint))
        image_size = preprocess_cfg.get("size", getattr(model.visual, "image_size", 224))
        if isinstance(image_size, (tuple, list)):
            if image_size[0] != image_size[1]:
                raise BackboneError(f"clip:{model_name}: non-square input {image_size} is not supported")
            image_size = image_size[0]
        self.name = f"clip:{model_name}"
        self.model_name = model_name
        self.checkpoint = checkpoint
        self.resolution = int(image_size)
        self.mean = tuple(mean or preprocess_cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN)
        self.std = tuple(std or preprocess_cfg.get("std") or open_clip.OPENAI_DATASET_STD)
        self.interpolation = "bicubic" if preprocess_cfg.get("interpolation", "bicubic") == "bicubic" else "bilinear"
        self.feature_dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        self.feature_modes = (MODE_POOLED,)
        self.weights_id = _file_identity(checkpoint)

    def forward_features(self, x: torch.Tensor, mode: str = MODE_POOLED) -> torch.Tensor:
        self.check_mode(mode)
        return self.model.encode_image(x, normalize=False)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids (N, context_length), truncated to the model's context length."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.device)

    @torch.inference_mode()
    def encode_text(self, texts: list[str], normalize: bool = False) -> torch.Tensor:
        """Text embeddings (N, feature_dim) in the image embedding space (float32, on device).

        ``normalize=True`` L2-normalises each row, as zero-shot scoring needs.
        """
        if len(texts) == 0:
            return torch.zeros((0, self.feature_dim), device=self.device)
        self.eval()
        return self.model.encode_text(self.tokenize(texts), normalize=normalize).float()

    def embed_texts(self, texts: list[str], normalize: bool = False) -> np.ndarray:
        """``encode_text`` as a float32 numpy array."""
        return self.encode_text(texts, normalize=normalize).cpu().numpy()


def _folder_preprocess_cfg(checkpoint: Path) -> dict:
    """preprocess_cfg of an ``open_clip_config.json`` next to the checkpoint, if any."""
    config_path = checkpoint.parent / "open_clip_config.json"
    if not config_path.is_file():
        return {}
    try:
        return dict(json.loads(config_path.read_text(encoding="utf-8")).get("preprocess_cfg", {}))
    except (OSError, ValueError, AttributeError) as error:
        raise BackboneError(f"{config_path}: unreadable open_clip config ({error})") from error


__all__ = ["ClipBackbone", "find_checkpoint", "register_config"]
