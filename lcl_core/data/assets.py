"""Real image assets that ship inside installed packages, and how an object is drawn from them.

Basic tier (always available): procedural shapes, handwritten digits (scikit-learn ``load_digits``,
1,797 real 8×8 scans), letters drawn with matplotlib's fonts, textures and photos from
``skimage.data``. Real tier (when the Debian packages are installed, see ``data/README.md``):
Fashion-MNIST garments and Tux Paint stamps with their human-written English captions.

Held-out instances: every family keeps some instances out of pre-training so that evaluation sees
objects it never saw (digit scans with index % 5 == 0, two font faces, the Fashion-MNIST test split,
one Tux Paint stamp in five).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230), "yellow": (240, 210, 40),
    "purple": (150, 60, 200), "orange": (245, 140, 30), "white": (245, 245, 245), "pink": (245, 130, 190),
}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS_SEEN = tuple("ABCDEFGHIJKLM")  # in pre-training text and images
LETTERS_UNSEEN = tuple("NOPQRSTUVWXYZ")  # only in the NoCaps-like out-domain split
FONTS_TRAIN = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf")
FONTS_HELD_OUT = ("DejaVuSans-BoldOblique.ttf", "DejaVuSerif-BoldItalic.ttf")
FASHION_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot")
TEXTURES = ("brick", "grass", "gravel")  # skimage.data grey textures, used as backgrounds
PHOTOS = {"astronaut": "astronaut", "cat": "chelsea", "coffee cup": "coffee", "rocket": "rocket",
          "cameraman": "camera", "pile of coins": "coins", "moon": "moon"}

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
REAL_TIER_APT = "sudo apt-get install -y dataset-fashion-mnist tuxpaint-stamps-default"


def stable_int(*parts) -> int:
    """A 64-bit integer from any printable parts, identical across processes and Python runs."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def real_tier_available() -> bool:
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file() and STAMPS_DIR.is_dir()


@dataclass
class Stamp:
    path: Path
    phrase: str  # the stamp's English caption as a noun phrase, e.g. "a frog"
    category: str  # top-level Tux Paint folder, e.g. "animals"


@dataclass
class AssetLibrary:
    """Arrays loaded once per process. ``split`` lists say which instances pre-training may use."""

    digits: np.ndarray  # [n, 8, 8] in [0, 1]
    digit_labels: np.ndarray
    textures: dict[str, np.ndarray]  # name -> [H, W] uint8
    photos: dict[str, np.ndarray]  # name -> [H, W, 3] uint8
    font_dir: Path
    fashion: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # split -> (x, y)
    stamps: dict[str, list[Stamp]] = field(default_factory=dict)  # split -> stamps

    def digit_indices(self, label: int, held_out: bool) -> np.ndarray:
        idx = np.flatnonzero(self.digit_labels == label)
        return idx[(idx % 5 == 0) == held_out]


@lru_cache(maxsize=2)
def load_assets(tier: str = "basic") -> AssetLibrary:
    import matplotlib
    import skimage.data
    from sklearn.datasets import load_digits

    if tier not in ("basic", "real"):
        raise ValueError(f"tier must be 'basic' or 'real', not {tier!r}")
    digits = load_digits()
    lib = AssetLibrary(
        digits=(digits.images / 16.0).astype(np.float32),
        digit_labels=digits.target,
        textures={name: getattr(skimage.data, name)() for name in TEXTURES},
        photos={name: _as_rgb(getattr(skimage.data, fn)()) for name, fn in PHOTOS.items()},
        font_dir=Path(matplotlib.get_data_path()) / "fonts" / "ttf",
    )
    if tier == "real":
        if not real_tier_available():
            raise FileNotFoundError(
                f"the real tier needs {FASHION_DIR} and {STAMPS_DIR}; install them with: {REAL_TIER_APT}")
        lib.fashion = {"train": _read_fashion("train"), "held_out": _read_fashion("t10k")}
        lib.stamps = _read_stamps()
    return lib


def _as_rgb(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]


