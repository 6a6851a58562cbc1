"""Mining: label neighbours, binary / dense batch samplers, mask miners (parity with PML and
what each miner's name promises on constructed cases), dense triplets."""
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import miners as pml_miners

from dml_core.learn import mining as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def euclidean(a, b):
    return np.sqrt(((np.asarray(a)[:, None] - np.asarray(b)[None]) ** 2).sum(-1))


@pytest.fixture(scope="module")
def labels():
    return np.random.default_rng(0).random((120, 2))


def test_label_neighbours_match_brute_force(labels):
    nb = M.LabelNeighbours(labels, euclidean, k=7, chunk_size=50)
    full = euclidean(labels, labels)
    np.fill_diagonal(full, np.inf)
    expected = np.argsort(full, axis=1, kind="stable")[:, :7]
    assert np.array_equal(nb.indices, expected)
    assert np.allclose(nb.distances, np.take_along_axis(full, expected, 1), atol=1e-6)
    assert not (nb.indices == np.arange(len(labels))[:, None]).any()      # never itself
    rows, cols = np.array([3, 5]), np.array([0, 9, 4])
    streamed = M.LabelNeighbours(labels, euclidean, k=7, keep_matrix_max=10)   # no stored matrix
    assert streamed.matrix is None and np.array_equal(streamed.indices, nb.indices)
    assert np.allclose(streamed.between(rows, cols), nb.between(rows, cols), atol=1e-6)


def test_label_neighbours_break_ties_by_index():
    labels = np.array([[0.0], [1.0], [1.0], [1.0], [5.0]])
    nb = M.LabelNeighbours(labels, euclidean, k=3)
    assert nb.indices[0].tolist() == [1, 2, 3]
    assert nb.indices[2].tolist() == [1, 3, 0]     # zero label distance to 1 and 3, then 0


@pytest.mark.parametrize("bad,match", [
    (lambda a, b: euclidean(a, b)[:, :-1], "shape"),
    (lambda a, b: euclidean(a, b) * np.nan, "NaN"),
    (lambda a, b: -euclidean(a, b) - 1, "negative"),
])
def test_label_neighbours_reject_bad_label_distance(labels, bad, match):
    with pytest.raises(ValueError, match=match):
        M.LabelNeighbours(labels, bad, k=3)


def test_label_neighbours_reject_too_many_neighbours(labels):
    with pytest.raises(ValueError, match="k = 200"):
        M.LabelNeighbours(labels, euclidean, k=200)


def test_dense_batch_holds_each_anchors_k_nearest_neighbours(labels):
    nb = M.LabelNeighbours(labels, euclidean, k=30)
    batch = M.sample_dense_batch(nb, batch_size=48, k=5, rng=np.random.default_rng(3))
    n = len(batch.indices)
    assert n == 48 and len(np.unique(batch.indices)) == n
    B = len(batch.anchor_pos)
    assert B == 48 // 6 and batch.other_pos.shape == (B, n - 1) and batch.label_dist.shape == (B, n - 1)
    for b, a_pos in enumerate(batch.anchor_pos):
        anchor = batch.indices[a_pos]
        others = batch.indices[batch.other_pos[b]]
        assert anchor not in others and len(np.unique(others)) == n - 1
        assert set(nb.indices[anchor, :5]) <= set(others[:5])           # its k NN lead the list
        expected = euclidean(labels[[anchor]], labels[others])[0]
        assert np.allclose(batch.label_dist[b], expected, atol=1e-6)
        assert np.all(np.diff(batch.label_dist[b]) >= 0)                 # nearest first
    again = M.sample_dense_batch(nb, batch_size=48, k=5, rng=np.random.default_rng(3))
    assert np.array_equal(again.indices, batch.indices)                  # seeded: deterministic


def test_dense_batch_rejects_impossible_sizes(labels):
    nb = M.LabelNeighbours(labels, euclidean, k=5)
    with pytest.raises(ValueError, match="cannot hold"):
        M.sample_dense_batch(nb, batch_size=5, k=5)
    with pytest.raises(ValueError, match="do not fit"):
        M.sample_dense_batch(nb, batch_size=20, k=5, n_anchors=10)


