"""``python -m dml_core``: build, train, evaluate, bench, query, preview.

Errors a person can act on (bad arguments, bad files, missing or corrupt artifacts) print one
line on stderr and exit non-zero; set DML_DEBUG=1 to see the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .tasks import TASK_NAMES


def _task_list(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in TASK_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown task(s) {', '.join(unknown) or text!r}; choose from {', '.join(TASK_NAMES)}")
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def cmd_build(args) -> int:
    from .build import run_build

    report = run_build(args.profile, args.tasks)
    print(json.dumps(report, indent=2))
    return 0


def _catalog(task: str):
    from .retrieval import load_catalog

    return load_catalog(task)


def _select_models(catalog, wanted: list[str] | None, main_only: bool = True) -> list[str]:
    if not wanted:
        return catalog.model_ids(main_only=main_only)
    unknown = [m for m in wanted if m not in catalog.models]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)} for {catalog.task_name}; built: {', '.join(catalog.model_ids())}")
    return wanted


def cmd_evaluate(args) -> int:
    from .metrics import evaluate

    catalog = _catalog(args.task)
    rows = {}
    for model_id in _select_models(catalog, args.models, main_only=False):
        model = catalog.models[model_id]
        result = evaluate(model.query, model.gallery, catalog.label_dist, metric=model.meta["metric"])
        rows[model_id] = {k: round(float(result[k]), 4) for k in ("ndcg@10", "ndcg@100", "mld@10", "spearman")}
    width = max(len(m) for m in rows)
    print(f"{'model':<{width}}  nDCG@10  nDCG@100  mld@10  Spearman")
    for model_id, row in rows.items():
        print(f"{model_id:<{width}}  {row['ndcg@10']:7.4f}  {row['ndcg@100']:8.4f}  {row['mld@10']:6.4f}  {row['spearman']:8.4f}")
    if args.json:
        out = {"task": args.task, "queries": len(catalog.queries), "gallery": len(catalog.gallery), "models": rows}
        from .store import atomic_write_json

        atomic_write_json(_output_path(args.json), out)
    return 0


def _input_roots() -> tuple[Path, ...]:
    from .store import data_root, dml_home

    return dml_home(), data_root()


def _output_path(text: str) -> Path:
    """Reports go under the working directory, the artifacts or the data directory."""
    from .store import confine_user_path

    return confine_user_path(text, (Path.cwd(), *_input_roots()))


def _read_image_bytes(name: str) -> bytes:
    """The bytes of ``--image``: a file under the artifacts or data directory, or ``-`` for stdin;
    never more than the upload limit is read."""
    from .images import MAX_BYTES, ImageInputError
    from .store import confine_user_path

    if name == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
    else:
        path = confine_user_path(name, _input_roots())
        if not path.is_file():
            raise ValueError(f"{name}: no such file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ImageInputError(f"the file is larger than the {MAX_BYTES / 2**20:.0f} MB limit")
    return data


def cmd_query(args) -> int:
    from .images import ImageInputError
    from .views import query_with_image_bytes

    catalog = _catalog(args.task)
    model_ids = _select_models(catalog, args.models)
    if args.image:
        try:  # the Upload page's path: decode, backbone, heads, search
            result = query_with_image_bytes(catalog, _read_image_bytes(args.image), model_ids, args.k, place_on=[])
        except ImageInputError as exc:
            raise ImageInputError(f"{args.image} cannot be used: {exc}") from None
        hits, timings = result.hits, result.timings_ms
    else:
        hits, timings = catalog.hits_for_text(args.text, args.models, args.k)
    if args.json:
        out = {
            "task": args.task,
            "query": {"image": args.image} if args.image else {"text": args.text},
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
            "models": {
                model_id: [{"rank": r + 1, "gallery_id": h.gallery_index, "distance": round(h.distance, 6),
                            "label_distance": None if h.label_distance is None else round(h.label_distance, 6)}
                           for r, h in enumerate(model_hits)]
                for model_id, model_hits in hits.items()
            },
        }
        print(json.dumps(out, indent=2))
        return 0
    for model_id, model_hits in hits.items():
        print(f"{model_id}: " + "  ".join(f"#{h.gallery_index} ({h.distance:.3f})" for h in model_hits))
    print(f"({timings['total_ms']:.1f} ms)")
    return 0


def cmd_train(args) -> int:
    from .build import ModelSpec, TaskFeatures, stored_profile, train_model
    from .store import ArtifactStore

    store = ArtifactStore()
    profile = stored_profile(store, args.task)
    spec = ModelSpec(args.method, args.dim, args.seed, prefix=args.prefix)
    model_id = train_model(TaskFeatures(store, args.task), spec, profile, steps=args.steps, origin="cli")
    meta = store.manifest(args.task, "models", model_id)["meta"]
    print(json.dumps({"model_id": model_id, "metrics": meta["metrics"]}, indent=2))
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    json_path, markdown_path = _output_path(args.json), _output_path(args.markdown) if args.markdown else None
    result = run_bench(args.profile, json_path, args.tasks, markdown_path=markdown_path)
    timing = result["timing"]
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))
    print(f"build {timing['build_s']:.1f} s · features {timing['features_img_per_s']:.0f} img/s · "
          f"query p50 {timing['query_ms_p50']:.1f} ms, p95 {timing['query_ms_p95']:.1f} ms")
    return 0


def cmd_preview(args) -> int:
    from .preview import contact_sheet

    out = _output_path(args.out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp"}:
        raise ValueError(f"--out must end in .png, .jpg or .webp, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.task, n=args.n, seed=args.seed, size=args.size).save(out)
    print(f"wrote {out}")
    return 0


def _method_ids() -> list[str]:
    from .methods import METHODS

    return list(METHODS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dml_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="generate data, features, models, indexes and projections")
    build.add_argument("--profile", choices=["tiny", "quick", "full"], default="quick")
    build.add_argument("--tasks", type=_task_list, default=TASK_NAMES, help="comma-separated, e.g. pose,layout")
    build.set_defaults(func=cmd_build)

    train = sub.add_parser("train", help="train one model on the built features of a task")
    train.add_argument("--task", choices=TASK_NAMES, required=True)
    train.add_argument("--method", choices=_method_ids(), required=True)
    train.add_argument("--dim", type=_positive_int, default=128)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps", type=_positive_int, default=None, help="default: the build profile's")
    train.add_argument("--prefix", default="cli-", help="model id prefix, so the build's models are never replaced")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="nDCG@K, mean label distance@K and Spearman of built models")
    evaluate.add_argument("--task", choices=TASK_NAMES, required=True)
    evaluate.add_argument("--models", nargs="+", help="model ids (default: all)")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.set_defaults(func=cmd_evaluate)

    query = sub.add_parser("query", help="retrieve gallery images for an image (or a text, caption task)")
    query.add_argument("--task", choices=TASK_NAMES, required=True)
    source = query.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="PNG, JPEG, WebP, BMP or GIF file under the data (DML_DATA, default ./data) "
                        "or artifacts directory; '-' reads it from stdin")
    source.add_argument("--text", help="a sentence (caption task, needs a cross-modal model)")
    query.add_argument("--models", nargs="+", help="model ids (default: the main models)")
    query.add_argument("--k", type=_positive_int, default=10)
    query.add_argument("--json", action="store_true", help="print JSON: ranked gallery ids with distances")
    query.set_defaults(func=cmd_query)

    bench = sub.add_parser("bench", help="build, measure every model and the speed; write JSON and BENCHMARKS.md")
    bench.add_argument("--profile", choices=["tiny", "quick", "full"], default="quick")
    bench.add_argument("--tasks", type=_task_list, default=TASK_NAMES)
    bench.add_argument("--json", required=True, help="where to write the results")
    bench.add_argument("--markdown", default="BENCHMARKS.md", help="report to regenerate ('' to skip)")
    bench.set_defaults(func=cmd_bench)

    preview = sub.add_parser("preview", help="contact sheet of generated images with their labels")
    preview.add_argument("--task", choices=TASK_NAMES, required=True)
    preview.add_argument("--n", type=_positive_int, default=36)
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--size", type=_positive_int, default=128)
    preview.add_argument("--out", required=True)
    preview.set_defaults(func=cmd_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a person gets one line; DML_DEBUG=1 shows the traceback
        if os.environ.get("DML_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