def _read_fashion(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def _read_stamps() -> dict[str, list[Stamp]]:
    split: dict[str, list[Stamp]] = {"train": [], "held_out": []}
    for png in sorted(STAMPS_DIR.rglob("*.png")):
        caption_file = png.with_suffix(".txt")
        if not caption_file.is_file():
            continue
        first_line = caption_file.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        phrase = first_line[0].strip().rstrip(".!").strip() if first_line else ""
        if not phrase or "=" in phrase:
            continue
        phrase = phrase[0].lower() + phrase[1:]
        stamp = Stamp(png, phrase, png.relative_to(STAMPS_DIR).parts[0])
        split["held_out" if stable_int("stamp", png.name) % 5 == 0 else "train"].append(stamp)
    return split


# ---- drawing ----------------------------------------------------------------------------------------
def background(name: str, size: int, rng) -> Image.Image:
    """A plain dark/grey canvas or a random crop of a real texture, tinted slightly."""
    if name == "dark":
        return Image.new("RGB", (size, size), tuple(rng.randint(0, 40) for _ in range(3)))
    if name == "grey":
        level = rng.randint(90, 130)
        return Image.new("RGB", (size, size), (level, level, level))
    texture = load_assets("basic").textures[name]
    largest = texture.shape[0] // 2
    # images above a quarter of the texture (the released 224-px presets) take the largest crop, upscaled;
    # smaller ones draw exactly as they always did, so existing worlds keep their bytes
    crop = rng.randint(min(size * 2, largest), largest)
    y, x = rng.randint(0, texture.shape[0] - crop), rng.randint(0, texture.shape[1] - crop)
    patch = Image.fromarray(texture[y: y + crop, x: x + crop]).resize((size, size), Image.BILINEAR)
    tint = {"brick": (1.0, 0.6, 0.5), "grass": (0.5, 0.9, 0.4), "gravel": (0.8, 0.8, 0.8)}[name]
    rgb = np.asarray(patch, np.float32)[..., None] * np.array(tint, np.float32) * 0.7
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def shape_mask(kind: str, box: int, rotation: float) -> Image.Image:
    """An ``L`` mask of one procedural shape filling a ``box``×``box`` square."""
    scale = 4  # draw large, then downsample: anti-aliased edges at tiny sizes
    s = box * scale
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    c, r = s / 2, s / 2 * 0.95

    def polygon(n: int, radius_at=lambda i: r, phase: float = -math.pi / 2):
        return [(c + radius_at(i) * math.cos(phase + rotation + 2 * math.pi * i / n),
                 c + radius_at(i) * math.sin(phase + rotation + 2 * math.pi * i / n)) for i in range(n)]

    if kind == "circle":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=255)
    elif kind == "ring":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=255)
        draw.ellipse([c - r * 0.55, c - r * 0.55, c + r * 0.55, c + r * 0.55], fill=0)
    elif kind == "square":
        draw.polygon(polygon(4, phase=-math.pi / 4, radius_at=lambda i: r * 1.05), fill=255)
    elif kind == "diamond":
        draw.polygon(polygon(4, radius_at=lambda i: r if i % 2 == 0 else r * 0.6), fill=255)
    elif kind == "triangle":
        draw.polygon(polygon(3), fill=255)
    elif kind == "hexagon":
        draw.polygon(polygon(6), fill=255)
    elif kind == "star":
        draw.polygon(polygon(10, radius_at=lambda i: r if i % 2 == 0 else r * 0.42), fill=255)
    elif kind == "cross":
        w = r * 0.35
        draw.rectangle([c - w, c - r, c + w, c + r], fill=255)
        draw.rectangle([c - r, c - w, c + r, c + w], fill=255)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask.resize((box, box), Image.LANCZOS)


def glyph_mask(letter: str, font_file: str, box: int, font_dir: Path) -> Image.Image:
    scale = 4
    font = ImageFont.truetype(os.fspath(font_dir / font_file), int(box * scale * 0.9))
    canvas = Image.new("L", (box * scale, box * scale), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    draw.text(((box * scale - (right - left)) / 2 - left, (box * scale - (bottom - top)) / 2 - top),
              letter, fill=255, font=font)
    return canvas.resize((box, box), Image.LANCZOS)


def array_mask(array: np.ndarray, box: int) -> Image.Image:
    """A grey scan (digits, garments) in [0, 1] or uint8 as an ``L`` mask."""
    values = array if array.dtype == np.uint8 else (array * 255).astype(np.uint8)
    return Image.fromarray(values).resize((box, box), Image.BICUBIC)


def photo_crop(photo: np.ndarray, size: int, rng) -> Image.Image:
    h, w = photo.shape[:2]
    crop = int(min(h, w) * rng.uniform(0.6, 1.0))
    y, x = rng.randint(0, h - crop), rng.randint(0, w - crop)
    image = Image.fromarray(photo[y: y + crop, x: x + crop]).resize((size, size), Image.BICUBIC)
    return image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def stamp_image(path: str | Path, box: int) -> Image.Image:
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    rgba.thumbnail((box, box), Image.LANCZOS)
    return rgba
