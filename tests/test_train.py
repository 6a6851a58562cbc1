"""Training loop: loss goes down, log-ratio improves rank correlation, determinism,
checkpoint resume = uninterrupted run, corrupt checkpoints are refused, trunk and
cross-modal variants, method configs."""
import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from pytorch_metric_learning import losses as pml_losses, reducers
from scipy.stats import spearmanr

from dml_core.learn import losses as L, methods
from dml_core.learn.checkpoints import CheckpointError, Checkpointing, load_model, read_checkpoint
from dml_core.learn.mining import (
    LabelNeighbours,
    all_pairs,
    all_triplets,
    binary_masks,
    sample_binary_batch,
    sample_dense_batch,
    squared_l2_distance,
)
from dml_core.learn.model import EmbeddingModel, embed, embed_text
from dml_core.learn.train import fit

SMALL = dict(batch_size=48, hidden=64, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(n, seed, features=24):
    """2-D continuous label; features = noisy nonlinear function of it plus a nuisance factor."""
    fixed = np.random.default_rng(99)
    lift = fixed.normal(size=(2, 16)) * 3
    mix = fixed.normal(size=(16, features)) / 4
    nuisance_mix = fixed.normal(size=(1, features))
    rng = np.random.default_rng(seed)
    labels = rng.random((n, 2))
    x = np.tanh(np.sin(labels @ lift) @ mix + rng.normal(size=(n, 1)) @ nuisance_mix)
    return (x + 0.2 * rng.normal(size=x.shape)).astype(np.float32), labels


def label_distance(a, b):
    return np.sqrt(((np.asarray(a)[:, None] - np.asarray(b)[None]) ** 2).sum(-1))


@pytest.fixture(scope="module")
def data():
    return synthetic(240, 0)


def rank_correlation(model, x, labels):
    emb = embed(model, x)
    iu = np.triu_indices(len(x), 1)
    emb_dist = ((emb[:, None] - emb[None]) ** 2).sum(-1)[iu]
    return spearmanr(emb_dist, label_distance(labels, labels)[iu])[0]


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def fixed_batch_loss(model, method, x, labels):
    """The method's loss on one fixed batch with *every* triplet / pair and a plain mean.

    The training losses average over mined or non-zero terms only (semi-hard triplets always
    have losses in (0, margin]), so their per-step values need not fall; this one must.
    """
    config = methods.get_method(method)
    rng = np.random.default_rng(123)
    neighbours = LabelNeighbours(labels, label_distance, k=30)
    with torch.no_grad():
        if config.sampling == "dense":
            batch = sample_dense_batch(neighbours, 96, config.k, rng=rng)
            emb = torch.as_tensor(embed(model, x[batch.indices]))
            args = (emb[batch.anchor_pos], emb[batch.other_pos], torch.as_tensor(batch.label_dist))
            if config.loss == "log_ratio":
                return float(L.log_ratio_loss(*args))
            return float(L.dense_triplet_loss(*args, margin=config.loss_args["margin"]))
        batch = sample_binary_batch(neighbours, 96, rng=rng)
        emb = torch.as_tensor(embed(model, x[batch]))
        pos, neg = binary_masks(batch, neighbours)
        if config.loss == "contrastive":
            loss = pml_losses.ContrastiveLoss(reducer=reducers.MeanReducer())
            return float(loss(emb, indices_tuple=all_pairs(pos, neg)))
        loss = pml_losses.TripletMarginLoss(margin=0.2, distance=squared_l2_distance(), reducer=reducers.MeanReducer())
        return float(loss(emb, indices_tuple=all_triplets(pos, neg)))


@pytest.mark.parametrize("method", ["contrastive", "binary_triplet", "binary_triplet_hard", "dense_triplet", "log_ratio"])
def test_training_reduces_the_loss(data, method):
    x, labels = data
    untrained, _ = fit(x, labels, label_distance, method, dim=16, steps=1, lr=1e-12, **SMALL)
    model, history = fit(x, labels, label_distance, method, dim=16, steps=80, seed=0, **SMALL)
    assert history["steps_done"] == 80 and np.isfinite(history["loss"]).all()
    before, after = fixed_batch_loss(untrained, method, x, labels), fixed_batch_loss(model, method, x, labels)
    assert after < 0.85 * before, (before, after)     # measured: 0.14 to 0.39, contrastive 0.77


def test_log_ratio_improves_rank_correlation(data):
    x, labels = data
    test_x, test_labels = synthetic(120, 1)
    untrained, _ = fit(x, labels, label_distance, "log_ratio", dim=16, steps=1, lr=1e-12, **SMALL)
    trained, _ = fit(x, labels, label_distance, "log_ratio", dim=16, steps=120, **SMALL)
    before = rank_correlation(untrained, test_x, test_labels)
    after = rank_correlation(trained, test_x, test_labels)
    assert after > before + 0.1 and after > 0.6


@pytest.mark.parametrize("method", ["log_ratio", "rank_n_contrast"])
def test_continuous_methods_improve_rank_correlation(data, method):
    x, labels = data
    test_x, test_labels = synthetic(120, 1)
    untrained, _ = fit(x, labels, label_distance, method, dim=16, steps=1, lr=1e-12, **SMALL)
    trained, _ = fit(x, labels, label_distance, method, dim=16, steps=120, **SMALL)
    assert rank_correlation(trained, test_x, test_labels) > rank_correlation(untrained, test_x, test_labels) + 0.1


def discs(n, seed, size=64):
    """Images of one grey disc whose radius and centre x are the 2-D label (in [0, 1])."""
    rng = np.random.default_rng(seed)
    labels = rng.random((n, 2))
    yy, xx = np.mgrid[:size, :size]
    radius = 6 + 14 * labels[:, 0]
    centre = 20 + 24 * labels[:, 1]
    inside = (xx[None] - centre[:, None, None]) ** 2 + (yy[None] - size / 2) ** 2 <= radius[:, None, None] ** 2
    images = np.repeat((40 + 180 * inside).astype(np.uint8)[..., None], 3, axis=-1)
    return images, labels


def test_the_cnn_embedder_learns_from_images_and_reloads(tmp_path):
    images, labels = discs(320, 0)
    test_images, test_labels = discs(100, 1)
    untrained, _ = fit(images, labels, label_distance, "log_ratio_ft", dim=16, steps=1, lr=1e-12, **SMALL)
    model, history = fit(images, labels, label_distance, "log_ratio_ft", dim=16, steps=80,
                         checkpoint=Checkpointing(tmp_path), **SMALL)
    assert model.trunk is not None and np.isfinite(history["loss"]).all()
    assert rank_correlation(model, test_images, test_labels) > rank_correlation(untrained, test_images, test_labels) + 0.2
    assert np.array_equal(embed(load_model(tmp_path), test_images), embed(model, test_images))
    # A model stored before the library moved into stage folders names its trunk by the old path.
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["trunk_spec"]["builder"] == "dml_core.learn.cnn:compact_cnn"
    config["model"]["trunk_spec"]["builder"] = "dml_core.cnn:compact_cnn"
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert np.array_equal(embed(load_model(tmp_path), test_images), embed(model, test_images))
    with pytest.raises(ValueError, match="images"):
        fit(np.zeros((20, 7), np.float32), labels[:20], label_distance, "log_ratio_ft", steps=1, **SMALL)


def test_the_cnn_embedder_starts_from_its_seed_whatever_ran_before():
    images, labels = discs(64, 0)

    def weights(seed):
        model, _ = fit(images, labels, label_distance, "log_ratio_ft", dim=8, steps=2, seed=seed, **SMALL)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    first = weights(0)
    torch.rand(10)  # whatever else used torch's global generator meanwhile
    assert torch.equal(weights(0), first)
    assert not torch.equal(weights(1), first)


def test_the_top_blocks_embedder_trains_the_backbones_top_on_cached_activations_and_reloads(tmp_path):
    from dml_core.features.backbone import shared_backbone
    from dml_core.features.cache import compute_features
    from dml_core.learn.top_blocks import split_mode

    images, labels = discs(96, 0, size=128)
    test_images, _ = discs(24, 1, size=128)
    mode = split_mode(1)
    activations, test_activations = (compute_features(shared_backbone(), x, mode=mode, progress=False)
                                     for x in (images, test_images))
    pretrained = dict(shared_backbone().split(mode, pool="spatial2x2")[1].named_parameters())
    model, history = fit(activations, labels, label_distance, "log_ratio_ft", dim=16, steps=3, embedder="top_blocks",
                         checkpoint=Checkpointing(tmp_path), **SMALL)
    assert np.isfinite(history["loss"]).all() and model.trunk is not None
    trained = dict(model.trunk.trunk.named_parameters())
    assert trained.keys() == pretrained.keys()
    assert not all(torch.equal(trained[name], pretrained[name]) for name in trained)  # the backbone's top learned
    # its BatchNorm statistics stay ImageNet's while training
    stats = {n: b for n, b in model.trunk.trunk.named_buffers() if n.endswith("running_mean")}
    original = dict(shared_backbone().split(mode, pool="spatial2x2")[1].named_buffers())
    assert stats and all(torch.equal(b, original[n]) for n, b in stats.items())
    assert np.array_equal(embed(load_model(tmp_path), test_activations), embed(model, test_activations))
    with pytest.raises(ValueError, match="activations"):
        fit(images, labels, label_distance, "log_ratio_ft", steps=1, embedder="top_blocks", **SMALL)
    assert split_mode(0) == "block15"  # the head convolution alone
    with pytest.raises(ValueError, match="trained_blocks"):
        split_mode(16)


def test_fine_tuned_variants_share_their_base_method_but_the_embedder():
    for method in methods.FINE_TUNED:
        base = methods.get_method(methods.base_method(method))
        fine_tuned = methods.get_method(method)
        assert fine_tuned.embedder == "cnn" and fine_tuned.loss == base.loss and fine_tuned.miner == base.miner
        budget = ("batch_size", "steps", "lr", "weight_decay", "hidden", "k", "k_pos", "normalize")
        assert all(getattr(fine_tuned, key) == getattr(base, key) for key in budget)
    assert methods.get_method("log_ratio_ft").loss_args["squared"] is False      # the official code's form


def test_same_seed_same_model_other_seed_other_model(data):
    x, labels = data
    runs = [fit(x, labels, label_distance, "dense_triplet", dim=8, steps=8, seed=s, **SMALL)[0] for s in (3, 3, 4)]
    assert same_weights(weights(runs[0]), weights(runs[1]))
    assert not same_weights(weights(runs[0]), weights(runs[2]))


def test_resumed_run_equals_uninterrupted_run(data, tmp_path):
    x, labels = data
    args = dict(method="binary_triplet", dim=8, steps=24, seed=5, **SMALL)
    full, full_history = fit(x, labels, label_distance, **args)
    every_10 = Checkpointing(tmp_path, every=10)

    def crash(step, loss):
        if step == 15:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        fit(x, labels, label_distance, checkpoint=every_10, on_step=crash, **args)
    assert json.loads((tmp_path / "config.json").read_text())["steps_done"] == 10
    resumed, history = fit(x, labels, label_distance, checkpoint=every_10, **args)
    assert same_weights(weights(resumed), weights(full))
    assert history["loss"] == full_history["loss"]
    loaded = load_model(tmp_path)
    assert np.array_equal(embed(loaded, x), embed(full, x))
    assert loaded.run_config["method"]["id"] == "binary_triplet" and loaded.run_config["steps_done"] == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model-0000024.safetensors",
                                                         "optimizer-0000024.safetensors"]


