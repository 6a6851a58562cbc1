"""``python -m dml_core``: app, build, train, evaluate, bench, query, import, export, preview.

Errors a person can act on (bad arguments, bad files, missing or corrupt artifacts) print one
line on stderr and exit non-zero; set DML_DEBUG=1 to see the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dml_core.core.vocabulary import HEADLINE_METRICS, METRIC_LABELS
from dml_core.data.tasks import TASK_NAMES, task_names
from dml_core.pipeline.profiles import PROFILES


def _task_list(text: str) -> tuple[str, ...]:
    """Comma-separated task names: built-in ones and those imported into DML_HOME."""
    known = task_names()
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown task(s) {', '.join(unknown) or text!r}; choose from {', '.join(known)}")
    return names


def _block_counts(text: str) -> tuple[int, ...]:
    """Comma-separated counts of EfficientNet-Lite0's top blocks (``learn.top_blocks.split_mode``'s range)."""
    from dml_core.learn.top_blocks import split_mode

    try:
        counts = tuple(int(t) for t in text.split(",") if t.strip())
        for count in counts:
            split_mode(count)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated block counts, got {text!r}: {exc}") from exc
    if not counts:
        raise argparse.ArgumentTypeError(f"expected comma-separated block counts, got {text!r}")
    return counts


def _task_name(text: str) -> str:
    """One task name (built-in or imported): what ``--task`` accepts."""
    known = task_names()
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; choose from {', '.join(known)}")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _stop_on_sigterm() -> None:
    """SIGTERM ends the command as Ctrl-C does (KeyboardInterrupt), so a build records "stopped"
    and stops its workers instead of vanishing mid-write."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_build(args) -> int:
    from dml_core.core.store import ArtifactStore, atomic_write_json
    from dml_core.pipeline.stages import run_build

    _stop_on_sigterm()
    store = ArtifactStore()
    report = run_build(args.profile, args.tasks, store, workers=args.workers, device=args.device, backend=_backend(args))
    report_path = Path(args.report) if args.report else store.root / "build-report.json"
    atomic_write_json(report_path, report)
    stages = ", ".join(f"{name} {stage['seconds']:.0f} s" for name, stage in report["stages"].items())
    print(f"build {args.profile}: {report['build_s']:.0f} s ({stages}); report: {report_path}")
    return 0


#: The Streamlit entry point ``app`` serves.
APP_SCRIPT = Path(__file__).resolve().parents[1] / "app.py"
#: Seconds the server gets to exit after Ctrl-C / SIGTERM before it is killed.
SERVER_GRACE_S = 10.0


def cmd_app(args) -> int:
    """Serve the app at once; build what is missing in the background (or join the build that
    already runs in this DML_HOME); Ctrl-C stops both."""
    import subprocess

    from dml_core.core.store import ArtifactStore
    from dml_core.pipeline.background import BackgroundBuild, die_with_parent

    if not APP_SCRIPT.is_file():
        raise FileNotFoundError(f"{APP_SCRIPT} not found: `app` serves the Streamlit app of a source checkout")
    root = ArtifactStore().root
    build = None if args.no_build else BackgroundBuild.start_or_join(root, args.profile, args.tasks)
    if build is not None:
        how = "building" if build.started_here else f"joined the build already running (process {build.pid})"
        print(f"app: {how} in the background, profile {args.profile}, into {root} (log: {build.log}); "
              "pages show its progress and pick up each model as it lands", flush=True)
    command = [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), "--server.port", str(args.port),
               "--server.headless", "true", *(["--server.address", args.address] if args.address else []),
               *args.streamlit[args.streamlit[:1] == ["--"]:]]
    _stop_on_sigterm()
    server = subprocess.Popen(command, env=os.environ | {"DML_HOME": str(root)}, preexec_fn=die_with_parent)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.terminate()  # Ctrl-C reached it too; SIGTERM covers a SIGTERM sent to us alone
        try:
            server.wait(SERVER_GRACE_S)
        except subprocess.TimeoutExpired:
            server.kill()
        code = 0
    finally:
        if build is not None and build.started_here and build.running():
            print("app: stopping the background build (make run again resumes it)", flush=True)
            build.stop()
    return code


