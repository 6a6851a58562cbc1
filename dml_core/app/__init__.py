"""The app's facade: everything the Streamlit pages show, computed without Streamlit.

Pages (``pages/*.py``) import this package (and ``dml_core.toys``) and nothing else of the
library — an import-linter contract checks it. What a page displays that is more than a
widget is assembled in the modules here, so it is tested without a browser:

- ``catalogs``: a task's catalog, its change stamp, built tasks, profiles, the score scale
- ``labels``: names of models and descriptions of images
- ``queries``: query filters by attribute, examples that show a task's range
- ``tiles``: result tiles and score bars as HTML, thumbnails
- ``maps``: the gallery maps (UMAP), coloured by a query's label distance or an attribute, and selections
- ``movers``: where two models disagree on a query (Compare)
- ``mining_view``: the batches the training miners form for an anchor (the Learn page on mining)
- ``tables``: the catalog's metrics as tables and curves
- ``benchmarks``: scores beside their scale, the shipped bench results and their provenance
- ``lab``: the Training lab's background jobs
- ``progress``: the background build's progress, a task's place in its queue, its faults

and, from below: the vocabulary (names, colours, order), the catalog's types, image limits,
exports, per-query orderings and uploads.
"""
from __future__ import annotations

from dml_core.app import lab
from dml_core.app.benchmarks import (
    REFERENCE_LINES,
    bench_ablation_table,
    bench_method_table,
    bench_tuning_table,
    build_provenance,
    headline,
    shipped_provenance,
    shipped_reference,
    shipped_timing,
    this_machine,
    value_axis,
    with_reference,
)
from dml_core.app.catalogs import (
    built_tasks,
    catalog_stamp,
    gallery_stamp,
    home,
    open_catalog,
    stored_gallery,
    task_profile,
    task_reference,
)
from dml_core.app.labels import (
    attribute_line,
    default_model_ids,
    kind_label,
    format_value,
    image_facts,
    image_meta,
    model_label,
    query_caption,
)
from dml_core.app.maps import (
    is_categorical,
    projection_frame,
    selected_indices,
    stored_query_position,
    updated_selection,
)
from dml_core.app.progress import BuildProgress, build_progress
from dml_core.app.queries import (
    attribute_values,
    categorical_attributes,
    example_attribute,
    example_indices,
    filter_queries,
)
from dml_core.app.tables import ablation_frame, curve_frame, lab_comparison, method_summary, metrics_table
from dml_core.app.tiles import Thumbnails, Tile, hit_tiles, page_of, scale_html, score_html, tiles_html
from dml_core.core.images import MAX_BYTES, MAX_PIXELS, UPLOAD_EXTENSIONS, ImageInputError
from dml_core.core.store import ArtifactError, CorruptArtifact, read_json
from dml_core.core.vocabulary import (
    BASELINE,
    EMBEDDER_KINDS,
    HEADLINE_LABELS,
    METHOD_COLOURS,
    METRIC_DEFINITIONS,
    METRIC_FAMILIES,
    METRIC_LABELS,
    PLOT_FONT,
    QUALITATIVE,
    REFERENCE_COLOURS,
    REFERENCE_NAMES,
    lower_is_better,
    method_colour,
    method_definition,
    method_family,
    ordered_methods,
)
from dml_core.core.workers import one_thread
from dml_core.data.tasks import TASK_NAMES, get_task, task_names
from dml_core.evaluate import ordering
from dml_core.learn.methods import COMPARED
from dml_core.pipeline.profiles import get_profile
from dml_core.serve import export
from dml_core.serve.catalog import Catalog, Hit
from dml_core.serve.upload import query_with_image_bytes, warm_backbone_async

__all__ = [
    "ablation_frame", "ArtifactError", "attribute_line", "attribute_values", "BASELINE", "bench_ablation_table", "BuildProgress", "build_progress",
    "bench_method_table", "bench_tuning_table", "build_provenance", "built_tasks", "Catalog", "catalog_stamp",
    "categorical_attributes", "COMPARED", "CorruptArtifact", "curve_frame", "default_model_ids", "EMBEDDER_KINDS", "kind_label",
    "example_attribute", "example_indices", "export", "filter_queries", "format_value", "gallery_stamp",
    "get_profile", "get_task", "headline", "HEADLINE_LABELS", "Hit", "hit_tiles", "home", "image_facts",
    "image_meta", "ImageInputError", "is_categorical", "lab", "lab_comparison", "lower_is_better", "MAX_BYTES",
    "MAX_PIXELS", "method_colour", "METHOD_COLOURS", "method_definition", "method_family", "method_summary",
    "METRIC_DEFINITIONS", "METRIC_FAMILIES", "METRIC_LABELS", "metrics_table", "model_label", "one_thread",
    "open_catalog", "ordered_methods", "ordering", "page_of", "PLOT_FONT", "projection_frame", "QUALITATIVE",
    "query_caption", "query_with_image_bytes", "read_json", "REFERENCE_COLOURS", "REFERENCE_LINES",
    "REFERENCE_NAMES", "scale_html", "score_html", "selected_indices", "shipped_provenance", "shipped_reference",
    "shipped_timing", "stored_gallery", "stored_query_position", "TASK_NAMES", "task_names", "task_profile",
    "task_reference", "this_machine", "Thumbnails", "Tile", "tiles_html", "updated_selection", "UPLOAD_EXTENSIONS",
    "value_axis", "warm_backbone_async", "with_reference",
]
