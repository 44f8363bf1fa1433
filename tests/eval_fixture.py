"""A tiny evaluation root in the real benchmark formats, for the transfer tests.

Each image is one coloured shape on a dark background, with jittered size and position; its class is
the shape and its captions name colour and shape, so every head has something learnable::

    ROOT/classification/{train,val}/<shape>/*.png          ImageFolder (ImageNet layout)
    ROOT/captions/images/*.png + dataset_coco.json         Karpathy JSON (train / test splits)
    ROOT/captions/captions_val.json                        COCO caption JSON over the test images
    ROOT/nocaps/images/*.png + nocaps_val.json             NoCaps JSON (images carry "domain")
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

from lcl_core.data.writers import write_eval_sets


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
    """Write the fixture under ``root`` (through the kit's own evaluation-set writer) and return it."""
    root, rng = Path(root), random.Random(seed)

    def image(shape: str, colour: str) -> bytes:
        buffer = io.BytesIO()
        draw_shape(shape, colour, rng).save(buffer, format="PNG")
        return buffer.getvalue()

    def captioned(kind: str, split: str):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        return kind, split, None, image(shape, colour), _captions(shape, colour)

    items = [("classification", split, shape, image(shape, rng.choice(list(COLOURS))), [])
             for split, count in (("train", per_class_train), ("val", per_class_val))
             for shape in SHAPES for _ in range(count)]
    items += [captioned("coco", "train" if i < caption_train else "test") for i in range(caption_train + caption_test)]
    domains = ("in-domain", "near-domain", "out-domain")
    items += [captioned("nocaps", domains[i % len(domains)]) for i in range(nocaps)]
    write_eval_sets(root, items)
    return root
