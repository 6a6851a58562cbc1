"""Mining on a task's own images (``dml_core.app.mining_view``, the Mining page's task section).

The view must show what training does: its batches are replayed through the training step
itself (``dml_core.learn.train._step_loss``, with a loss that records what it is given), and the
triplets it shows must be exactly the ones the training miners keep for the anchor. The page runs
on every task the tiny build makes, and still renders with nothing built.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dml_core.app import mining_view as mv
from dml_core.core.store import ArtifactStore
from dml_core.data.tasks import TASK_NAMES
from dml_core.learn import train
from dml_core.learn.methods import get_method
from dml_core.learn.mining import (
    binary_masks,
    dense_triplets,
    make_binary_miner,
    sample_binary_batch,
)
from dml_core.serve.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "learn_3_mining.py")
TIMEOUT = 300


@pytest.fixture(scope="module")
def pose_view(built_home, one_torch_thread):
    return mv.open_view("pose", built_home, load_catalog("pose", ArtifactStore(built_home)))


class Recorder:
    """A stand-in loss for ``train._step_loss``: keeps what the step hands the loss."""

    def __call__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        return torch.zeros(())


def as_set(pairs) -> set:
    return {tuple(int(v) for v in pair) for pair in pairs}


def test_the_view_offers_the_trained_d128_heads_and_the_untrained_one(pose_view):
    assert pose_view.model_ids[-1] == mv.UNTRAINED
    trained = pose_view.model_ids[:-1]
    assert "binary_triplet-d128-s0" in trained and "log_ratio-d128-s0" in trained
    assert all("-d128-" in m for m in trained)          # no d=16 ablation, no ImageNet baseline
    assert mv.default_model(pose_view) == "binary_triplet-d128-s0"


@pytest.mark.parametrize("model_id", ["binary_triplet-d128-s0", mv.UNTRAINED])
@pytest.mark.parametrize("anchor, seed", [(0, 0), (37, 5), (159, 2)])
def test_binary_triplets_are_those_the_training_step_mines(pose_view, model_id, anchor, seed):
    view = pose_view
    shown = view.binary(anchor, model_id, seed)
    assert shown.batch[shown.row] == anchor
    for kind in mv.BINARY_KINDS:
        config = get_method(mv.BINARY_METHODS[kind])
        miner = make_binary_miner(config.miner, config.loss_args["margin"])
        # The training step itself, on the generator the view drew the batch with.
        recorder = Recorder()
        train._step_loss(view.head(model_id), recorder, miner, config, view.features, None, view.neighbours,
                         view.batch_rng(seed, anchor, shown.draw), "cpu")
        embeddings = recorder.args[0]
        assert torch.equal(embeddings, view.embed_batch(model_id, shown.batch))  # the same batch, embedded alike
        a, p, n = (t.numpy() for t in recorder.kwargs["indices_tuple"])
        trained = as_set(zip(p[a == shown.row], n[a == shown.row]))
        assert as_set(shown.triplets[kind]) == trained, kind
        # And called directly on the whole batch (no rows masked out), the same again.
        batch = sample_binary_batch(view.neighbours, config.batch_size, config.pos_per_anchor, config.k_pos,
                                    view.batch_rng(seed, anchor, shown.draw))
        np.testing.assert_array_equal(batch, shown.batch)
        pos, neg = binary_masks(batch, view.neighbours, config.k_pos)
        a, p, n = (t.numpy() for t in miner(embeddings, pos, neg))
        assert as_set(zip(p[a == shown.row], n[a == shown.row])) == trained


def test_binary_kinds_split_the_anchors_triplets_by_the_miners_rules(pose_view):
    shown = pose_view.binary(11, "log_ratio-d128-s0", 0)
    counts = shown.counts()
    kept = {kind: as_set(shown.triplets[kind]) for kind in mv.BINARY_KINDS}
    assert kept["hard"] | kept["semihard"] == kept["all"] and not kept["hard"] & kept["semihard"]
    assert len(kept["all"]) + len(kept["easy"]) == counts["triplets"] == counts["positives"] * counts["negatives"]
    assert counts["batch_hard"] == 1
    # The regions the plot colours agree with what the miners keep, pair by pair.
    region = shown.region()
    for code, kind in enumerate(mv.REGIONS):
        rows, cols = np.nonzero(region == code)
        assert as_set(zip(shown.positives[rows], shown.negatives[cols])) == kept[kind]
    d = shown.embedding_distance
    for p, n in kept["hard"]:
        assert d[n] <= d[p]
    # The anchor came with its drawn neighbours, and positives are among its 30 label-nearest.
    assert counts["positives"] >= get_method("binary_triplet").pos_per_anchor
    assert np.all(shown.label_distance[shown.positives] <= shown.kth_label_distance + 1e-6)
    assert np.isin(shown.batch[shown.positives], pose_view.neighbours.indices[11]).all()


def test_batch_hard_keeps_the_farthest_positive_and_the_nearest_negative(pose_view):
    shown = pose_view.binary(3, "binary_triplet-d128-s0", 1)
    (p, n), = shown.triplets["batch_hard"]
    d = shown.embedding_distance
    assert d[p] == d[shown.positives].max() and d[n] == d[shown.negatives].min()


def test_the_batch_is_deterministic_for_a_seed_and_changes_with_it(built_home, pose_view):
    again = mv.MiningView("pose", built_home)
    first, second = pose_view.binary(21, mv.UNTRAINED, 4), again.binary(21, mv.UNTRAINED, 4)
    np.testing.assert_array_equal(first.batch, second.batch)
    assert as_set(first.triplets["all"]) == as_set(second.triplets["all"])
    assert not np.array_equal(first.batch, pose_view.binary(21, mv.UNTRAINED, 5).batch)
    np.testing.assert_array_equal(pose_view.dense(21, 4).others, again.dense(21, 4).others)


@pytest.mark.parametrize("anchor, seed", [(0, 0), (90, 3)])
def test_dense_triplets_are_those_of_the_training_step(pose_view, anchor, seed):
    view = pose_view
    shown = view.dense(anchor, seed)
    config = get_method(mv.DENSE_METHOD)
    # Inputs that are their own training index, embedded by the identity: what the step hands
    # the loss then says which images it took as each anchor's others.
    indices = np.arange(len(view), dtype=np.float32)[:, None]
    recorder = Recorder()
    train._step_loss(torch.nn.Identity(), recorder, None, config, indices, None, view.neighbours,
                     view.batch_rng(seed, anchor, shown.draw), "cpu")
    anchors, others, label_dist = recorder.args
    row = int(np.flatnonzero(anchors[:, 0].numpy() == anchor)[0])
    np.testing.assert_array_equal(others[row, :, 0].numpy().astype(int), shown.others)
    np.testing.assert_array_equal(label_dist[row].numpy(), shown.label_distance.astype(np.float32))
    b, i, j = (t.numpy() for t in dense_triplets(label_dist, ties=config.loss_args.get("ties", "order")))
    assert as_set(shown.triplets) == as_set(zip(i[b == row], j[b == row]))
    m = len(shown.others)
    assert len(shown.triplets) == m * (m - 1) // 2                  # ties in order: every pair is one
    assert np.all(shown.label_distance[shown.triplets[:, 0]] <= shown.label_distance[shown.triplets[:, 1]])
    near = view.neighbours.indices[anchor, :config.k]
    assert set(shown.others[shown.nearest]) == set(near) and shown.counts()["nearest"] == config.k
    for i, j in shown.example_triplets():
        assert 0 <= i < j < m


def test_the_untrained_head_is_the_one_fit_starts_from(pose_view):
    # One step at learning rate 0 changes nothing (AdamW's decay is scaled by the rate too).
    started, _ = train.fit(pose_view.features, pose_view.train.labels, pose_view.task.label_distance,
                           method=mv.BINARY_METHODS["all"], steps=1, lr=0.0, seed=mv.UNTRAINED_SEED, progress=False)
    ours = pose_view.untrained.state_dict()
    for name, tensor in started.state_dict().items():
        assert torch.equal(tensor, ours[name]), name


def test_tiles_show_label_and_embedding_distances(pose_view):
    shown = pose_view.binary(5, "binary_triplet-d128-s0", 0)
    tiles = pose_view.tiles(5, shown.batch[shown.positives], shown.label_distance[shown.positives],
                            shown.embedding_distance[shown.positives])
    assert len(tiles) == len(shown.positives)
    first = shown.positives[0]
    assert tiles[0].badge == f"{shown.label_distance[first]:.3f} · {shown.embedding_distance[first]:.2f}"
    assert tiles[0].uri.startswith("data:image/jpeg;base64,")
    assert f"training image #{shown.batch[first]}" in tiles[0].tooltip


def test_an_anchor_outside_the_training_split_is_refused(pose_view):
    with pytest.raises(ValueError, match="not a training image"):
        pose_view.binary(len(pose_view), mv.UNTRAINED, 0)
    with pytest.raises(ValueError, match="no trained head"):
        pose_view.binary(0, "imagenet", 0)


# ------------------------------------------------------------------------------ the page
def metric(at: AppTest, label: str) -> str:
    return [m.value for m in at.metric if m.label == label][-1]


def test_the_page_renders_with_nothing_built(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No task is built yet" in i.value and "python -m dml_core build" in i.value for i in at.info)
    assert any(m.label == "Hard negatives" for m in at.metric)            # the toy still works
    assert any(m.value.startswith("**Takeaway**") for m in at.markdown)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_the_mining_view_runs_on_each_built_in_task(use_built_home, task):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="l3t_task").set_value(task).run()
    assert not at.exception, [e.value for e in at.exception]
    for label in ("Positives", "Negatives", "Hard", "Semi-hard", "Easy", "Others", "Random others"):
        assert int(metric(at, label)) >= 0, label
    assert int(metric(at, "Positives")) >= 5
    others = int(metric(at, "Others"))
    assert int([m.value for m in at.metric if m.label == "Triplets"][-1]) == others * (others - 1) // 2
    assert any("Negatives the all (non-zero) miner keeps" in m.value for m in at.markdown)

    at.number_input(key=f"l3t_anchor_{task}").set_value(17).run()
    at.radio(key="l3t_miner").set_value("hard").run()
    at.selectbox(key=f"l3t_model_{task}").set_value(mv.UNTRAINED).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Negatives the hard miner keeps" in m.value for m in at.markdown)
    view = mv.MiningView(task, use_built_home)
    expected = view.binary(17, mv.UNTRAINED, 0).counts()
    assert int(metric(at, "Hard")) == expected["hard"] and int(metric(at, "Positives")) == expected["positives"]
