"""The one place for the names people read: methods (order, colours, families, definitions),
metrics (labels, definitions), the reference rankings, distance metrics and the plot palette.

Every table, page, plot and report takes these from here, so a colour or a label is changed
once and agrees everywhere (BENCHMARKS.md plots, the app, the Learn pages, the CLI).

Colour convention: binary-supervision methods are warm (orange / amber), continuous ones
(log-ratio, dense triplet) violet, Rank-N-Contrast blue, pretrained baselines grey; within a
family, hues and lightness far enough apart (CIEDE2000 ≥ 18 for methods shown together, mostly
≥ 24) that compared methods never look alike.
"""
from __future__ import annotations

# ------------------------------------------------------------------------------ methods
#: The untrained baseline: the backbone's globally pooled ImageNet features.
BASELINE = "imagenet"
#: Methods that are frozen pretrained features, not trained on the task.
PRETRAINED = ("imagenet", "clip")

#: The paper's comparison, shown first wherever two methods are compared: the binary baseline
#: and the log-ratio loss (Compare's default pair, the ablation, the upload benchmark, ceiling).
HEADLINE_PAIR = ("binary_triplet", "log_ratio")

#: Display order of methods (prefix match, longest first: ``binary_triplet_hard`` sorts as
#: ``binary_triplet``): the app's pickers and tables, BENCHMARKS.md's rows and curves.
METHOD_ORDER = ("log_ratio", "log_ratio_ft", "binary_triplet", "binary_triplet_ft", "rank_n_contrast", "dense_triplet",
                "contrastive", "imagenet", "cross_modal", "clip")

#: Colour per method id (prefix match, longest first).
METHOD_COLOURS = {
    "log_ratio": "#6d28d9",
    "dense_triplet": "#a78bfa",
    "rank_n_contrast": "#2563eb",
    "log_ratio_ft": "#3b0764",
    "binary_triplet_ft": "#7c2d12",
    "binary_triplet_hard": "#991b1b",
    "binary_triplet_semihard": "#db2777",
    "binary_triplet_easy": "#a16207",
    "binary_triplet_batch_hard": "#4c0519",
    "binary_triplet": "#ea580c",
    "contrastive": "#eab308",
    "cross_modal": "#0d9488",
    "imagenet": "#6b7280",
    "clip": "#1e293b",
}
#: For a method id matching none of the above (e.g. an unknown prefix).
OTHER_COLOUR = "#334155"

METHOD_FAMILIES = {"log_ratio": "continuous", "dense_triplet": "continuous", "rank_n_contrast": "continuous",
                   "binary_triplet": "binary", "contrastive": "binary", "cross_modal": "cross-modal",
                   "imagenet": "pretrained", "clip": "pretrained"}

#: What kind of embedder a model is, as every page and table names it: by what its training
#: changed (``learn.methods.EMBEDDERS``), or nothing (pretrained features). In this order.
EMBEDDER_KINDS = {"pretrained": "pretrained", "head": "head on frozen features",
                  "top_blocks": "fine-tuned backbone", "cnn": "CNN trained end to end"}

#: One-line definitions shown on the Benchmarks page (and as tooltips).
METHOD_DEFINITIONS = {
    "imagenet": "Frozen EfficientNet-Lite0 ImageNet features, globally pooled; no training on the task.",
    "clip": "Frozen open_clip image features; no training on the task.",
    "contrastive": "Contrastive loss on pairs: the 30 label-nearest neighbours are positives (pulled together), "
                   "the rest negatives (pushed beyond a margin). Binary supervision.",
    "binary_triplet": "Triplet loss, margin 0.2, on L2-normalised embeddings; positives = 30 label-nearest "
                      "neighbours, negatives = the rest; every margin-violating triplet is used. Binary supervision.",
    "binary_triplet_hard": "Binary triplet loss with hard mining: negatives closer to the anchor than the positive.",
    "binary_triplet_semihard": "Binary triplet loss with semi-hard mining: negatives farther than the positive "
                               "but inside the margin.",
    "binary_triplet_easy": "Binary triplet loss on easy triplets (already satisfied), with the smooth soft-plus loss.",
    "binary_triplet_batch_hard": "Binary triplet loss with batch-hard mining: the hardest positive and negative per anchor.",
    "dense_triplet": "Triplet loss, margin 0.03, with dense triplet mining: in every triplet (a, i, j) the "
                     "label-closer of i and j is the positive. Continuous supervision.",
    "log_ratio": "Log-ratio loss (Kim et al. 2019): (log D(f_a,f_i)/D(f_a,f_j) − log D(y_a,y_i)/D(y_a,y_j))², "
                 "so ratios of embedding distances match ratios of label distances. Continuous supervision.",
    "rank_n_contrast": "Rank-N-Contrast (Zha et al. 2023): for every pair (i, j), j is contrasted against every k "
                       "farther from i in label space, so the embedding ranks neighbours by label distance. Continuous "
                       "supervision.",
    "cross_modal": "Images and caption embeddings trained into one space, so a text finds images.",
    "log_ratio_ft": "Log-ratio loss with dense mining, with the backbone trained too: per task, EfficientNet-Lite0's "
                    "top block(s) on cached activations of those below, or a compact CNN end to end on the task's "
                    "images (64 px), instead of a head on frozen ImageNet features.",
    "binary_triplet_ft": "Binary triplet loss, with the backbone trained too (the same regime per task as the "
                         "log-ratio's), instead of a head on frozen ImageNet features.",
}


