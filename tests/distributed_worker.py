"""One rank of ``test_distributed``, started as torchrun would start it (RANK, WORLD_SIZE, ...).

For each method: one training step through ``learn.train._step_loss`` on a DDP-wrapped model, the
batch this rank drew and the gradients after DDP's all-reduce saved to ``OUT/<method>-rank<r>.npz``;
then a short ``learn.train.fit``, whose final weights go to ``OUT/fit-<method>-rank<r>.npz``.
Usage: python distributed_worker.py OUT METHOD [METHOD ...]
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dml_core.learn import distributed, train  # noqa: E402
from dml_core.learn.methods import get_method  # noqa: E402
from dml_core.learn.model import EmbeddingModel  # noqa: E402
from dml_core.learn.mining import LabelNeighbours, make_binary_miner  # noqa: E402

SEED = 3
BATCH = 24


def problem():
    """Seeded features (N, 12) that are a noisy function of 2-D continuous labels."""
    rng = np.random.default_rng(0)
    labels = rng.normal(size=(160, 2))
    features = np.tanh(labels @ rng.normal(size=(2, 12))) + 0.1 * rng.normal(size=(160, 12))
    return features.astype(np.float32), labels


def label_distance(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def config(method: str):
    return get_method(method, batch_size=BATCH, k_pos=10)


def make_model() -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel((12,), dim=8, hidden=16, normalize=True)


def neighbours(labels) -> LabelNeighbours:
    return LabelNeighbours(labels, label_distance, k=10)


def miner_for(cfg):
    return make_binary_miner(cfg.miner, cfg.loss_args.get("margin", 0.2)) if cfg.loss == "triplet" else None


def main(out: Path, methods: list[str]) -> None:
    distributed.init_from_env("cpu")
    torch.set_num_threads(1)
    rank = distributed.rank()
    features, labels = problem()
    near = neighbours(labels)
    drawn = {}
    for name in ("sample_binary_batch", "sample_dense_batch"):  # record the batch each rank draws
        original = getattr(train, name)

        def recording(*args, _original=original, **kwargs):
            drawn["batch"] = _original(*args, **kwargs)
            return drawn["batch"]

        setattr(train, name, recording)
    for method in methods:
        cfg = config(method)
        model = make_model()
        replica = distributed.wrap(model)  # kept alive until backward: its hooks all-reduce the gradients
        loss = train._step_loss(replica, train._make_loss(cfg), miner_for(cfg), cfg, features, None,
                                near, distributed.rank_rng(SEED), "cpu")
        loss.backward()
        batch = drawn["batch"]
        fields = ({"indices": batch.indices, "anchor_pos": batch.anchor_pos, "other_pos": batch.other_pos,
                   "label_dist": batch.label_dist} if hasattr(batch, "indices") else {"indices": batch})
        grads = {f"grad:{n}": p.grad.numpy() for n, p in model.named_parameters()}
        np.savez(out / f"{method}-rank{rank}.npz", loss=float(loss), **fields, **grads)

        fitted, history = train.fit(features, labels, label_distance, method=cfg, dim=8, steps=3, seed=SEED,
                                    progress=False, neighbours=near)
        np.savez(out / f"fit-{method}-rank{rank}.npz", loss=np.asarray(history["loss"]),
                 **{n: t.detach().numpy() for n, t in fitted.state_dict().items()})
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
