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


def cmd_preview(args) -> int:
    from .preview import contact_sheet

    out = Path(args.out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp"}:
        raise ValueError(f"--out must end in .png, .jpg or .webp, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.task, n=args.n, seed=args.seed, size=args.size).save(out)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dml_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="generate data, features, models, indexes and projections")
    build.add_argument("--profile", choices=["tiny", "quick", "full"], default="quick")
    build.add_argument("--tasks", type=_task_list, default=TASK_NAMES, help="comma-separated, e.g. pose,layout")
    build.set_defaults(func=cmd_build)

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
        print(f"error: {exc}", file=sys.stderr)
        return 1