def _backend(args):
    """The search backend of ``--index`` / ``--milvus-uri``, else of DML_INDEX / DML_MILVUS_URI."""
    from dml_core.search.backends import backend_from_env

    return backend_from_env(args.index, args.milvus_uri)


def _catalog(task: str, backend=None):
    from dml_core.serve.catalog import load_catalog

    return load_catalog(task, backend=backend)


def _select_models(catalog, wanted: list[str] | None, main_only: bool = True) -> list[str]:
    if not wanted:
        return catalog.model_ids(main_only=main_only)
    unknown = [m for m in wanted if m not in catalog.models]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)} for {catalog.task_name}; built: {', '.join(catalog.model_ids())}")
    return wanted


def cmd_evaluate(args) -> int:
    from dml_core.serve.export import PER_QUERY_KEYS, per_query_evaluation, query_records

    if args.per_query and not args.json:
        raise ValueError("--per-query needs --json FILE to write the per-query records to")
    catalog = _catalog(args.task, _backend(args))
    rows, per_query, reference = {}, {}, {}
    for model_id in _select_models(catalog, args.models, main_only=False):
        result = per_query_evaluation(catalog.models[model_id], catalog.label_dist)  # the backend's own ranking
        rows[model_id] = {k: round(result["means"][k], 4) for k in HEADLINE_METRICS}
        reference = result["reference"]  # the same for every model: it depends on the labels only
        if args.per_query:
            per_query[model_id] = {"summary": {k: result["means"][k] for k in PER_QUERY_KEYS},
                                   "queries": query_records(result["per_query"])}
    reference = {name: {k: round(scores[k], 4) for k in HEADLINE_METRICS} for name, scores in reference.items()}
    width = max(len(m) for m in [*rows, "(random)"])
    print(f"{'model':<{width}}  " + "  ".join(METRIC_LABELS[k] for k in HEADLINE_METRICS))
    for model_id, row in [*rows.items(), *((f"({name})", scores) for name, scores in reference.items())]:
        print(f"{model_id:<{width}}  " + "  ".join(f"{row[k]:{len(name)}.4f}" for k, name in ((k, METRIC_LABELS[k]) for k in HEADLINE_METRICS)))
    print("gap closed@10: where mld@10 stands between random retrieval (0) and the oracle (1)")
    if args.json:
        out = {"task": args.task, "queries": len(catalog.queries), "gallery": len(catalog.gallery),
               "index": catalog.backend.name, "models": rows, "reference": reference}
        if args.per_query:
            out["per_query"] = per_query
        from dml_core.core.store import atomic_write_json

        atomic_write_json(_output_path(args.json), out)
    return 0


def _user_path(text: str) -> Path:
    """A path the user typed: the CLI runs with the user's own rights, so any file they name is
    theirs to read or write (the web app confines its paths; the command line does not)."""
    if not text or "\x00" in text:
        raise ValueError(f"not a usable path: {text!r}")
    return Path(text).expanduser()


def _output_path(text: str) -> Path:
    path = _user_path(text)
    if path.is_dir():
        raise ValueError(f"{text} is a directory; name a file to write")
    return path


def _read_image_bytes(name: str) -> bytes:
    """The bytes of ``--image``: any file the user names, or ``-`` for stdin; never more than the
    upload limit is read."""
    from dml_core.core.images import MAX_BYTES, ImageInputError

    if name == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
    else:
        path = _user_path(name)
        if not path.is_file():
            raise ValueError(f"{name}: no such file")
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise ImageInputError(f"the file is larger than the {MAX_BYTES / 2**20:.0f} MB limit")
    return data


