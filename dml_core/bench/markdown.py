"""Rewriting one section of a generated markdown report (BENCHMARKS.md) in place."""
from __future__ import annotations

from pathlib import Path

from dml_core.core.store import atomic_write_bytes


def replace_section(markdown_path: Path, section: list[str], before: tuple[str, ...]) -> None:
    """Replace the ``## `` section that ``section`` starts with in an existing markdown file (or add
    it before the first of the ``before`` headings found, else at the end), the rest of the file as it is."""
    lines = Path(markdown_path).read_text().splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    start = next((i for i in headings if lines[i] == section[0]), None)
    if start is not None:
        end = next((i for i in headings if i > start), len(lines))
    else:
        start = end = next((i for heading in before for i in headings if lines[i] == heading), len(lines))
    atomic_write_bytes(markdown_path, ("\n".join([*lines[:start], *section, *lines[end:]]) + "\n").encode())