def method_base(method: str) -> str:
    """The key of ``METHOD_COLOURS`` that ``method`` starts with (longest match), else ``method``."""
    for key in sorted(METHOD_COLOURS, key=len, reverse=True):
        if method.startswith(key):
            return key
    return method


def method_colour(method: str) -> str:
    return METHOD_COLOURS.get(method_base(method), OTHER_COLOUR)


def method_family(method: str) -> str:
    """"binary", "continuous", "pretrained", "cross-modal" or "other"."""
    base = method_base(method)
    for key, family in METHOD_FAMILIES.items():
        if base.startswith(key):
            return family
    return "other"


def method_definition(method: str) -> str:
    return METHOD_DEFINITIONS.get(method_base(method), "")


def method_rank(method: str) -> int:
    """Where ``method`` sorts in ``METHOD_ORDER`` (longest matching prefix; unknown ones last)."""
    matches = [key for key in METHOD_ORDER if method.startswith(key)]
    return METHOD_ORDER.index(max(matches, key=len)) if matches else len(METHOD_ORDER)


def ordered_methods(methods) -> list[str]:
    """``methods`` in display order (stable for ties)."""
    return sorted(methods, key=method_rank)


# ------------------------------------------------------------------------------ metrics
#: The headline metrics, in the order every table shows them.
HEADLINE_METRICS = ("ndcg@10", "ndcg@100", "mld@10", "gap_closed@10", "spearman")
#: Metric keys (as stored in ``metrics.json`` and the bench JSON) -> what a person reads.
METRIC_LABELS = {"ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "mld@10": "mld@10", "gap_closed@10": "gap closed@10",
                 "spearman": "Spearman ρ", "ndcg_norm@10": "normalised nDCG@10"}
#: Column names of the headline metrics in every table (pandas frames are keyed by what people read).
HEADLINE_LABELS = tuple(METRIC_LABELS[key] for key in HEADLINE_METRICS)
#: Per-query metrics of a chosen K, by family: label with "@K" and +1 when higher is better.
METRIC_FAMILIES = {"ndcg": ("nDCG@K", 1), "mld": ("mean label distance@K", -1),
                   "gap_closed": ("gap closed@K", 1), "spearman": ("Spearman ρ", 1)}
METRIC_DEFINITIONS = {
    "nDCG@K": "Normalised discounted cumulative gain of the top K: relevance r = 1/(1 + d) with d the label "
              "distance to the query, DCG = Σ r_i / log2(i + 1), divided by the DCG of the ideal (label-sorted) "
              "ranking. 1 = perfect; higher is better.",
    "mld@K": "Mean label distance of the top K results to the query. Lower is better; the oracle's value is "
             "the floor.",
    "Spearman ρ": "Rank correlation between embedding distances and label distances over all query–gallery "
                  "pairs: does the whole ordering follow the labels, not just the top? Higher is better.",
}


def lower_is_better(key: str) -> bool:
    return key.startswith("mld")


#: The scale every score sits on: a random ranking's expectation and the label-space ranking.
REFERENCE_NAMES = {"random": "random retrieval", "oracle": "oracle"}
REFERENCE_COLOURS = {"random": "#9ca3af", "oracle": "#16a34a"}

# ---------------------------------------------------------------------- distances, plots
#: Embedding distances every model, index and metric accepts.
DISTANCE_METRICS = ("cosine", "l2")

#: Categorical palette (classes, activities, room types): 16 colours distinct side by side.
QUALITATIVE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d",
               "#9333ea", "#ea580c", "#0d9488", "#be185d", "#4f46e5", "#ca8a04", "#475569", "#16a34a"]
PLOT_FONT = dict(family="Inter, -apple-system, Segoe UI, sans-serif", size=12, color="#1f1a2e")
