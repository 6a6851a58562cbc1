"""Learn page 7: aligning images and captions in one space, and zero-shot retrieval.

Toy world: objects of 16 categories in 6 colours. Each category has a few visual attributes
(fur, four legs, wings, stripes, wheels, ...). Instead of pixels an "image" is a 40-D feature
vector produced from its category's attributes, its colour and a category-specific quirk,
through a fixed random nonlinear map plus noise. A caption ("a photo of a red zebra") is a
bag of words whose word vectors come from a fixed "pretrained language model": a category
word's vector encodes that category's attributes (plus noise), a colour word's its colour, so
the language side already knows that a zebra is like a horse with stripes.

Two encoders map images and captions into one 16-D unit-norm space, trained on **seen**
categories only with the bidirectional triplet loss (Kiros et al. 2014; VSE):

    L1 = sum_{t'} max(0, m - s(i, t) + s(i, t'))   (image anchor i, its caption t, other captions t')
    L2 = sum_{i'} max(0, m - s(t, i) + s(t, i'))   (caption anchor t, its image i, other images i')
    L  = L1 + L2,  s = cosine similarity

(``dml_core.learn.losses.CrossModalTripletLoss`` with every negative of the batch). Held-out
categories are never seen in training, yet a caption naming one retrieves its images:
the text encoder maps the unseen word vector to where its attributes point (zero-shot).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dml_core.learn.losses import CrossModalTripletLoss
from dml_core.toys.common import mlp, single_threaded

ATTRIBUTES = ("fur", "four legs", "hooves", "stripes", "wings", "feathers", "flies", "fins", "wheels", "engine",
              "large", "in water")
CATEGORIES = {
    "cat": ("fur", "four legs"),
    "dog": ("fur", "four legs"),
    "horse": ("fur", "four legs", "hooves", "large"),
    "zebra": ("fur", "four legs", "hooves", "stripes", "large"),
    "tiger": ("fur", "four legs", "stripes", "large"),
    "bird": ("wings", "feathers", "flies"),
    "eagle": ("wings", "feathers", "flies", "large"),
    "penguin": ("wings", "feathers", "in water"),
    "duck": ("wings", "feathers", "flies", "in water"),
    "fish": ("fins", "in water"),
    "shark": ("fins", "in water", "large"),
    "bicycle": ("wheels",),
    "car": ("wheels", "engine"),
    "bus": ("wheels", "engine", "large"),
    "boat": ("engine", "in water"),
    "aeroplane": ("wings", "engine", "flies", "large"),
}
CATEGORY_NAMES = tuple(CATEGORIES)
COLOURS = ("red", "green", "blue", "yellow", "white", "black")
FILLER_WORDS = ("a", "an", "the", "photo", "picture", "of", "small", "nice")
DEFAULT_HELD_OUT = ("zebra", "penguin", "bus")
CAPTION_TEMPLATES = ("a {c} {o}", "a photo of a {c} {o}", "the {c} {o}", "a picture of the {c} {o}", "a nice {c} {o}")
IMAGE_DIM, WORD_DIM, JOINT_DIM = 40, 24, 16
WORLD_SEED = 777  # the fixed "world": attribute maps, word vectors, category quirks


def attribute_matrix() -> np.ndarray:
    """(16, 12) 0/1 attributes of every category, rows in ``CATEGORY_NAMES`` order."""
    return np.array([[a in CATEGORIES[c] for a in ATTRIBUTES] for c in CATEGORY_NAMES], dtype=np.float64)


@dataclass(frozen=True)
class World:
    """The fixed random parts of the toy world (all from ``WORLD_SEED``).

    image_map (IMAGE_DIM, 12 + 6 + 1): attributes, colour, bias -> image features;
    quirks (16, IMAGE_DIM): each category's look beyond its attributes;
    word_vectors: {word: (WORD_DIM,)} the "pretrained" word vectors.
    """

    image_map: np.ndarray
    quirks: np.ndarray
    word_vectors: dict


def make_world(seed: int = WORLD_SEED) -> World:
    """Build the fixed world. Category word vector = A @ attributes + 0.3 noise; colour word
    vector = C @ one-hot colour + 0.3 noise; filler words small random vectors."""
    rng = np.random.default_rng(seed)
    attrs = attribute_matrix()
    image_map = rng.normal(0, 1.0, (IMAGE_DIM, len(ATTRIBUTES) + len(COLOURS) + 1)) / 2.0
    quirks = rng.normal(0, 0.35, (len(CATEGORY_NAMES), IMAGE_DIM))
    attr_to_word = rng.normal(0, 1.0, (WORD_DIM, len(ATTRIBUTES)))
    colour_to_word = rng.normal(0, 1.0, (WORD_DIM, len(COLOURS)))
    words = {}
    for k, name in enumerate(CATEGORY_NAMES):
        words[name] = attr_to_word @ attrs[k] + 0.3 * rng.normal(0, 1.0, WORD_DIM)
    for k, name in enumerate(COLOURS):
        words[name] = colour_to_word[:, k] + 0.3 * rng.normal(0, 1.0, WORD_DIM)
    for name in FILLER_WORDS:
        words[name] = 0.2 * rng.normal(0, 1.0, WORD_DIM)
    return World(image_map=image_map, quirks=quirks, word_vectors=words)


WORLD = make_world()


def image_features(categories: np.ndarray, colours: np.ndarray, seed: int, world: World = WORLD) -> np.ndarray:
    """(N, 40) float32 "images": ``tanh(M [attributes; colour; 1] + quirk_category) + N(0, 0.1)``."""
    rng = np.random.default_rng(seed)
    attrs = attribute_matrix()[categories] * rng.uniform(0.7, 1.3, (len(categories), len(ATTRIBUTES)))
    colour = np.eye(len(COLOURS))[colours]
    inputs = np.concatenate([attrs, colour, np.ones((len(categories), 1))], 1)
    x = np.tanh(inputs @ world.image_map.T + world.quirks[categories]) + rng.normal(0, 0.1, (len(categories), IMAGE_DIM))
    return x.astype(np.float32)


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters only)."""
    return re.findall(r"[a-z]+", text.lower())


