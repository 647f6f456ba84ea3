#!/usr/bin/env python3
"""Make the model-zoo gallery: a content × style grid image (``docs/gallery.jpg``) and its page (``docs/gallery.md``).

Rows are real photos the trainer held out (never trained on) whose licence lets the project redistribute them
(CC0 or public domain in ../shared/data/manifest.csv); columns are the shipped styles (one per style of a
multi-style model), labelled with painter and year.
Each photo is stylized at ``--stylize-side`` px on the shorter side (inside the 256–384 px range at which training
crops were taken, so brush strokes appear at the scale the model learned) and shown at half that size. Example:

    python scripts/make_gallery.py                     # every model under models/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from make_model_cards import SHARED, Painting, model_paintings, read_manifest  # scripts/ is on sys.path
from PIL import Image, ImageDraw, ImageFont

from fastnst.model.files import load_styled_model
from fastnst.runtime.pipeline import stylize_tensor
from fastnst.training.quality import heldout_photos
from fastnst.utils.images import image_to_tensor, load_rgb, tensor_to_image

REPO = Path(__file__).resolve().parents[1]
# Held-out photos, redistributable (CC0 / public domain), varied subjects: architecture, animal, colour, ruins.
DEFAULT_PHOTOS = ("gcompris_monument_neuschwansteinCastle.jpg", "gcompris_wildanimal_bison.jpg",
                  "gcompris_wildanimal_scarlet_macaw.jpg", "gcompris_monument_trierImperialBaths.jpg")
REDISTRIBUTABLE = ("cc0", "public domain")
CELL = (240, 180)  # width, height of one grid cell (4:3)
LABEL_HEIGHT = 46
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Column:
    """One style in the grid: a single-style model, or one style of a multi-style model."""

    folder: Path
    style: str
    painting: Painting
    multi: bool

    @property
    def title(self) -> str:
        return f"{self.folder.name}: {self.style}" if self.multi else self.folder.name


def gallery_columns(models: list[Path]) -> list[Column]:
    """Every style of every model, in folder order (a multi-style model gives a column per style)."""
    manifest = read_manifest()
    columns = []
    for folder in models:
        paintings = model_paintings(json.loads((folder / "model.json").read_text()), folder, manifest)
        columns += [Column(folder, style, painting, len(paintings) > 1) for style, painting in paintings]
    return columns


def cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize and centre-crop ``image`` to exactly ``size`` (no distortion)."""
    scale = max(size[0] / image.width, size[1] / image.height)
    resized = image.resize((max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))),
                           Image.Resampling.LANCZOS)
    left, top = (resized.width - size[0]) // 2, (resized.height - size[1]) // 2
    return resized.crop((left, top, left + size[0], top + size[1]))


def label(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lines: list[str],
          fonts: list[ImageFont.ImageFont]) -> None:
    """Centred lines of text on a dark band."""
    draw.rectangle(box, fill=(24, 24, 24))
    y = box[1] + 4
    for text, font in zip(lines, fonts, strict=False):
        width = draw.textlength(text, font=font)
        draw.text((box[0] + (box[2] - box[0] - width) / 2, y), text, fill=(235, 235, 235), font=font)
        y += font.size + 4