def cmd_query(args) -> int:
    from dml_core.core.images import ImageInputError
    from dml_core.serve.upload import query_with_image_bytes

    catalog = _catalog(args.task, _backend(args))
    model_ids = _select_models(catalog, args.models)
    if args.image:
        try:  # the Upload page's path: decode, backbone, heads, search
            result = query_with_image_bytes(catalog, _read_image_bytes(args.image), model_ids, args.k, place_on=[])
        except ImageInputError as exc:
            raise ImageInputError(f"{args.image} cannot be used: {exc}") from None
        hits, timings, typicality = result.hits, result.timings_ms, result.typicality
    else:
        (hits, timings), typicality = catalog.hits_for_text(args.text, args.models, args.k), None
    if args.json:
        out = {
            "task": args.task,
            "query": {"image": args.image} if args.image else {"text": args.text},
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
            "typicality": None if typicality is None else typicality.to_dict(),
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
    if typicality is not None:
        print(("unfamiliar image: " if typicality.unfamiliar else "typical image: ") + typicality.summary())
    print(f"({timings['total_ms']:.1f} ms)")
    return 0


def cmd_train(args) -> int:
    from dml_core.core.store import ArtifactStore
    from dml_core.learn import distributed
    from dml_core.pipeline.features import TaskFeatures
    from dml_core.pipeline.models import train_model
    from dml_core.pipeline.plan import ModelSpec
    from dml_core.pipeline.profiles import stored_profile
    from dml_core.pipeline.stages import resolve_device

    store = ArtifactStore()
    profile = stored_profile(store, args.task)
    spec = ModelSpec(args.method, args.dim, args.seed, prefix=args.prefix)
    device = resolve_device(args.device)
    if args.distributed:
        device = distributed.init_from_env(device)
    try:
        model_id = train_model(TaskFeatures(store, args.task), spec, profile, steps=args.steps, origin="cli", device=device)
        main_process = distributed.is_main_process()
    finally:
        distributed.shutdown()
    if not main_process:
        return 0
    meta = store.manifest(args.task, "models", model_id)["meta"]
    print(json.dumps({"model_id": model_id, "metrics": meta["metrics"]}, indent=2))
    return 0


def cmd_bench(args) -> int:
    from dml_core.bench.run import run_bench

    json_path, markdown_path = _output_path(args.json), _output_path(args.markdown) if args.markdown else None
    result = run_bench(args.profile, json_path, args.tasks, markdown_path=markdown_path, workers=args.workers,
                       device=args.device)
    timing = result["timing"]
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))
    print(f"build {timing['build_s']:.1f} s · features {timing['features_img_per_s']:.0f} img/s · "
          f"query p50 {timing['query_ms_p50']:.1f} ms, p95 {timing['query_ms_p95']:.1f} ms"
          + (f" · contention slowdown {timing['contention_slowdown']:.2f}x" if "contention_slowdown" in timing else ""))
    return 0


