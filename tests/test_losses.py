"""Losses: log-ratio (gradient, invariances, guards, batched = per-anchor), dense triplet,
PML-backed binary losses, cross-modal triplet, and the speed comparison."""
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses, reducers

from dml_core.bench.speed import log_ratio_speed
from dml_core.learn import losses as L
from dml_core.learn.mining import dense_triplets, squared_l2_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_case(B=4, m=9, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    anchor = torch.randn(B, d, generator=g, dtype=dtype)
    others = torch.randn(B, m, d, generator=g, dtype=dtype)
    label_dist = torch.rand(B, m, generator=g, dtype=dtype) + 0.05
    return anchor, others, label_dist


def test_log_ratio_gradcheck():
    anchor, others, label_dist = random_case(B=2, m=5, d=3)
    anchor.requires_grad_()
    others.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, o: L.log_ratio_loss(a, o, label_dist), (anchor, others))
    mask = torch.tensor([[True, False, True, True, True], [True, True, True, False, False]])
    assert torch.autograd.gradcheck(lambda a, o: L.log_ratio_loss(a, o, label_dist, mask), (anchor, others))


def test_log_ratio_zero_when_distances_proportional_to_labels():
    # Points on a line in R^5; label = position. The default D (Euclidean, as the official
    # code) is |gap|, so a label distance of 3 |gap| matches every log ratio; the paper's
    # squared form D = gap^2 is matched by 3 gap^2 instead.
    g = torch.Generator().manual_seed(1)
    direction = F.normalize(torch.randn(5, generator=g, dtype=torch.float64), dim=0)
    positions = torch.randperm(40, generator=g).to(torch.float64)[:28].reshape(4, 7)
    anchor_pos = torch.tensor([0.5, 10.5, 20.5, 30.5], dtype=torch.float64)
    anchor = anchor_pos[:, None] * direction
    others = positions[..., None] * direction
    gap = (positions - anchor_pos[:, None]).abs()
    assert float(L.log_ratio_loss(anchor, others, 3.0 * gap)) < 1e-8
    assert float(L.log_ratio_loss(anchor, others, 3.0 * gap**2, squared=True)) < 1e-8
    # Each form with the other's label distance gives a clear loss.
    assert float(L.log_ratio_loss(anchor, others, 3.0 * gap**2)) > 1e-2
    assert float(L.log_ratio_loss(anchor, others, 3.0 * gap, squared=True)) > 1e-2


def test_log_ratio_of_one_anchor_by_hand():
    anchor = torch.zeros(1, 2, dtype=torch.float64)
    others = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [2.0, 0.0]]], dtype=torch.float64)   # |x| = 5, 1, 2
    labels = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)                       # 0 -> the floor
    def by_hand(dist, floor):
        u = [math.log(d + 1e-6) - math.log(max(y, floor) + 1e-6) for d, y in zip(dist, (1.0, 2.0, 0.0))]
        return ((u[0] - u[1]) ** 2 + (u[0] - u[2]) ** 2 + (u[1] - u[2]) ** 2) / 3

    for squared, dist in ((False, [5.0, 1.0, 2.0]), (True, [25.0, 1.0, 4.0])):
        for floor in (1e-3, 0.0):
            expected = by_hand(dist, floor)
            got = L.log_ratio_loss(anchor, others, labels, squared=squared, label_floor=floor)
            assert math.isclose(float(got), expected, rel_tol=1e-9), (squared, floor)
            reference = L.log_ratio_loss_reference(anchor, others, labels, squared=squared, label_floor=floor)
            assert math.isclose(float(reference), expected, rel_tol=1e-9)
    # without the floor, the duplicate label's log(1e-6) dominates the loss
    assert by_hand([5.0, 1.0, 2.0], 0.0) > 3 * by_hand([5.0, 1.0, 2.0], 1e-3)