@pytest.mark.parametrize("every_s, saved_step", [(0.0, 14), (3600.0, None)])
def test_checkpoints_by_time_save_when_the_interval_has_passed(data, tmp_path, every_s, saved_step):
    x, labels = data

    def crash(step, loss):
        if step == 15:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        fit(x, labels, label_distance, "log_ratio", dim=8, steps=24, seed=5, on_step=crash,
            checkpoint=Checkpointing(tmp_path, every=10, every_s=every_s), **SMALL)
    config = tmp_path / "config.json"
    assert (json.loads(config.read_text())["steps_done"] if config.is_file() else None) == saved_step


def test_on_step_can_stop_training_and_resume_finishes_it(data, tmp_path):
    x, labels = data
    seen = []
    args = dict(method="log_ratio", dim=8, steps=12, seed=1, checkpoint=Checkpointing(tmp_path), **SMALL)
    _, history = fit(x, labels, label_distance, on_step=lambda s, l: seen.append((s, l)) or s < 5, **args)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5] and history["steps_done"] == 5
    _, history = fit(x, labels, label_distance, **args)
    assert history["steps_done"] == 12 and history["loss"][:5] == [l for _, l in seen]


def test_resume_refuses_a_checkpoint_of_another_run(data, tmp_path):
    x, labels = data
    fit(x, labels, label_distance, "log_ratio", dim=8, steps=3, seed=1, checkpoint=Checkpointing(tmp_path), **SMALL)
    with pytest.raises(CheckpointError, match="seed"):
        fit(x, labels, label_distance, "log_ratio", dim=8, steps=3, seed=2, checkpoint=Checkpointing(tmp_path), **SMALL)
    model, _ = fit(x, labels, label_distance, "log_ratio", dim=8, steps=3, seed=2,
                   checkpoint=Checkpointing(tmp_path, resume=False), **SMALL)
    assert load_model(tmp_path).run_config["seed"] == 2


