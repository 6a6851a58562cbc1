"""Contact sheets: generated images with their labels drawn on them, for checking data by eye."""
from __future__ import annotations

import math

from PIL import Image

from dml_core.data.tasks import get_task


def contact_sheet(task_name: str, n: int = 36, seed: int = 0, size: int = 128, tile: int = 256) -> Image.Image:
    """A grid of ``n`` generated images of ``task_name``, each with its label drawn by the task
    (for an imported task, its first ``n`` stored training images)."""
    task = get_task(task_name)
    if task.has_generator:
        data = task.generate(n, seed=seed, size=size)
    else:
        from dml_core.core.store import ArtifactStore
        from dml_core.data.splits import load_split
        from dml_core.data.tasks.imported import SOURCE

        data = load_split(ArtifactStore(), task_name, "train", kind=SOURCE)
        n = min(n, len(data))
        data = data.subset(range(n))
    tiles = []
    for i in range(n):
        meta = {key: values[i] for key, values in data.meta.items()}
        drawn = task.draw_label(data.image(i), data.labels[i], meta)
        scale = tile / drawn.width
        tiles.append(drawn.resize((tile, round(drawn.height * scale)), Image.Resampling.LANCZOS))
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    cell_h = max(t.height for t in tiles)
    gap = 6
    sheet = Image.new("RGB", (columns * (tile + gap) + gap, rows * (cell_h + gap) + gap), "white")
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet.paste(t, (gap + c * (tile + gap), gap + r * (cell_h + gap)))
    return sheet