# --------------------------------------------------------------------------- Rank-N-Contrast
def rnc_case(n=10, d=4, seed=0, levels=4):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, levels, (n, 2), generator=g).to(torch.float64)   # few levels: many ties
    return embeddings, torch.cdist(labels, labels, p=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_rank_n_contrast_matches_the_formula_loop(seed, temperature):
    embeddings, label_dist = rnc_case(seed=seed)
    assert (label_dist == label_dist[0, 1]).sum() > 2                          # ties are exercised
    fast = L.rank_n_contrast_loss(embeddings, label_dist, temperature)
    loop = L.rank_n_contrast_loss_reference(embeddings, label_dist, temperature)
    assert torch.allclose(fast, loop, rtol=1e-10), (float(fast), float(loop))
    e1, e2 = embeddings.clone().requires_grad_(), embeddings.clone().requires_grad_()
    L.rank_n_contrast_loss(e1, label_dist, temperature).backward()
    L.rank_n_contrast_loss_reference(e2, label_dist, temperature).backward()
    assert torch.allclose(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_rank_n_contrast_of_three_points_by_hand():
    embeddings = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    label_dist = torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]], dtype=torch.float64)
    s = -torch.cdist(embeddings, embeddings)
    terms = [
        torch.logsumexp(s[0, [1, 2]], 0) - s[0, 1], torch.logsumexp(s[0, [2]], 0) - s[0, 2],
        torch.logsumexp(s[1, [0, 2]], 0) - s[1, 0], torch.logsumexp(s[1, [0, 2]], 0) - s[1, 2],   # a tie: both in
        torch.logsumexp(s[2, [0]], 0) - s[2, 0], torch.logsumexp(s[2, [0, 1]], 0) - s[2, 1],
    ]
    assert math.isclose(float(L.rank_n_contrast_loss(embeddings, label_dist, 1.0)), float(torch.stack(terms).mean()), rel_tol=1e-9)


def test_rank_n_contrast_is_invariant_to_a_common_shift():
    embeddings, label_dist = rnc_case(seed=3)
    shifted = embeddings + torch.tensor([5.0, -2.0, 0.5, 100.0], dtype=torch.float64)
    assert torch.allclose(L.rank_n_contrast_loss(embeddings, label_dist), L.rank_n_contrast_loss(shifted, label_dist), rtol=1e-9)


def test_rank_n_contrast_finite_on_degenerate_inputs():
    for embeddings, label_dist in [
        (torch.zeros(6, 3), torch.zeros(6, 6)),                                # everything identical
        (torch.ones(5, 2), torch.rand(5, 5)),                                  # collapsed embeddings
        (torch.tensor([[0.0, 0.0], [0.0, 0.0], [1e4, 0.0]]), torch.tensor([[0.0, 0, 1], [0, 0, 1], [1, 1, 0]])),
    ]:
        embeddings = embeddings.clone().requires_grad_()
        loss = L.rank_n_contrast_loss(embeddings, label_dist, temperature=0.1)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(embeddings.grad).all()
    with pytest.raises(ValueError, match="temperature"):
        L.rank_n_contrast_loss(torch.zeros(3, 2), torch.zeros(3, 3), temperature=0.0)
    with pytest.raises(ValueError, match="label_distances"):
        L.rank_n_contrast_loss(torch.zeros(3, 2), torch.zeros(3, 4))


def test_rank_n_contrast_rewards_label_ordered_embeddings():
    labels = torch.linspace(0, 1, 12, dtype=torch.float64)[:, None]
    label_dist = torch.cdist(labels, labels)
    ordered = 3 * labels
    shuffled = ordered[torch.randperm(12, generator=torch.Generator().manual_seed(0))]
    assert float(L.rank_n_contrast_loss(ordered, label_dist)) < float(L.rank_n_contrast_loss(shuffled, label_dist))


@pytest.mark.parametrize("scale", [0.1, 3.0, 100.0])
def test_log_ratio_invariant_to_embedding_scale(scale):
    anchor, others, label_dist = random_case()
    base = L.log_ratio_loss(anchor, others, label_dist)
    scaled = L.log_ratio_loss(scale * anchor, scale * others, label_dist)
    assert float(base) > 0.1
    assert math.isclose(float(scaled), float(base), rel_tol=1e-4)