def build_grid(columns: list[Column], photos: list[Path], stylize_side: int) -> Image.Image:
    """A label row (style name, painter and date), then one row per photo: the photo, then each style.

    The paintings themselves are not shown: ../shared/data's digitisations are not the project's to redistribute
    (its README), so the gallery holds only the project's own outputs and CC0/public-domain photos.
    """
    cell_w, cell_h = CELL
    grid = Image.new("RGB", ((len(columns) + 1) * cell_w, LABEL_HEIGHT + len(photos) * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(grid)
    fonts = [ImageFont.load_default(size=16), ImageFont.load_default(size=13)]
    label(draw, (0, 0, cell_w, LABEL_HEIGHT), ["photo", "(held out)"], fonts)
    loaded = []
    for index, column in enumerate(columns, start=1):
        model, _ = load_styled_model(column.folder, style=column.style if column.multi else None)
        loaded.append(model)
        painter = column.painting.artist.split(" ", 1)[-1]  # "Vincent van Gogh" → "van Gogh"
        label(draw, (index * cell_w, 0, (index + 1) * cell_w, LABEL_HEIGHT),
              [column.title, f"{painter}, {column.painting.date.split('-')[0]}"], fonts)
    for row, path in enumerate(photos):
        photo = cover(load_rgb(path), (round(stylize_side * 4 / 3), stylize_side))
        top = LABEL_HEIGHT + row * cell_h
        grid.paste(photo.resize(CELL, Image.Resampling.LANCZOS), (0, top))
        tensor = image_to_tensor(photo)
        for column, model in enumerate(loaded, start=1):
            with torch.inference_mode():
                styled = tensor_to_image(stylize_tensor(model, tensor))
            grid.paste(styled.resize(CELL, Image.Resampling.LANCZOS), (column * cell_w, top))
    return grid


def page(columns: list[Column], photos: list[Path], image_name: str, stylize_side: int) -> str:
    """docs/gallery.md: the grid, what each column is, and the photo credits."""
    manifest = read_manifest()
    quality_file = REPO / "benchmarks" / "results" / "model_quality.json"
    quality = json.loads(quality_file.read_text())["models"] if quality_file.is_file() else {}
    lines = [
        "# Model zoo gallery",
        "",
        "<!-- generated by scripts/make_gallery.py; do not edit by hand -->",
        "",
        ("Every shipped style (columns, labelled with the painter and year) applied to real photos that were held "
         "out from training (rows; first column: the photo). Each photo was stylized at "
         f"{round(stylize_side * 4 / 3)}×{stylize_side} px and is shown at half size."),
        "",
        f"![content × style grid]({image_name})",
        "",
        "| model | painting | style loss on held-out photos (untrained network = 1) | card |",
        "|---|---|---|---|",
    ]
    for column in columns:
        q = quality.get(f"{column.folder.name}:{column.style}" if column.multi else column.folder.name)
        ratio = f"{q['trained']['style'] / q['untrained']['style']:.3f}" if q else "not measured"
        ratio += " ¹" if q and q.get("from_base") else ""
        name = column.folder.name
        lines.append(f"| `{column.title}` | {column.painting.label} | {ratio} | "
                     f"[models/{name}/README.md](../models/{name}/README.md) |")
    if any(q.get("from_base") for q in quality.values()):
        lines += ["", ("¹ Learned again by a later run from the trained network (`fastnst train --base`): against "
                       "that run's start, the mean of the other styles' rows, not an untrained network.")]
    lines += [
        "",
        ("How the models were trained: [recipes.md](recipes.md); measured quality and artifact checks: "
        "[quality.md](quality.md). Regenerate with `python scripts/make_gallery.py`."),
        "",
        "Photos (held out from training; from `../shared/data/photos`, credits from its manifest):",
        "",
    ]
    for path in photos:
        row = manifest[f"photos/{path.name}"]
        lines.append(f"- `{path.name}` — {row['licence']}; {row['credit'] or row['source_package']}")
    flagged = {kind: [name for name, q in quality.items() if q["artifacts"]["trained"][f"{kind}_flag"]]
               for kind in ("checkerboard", "border")}
    if any(flagged.values()):
        lines += ["", ("Measured artifacts to look for: "
                       + "; ".join(f"{kind} flagged in {', '.join(names)}"
                                   for kind, names in flagged.items() if names)
                       + " ([quality.md](quality.md#artifacts), [recipes.md]"
                       "(recipes.md#artifacts-what-was-measured-what-was-tried-what-ships)).")]
    lines += ["", ("Paintings (public domain) are named, not shown: the digitisations in ../shared/data are not "
                   "redistributed; each model card credits its source."), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model folders (default: models/*)")
    parser.add_argument("--photos", nargs="*", default=list(DEFAULT_PHOTOS),
                        help="file names of held-out photos in ../shared/data/photos")
    parser.add_argument("--stylize-side", type=int, default=2 * CELL[1])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "gallery.jpg")
    parser.add_argument("--page", type=Path, default=REPO / "docs" / "gallery.md")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    models = args.models or sorted(p.parent for p in (REPO / "models").glob("*/model.safetensors"))
    held = {p.name: p for p in heldout_photos(SHARED / "photos", 10)}
    manifest = read_manifest()
    photos = []
    for name in args.photos:
        if name not in held:
            raise SystemExit(f"{name} is not a held-out photo (every 10th of the sorted folder); choose from: "
                             f"{', '.join(held)}")
        if not manifest[f"photos/{name}"]["licence"].lower().startswith(REDISTRIBUTABLE):
            raise SystemExit(f"{name} is licensed {manifest[f'photos/{name}']['licence']}; the gallery is committed, "
                             "so use CC0 or public-domain photos")
        photos.append(held[name])
    columns = gallery_columns(models)
    grid = build_grid(columns, photos, args.stylize_side)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.output, quality=JPEG_QUALITY, optimize=True, progressive=True)
    args.page.write_text(page(columns, photos, os.path.relpath(args.output, args.page.parent), args.stylize_side))
    print(f"wrote {args.output} ({grid.width}×{grid.height}, {args.output.stat().st_size / 1e6:.2f} MB) "
          f"and {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