def caption_features(captions: list[str], world: World = WORLD) -> tuple[np.ndarray, list[list[str]]]:
    """(N, 24) float32 bag-of-words features (mean of the known words' vectors) and, per
    caption, the words that are not in the vocabulary (ignored). A caption with no known
    word gets the zero vector."""
    features = np.zeros((len(captions), WORD_DIM), dtype=np.float32)
    unknown = []
    for n, caption in enumerate(captions):
        words = tokenize(caption)
        known = [w for w in words if w in world.word_vectors]
        unknown.append([w for w in words if w not in world.word_vectors])
        if known:
            features[n] = np.mean([world.word_vectors[w] for w in known], axis=0)
    return features, unknown


def make_captions(categories: np.ndarray, colours: np.ndarray, seed: int) -> list[str]:
    """One caption per (category, colour) from a random template."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, len(CAPTION_TEMPLATES), len(categories))
    return [CAPTION_TEMPLATES[t].format(c=COLOURS[col], o=CATEGORY_NAMES[cat])
            for t, cat, col in zip(templates, categories, colours)]


@dataclass
class CrossModalModel:
    """Trained encoders' weights as numpy (so results can be cached and pickled).

    image_layers / text_layers: lists of (weight, bias) of each Linear layer; ReLU between.
    """

    image_layers: list
    text_layers: list
    held_out: tuple
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def embed_images(self, x: np.ndarray) -> np.ndarray:
        return _run_layers(self.image_layers, x)

    def embed_texts(self, captions: list[str]) -> np.ndarray:
        return _run_layers(self.text_layers, caption_features(captions)[0])


def _run_layers(layers, x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, dtype=np.float64)
    for k, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if k < len(layers) - 1:
            h = np.maximum(h, 0.0)
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    return h / np.maximum(norms, 1e-12)


def _layers(net: torch.nn.Sequential) -> list:
    return [(m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy().copy())
            for m in net if isinstance(m, torch.nn.Linear)]


@single_threaded
def train_crossmodal(seed: int = 0, steps: int = 300, margin: float = 0.2, held_out=DEFAULT_HELD_OUT,
                     per_concept: int = 4, batch_size: int = 48, lr: float = 0.005) -> CrossModalModel:
    """Train both encoders with L = L1 + L2 on images and captions of the seen categories.

    Training set: ``per_concept`` images of every (seen category, colour) with one caption
    each. Captions of the same (category, colour) count as matching (they describe the same
    thing); all others in the batch are negatives. Image encoder 40->64->16 MLP, text encoder
    a linear 24->16 map of the mean word vector (a linear map carries the attribute structure
    of the word vectors over to unseen words; a hidden layer generalised worse in our runs),
    both L2-normalised.
    """
    unknown = [c for c in held_out if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown held-out categories {unknown}; choose from {', '.join(CATEGORY_NAMES)}")
    start = time.perf_counter()
    seen = [k for k, c in enumerate(CATEGORY_NAMES) if c not in held_out]
    if len(seen) < 2:
        raise ValueError("at least two categories must stay in training")
    concepts = np.array([(cat, col) for cat in seen for col in range(len(COLOURS))] * per_concept)
    categories, colours = concepts[:, 0], concepts[:, 1]
    images = torch.as_tensor(image_features(categories, colours, seed))
    texts = torch.as_tensor(caption_features(make_captions(categories, colours, seed + 1))[0])
    concept_ids = torch.as_tensor(categories * len(COLOURS) + colours)
    image_net = mlp([IMAGE_DIM, 64, JOINT_DIM], seed=seed)
    text_net = mlp([WORD_DIM, JOINT_DIM], seed=seed + 1)
    optimiser = torch.optim.Adam(list(image_net.parameters()) + list(text_net.parameters()), lr=lr)
    criterion = CrossModalTripletLoss(margin=margin, negatives="all")
    gen = torch.Generator().manual_seed(seed + 2)
    history = []
    for _ in range(steps):
        batch = torch.randperm(len(concepts), generator=gen)[:batch_size]
        zi = F.normalize(image_net(images[batch]), dim=1)
        zt = F.normalize(text_net(texts[batch]), dim=1)
        loss = criterion(zi, zt, concept_ids[batch], concept_ids[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    return CrossModalModel(image_layers=_layers(image_net), text_layers=_layers(text_net), held_out=tuple(held_out),
                           loss_history=history, seconds=time.perf_counter() - start)


@dataclass
class Gallery:
    """Test images of every category: features (N, 40), categories (N,), colours (N,)."""

    features: np.ndarray
    categories: np.ndarray
    colours: np.ndarray

    def describe(self, i: int) -> str:
        return f"{COLOURS[self.colours[i]]} {CATEGORY_NAMES[self.categories[i]]}"


def make_gallery(per_category: int = 12, seed: int = 5000) -> Gallery:
    """``per_category`` test images of each of the 16 categories, colours at random."""
    rng = np.random.default_rng(seed)
    categories = np.repeat(np.arange(len(CATEGORY_NAMES)), per_category)
    colours = rng.integers(0, len(COLOURS), len(categories))
    return Gallery(features=image_features(categories, colours, seed + 1), categories=categories, colours=colours)


def text_to_image(model: CrossModalModel, gallery: Gallery, caption: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` gallery images most similar to ``caption`` and their cosine similarities."""
    similarity = model.embed_images(gallery.features) @ model.embed_texts([caption])[0]
    order = np.argsort(-similarity, kind="stable")[:k]
    return order, similarity[order]


def image_to_text(model: CrossModalModel, gallery: Gallery, index: int, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` candidate captions "a <colour> <category>" (all 96) most similar to image ``index``."""
    candidates = [f"a {col} {cat}" for cat in CATEGORY_NAMES for col in COLOURS]
    similarity = model.embed_texts(candidates) @ model.embed_images(gallery.features[index:index + 1])[0]
    order = np.argsort(-similarity, kind="stable")[:k]
    return [(candidates[i], float(similarity[i])) for i in order]


def category_retrieval(model: CrossModalModel, gallery: Gallery, k: int = 10) -> dict:
    """Precision@k of the query "a photo of a <category>" for every category.

    Returns {category: precision}, plus "chance": the precision of a random ranking
    (the category's share of the gallery, the same for all here).
    """
    image_emb = model.embed_images(gallery.features)
    text_emb = model.embed_texts([f"a photo of a {c}" for c in CATEGORY_NAMES])
    result = {}
    for c, name in enumerate(CATEGORY_NAMES):
        top = np.argsort(-(image_emb @ text_emb[c]), kind="stable")[:k]
        result[name] = float(np.mean(gallery.categories[top] == c))
    result["chance"] = float(np.mean(gallery.categories == 0))
    return result
