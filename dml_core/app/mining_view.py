"""Mining on a task's own images: the batch each strategy forms around one training anchor.

Everything here calls the training code itself (``dml_core.learn.mining`` with the settings of
``dml_core.learn.methods``), the way ``dml_core.learn.train._step_loss`` calls it, so what the
Mining page shows is what a training step of the build sees:

- binary methods: ``sample_binary_batch`` draws random anchors with 5 of their ``k_pos = 30``
  label-nearest neighbours, filled up with random images; ``binary_masks`` makes an image's 30
  label neighbours its positives and every other image a negative; ``make_binary_miner(kind)``
  keeps the triplets of its kind (all non-zero / hard / semi-hard / easy / batch-hard) by the
  embedding distances of the batch under a model;
- dense triplet mining: ``sample_dense_batch`` draws anchors with their ``k = 5`` nearest
  neighbours plus random others; ``dense_triplets`` makes every pair (i, j) of an anchor's others
  a triplet with the label-closer one as the positive.

Training draws its anchors at random; to show a chosen anchor, the view draws batches from a
seeded sequence of generators until the sampler picks that image as one of its anchors (the
first such draw: deterministic for a (seed, anchor)). The label neighbours are those of
``dml_core.pipeline.features.TaskFeatures.neighbours`` (same k, same matrix limit).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from dml_core.app.tiles import Thumbnails, Tile, distance_fractions, quality_colour
from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import METHOD_COLOURS
from dml_core.data.tasks import get_task
from dml_core.features.backbone import TRAIN_MODE
from dml_core.learn import train
from dml_core.learn.methods import get_method
from dml_core.learn.mining import (
    DenseBatch,
    binary_masks,
    dense_triplets,
    make_binary_miner,
    sample_binary_batch,
    sample_dense_batch,
    squared_l2_distance,
)
from dml_core.learn.model import EmbeddingModel, as_tensor
from dml_core.pipeline.features import TaskFeatures

#: The choice of model that is no trained model: a head as ``fit`` initialises it.
UNTRAINED = "untrained"
UNTRAINED_LABEL = "untrained head (as training starts, seed 0)"
#: Seed of the untrained head (the build's models train with seed 0 from this very state).
UNTRAINED_SEED = 0
#: Binary miners shown, in display order, each with the method that trains with it.
BINARY_KINDS = ("all", "hard", "semihard", "easy", "batch_hard")
BINARY_METHODS = {kind: "binary_triplet" if kind == "all" else f"binary_triplet_{kind}" for kind in BINARY_KINDS}
KIND_LABELS = {"all": "All (non-zero)", "hard": "Hard", "semihard": "Semi-hard", "easy": "Easy",
               "batch_hard": "Batch-hard"}
KIND_COLOURS = {kind: METHOD_COLOURS[method] for kind, method in BINARY_METHODS.items()}
#: The three regions of a triplet by its embedding distances (what the hard / semi-hard / easy miners keep).
REGIONS = ("hard", "semihard", "easy")
DENSE_METHOD = "dense_triplet"
#: Batches drawn per anchor at most, in units of "draws it takes on average" (the chance that a
#: draw picks the anchor is anchors / N); failing after 60 times that has probability e^-60.
DRAW_BUDGET = 60


class AnchorNotDrawn(RuntimeError):
    """The sampler did not pick the anchor in the draws allowed (practically never happens)."""


@dataclass
class BinaryBatch:
    """One binary batch around the anchor and what each miner keeps of it under one model.

    Positions are into ``batch`` (training indices, as ``sample_binary_batch`` drew them).
    row: the anchor's position. draw: which generator of the seed's sequence drew the batch.
    positives, negatives: positions the masks make positive / negative for the anchor.
    label_distance, embedding_distance: (n,) from the anchor to each member; embedding distance
        is the miners' own (squared Euclidean between L2-normalised embeddings, in [0, 4]).
    margin: the binary triplet margin. kth_label_distance: label distance of the anchor's 30th
        neighbour over the whole training split (positives are at most this far).
    triplets: miner kind -> (t, 2) (positive, negative) positions of the anchor's triplets it keeps.
    """

    anchor: int
    batch: np.ndarray
    row: int
    draw: int
    positives: np.ndarray
    negatives: np.ndarray
    label_distance: np.ndarray
    embedding_distance: np.ndarray
    margin: float
    kth_label_distance: float
    triplets: dict[str, np.ndarray]

    def region(self) -> np.ndarray:
        """(P, N) region of every (positive, negative) pair of the anchor: 0 hard, 1 semi-hard,
        2 easy, by the miners' rules (t = d(a,n) − d(a,p): hard t ≤ 0, semi-hard 0 < t ≤ m)."""
        t = self.embedding_distance[self.negatives][None, :] - self.embedding_distance[self.positives][:, None]
        return np.where(t <= 0, 0, np.where(t <= self.margin, 1, 2))

    def counts(self) -> dict[str, int]:
        """Positives, negatives, possible triplets and the triplets each miner keeps for the anchor."""
        out = {"positives": len(self.positives), "negatives": len(self.negatives),
               "triplets": len(self.positives) * len(self.negatives)}
        return out | {kind: len(kept) for kind, kept in self.triplets.items()}

    def kept_negatives(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(positions, triplets each) of the negatives in the miner's kept triplets, nearest first."""
        kept = self.triplets[kind]
        positions, per_negative = np.unique(kept[:, 1], return_counts=True) if len(kept) else (np.zeros(0, int),) * 2
        order = np.argsort(self.embedding_distance[positions], kind="stable")
        return positions[order], per_negative[order]

    def kept_positives(self, kind: str) -> np.ndarray:
        """Triplets the miner keeps per positive (aligned with ``positives``)."""
        kept = self.triplets[kind]
        return np.array([(kept[:, 0] == p).sum() for p in self.positives], dtype=int)


@dataclass
class DenseView:
    """One dense batch around the anchor: the anchor's others and its dense triplets.

    batch: the ``DenseBatch`` ``sample_dense_batch`` drew. row: the anchor's row in it (its
    position in ``batch.anchor_pos``). others: (m,) training indices of the anchor's others,
    label-nearest first; label_distance: (m,) theirs. k: nearest neighbours every anchor gets.
    nearest: (m,) whether an other is one of those k (the rest are the random others).
    binary_positive: (m,) whether a binary method would call it a positive (one of the 30).
    triplets: (t, 2) (i, j) positions into ``others`` of the anchor's dense triplets (i positive).
    """

    anchor: int
    batch: DenseBatch
    row: int
    draw: int
    others: np.ndarray
    label_distance: np.ndarray
    k: int
    nearest: np.ndarray
    binary_positive: np.ndarray
    triplets: np.ndarray

    def counts(self) -> dict[str, int]:
        """Others, k nearest, random others and triplets of the anchor."""
        return {"others": len(self.others), "nearest": int(self.nearest.sum()),
                "random": int((~self.nearest).sum()), "triplets": len(self.triplets)}

    def example_triplets(self, count: int = 4) -> list[tuple[int, int]]:
        """A few (i, j) triplets across the range: the two nearest, the nearest against the
        farthest, the last of the k nearest against the label-nearest random other, and the two
        random others whose label distances are the closest (the finest distinction asked for)."""
        m = len(self.others)
        if m < 2:
            return []
        gaps = np.diff(self.label_distance[self.k:]) if m - self.k >= 2 else np.zeros(0)
        finest = self.k + int(np.argmin(gaps)) if len(gaps) else m - 2
        picks = [(0, 1), (0, m - 1), (self.k - 1, self.k) if self.k < m else (m - 2, m - 1), (finest, finest + 1)]
        seen, out = set(), []
        for pick in picks:
            if pick not in seen:
                seen.add(pick)
                out.append(pick)
        return out[:count]


class MiningView:
    """A task's training split, its cached backbone features and label neighbours, and the heads
    to embed batches with, loaded once; ``binary`` and ``dense`` form a batch per anchor.

    heads: model id -> trained ``EmbeddingModel`` on backbone features (d=128 heads of the
    catalog); the untrained head is added as ``UNTRAINED``.
    """

    def __init__(self, task: str, root, heads: dict | None = None, progress: bool = False):
        self.task_name = task
        self.task = get_task(task, root)
        data = TaskFeatures(ArtifactStore(root), task, progress=progress)  # what the build's models train on
        self.train, self.features, self.neighbours = data.train, data.features["train"], data.neighbours
        self.heads = dict(heads or {})
        self.thumbs = Thumbnails(self.train, self.task)
        self._lock = threading.Lock()
        self._memo: dict[tuple, object] = {}

    def __len__(self) -> int:
        return len(self.train)

    @property
    def model_ids(self) -> list[str]:
        """Trained heads first (in the catalog's order), then the untrained head."""
        return [*self.heads, UNTRAINED]

    @cached_property
    def untrained(self) -> EmbeddingModel:
        """A head exactly as ``fit`` initialises it for the binary triplet with seed 0 (same torch
        seed, same standardisation from the training features) before its first step."""
        config = get_method(BINARY_METHODS["all"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_SEED)
            model = train.initial_model(self.features, config, 128)
        return model.eval()

    def head(self, model_id: str) -> EmbeddingModel:
        if model_id == UNTRAINED:
            return self.untrained
        if model_id not in self.heads:
            raise ValueError(f"no trained head {model_id!r} for {self.task_name}; choose from {', '.join(self.model_ids)}")
        return self.heads[model_id]

    @torch.no_grad()
    def embed_batch(self, model_id: str, batch: np.ndarray) -> torch.Tensor:
        """Embeddings of a batch as a training step computes them: one forward pass of the batch."""
        model = self.head(model_id)
        return model(as_tensor(self.features[batch])).detach()

    def _remember(self, key: tuple, compute):
        """``compute()`` once per key (a few hundred kept): a rerun that only changes what is
        shown (the miner's tiles) reuses the batch, its embeddings and its triplets."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            if len(self._memo) > 512:
                self._memo.clear()
            self._memo[key] = value
        return value

    # ----------------------------------------------------------------- drawing the anchor's batch
    @staticmethod
    def batch_rng(seed: int, anchor: int, draw: int) -> np.random.Generator:
        """The generator of a (seed, anchor)'s ``draw``-th batch: the tests replay it."""
        return np.random.default_rng((int(seed), int(anchor), int(draw)))

    def _first_draw(self, sampling: str, anchor: int, seed: int):
        """(draw, batch) of the first draw whose sampler picks ``anchor`` as one of its anchors."""
        if not 0 <= anchor < len(self):
            raise ValueError(f"anchor {anchor} is not a training image (0 … {len(self) - 1})")
        return self._remember(("draw", sampling, int(anchor), int(seed)), lambda: self._search(sampling, anchor, seed))

    def _search(self, sampling: str, anchor: int, seed: int):
        per_draw = self._anchors_per_batch(sampling)
        draws = DRAW_BUDGET * max(1, -(-len(self) // per_draw))
        # A draw costs the sampler's whole batch (~0.5 ms); tens to hundreds of draws pass before
        # one picks the anchor. Both samplers start by drawing their anchors with
        # ``rng.choice(N, anchors, replace=False)``, so that call alone (~40 µs) probes a draw
        # first, and only a draw whose probe holds the anchor is sampled in full and checked.
        # Should the samplers ever start otherwise, the unprobed search below still finds it.
        for probed in (True, False):
            for draw in range(draws):
                if probed and anchor not in self.batch_rng(seed, anchor, draw).choice(len(self), per_draw, replace=False):
                    continue
                batch = self._sample(sampling, self.batch_rng(seed, anchor, draw))
                if anchor in self._drawn_anchors(sampling, batch):
                    return draw, batch
        raise AnchorNotDrawn(f"the {sampling} sampler did not pick training image {anchor} in {draws} draws; "
                             "try another batch seed")

    def _anchors_per_batch(self, sampling: str) -> int:
        if sampling == "binary":
            config = get_method(BINARY_METHODS["all"])
            return max(1, min(config.batch_size, len(self)) // (1 + min(config.pos_per_anchor, config.k_pos)))
        config = get_method(DENSE_METHOD)
        return max(1, min(config.batch_size, len(self)) // (1 + config.k))

    def _sample(self, sampling: str, rng: np.random.Generator):
        """One batch, drawn with the very call ``train._step_loss`` makes."""
        if sampling == "binary":
            config = get_method(BINARY_METHODS["all"])
            return sample_binary_batch(self.neighbours, config.batch_size, config.pos_per_anchor, config.k_pos, rng)
        config = get_method(DENSE_METHOD)
        return sample_dense_batch(self.neighbours, config.batch_size, config.k, rng=rng)

    def _drawn_anchors(self, sampling: str, batch) -> np.ndarray:
        # Both samplers put their anchors first (``mining._fill_batch``): the binary batch's
        # first ``anchors`` members, the dense batch's rows ``anchor_pos``.
        if sampling == "binary":
            return batch[:self._anchors_per_batch("binary")]
        return batch.indices[batch.anchor_pos]

    # ----------------------------------------------------------------- the two strategies
    def binary(self, anchor: int, model_id: str = UNTRAINED, seed: int = 0) -> BinaryBatch:
        """The binary batch drawn around ``anchor`` and each miner's triplets for it under ``model_id``."""
        self.head(model_id)  # an unknown model is an error before any work
        return self._remember(("binary", int(anchor), model_id, int(seed)), lambda: self._binary(anchor, model_id, seed))

    def _binary(self, anchor: int, model_id: str, seed: int) -> BinaryBatch:
        draw, batch = self._first_draw("binary", anchor, seed)
        row = int(np.flatnonzero(batch == anchor)[0])
        base = get_method(BINARY_METHODS["all"])
        embeddings = self.embed_batch(model_id, batch)
        pos, neg = binary_masks(batch, self.neighbours, base.k_pos)
        # The miners decide each triplet from its own two distances (batch-hard: from its
        # anchor's row), so masking out the other anchors' rows keeps exactly the triplets
        # training keeps for this anchor, at a fraction of the cost (tests check both ways).
        only = torch.zeros_like(pos)
        only[row] = True
        triplets = {}
        for kind in BINARY_KINDS:
            config = get_method(BINARY_METHODS[kind])
            miner = make_binary_miner(config.miner, config.loss_args.get("margin", 0.2))  # as fit makes it
            a, p, n = miner(embeddings, pos & only, neg & only)
            triplets[kind] = np.stack([p.numpy(), n.numpy()], axis=1).astype(np.int64)
        distance = squared_l2_distance()(embeddings)[row].numpy().astype(np.float64)
        return BinaryBatch(
            anchor=int(anchor), batch=batch, row=row, draw=draw,
            positives=np.flatnonzero(pos[row].numpy()), negatives=np.flatnonzero(neg[row].numpy()),
            label_distance=self.neighbours.between(np.array([anchor]), batch)[0].astype(np.float64),
            embedding_distance=distance, margin=float(base.loss_args.get("margin", 0.2)),
            kth_label_distance=float(self.neighbours.distances[anchor, base.k_pos - 1]), triplets=triplets)

    def dense(self, anchor: int, seed: int = 0) -> DenseView:
        """The dense batch drawn around ``anchor``: its others, nearest first, and its triplets."""
        return self._remember(("dense", int(anchor), int(seed)), lambda: self._dense(anchor, seed))

    def _dense(self, anchor: int, seed: int) -> DenseView:
        draw, batch = self._first_draw("dense", anchor, seed)
        row = int(np.flatnonzero(batch.indices[batch.anchor_pos] == anchor)[0])
        config = get_method(DENSE_METHOD)
        ties = config.loss_args.get("ties", "order")
        b, i, j = dense_triplets(torch.as_tensor(batch.label_dist), ties=ties)
        mine = (b == row).numpy()
        others = batch.indices[batch.other_pos[row]]
        k_pos = get_method(BINARY_METHODS["all"]).k_pos
        return DenseView(
            anchor=int(anchor), batch=batch, row=row, draw=draw, others=others,
            label_distance=batch.label_dist[row].astype(np.float64), k=config.k,
            nearest=np.isin(others, self.neighbours.indices[anchor, :config.k]),
            binary_positive=np.isin(others, self.neighbours.indices[anchor, :k_pos]),
            triplets=np.stack([i.numpy()[mine], j.numpy()[mine]], axis=1).astype(np.int64))


    # ----------------------------------------------------------------- tiles
    def label_row(self, anchor: int) -> np.ndarray:
        """(N,) label distances from the anchor to every training image."""
        return self.neighbours.between(np.array([anchor]), np.arange(len(self)))[0]

    def anchor_tile(self, anchor: int) -> Tile:
        """The anchor with its label drawn on it (where the task draws labels)."""
        return Tile(self.thumbs.overlay(int(anchor)), None, None, tooltip=f"anchor: training image #{anchor}")

    def tiles(self, anchor: int, indices, label_distance, embedding_distance=None, notes=None,
              overlay: bool = False) -> list[Tile]:
        """Tiles of training images: the badge shows the label distance to the anchor (and the
        embedding distance after it), coloured by how label-close the image is among the whole
        training split, as the other pages colour results; ``notes`` end each tooltip."""
        fractions = distance_fractions(self.label_row(anchor), label_distance)
        out = []
        for row, index in enumerate(np.asarray(indices, dtype=np.int64)):
            label = float(label_distance[row])
            badge = f"{label:.3f}" if embedding_distance is None else f"{label:.3f} · {float(embedding_distance[row]):.2f}"
            tip = (f"training image #{index} · label distance {label:.4f}, closer than "
                   f"{100 * (1 - fractions[row]):.0f}% of the training images")
            if embedding_distance is not None:
                tip += f" · embedding distance {float(embedding_distance[row]):.4f}"
            if notes is not None:
                tip += f" · {notes[row]}"
            uri = self.thumbs.overlay(int(index)) if overlay else self.thumbs[int(index)]
            out.append(Tile(uri, None, badge, quality_colour(fractions[row]), tip))
        return out


def trained_heads(catalog) -> dict:
    """The catalog's d=128 heads on backbone features (not the ImageNet baseline, not the fine-tuned
    backbones), in display order."""
    heads = {}
    for model_id in catalog.model_ids():
        model = catalog.models[model_id]
        if model.head is not None and model.input_mode == TRAIN_MODE and model.meta.get("dim") == 128:
            heads[model_id] = model.head
    return heads


def open_view(task: str, root, catalog=None) -> MiningView:
    """The task's mining view, with the trained heads of ``catalog`` (a ``serve.catalog.Catalog``)."""
    view = MiningView(task, root, trained_heads(catalog) if catalog is not None else None)
    view.untrained  # initialised here, so the first pick of the untrained head costs no more than any other
    return view


def default_model(view: MiningView) -> str:
    """The binary triplet's own head when built (what these miners trained), else the first."""
    for model_id in view.model_ids:
        if model_id.startswith("binary_triplet-"):
            return model_id
    return view.model_ids[0]