def test_corrupted_checkpoint_raises_a_clear_error(data, tmp_path):
    x, labels = data
    fit(x, labels, label_distance, "dense_triplet", dim=8, steps=3, checkpoint=Checkpointing(tmp_path), **SMALL)
    config = json.loads((tmp_path / "config.json").read_text())
    model_file = tmp_path / config["files"]["model"]["name"]
    original = model_file.read_bytes()

    model_file.write_bytes(original[:-7] + b"garbage")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):       # resume refuses it too
        fit(x, labels, label_distance, "dense_triplet", dim=8, steps=3, checkpoint=Checkpointing(tmp_path), **SMALL)

    truncated = original[: len(original) // 2]                             # checksum updated: parse error
    model_file.write_bytes(truncated)
    config["files"]["model"]["sha256"] = hashlib.sha256(truncated).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        load_model(tmp_path)

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "nowhere")


class SmallTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x))))


def test_trunk_on_cached_activations_trains_and_reloads(data, tmp_path):
    x, labels = data
    activations = np.repeat(x[:, :4, None, None], 5, axis=2).repeat(5, axis=3)     # (N, 4, 5, 5)
    activations += 0.05 * np.random.default_rng(0).normal(size=activations.shape).astype(np.float32)
    trunk = SmallTrunk()
    before = weights(trunk)
    model, history = fit(activations, labels, label_distance, "log_ratio", dim=8, steps=15, trunk=trunk,
                         checkpoint=Checkpointing(tmp_path), **SMALL)
    assert same_weights(weights(trunk), before)                  # the caller's trunk is untouched
    assert not same_weights(weights(model.trunk), before)        # the copy was trained
    with pytest.raises(CheckpointError, match="trunk="):
        load_model(tmp_path)
    loaded = load_model(tmp_path, trunk=SmallTrunk())
    assert np.allclose(embed(loaded, activations), embed(model, activations), atol=1e-6)


