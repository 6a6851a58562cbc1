"""The Learn pages' documented effects, on the dml_core.toys functions, at fixed seeds.

Each effect was checked over several seeds before one was fixed here (see the module
docstrings of dml_core.toys.*); the assertions leave margins so they test the effect, not
the last digit of one run.
"""
import numpy as np
import pytest
import torch

from dml_core.toys import classes, common, continuous, crossmodal, identity, mahalanobis, siamese


# ------------------------------------------------------------------ common building blocks
def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(0, 1, 40).round(1), rng.normal(1, 1, 60).round(1)  # rounding makes ties
    pairs = genuine[:, None] - impostor[None, :]
    expected = np.mean(pairs < 0) + 0.5 * np.mean(pairs == 0)
    roc = common.roc_curve(genuine, impostor)
    assert roc["auc"] == pytest.approx(expected)
    assert roc["far"][0] == 0 and roc["frr"][0] == 1 and roc["far"][-1] == 1 and roc["frr"][-1] == 0
    assert np.all(np.diff(roc["far"]) >= 0) and np.all(np.diff(roc["frr"]) <= 0)
    assert 0 <= roc["eer"] <= 1


def test_roc_needs_both_kinds():
    with pytest.raises(ValueError, match="genuine"):
        common.roc_curve([], [1.0])


def test_best_threshold_accuracy_separates_separable_pairs():
    same = np.array([True, True, False, False])
    threshold, accuracy = common.best_threshold_accuracy(same, np.array([0.1, 0.2, 0.9, 1.0]))
    assert accuracy == 1.0 and 0.2 < threshold < 0.9
    assert common.pair_accuracy(same, np.array([0.1, 0.2, 0.9, 1.0]), threshold) == 1.0


def test_within_class_spread_is_scale_free_and_zero_when_collapsed():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(60, 2)) + np.repeat(np.eye(2) * 5, 30, axis=0), np.repeat([0, 1], 30)
    assert common.within_class_spread(z, y) == pytest.approx(common.within_class_spread(7 * z, y))
    collapsed = np.repeat(np.eye(2) * 5, 30, axis=0)
    assert common.within_class_spread(collapsed, y) == pytest.approx(0.0)


def test_chance_recall_at_1_is_what_random_embeddings_score():
    classes = np.repeat(np.arange(6), 40)
    assert common.chance_recall_at_1(classes) == pytest.approx(39 / 239)
    rng = np.random.default_rng(0)
    random_recalls = [common.recall_at_1(rng.normal(size=(240, 2)), classes) for _ in range(200)]
    assert np.mean(random_recalls) == pytest.approx(common.chance_recall_at_1(classes), abs=0.01)


def test_mlp_depends_only_on_its_seed_and_single_thread_restores():
    a, b = common.mlp([4, 8, 2], seed=3), common.mlp([4, 8, 2], seed=3)
    torch.manual_seed(123)  # the global RNG must not matter
    c = common.mlp([4, 8, 2], seed=3)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q) and torch.equal(p, r)
    before = torch.get_num_threads()
    with common.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------ page 1: beyond binary
@pytest.mark.parametrize("threshold", [10.0, 40.0])
def test_log_ratio_keeps_the_order_of_similarity_better_than_binary_triplet(threshold):
    binary = continuous.train_continuous("binary_triplet", seed=0, similar_within_deg=threshold)
    log_ratio = continuous.train_continuous("log_ratio", seed=0)
    assert log_ratio.spearman > 0.97
    assert log_ratio.spearman > binary.spearman + 0.005
    assert np.allclose(np.linalg.norm(log_ratio.embeddings, axis=1), 1.0)  # on the unit sphere


def test_binary_triplet_with_small_threshold_wraps_the_range():
    run = continuous.train_continuous("binary_triplet", seed=0, similar_within_deg=10.0)
    far = run.pair_emb_dist[run.pair_label_dist > 80].mean()
    middle = run.pair_emb_dist[(run.pair_label_dist > 40) & (run.pair_label_dist < 50)].mean()
    assert far < middle  # bars 80+ degrees apart land nearer than bars 45 degrees apart


def test_continuous_toy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        continuous.train_continuous("hinge")
    with pytest.raises(ValueError, match="threshold"):
        continuous.train_continuous("binary_triplet", similar_within_deg=0)
    images = continuous.render_bars(np.array([0.0, 45.0, 90.0]), seed=0)
    assert images.shape == (3, 16, 16) and images.min() >= 0 and images.max() <= 1


# ------------------------------------------------------------------ page 2: contrastive vs triplet
def test_contrastive_collapses_classes_more_than_triplet():
    contrastive = classes.train_pair_loss("contrastive", seed=0)
    triplet = classes.train_pair_loss("triplet", seed=0)
    assert contrastive.spread[300] < 0.85 * triplet.spread[300]
    assert contrastive.recall[300] > 0.95 and triplet.recall[300] > 0.95  # both do separate the classes


# ------------------------------------------------------------------ page 3: mining
@pytest.fixture(scope="module")
def mining_runs():
    return {s: classes.train_mining(s, seed=0, steps=150) for s in ("hard", "semihard", "easy")}


def test_easy_negatives_teach_nothing(mining_runs):
    easy = mining_runs["easy"]
    assert np.array_equal(easy.snapshots[0], easy.final)
    assert all(loss == 0 for loss in easy.loss_history)


def test_hard_negatives_collapse_and_semihard_spread(mining_runs):
    margin = 1.0
    assert mining_runs["hard"].mean_distance[150] < 0.25 * margin
    assert mining_runs["semihard"].mean_distance[150] > 2 * margin
    assert mining_runs["semihard"].recall[150] > mining_runs["semihard"].recall[0] + 0.05


