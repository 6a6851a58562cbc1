"""Write a folder data set with a continuous label, for ``python -m dml_core import --format folder``.

Each image is one disc on a varied background; its label is the disc's radius (pixels), hue
(0–0.75, so hue never wraps around) and centre (x, y as fractions of the image), written to
``labels.csv`` beside ``images/``. A ``background`` text column (gradient, noise, stripes) is
kept by the import as an image attribute, not as a label. Deterministic: image i depends only
on (seed, i).

    .venv/bin/python scripts/make_disc_dataset.py --out /tmp/discs --n 2000 --seed 0
    .venv/bin/python -m dml_core import --task discs --format folder \\
        --images /tmp/discs/images --labels /tmp/discs/labels.csv
"""
from __future__ import annotations

import argparse
import colorsys
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 128
SUPERSAMPLE = 2  # drawn at twice the size and reduced: smooth disc edges
BACKGROUNDS = ("gradient", "noise", "stripes")
LABEL_COLUMNS = ("radius", "hue", "x", "y")


def _background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    low, high = rng.uniform(20, 120, 3), rng.uniform(120, 235, 3)
    if kind == "gradient":
        t = np.linspace(0, 1, size)[:, None, None]
        image = low + (high - low) * (t if rng.random() < 0.5 else t.transpose(1, 0, 2))
        return np.broadcast_to(image, (size, size, 3))
    if kind == "noise":
        coarse = rng.random((8, 8, 1))
        t = np.asarray(Image.fromarray((coarse[..., 0] * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255.0
        return low + (high - low) * t[..., None]
    period = rng.uniform(10, 30) * SUPERSAMPLE
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size]
    t = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
    return np.where(t, high, low)


def disc_image(seed: int, index: int) -> tuple[Image.Image, dict]:
    """Image ``index`` of a data set with ``seed`` and its label and attributes."""
    rng = np.random.default_rng([seed, index])
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    radius = float(rng.uniform(8, 30))
    hue = float(rng.uniform(0, 0.75))
    x, y = (float(v) for v in rng.uniform(0.25, 0.75, 2))
    big = SIZE * SUPERSAMPLE
    canvas = Image.fromarray(np.clip(_background(rng, kind, big), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95))
    cx, cy, r = x * big, y * big, radius * SUPERSAMPLE
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(20, 20, 20), width=SUPERSAMPLE)
    image = canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return image, {"radius": round(radius, 3), "hue": round(hue, 4), "x": round(x, 4), "y": round(y, 4), "background": kind}


def write_disc_dataset(out: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out/images/disc_<i>.png`` and ``out/labels.csv``; returns (image folder, CSV)."""
    images = Path(out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    csv_path = Path(out) / "labels.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *LABEL_COLUMNS, "background"])
        for i in range(n):
            image, label = disc_image(seed, i)
            name = f"disc_{i:05d}.png"
            image.save(images / name)
            writer.writerow([name, *(label[c] for c in LABEL_COLUMNS), label["background"]])
    return images, csv_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write images/ and labels.csv into")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, csv_path = write_disc_dataset(Path(args.out), args.n, args.seed)
    print(f"wrote {args.n} images to {images} and their labels to {csv_path}")


if __name__ == "__main__":
    main()