def test_binary_batch_puts_positives_next_to_anchors():
    labels = np.random.default_rng(1).random((600, 2))
    nb = M.LabelNeighbours(labels, euclidean, k=30)
    batch = M.sample_binary_batch(nb, batch_size=60, pos_per_anchor=5, k_pos=30, rng=np.random.default_rng(0))
    assert len(batch) == 60 and len(np.unique(batch)) == 60
    pos, neg = M.binary_masks(batch, nb, k_pos=30)
    anchors = batch[:60 // 6]
    assert all(pos[i].sum() >= 5 for i in range(len(anchors)))          # each anchor has its 5
    # a random batch of the same size has far fewer positives
    random_batch = np.random.default_rng(0).choice(len(labels), 60, replace=False)
    assert pos.sum() > 1.5 * M.binary_masks(random_batch, nb, k_pos=30)[0].sum()


def test_binary_masks_follow_the_label_neighbours(labels):
    nb = M.LabelNeighbours(labels, euclidean, k=10)
    batch = np.arange(40)
    pos, neg = M.binary_masks(batch, nb, k_pos=10)
    for i in range(40):
        for j in range(40):
            assert bool(pos[i, j]) == (i != j and j in nb.indices[i])
            assert bool(neg[i, j]) == (i != j and j not in nb.indices[i])


def unit(angle):
    return [math.cos(angle), math.sin(angle)]


def constructed_case():
    """Anchor at angle 0, one positive at 0.5 rad, negatives at several angles.

    Squared chord distances d = 2 - 2 cos(angle): d(a, p) = 0.2448. With margin 0.2 the
    negatives fall in: hard (d(a,n) < d(a,p)): 0.2, 0.4 rad; semi-hard (d(a,p) < d(a,n) <
    d(a,p) + m = 0.4448): 0.55, 0.62 rad; easy (d(a,n) > d(a,p) + m): 0.8, 2.0 rad.
    """
    angles = [0.0, 0.5, 0.2, 0.4, 0.55, 0.62, 0.8, 2.0]
    emb = torch.tensor([unit(t) for t in angles])
    pos = torch.zeros(8, 8, dtype=torch.bool)
    neg = torch.zeros(8, 8, dtype=torch.bool)
    pos[0, 1] = True
    neg[0, 2:] = True
    return emb, pos, neg


@pytest.mark.parametrize("kind,expected_negatives", [
    ("hard", {2, 3}), ("semihard", {4, 5}), ("easy", {6, 7}), ("all", {2, 3, 4, 5}),
])
def test_each_miner_selects_what_its_name_says(kind, expected_negatives):
    emb, pos, neg = constructed_case()
    a, p, n = M.MaskTripletMiner(margin=0.2, type_of_triplets=kind)(emb, pos, neg)
    assert set(n.tolist()) == expected_negatives
    assert set(a.tolist()) == {0} and set(p.tolist()) == {1}
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    d_ap, d_an = d[a, p], d[a, n]
    if kind == "hard":
        assert (d_an < d_ap).all()
    elif kind == "semihard":
        assert ((d_ap < d_an) & (d_an < d_ap + 0.2)).all()
    elif kind == "easy":
        assert (d_an > d_ap + 0.2).all()


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
    emb, pos, neg = constructed_case()
    pos[0, 4] = True                         # a second, farther positive (0.55 rad)
    neg[0, 4] = False
    a, p, n = M.MaskBatchHardMiner()(emb, pos, neg)
    assert a.tolist() == [0] and p.tolist() == [4] and n.tolist() == [2]


def class_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(36, 6, generator=g)
    labels = torch.randint(0, 5, (36,), generator=g)
    same = labels[:, None] == labels[None]
    pos = same & ~torch.eye(36, dtype=torch.bool)
    return emb, labels, pos, ~same


@pytest.mark.parametrize("kind", M.TRIPLET_TYPES)
def test_mask_miner_equals_pml_miner_on_class_labels(kind):
    emb, labels, pos, neg = class_case()
    theirs = pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets=kind,
                                           distance=M.squared_l2_distance())(emb, labels)
    ours = M.make_binary_miner(kind, margin=0.2)(emb, pos, neg)
    assert len(ours[0]) > 0
    assert all(torch.equal(x, y) for x, y in zip(ours, theirs))


def test_mask_batch_hard_equals_pml_on_class_labels():
    emb, labels, pos, neg = class_case(1)
    theirs = pml_miners.BatchHardMiner(distance=M.squared_l2_distance())(emb, labels)
    ours = M.make_binary_miner("batch_hard")(emb, pos, neg)
    assert all(torch.equal(x, y) for x, y in zip(ours, theirs))


def test_miners_work_on_a_non_transitive_relation(labels):
    # label-kNN positives are not a class structure: b near a and c near b, yet c not near a
    nb = M.LabelNeighbours(labels, euclidean, k=5)
    batch = np.arange(60)
    pos, neg = M.binary_masks(batch, nb, k_pos=5)
    emb = torch.randn(60, 8, generator=torch.Generator().manual_seed(0))
    a, p, n = M.MaskTripletMiner(0.2, "all")(emb, pos, neg)
    assert len(a) > 0 and pos[a, p].all() and neg[a, n].all()
    assert not torch.equal(pos, pos.T)


def test_unknown_miner_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        M.make_binary_miner("medium")


def test_dense_triplets_put_the_label_closer_sample_first():
    label_dist = torch.tensor([[0.3, 0.1, 0.3, 0.7]])
    b, i, j = M.dense_triplets(label_dist, ties="skip")
    pairs = set(zip(i.tolist(), j.tolist()))
    assert pairs == {(1, 0), (1, 2), (1, 3), (0, 3), (2, 3)}         # tie (0, 2) gives none
    mask = torch.tensor([[True, True, True, False]])
    assert len(M.dense_triplets(label_dist, mask, ties="skip")[0]) == 2
    _, i, j = M.dense_triplets(label_dist)                            # official: the tie in batch order
    assert set(zip(i.tolist(), j.tolist())) == pairs | {(0, 2)}
    with pytest.raises(ValueError, match="ties"):
        M.dense_triplets(label_dist, ties="random")


def test_dense_groups_follow_the_official_layout(labels):
    nb = M.LabelNeighbours(labels, euclidean, k=10)
    batch = M.sample_dense_groups(nb, n_anchors=3, m=20, k=5, rng=np.random.default_rng(2))
    assert batch.other_pos.shape == (3, 20) and batch.label_dist.shape == (3, 20)
    for b in range(3):
        anchor = batch.indices[batch.anchor_pos[b]]
        others = batch.indices[batch.other_pos[b]]
        assert anchor not in others and len(np.unique(others)) == 20
        assert set(others[:5]) == set(nb.indices[anchor, :5])             # its 5 NN, nearest first
        assert np.allclose(batch.label_dist[b], euclidean(labels[[anchor]], labels[others])[0], atol=1e-6)
        assert np.all(np.diff(batch.label_dist[b]) >= 0)
    with pytest.raises(ValueError, match="dense groups"):
        M.sample_dense_groups(nb, n_anchors=2, m=3, k=5)