# ------------------------------------------------------------------ page 4: Mahalanobis
def test_learned_mahalanobis_metric_beats_euclidean_pair_accuracy():
    result = mahalanobis.compare_metrics(seed=0)
    assert result.learned_test_acc > result.euclid_test_acc + 0.15
    assert np.all(np.linalg.eigvalsh(result.a_learned) > -1e-9)  # PSD
    assert np.all(np.diff(result.objective) < 0)  # projected gradient with line search only descends


def test_mahalanobis_of_identity_is_euclidean_and_pairs_are_checked():
    x, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [1.0, 1.0]])
    assert np.allclose(mahalanobis.mahalanobis(x, y, np.eye(2)), [5.0, 0.0])
    data = mahalanobis.make_stretched_classes(seed=0, n_pairs=40)
    with pytest.raises(ValueError, match="similar and dissimilar"):
        mahalanobis.learn_mahalanobis(data.x, data.pairs[data.same], data.same[data.same])


# ------------------------------------------------------------------ page 5: Siamese
def test_siamese_network_verifies_unseen_classes_above_chance():
    run = siamese.train_siamese(seed=0, per_class=40, n_train_classes=30)
    unseen = common.roc_curve(run.unseen_dist[run.unseen_same], run.unseen_dist[~run.unseen_same])
    seen = common.roc_curve(run.seen_dist[run.seen_same], run.seen_dist[~run.seen_same])
    assert unseen["auc"] > 0.75
    assert seen["auc"] > unseen["auc"]


# ------------------------------------------------------------------ page 6: verification
@pytest.fixture(scope="module")
def people():
    return identity.make_people(0)


def test_verification_roc_auc_well_above_chance(people):
    trained = identity.verification_roc(identity.identity_demo(seed=0, steps=300, people=people))
    untrained = identity.verification_roc(identity.identity_demo(seed=0, steps=0, people=people))
    assert trained["auc"] > 0.85
    assert trained["auc"] > untrained["auc"] + 0.2
    assert trained["eer"] < 0.25


def test_enrolment_adds_a_template_and_identification_is_consistent(people):
    demo = identity.identity_demo(seed=0, steps=100, people=people)
    stranger = int(next(p for p in demo.test.persons if p not in demo.enrolled_persons))
    bigger = identity.enrol(demo, stranger, picture=2)
    assert len(bigger.enrolled_persons) == len(demo.enrolled_persons) + 1
    assert len(bigger.genuine) == len(demo.genuine) + 5  # the stranger's other 5 pictures
    with pytest.raises(ValueError, match="already enrolled"):
        identity.enrol(bigger, stranger)
    everything = identity.identify(bigger, threshold=np.inf)
    assert everything["accepted"].all() and everything["unknown_rejected"] == 0.0
    nothing = identity.identify(bigger, threshold=-1.0)
    assert not nothing["accepted"].any() and nothing["unknown_rejected"] == 1.0
    rates = identity.verification_rates(bigger, threshold=np.median(bigger.genuine))
    assert rates["frr"] == pytest.approx(np.mean(bigger.genuine > np.median(bigger.genuine)))


def test_people_can_come_from_the_pose_task():
    from dml_core.data.tasks import get_task

    data = get_task("pose").generate(6, seed=0, size=64)
    people = identity.people_from_task_data(data, size=32)
    assert people.images.shape == (6, 32, 32, 3) and list(people.persons) == list(data.meta["person"])
    assert people.features().shape == (6, identity.HISTOGRAM_BINS ** 3)
    with pytest.raises(ValueError, match="person"):
        identity.people_from_task_data(type("NoPersons", (), {"meta": {}, "images": data.images})())


# ------------------------------------------------------------------ page 7: cross-modal, zero-shot
def test_zero_shot_text_retrieval_of_held_out_categories_beats_random():
    gallery = crossmodal.make_gallery()
    trained = crossmodal.train_crossmodal(seed=0)
    scores = crossmodal.category_retrieval(trained, gallery)
    held_out = np.mean([scores[c] for c in trained.held_out])
    seen = np.mean([scores[c] for c in crossmodal.CATEGORY_NAMES if c not in trained.held_out])
    assert held_out > 3 * scores["chance"]
    assert seen > held_out  # zero-shot works, but less well than on trained categories
    top, _ = crossmodal.text_to_image(trained, gallery, "a photo of a zebra", k=10)
    assert np.mean(gallery.categories[top] == crossmodal.CATEGORY_NAMES.index("zebra")) > scores["chance"]


def test_captions_report_unknown_words_and_bad_held_out_names():
    features, unknown = crossmodal.caption_features(["a red unicorn"])
    assert unknown == [["unicorn"]] and np.any(features)
    with pytest.raises(ValueError, match="unicorn"):
        crossmodal.train_crossmodal(held_out=("unicorn",), steps=1)


# ------------------------------------------------------------------ page 8: beyond triplets
def test_proxies_learn_from_batches_without_positive_pairs():
    triplet = classes.train_proxy_comparison("triplet", seed=0, per_class_in_batch=1)
    proxy = classes.train_proxy_comparison("proxy_nca", seed=0, per_class_in_batch=1)
    assert np.array_equal(triplet.snapshots[0], triplet.final)  # no triplet exists: nothing moves
    assert proxy.recall[200] > proxy.recall[0] + 0.05
    assert proxy.proxies.shape == (8, 2)


def test_step_cost_counts():
    costs = classes.loss_step_seconds(batch_sizes=(16, 32), repeats=1)
    assert costs["proxy_terms"] == [128, 256]
    assert costs["triplets"][1] > costs["triplets"][0] > 0
