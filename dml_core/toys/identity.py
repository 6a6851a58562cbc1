"""Learn page 6: verification and identification of persons with a learnt embedding.

The people are the pose task's figures (``dml_core.data.tasks.pose``): a person id fixes body
shape and outfit, while pose, camera and framing change from picture to picture. An
embedding is trained with *binary* labels (same person or not: the triplet loss over
person ids) on one set of persons, then used on persons it never saw:

- **enrolment**: a new person is registered from a single picture, its embedding the
  template;
- **verification** (1:1, "is this the person they claim to be?"): accept when
  ``d(query, template) <= t``. Impostors accepted are false accepts (FAR), genuine users
  rejected are false rejects (FRR); moving t trades one for the other (the ROC curve);
- **identification** (1:N, "who is this?"): the nearest template, or "unknown" when even
  the nearest is farther than t (open set).

``render_people`` draws the figures directly with the pose renderer at a small size; a
``TaskData`` from ``get_task("pose").generate`` can be used instead via
``people_from_task_data`` (anything with uint8 images and ``meta["person"]``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from pytorch_metric_learning import losses as pml_losses

from dml_core.toys.classes import class_batches, euclidean
from dml_core.toys.common import embed, mlp, np_dists, roc_curve, single_threaded

PERSON_IMAGE_SIZE = 32
HISTOGRAM_BINS = 6


@dataclass
class People:
    """images: uint8 (N, H, W, 3); persons: (N,) int person ids."""

    images: np.ndarray
    persons: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"person images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.persons) != len(self.images):
            raise ValueError(f"{len(self.images)} person images but {len(self.persons)} person ids")

    def features(self, bins: int = HISTOGRAM_BINS) -> np.ndarray:
        """Colour histograms, float32 (N, bins^3): the fraction of pixels in each RGB cell.

        A fixed, translation-invariant front end (the toy's stand-in for a pretrained
        backbone): a figure can stand anywhere in any pose and still give the same outfit
        colours. The plain background falls into one cell, which the network learns to ignore.
        """
        quantised = (self.images.astype(np.int64) * bins) // 256
        cell = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
        flat = cell.reshape(len(cell), -1)
        counts = np.zeros((len(flat), bins ** 3), dtype=np.float32)
        np.add.at(counts, (np.repeat(np.arange(len(flat)), flat.shape[1]), flat.ravel()), 1.0)
        # Square root: small outfit regions (shoes, hair) still count next to the big ones.
        return np.sqrt(counts / flat.shape[1]).astype(np.float32)


def render_people(person_ids, per_person: int, seed: int, size: int = PERSON_IMAGE_SIZE,
                  cluttered: bool = False, lighting: float = 0.15) -> People:
    """``per_person`` pictures of each person id, each in a random pose and camera.

    cluttered: draw the pose task's textured backgrounds; the default plain grey one keeps
    the toy about the person (with clutter the colour features below also see the background).
    lighting: strength of the per-picture exposure change (gain 1 ± lighting) and colour cast
    (N(0, 40 lighting) per channel): the same outfit photographs differently.

    Uses the pose task's renderer (``sample_pose``, ``sample_camera``, ``sample_background``,
    ``appearance_for_person``); picture k of person p depends only on (seed, p, k).
    """
    from dml_core.data.tasks.pose import appearance_for_person, render, sample_background, sample_camera, sample_pose

    person_ids = [int(p) for p in person_ids]
    images = np.empty((len(person_ids) * per_person, size, size, 3), dtype=np.uint8)
    persons = np.repeat(np.asarray(person_ids), per_person)
    for n, (person, k) in enumerate((p, k) for p in person_ids for k in range(per_person)):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(person, k)))
        pose, camera = sample_pose(rng), sample_camera(rng)
        background = sample_background(rng, 2 * size) if cluttered else None
        image, _ = render(pose.angles, appearance_for_person(person), camera, size=size,
                          background=background, supersample=2)
        # Lighting: exposure and colour cast differ from picture to picture, as between cameras.
        gain = rng.uniform(1 - lighting, 1 + lighting)
        cast = rng.normal(0.0, 40.0 * lighting, 3)
        images[n] = np.clip(image.astype(np.float64) * gain + cast, 0, 255).astype(np.uint8)
    return People(images=images, persons=persons)


def people_from_task_data(data, size: int = PERSON_IMAGE_SIZE) -> People:
    """People from a task split with ``meta["person"]`` (e.g. the pose task), resized to ``size``."""
    if "person" not in getattr(data, "meta", {}):
        raise ValueError("the data has no meta['person'] identities (use the pose task)")
    images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in data.images])
    return People(images=images.astype(np.uint8), persons=np.asarray(data.meta["person"], dtype=int))


def make_people(seed: int, n_train_persons: int = 60, per_person: int = 8, n_test_persons: int = 20,
                test_per_person: int = 6) -> tuple[People, People]:
    """(train, test) pictures: persons ``0 .. n_train_persons-1`` for training, the next
    ``n_test_persons`` for testing (disjoint identities), rendered by :func:`render_people`."""
    train = render_people(range(n_train_persons), per_person, seed)
    test = render_people(range(n_train_persons, n_train_persons + n_test_persons), test_per_person, seed + 1000)
    return train, test


@dataclass
class IdentityDemo:
    """Everything the verification / identification page shows, for fixed (seed, steps).

    test: pictures of persons never trained on; embeddings: (N, D) of those pictures.
    enrolled_persons: the persons with a template; template_index: (len(enrolled),) index of
    each one's enrolment picture in ``test``; query_index: every other picture of the test set
    (enrolled persons' queries are genuine users, the others' are impostors / unknowns).
    genuine / impostor: verification distances d(query, claimed template) for true and false
    claims (every query against every template).
    """

    test: People
    embeddings: np.ndarray
    enrolled_persons: np.ndarray
    template_index: np.ndarray
    query_index: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def query_template_distances(self) -> np.ndarray:
        """(n_queries, n_templates) distances."""
        return np_dists(self.embeddings[self.query_index], self.embeddings[self.template_index])


@single_threaded
def identity_demo(seed: int = 0, steps: int = 300, n_train_persons: int = 60, per_person: int = 8,
                  n_enrolled: int = 12, n_unknown: int = 8, test_per_person: int = 6, lr: float = 0.003,
                  people: tuple[People, People] | None = None) -> IdentityDemo:
    """Train a 216->128->32 MLP on colour histograms with the triplet loss on person ids, then
    enrol and verify.

    Training persons: ids ``0 .. n_train_persons-1`` (``per_person`` pictures each, P x K
    batches of 8 persons x 4 pictures, triplet margin 0.5 on Euclidean distance, all triplets
    of the batch). Test persons: the next ``n_enrolled + n_unknown`` ids; the first
    ``n_enrolled`` are enrolled from their first picture, the rest are never enrolled.
    people: optional (train, test) ``People`` to use instead of rendering (e.g. from the pose
    task); test persons are then enrolled in order of first appearance.
    """
    start = time.perf_counter()
    if people is None:
        people = make_people(seed, n_train_persons, per_person, n_enrolled + n_unknown, test_per_person)
    train, test = people
    net = mlp([train.features().shape[1], 128, 32], seed=seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    criterion = pml_losses.TripletMarginLoss(margin=0.5, distance=euclidean())
    x = torch.as_tensor(train.features())
    y = torch.as_tensor(train.persons)
    history = []
    for batch in class_batches(train.persons, steps, per_class=4, n_classes_per_batch=8, seed=seed + 3):
        batch = torch.as_tensor(batch)
        loss = criterion(net(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    embeddings = embed(net, test.features())
    order = list(dict.fromkeys(test.persons.tolist()))
    enrolled = np.asarray(order[:n_enrolled])
    template_index = np.asarray([int(np.flatnonzero(test.persons == p)[0]) for p in enrolled])
    query_index = np.setdiff1d(np.arange(len(test.persons)), template_index)
    demo = IdentityDemo(test=test, embeddings=embeddings, enrolled_persons=enrolled, template_index=template_index,
                        query_index=query_index, genuine=np.empty(0), impostor=np.empty(0), loss_history=history)
    d = demo.query_template_distances()
    claims_true = test.persons[query_index][:, None] == enrolled[None, :]
    demo.genuine, demo.impostor = d[claims_true], d[~claims_true]
    demo.seconds = time.perf_counter() - start
    return demo


def enrol(demo: IdentityDemo, person: int, picture: int = 0) -> IdentityDemo:
    """A copy of ``demo`` with one more person enrolled from their ``picture``-th test picture.

    Their other pictures become genuine queries; the enrolment picture leaves the queries.
    Raises ValueError for a person without test pictures or one already enrolled.
    """
    pictures = np.flatnonzero(demo.test.persons == person)
    if len(pictures) == 0:
        raise ValueError(f"person {person} has no test pictures")
    if person in demo.enrolled_persons:
        raise ValueError(f"person {person} is already enrolled")
    if not 0 <= picture < len(pictures):
        raise ValueError(f"person {person} has {len(pictures)} pictures, no picture {picture}")
    template = int(pictures[picture])
    enrolled = np.append(demo.enrolled_persons, person)
    template_index = np.append(demo.template_index, template)
    query_index = demo.query_index[demo.query_index != template]
    new = IdentityDemo(test=demo.test, embeddings=demo.embeddings, enrolled_persons=enrolled,
                       template_index=template_index, query_index=query_index, genuine=np.empty(0),
                       impostor=np.empty(0), loss_history=demo.loss_history, seconds=demo.seconds)
    d = new.query_template_distances()
    claims_true = demo.test.persons[query_index][:, None] == enrolled[None, :]
    new.genuine, new.impostor = d[claims_true], d[~claims_true]
    return new


def verification_rates(demo: IdentityDemo, threshold: float) -> dict:
    """FAR, FRR and accuracy of "accept iff d <= threshold" over all claims of the demo."""
    far = float(np.mean(demo.impostor <= threshold))
    frr = float(np.mean(demo.genuine > threshold))
    n_g, n_i = len(demo.genuine), len(demo.impostor)
    return {"far": far, "frr": frr, "balanced_accuracy": 1.0 - (far + frr) / 2,
            "false_accepts": int(round(far * n_i)), "false_rejects": int(round(frr * n_g))}


def verification_roc(demo: IdentityDemo) -> dict:
    """``common.roc_curve`` of the demo's genuine vs impostor distances."""
    return roc_curve(demo.genuine, demo.impostor)


def identify(demo: IdentityDemo, threshold: float) -> dict:
    """Open-set identification of every query by its nearest template.

    Returns per-query arrays ``nearest`` (person id of the nearest template), ``distance``,
    ``accepted`` (distance <= threshold) and ``truth`` (the query's person), plus
    ``rank1`` (accuracy of nearest-template identity over enrolled persons' queries, threshold
    ignored), ``correct_accept`` (enrolled queries identified correctly *and* accepted) and
    ``unknown_rejected`` (queries of never-enrolled persons answered "unknown").
    """
    d = demo.query_template_distances()
    nearest = demo.enrolled_persons[np.argmin(d, axis=1)]
    distance = d.min(axis=1)
    accepted = distance <= threshold
    truth = demo.test.persons[demo.query_index]
    known = np.isin(truth, demo.enrolled_persons)
    return {
        "nearest": nearest, "distance": distance, "accepted": accepted, "truth": truth, "known": known,
        "rank1": float(np.mean(nearest[known] == truth[known])),
        "correct_accept": float(np.mean((nearest[known] == truth[known]) & accepted[known])),
        "unknown_rejected": float(np.mean(~accepted[~known])) if (~known).any() else float("nan"),
    }