def test_log_ratio_finite_with_duplicates_and_zero_label_distances():
    anchor, others, label_dist = random_case(dtype=torch.float32)
    others[0, 0] = anchor[0]                 # an embedding equal to its anchor
    others[1, 2] = others[1, 3]              # duplicate embeddings among the others
    others[2] = anchor[2]                    # every other of anchor 2 collapsed onto it
    label_dist[0, 1] = 0.0                   # identical labels
    label_dist[3] = 0.0
    anchor.requires_grad_()
    others.requires_grad_()
    for loss_fn in (L.log_ratio_loss, L.log_ratio_loss_pairwise):
        loss = loss_fn(anchor, others, label_dist)
        anchor.grad = others.grad = None
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(anchor.grad).all() and torch.isfinite(others.grad).all()


def test_log_ratio_mask_ignores_garbage_entries():
    anchor, others, label_dist = random_case(dtype=torch.float32)
    mask = torch.ones(label_dist.shape, dtype=torch.bool)
    mask[:, -2:] = False
    label_dist[:, -2:] = float("nan")
    others = others.clone().requires_grad_()
    loss = L.log_ratio_loss(anchor, others, label_dist, mask)
    loss.backward()
    expected = L.log_ratio_loss_reference(anchor, others[:, :-2], label_dist[:, :-2])
    assert torch.isfinite(others.grad).all()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_log_ratio_batched_equals_per_anchor_reference():
    anchor, others, label_dist = random_case(B=5, m=11)
    reference = L.log_ratio_loss_reference(anchor, others, label_dist)
    assert torch.allclose(L.log_ratio_loss(anchor, others, label_dist), reference, rtol=1e-10)
    assert torch.allclose(L.log_ratio_loss_pairwise(anchor, others, label_dist), reference, rtol=1e-10)
    assert torch.allclose(L.LogRatioLoss()(anchor, others, label_dist), reference, rtol=1e-10)
    # and the gradients agree
    grads = []
    for fn in (L.log_ratio_loss, L.log_ratio_loss_reference):
        a, o = anchor.clone().requires_grad_(), others.clone().requires_grad_()
        fn(a, o, label_dist).backward()
        grads.append((a.grad, o.grad))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1])


def test_log_ratio_rejects_bad_shapes():
    anchor, others, label_dist = random_case()
    with pytest.raises(ValueError, match="label_dist"):
        L.log_ratio_loss(anchor, others, label_dist[:, :-1])
    with pytest.raises(ValueError, match="others"):
        L.log_ratio_loss(anchor, others[0], label_dist)


def _pml_dense_triplet(anchor, others, label_dist, margin, reducer):
    B, m, d = others.shape
    b, i, j = dense_triplets(label_dist)
    flat = torch.cat([anchor, others.reshape(-1, d)])
    loss = pml_losses.TripletMarginLoss(margin=margin, reducer=reducer,
                                        distance=squared_l2_distance())
    return loss(flat, indices_tuple=(b, B + b * m + i, B + b * m + j))


@pytest.mark.parametrize("reduction,reducer", [("mean", reducers.MeanReducer()), ("nonzero", reducers.AvgNonZeroReducer())])
def test_dense_triplet_matches_pml_on_the_same_triplets(reduction, reducer):
    anchor, others, label_dist = random_case(dtype=torch.float32)
    anchor, others = F.normalize(anchor, dim=-1), F.normalize(others, dim=-1)
    ours = L.dense_triplet_loss(anchor, others, label_dist, margin=0.1, reduction=reduction)
    theirs = _pml_dense_triplet(anchor, others, label_dist, 0.1, reducer)
    assert float(ours) > 0
    assert torch.allclose(ours, theirs, rtol=1e-5)