def test_cross_modal_training_aligns_images_and_captions(data):
    x, labels = data
    rng = np.random.default_rng(0)
    sentences = np.concatenate([labels, labels ** 2], 1)               # a "text" view of the label
    texts = np.stack([sentences, sentences + 0.05 * rng.normal(size=sentences.shape)], 1).astype(np.float32)
    model, history = fit(x, None, None, "cross_modal", dim=16, steps=60, text_inputs=texts, **SMALL)
    loss = np.array(history["loss"])
    assert loss[-10:].mean() < 0.8 * loss[:10].mean()
    images, captions = embed(model, x), embed_text(model, texts[:, 0])
    rank_of_own_caption = (captions @ images.T).argsort(1)[:, ::-1].argsort(1)[np.arange(len(x)), np.arange(len(x))]
    assert np.median(rank_of_own_caption) < 0.3 * len(x)       # chance: 0.5


def test_bad_inputs_give_clear_errors(data):
    x, labels = data
    with pytest.raises(ValueError, match="inputs must be"):
        fit(x[:, :, None], labels, label_distance, "log_ratio", steps=1, **SMALL)
    with pytest.raises(ValueError, match="labels"):
        fit(x, labels[:-1], label_distance, "log_ratio", steps=1, **SMALL)
    with pytest.raises(ValueError, match="label_distance returned shape"):
        fit(x, labels, lambda a, b: np.zeros((len(a), 3)), "log_ratio", steps=1, **SMALL)
    with pytest.raises(ValueError, match="text_inputs"):
        fit(x, labels, label_distance, "cross_modal", steps=1, **SMALL)
    with pytest.raises(ValueError, match="unknown method"):
        fit(x, labels, label_distance, "magic", steps=1, **SMALL)


