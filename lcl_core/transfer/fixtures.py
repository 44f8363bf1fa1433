"""A tiny evaluation root in the real benchmark formats, for tests, docs and quick smoke runs.

Each image is one coloured shape on a dark background, with jittered size and position; its class is
the shape and its captions name colour and shape, so every head has something learnable::

    ROOT/classification/{train,val}/<shape>/*.png          ImageFolder (ImageNet layout)
    ROOT/captions/images/*.png + dataset_coco.json         Karpathy JSON (train / test splits)
    ROOT/captions/captions_val.json                        COCO caption JSON over the test images
    ROOT/nocaps/images/*.png + nocaps_val.json             NoCaps JSON (images carry "domain")
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "triangle")


def draw_shape(shape: str, colour: str, rng: random.Random, *, size: int = 32) -> Image.Image:
    image = Image.new("RGB", (size, size), (rng.randint(0, 40),) * 3)
    extent = rng.randint(size // 2, size - 4)
    x0, y0 = rng.randint(0, size - extent), rng.randint(0, size - extent)
    box = (x0, y0, x0 + extent, y0 + extent)
    draw = ImageDraw.Draw(image)
    fill = COLOURS[colour]
    if shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "circle":
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon([(x0, y0 + extent), (x0 + extent, y0 + extent), (x0 + extent // 2, y0)], fill=fill)
    return image


def _captions(shape: str, colour: str) -> list[str]:
    return [f"a {colour} {shape}.", f"A {shape} coloured {colour} on a dark background."]


def caption_texts() -> list[str]:
    """Every caption (and the zero-shot prompt) the fixture can contain."""
    return [c for shape in SHAPES for colour in COLOURS for c in _captions(shape, colour)] + ["a photo of a"]


def write_eval_fixture(root: str | Path, *, per_class_train: int = 16, per_class_val: int = 8,
                       caption_train: int = 48, caption_test: int = 24, nocaps: int = 12, seed: int = 0) -> Path:
    """Write the fixture under ``root`` and return it."""
    root, rng = Path(root), random.Random(seed)
    pick = lambda: (rng.choice(SHAPES), rng.choice(list(COLOURS)))  # noqa: E731

    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for shape in SHAPES:
            folder = root / "classification" / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_shape(shape, rng.choice(list(COLOURS)), rng).save(folder / f"{shape}_{i:03d}.png")

    captions_dir = root / "captions"
    (captions_dir / "images").mkdir(parents=True, exist_ok=True)
    karpathy, coco_images, coco_annotations = [], [], []
    for imgid in range(caption_train + caption_test):
        shape, colour = pick()
        filename = f"cap_{imgid:04d}.png"
        draw_shape(shape, colour, rng).save(captions_dir / "images" / filename)
        split = "train" if imgid < caption_train else "test"
        raws = _captions(shape, colour)
        sentids = [2 * imgid + k for k in range(len(raws))]
        karpathy.append({
            "filepath": "", "filename": filename, "imgid": imgid, "cocoid": 1000 + imgid, "split": split,
            "sentids": sentids,
            "sentences": [{"raw": r, "tokens": r.lower().rstrip(".").split(), "imgid": imgid, "sentid": s}
                          for r, s in zip(raws, sentids)],
        })
        if split == "test":
            coco_images.append({"id": 1000 + imgid, "file_name": filename, "width": 32, "height": 32})
            coco_annotations += [{"image_id": 1000 + imgid, "id": s, "caption": r} for r, s in zip(raws, sentids)]
    (captions_dir / "dataset_coco.json").write_text(json.dumps({"images": karpathy, "dataset": "coco"}))
    (captions_dir / "captions_val.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": coco_images, "annotations": coco_annotations}))

    nocaps_dir = root / "nocaps"
    (nocaps_dir / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    domains = ("in-domain", "near-domain", "out-domain")
    for i in range(nocaps):
        shape, colour = pick()
        filename = f"nocaps_{i:04d}.png"
        draw_shape(shape, colour, rng).save(nocaps_dir / "images" / filename)
        images.append({"id": i, "file_name": filename, "open_images_id": f"{i:016x}", "height": 32, "width": 32,
                       "domain": domains[i % len(domains)]})
        annotations += [{"image_id": i, "id": 10 * i + k, "caption": r} for k, r in enumerate(_captions(shape, colour))]
    (nocaps_dir / "nocaps_val.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return root