def test_dense_triplet_takes_the_label_closer_sample_as_positive():
    # 1-D embeddings ordered like the labels, gaps far above the margin: no violation.
    label_dist = torch.tensor([[0.1, 0.5, 0.3, 0.9]])
    anchor = torch.zeros(1, 1)
    ordered = label_dist[..., None] * 2.0          # embedding distance grows with label distance
    assert float(L.dense_triplet_loss(anchor, ordered, label_dist, margin=0.03)) == 0.0
    reversed_ = (1.0 - label_dist)[..., None] * 2.0
    assert float(L.dense_triplet_loss(anchor, reversed_, label_dist, margin=0.03)) > 0.1
    # label ties: "skip" makes no triplet; the official "order" takes the earlier one as positive
    assert float(L.DenseTripletLoss(ties="skip")(anchor, reversed_, torch.ones(1, 4))) == 0.0
    d = (reversed_[0, :, 0] ** 2).tolist()
    by_order = [max(0.0, d[i] - d[j] + 0.03) for i in range(4) for j in range(i + 1, 4)]
    assert math.isclose(float(L.DenseTripletLoss()(anchor, reversed_, torch.ones(1, 4))), sum(by_order) / 6, rel_tol=1e-6)


def test_binary_triplet_loss_uses_squared_distance_and_margin():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[math.cos(0.6), math.sin(0.6)]])
    n = torch.tensor([[math.cos(0.7), -math.sin(0.7)]])
    emb = torch.cat([a, p, n])
    loss = L.binary_triplet_loss(margin=0.2)(emb, indices_tuple=(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    d_ap, d_an = ((a - p) ** 2).sum(), ((a - n) ** 2).sum()
    assert math.isclose(float(loss), float(torch.relu(d_ap - d_an + 0.2)), rel_tol=1e-5)
    assert float(loss) > 0
    smooth = L.binary_triplet_loss(margin=0.2, smooth_loss=True)(emb, indices_tuple=(torch.tensor([0]), torch.tensor([2]), torch.tensor([1])))
    assert float(smooth) > 0                       # softplus: an easy triplet still has a gradient


def test_contrastive_loss_pulls_positive_pushes_negative():
    loss = L.contrastive_loss(pos_margin=0.0, neg_margin=1.0)
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.05, 1.0]])
    # PML returns 0 when every tuple has <= 1 pair, so use two of each.
    far_pos_near_neg = (torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0, 1]), torch.tensor([2, 3]))
    near_pos_far_neg = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0, 1]), torch.tensor([1, 2]))
    bad = float(loss(emb, indices_tuple=far_pos_near_neg))
    assert bad > 1.0
    assert float(loss(emb, indices_tuple=near_pos_far_neg)) < 0.1 * bad


@pytest.mark.parametrize("negatives", ["hardest", "all"])
def test_cross_modal_triplet_loss(negatives):
    loss = L.CrossModalTripletLoss(margin=0.2, negatives=negatives)
    images = torch.eye(6)
    assert float(loss(images, images.clone())) == 0.0            # aligned, orthogonal: no violation
    shuffled = images[torch.tensor([1, 2, 3, 4, 5, 0])]
    assert float(loss(images, shuffled)) > 0.5                   # every caption matches another image
    # several captions per image: ids say which image each caption belongs to
    captions = torch.cat([images, images])
    ids = torch.arange(6)
    assert float(loss(images, captions, ids, torch.cat([ids, ids]))) == 0.0
    with pytest.raises(ValueError, match="image_ids"):
        loss(images, captions)


def test_cross_modal_gradients_flow_to_both_modalities():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 4, generator=g, requires_grad=True)
    texts = torch.randn(8, 4, generator=g, requires_grad=True)
    loss = L.CrossModalTripletLoss()(images, texts)
    loss.backward()
    assert float(loss.detach()) > 0 and images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0


def test_speed_comparison_reports_consistent_numbers():
    result = log_ratio_speed(n_anchors=8, m=17, dim=8, repeats=2, threads=1)
    assert result["triplets"] == 8 * 17 * 16 // 2
    assert result["max_abs_difference"] < 1e-4                     # same loss, three ways
    for name in ("batched", "batched_pairwise", "per_anchor"):
        assert result[f"{name}_triplets_per_s"] > 0
    assert result["speedup"] == pytest.approx(result["per_anchor_seconds"] / result["batched_seconds"])
    assert torch.get_num_threads() >= 1