def test_method_configs_share_one_budget_and_tuning_size():
    compared = [methods.get_method(m) for m in methods.COMPARED]
    budget = ("batch_size", "steps", "lr", "weight_decay", "warmup_fraction", "final_lr_fraction", "hidden")
    for key in budget:
        assert len({getattr(m, key) for m in compared}) == 1, key
    assert {len(methods.tuning_configs(m)) for m in methods.COMPARED} == {4}
    triplet = methods.get_method("binary_triplet")
    assert triplet.loss_args["margin"] == 0.2 and triplet.k_pos == 30 and triplet.normalize
    dense = methods.get_method("dense_triplet")
    assert dense.loss_args["margin"] == 0.03 and dense.k == 5 and dense.normalize
    assert methods.get_method("log_ratio").k == 5
    assert {c.miner for c in methods.tuning_configs("binary_triplet")} == {"all", "hard", "semihard", "easy"}
    changed = methods.get_method("binary_triplet", miner="hard", loss_args={"margin": 0.1})
    assert changed.miner == "hard" and changed.loss_args == {"margin": 0.1, "smooth_loss": False}
    assert methods.MethodConfig.from_dict(changed.to_dict()) == changed
    with pytest.raises(ValueError, match="unknown method setting"):
        methods.get_method("log_ratio", learning_rate=1)


def test_official_dense_layout_trains_too(data):
    x, labels = data
    untrained, _ = fit(x, labels, label_distance, "log_ratio", dim=16, steps=1, lr=1e-12, **SMALL)
    model, _ = fit(x, labels, label_distance, "log_ratio", dim=16, steps=60, dense_layout="own", **SMALL)
    assert fixed_batch_loss(model, "log_ratio", x, labels) < 0.8 * fixed_batch_loss(untrained, "log_ratio", x, labels)


def test_trunk_spec_rebuilds_the_trunk_and_refuses_foreign_builders(data, tmp_path):
    x, labels = data
    spec = {"builder": "dml_core.learn.model:EmbeddingModel",
            "kwargs": {"in_shape": [24], "dim": 12, "hidden": 0, "normalize": False, "standardize": False}}
    trunk = EmbeddingModel(**spec["kwargs"])
    model, _ = fit(x, labels, label_distance, "log_ratio", dim=8, steps=3, trunk=trunk, trunk_spec=spec,
                   checkpoint=Checkpointing(tmp_path), **SMALL)
    assert np.array_equal(embed(load_model(tmp_path), x), embed(model, x))
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["trunk_spec"] = {"builder": "os:system", "kwargs": {"command": "true"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="refused"):
        load_model(tmp_path)