def cmd_preview(args) -> int:
    from dml_core.data.preview import contact_sheet

    out = _output_path(args.out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp"}:
        raise ValueError(f"--out must end in .png, .jpg or .webp, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.task, n=args.n, seed=args.seed, size=args.size).save(out)
    print(f"wrote {out}")
    return 0


def cmd_import(args) -> int:
    from dml_core.data.importer import import_dataset, parse_fractions, print_skip

    columns = [c.strip() for c in args.label_columns.split(",") if c.strip()] if args.label_columns else None
    report = import_dataset(
        args.task, args.format, images=_user_path(args.images) if args.images else None,
        labels=_user_path(args.labels) if args.labels else None, root=_user_path(args.root) if args.root else None,
        distance=args.distance, fractions=parse_fractions(args.split), seed=args.seed, label_columns=columns,
        replace=args.replace, title=args.title, on_skip=print_skip,
    )
    print(report.summary())
    return 0


def cmd_export(args) -> int:
    from dml_core.serve.export import write_projector

    catalog = _catalog(args.task)
    out = _user_path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{args.out} is a file; name a folder to write the Projector files into")
    written = write_projector(catalog, args.model, out, sprite=not args.no_sprite)
    print(f"wrote {', '.join(p.name for p in written)} to {out} ({len(catalog.gallery)} gallery embeddings of "
          f"{args.model}); load them at https://projector.tensorflow.org or with TensorBoard")
    return 0


def cmd_ceiling(args) -> int:
    from dml_core.bench.ceiling import run_ceiling
    from dml_core.bench.report import CEILING_JSON, QUICK_CEILING_JSON, write_ceiling_section
    from dml_core.core.store import atomic_write_json

    out = _output_path(args.json)
    markdown = _output_path(args.markdown) if args.markdown else None
    if markdown is not None:  # checked first: the measurement takes an hour
        rendered = [(markdown.parent / name).resolve() for name in (CEILING_JSON, QUICK_CEILING_JSON)]
        if out.resolve() not in rendered or not markdown.is_file():
            print(f"error: {markdown} renders {' or '.join(map(str, rendered))}, not {out} (and must exist); "
                  "nothing run", file=sys.stderr)
            return 1
    result = run_ceiling(args.tasks, regimes=not args.no_regimes, regime_tasks=args.regime_tasks,
                         backbones=args.backbones, trained_blocks=args.trained_blocks)
    atomic_write_json(out, result)
    print(f"wrote {out}; `python -m dml_core bench` renders it as BENCHMARKS.md's Ceiling section")
    if markdown is not None:
        write_ceiling_section(markdown)
        print(f"updated the Ceiling section of {markdown}")
    return 0


def cmd_scale(args) -> int:
    from dml_core.bench.report import SCALE_JSON
    from dml_core.bench.scale import NAMES, ScaleInputError, merge_run, run_scale, write_section

    out = _output_path(args.json)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    run = run_scale(args.n, args.dim, args.queries, args.k, backends, task=args.task, model=args.model,
                    milvus_uri=args.milvus_uri, milvus_max_n=args.milvus_max_n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = merge_run(out, run)
    print(f"N = {run['n']:,}, d = {run['dim']}, vectors: {run['data']['source']}")
    recall = f"recall@{run['k']}"
    for row in run["backends"]:
        print(f"  {NAMES[row['name']]:<20} build {row['build_s']:8.1f} s  p50 {row['query_ms_p50']:8.2f} ms  "
              f"p95 {row['query_ms_p95']:8.2f} ms  {recall} {row[recall]:.3f}")
    for row in run["skipped"]:
        print(f"  {NAMES[row['name']]:<20} not run: {row['reason']}")
    print(f"wrote {out}")
    if args.markdown:
        markdown = _output_path(args.markdown)
        if out.resolve() != (markdown.parent / SCALE_JSON).resolve():
            raise ScaleInputError(f"{markdown} renders {markdown.parent / SCALE_JSON}, not {out}; not updated")
        if not markdown.is_file():
            raise ScaleInputError(f"{markdown}: no such file; python -m dml_core bench writes it")
        write_section(markdown, merged)
        print(f"updated the Scale section of {markdown}")
    return 0


def _method_ids() -> list[str]:
    from dml_core.learn.methods import METHODS

    return list(METHODS)


DEVICES = ("auto", "cpu", "cuda")


def _add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="single-threaded processes for tuning and training (default: one per core)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="features and training on a CUDA GPU when torch sees one (auto), or force cpu / cuda")


def _add_index_arguments(parser: argparse.ArgumentParser) -> None:
    from dml_core.search.backends import BACKEND_NAMES

    parser.add_argument("--index", choices=BACKEND_NAMES, default=None,
                        help="search backend (default: DML_INDEX, else faiss: exact, in-process)")
    parser.add_argument("--milvus-uri", default=None, metavar="URI",
                        help="Milvus server, e.g. http://127.0.0.1:19530 (default: DML_MILVUS_URI, else a Milvus Lite "
                             "file under DML_HOME); implies --index milvus")


def _add_build(sub) -> None:
    parser = sub.add_parser("build", help="generate data, features, models, indexes and projections")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("--tasks", type=_task_list, default=TASK_NAMES, help="comma-separated, e.g. pose,layout or an imported task (default: the built-in tasks)")
    _add_speed_arguments(parser)
    _add_index_arguments(parser)
    parser.add_argument("--report", help="where to write the build report (default: DML_HOME/build-report.json)")
    parser.set_defaults(func=cmd_build)


def _add_app(sub) -> None:
    parser = sub.add_parser("app", help="serve the web app now and build what is missing in the background (make run)")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick", help="what the background build makes")
    parser.add_argument("--tasks", type=_task_list, default=None, help="comma-separated (default: the built-in tasks)")
    parser.add_argument("--port", type=_positive_int, default=8501)
    parser.add_argument("--address", default=None, help="where the server listens, e.g. 127.0.0.1 (default: Streamlit's)")
    parser.add_argument("--no-build", action="store_true", help="serve what is built, start no build")
    parser.add_argument("streamlit", nargs=argparse.REMAINDER, help="after --: options for streamlit run")
    parser.set_defaults(func=cmd_app)


def _add_train(sub) -> None:
    parser = sub.add_parser("train", help="train one model on the built features of a task")
    parser.add_argument("--task", type=_task_name, required=True, metavar="TASK")
    parser.add_argument("--method", choices=_method_ids(), required=True)
    parser.add_argument("--dim", type=_positive_int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=_positive_int, default=None, help="default: the build profile's")
    parser.add_argument("--prefix", default="cli-", help="model id prefix, so the build's models are never replaced")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: a CUDA GPU when torch sees one")
    parser.add_argument("--distributed", action="store_true",
                        help="one model over the processes torchrun starts (DDP; gloo on CPU, NCCL on GPU)")
    parser.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    parser = sub.add_parser("evaluate", help="nDCG@K, mean label distance@K and Spearman of built models")
    parser.add_argument("--task", type=_task_name, required=True, metavar="TASK")
    parser.add_argument("--models", nargs="+", help="model ids (default: all)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--per-query", action="store_true",
                        help="with --json: every model's scores for each query, and their means")
    _add_index_arguments(parser)
    parser.set_defaults(func=cmd_evaluate)


def _add_query(sub) -> None:
    parser = sub.add_parser("query", help="retrieve gallery images for an image (or a text, caption task)")
    parser.add_argument("--task", type=_task_name, required=True, metavar="TASK")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="PNG, JPEG, WebP, BMP or GIF file; '-' reads it from stdin")
    source.add_argument("--text", help="a sentence (caption task, needs a cross-modal model)")
    parser.add_argument("--models", nargs="+", help="model ids (default: the main models)")
    parser.add_argument("--k", type=_positive_int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON: ranked gallery ids with distances")
    _add_index_arguments(parser)
    parser.set_defaults(func=cmd_query)


def _add_bench(sub) -> None:
    parser = sub.add_parser("bench", help="build, measure every model and the speed; write JSON and BENCHMARKS.md")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("--tasks", type=_task_list, default=TASK_NAMES)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--markdown", default="BENCHMARKS.md", help="report to regenerate ('' to skip)")
    _add_speed_arguments(parser)
    parser.set_defaults(func=cmd_bench)


def _add_import(sub) -> None:
    from dml_core.data.tasks.imported import DISTANCES, FORMATS

    parser = sub.add_parser("import", help="a data set on disk as a new task: images + label CSV, or MPII / LSUN / COCO")
    parser.add_argument("--task", required=True, help="name of the new task (lower-case letters, digits, _ and -)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--images", help="folder: the image folder (the CSV's paths are relative to it)")
    parser.add_argument("--labels", help="folder: CSV with a 'file' column and numeric label columns")
    parser.add_argument("--label-columns", help="folder: comma-separated label columns (default: every numeric column)")
    parser.add_argument("--root", help="mpii / lsun / coco: the data set's folder (or its annotation file)")
    parser.add_argument("--distance", choices=DISTANCES, default="euclidean",
                        help="folder: label distance on the standardised label columns")
    parser.add_argument("--split", default="0.7,0.2,0.1", help="train,gallery,query fractions (default 0.7,0.2,0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--title", help="what the app's task picker shows (default: the name)")
    parser.add_argument("--replace", action="store_true", help="import again over an earlier import of this name")
    parser.set_defaults(func=cmd_import)


def _add_export(sub) -> None:
    parser = sub.add_parser("export", help="a model's gallery embeddings and metadata as TensorBoard Projector TSV")
    parser.add_argument("--task", type=_task_name, required=True, metavar="TASK")
    parser.add_argument("--model", required=True, help="model id, e.g. log_ratio-d128-s0 (see evaluate)")
    parser.add_argument("--out", required=True, help="folder for tensors.tsv, metadata.tsv, sprite.jpg, projector_config.pbtxt")
    parser.add_argument("--no-sprite", action="store_true", help="leave out the thumbnails sheet (sprite.jpg)")
    parser.set_defaults(func=cmd_export)


def _add_ceiling(sub) -> None:
    parser = sub.add_parser("ceiling", help="what limits quality: label readouts, resolution, steps, d, embedders")
    parser.add_argument("--tasks", type=_task_list, default=("pose", "layout"))
    parser.add_argument("--json", default="docs/bench/ceiling.json",
                        help="results file: docs/bench/ceiling.json for a full build, ceiling-quick.json for a quick one")
    parser.add_argument("--markdown", default="", help="also rewrite the Ceiling section of this BENCHMARKS.md (the rest stays)")
    parser.add_argument("--no-regimes", action="store_true", help="skip the (slow) embedder comparison")
    parser.add_argument("--regime-tasks", type=_task_list, default=("pose",), help="tasks for the embedder comparison")
    parser.add_argument("--backbones", action="store_true",
                        help="also compare EfficientNet-Lite0/1/2 (readout, headline pair, ms/image) on every task")
    parser.add_argument("--trained-blocks", type=_block_counts, default=(1, 2, 3),
                        help="comma-separated counts of top backbone blocks the embedder rows train (0: head conv alone)")
    parser.set_defaults(func=cmd_ceiling)


def _add_scale(sub) -> None:
    from dml_core.bench.scale import BACKENDS, DEFAULT_BACKENDS

    parser = sub.add_parser("scale", help="build and query search indexes over N vectors: FAISS flat / HNSW / IVF-PQ, Milvus")
    parser.add_argument("--n", type=_positive_int, required=True, help="vectors in the index (a built model's gallery, extended)")
    parser.add_argument("--dim", type=_positive_int, default=128, help="their dimension (a built model of this d is used)")
    parser.add_argument("--queries", type=_positive_int, default=100)
    parser.add_argument("--k", type=_positive_int, default=10)
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS), help=f"comma-separated from {', '.join(BACKENDS)}")
    parser.add_argument("--task", type=_task_name, default=None, metavar="TASK", help="take the model from this task")
    parser.add_argument("--model", default=None, help="this model's gallery (default: a log_ratio model of d = --dim)")
    parser.add_argument("--milvus-uri", default=None, metavar="URI", help="measure Milvus on this server (default: Milvus Lite)")
    parser.add_argument("--milvus-max-n", type=_positive_int, default=1_000_000, help="largest N tried on Milvus Lite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="docs/bench/scale.json", help="results file (runs of other N are kept)")
    parser.add_argument("--markdown", default="", help="also rewrite the Scale section of this BENCHMARKS.md (the rest stays)")
    parser.set_defaults(func=cmd_scale)


def _add_preview(sub) -> None:
    parser = sub.add_parser("preview", help="contact sheet of generated images with their labels")
    parser.add_argument("--task", type=_task_name, required=True, metavar="TASK")
    parser.add_argument("--n", type=_positive_int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_positive_int, default=128)
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=cmd_preview)


#: One function a command: each adds its subparser and the function that runs it.
COMMANDS = (_add_app, _add_build, _add_train, _add_evaluate, _add_query, _add_bench, _add_import, _add_export, _add_ceiling, _add_scale, _add_preview)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dml_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
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
