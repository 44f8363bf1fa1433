"""Scenes: what one image shows, how it is drawn, and how people write about it.

A scene is a JSON-able dict (it goes into the alignment sidecar and the eval metadata)::

    {"layout": "objects" | "relation" | "photo", "objects": [{"family", "kind", "colour", "instance"}],
     "count": int, "size": "small" | "large" | None, "position": str | None,
     "relation": str | None, "background": str}

Every attribute a sentence can state is visible in the pixels (kind, colour, count, size, position,
relation, background), so a vision encoder can learn it from the text. ``attributes(scene)`` is the
set the similarity model compares. Splits: ``"train"`` (pre-training instances), ``"held_out"``
(unseen instances of seen concepts), ``"near"`` (unseen colour×shape combinations), ``"out"``
(concepts absent from pre-training: letters N–Z and, in the real tier, held-out Tux Paint stamps).
"""

from __future__ import annotations

import random

from PIL import Image

from .assets import (COLOURS, DIGIT_NAMES, FASHION_NAMES, FONTS_HELD_OUT, FONTS_TRAIN, LETTERS_SEEN,
                     LETTERS_UNSEEN, PHOTOS, SHAPES, TEXTURES, AssetLibrary, array_mask, background,
                     glyph_mask, photo_crop, shape_mask, stamp_image)

COLOUR_NAMES = tuple(COLOURS)
BACKGROUNDS = ("dark", "grey") + TEXTURES
BACKGROUND_PHRASES = {"dark": "on a dark background", "grey": "on a grey background",
                      "brick": "on a brick wall", "grass": "on grass", "gravel": "on gravel"}
POSITIONS = {"left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28), "bottom": (0.5, 0.72),
             "centre": (0.5, 0.5)}
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top",
                    "bottom": "at the bottom", "centre": "in the centre"}
RELATIONS = {"left of": ((0.27, 0.5), (0.73, 0.5)), "right of": ((0.73, 0.5), (0.27, 0.5)),
             "above": ((0.5, 0.27), (0.5, 0.73)), "below": ((0.5, 0.73), (0.5, 0.27))}
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above",
                    "below": "below"}
NUMBER_WORDS = {1: "a", 2: "two", 3: "three"}
# one colour per shape never drawn in pre-training: the NoCaps-like near-domain split
NEAR_DOMAIN_COMBOS = {(shape, COLOUR_NAMES[(3 * i) % len(COLOUR_NAMES)]) for i, shape in enumerate(SHAPES)}


def families(lib: AssetLibrary) -> dict[str, float]:
    """Scene families and their sampling weights (the real tier adds garments and stamps)."""
    weights = {"shape": 0.35, "digit": 0.2, "letter": 0.15, "relation": 0.2, "photo": 0.1}
    if lib.fashion:
        weights.update(fashion=0.15, stamp=0.15)
    return weights


def classification_classes(lib: AssetLibrary) -> dict[str, str]:
    """ImageFolder class name -> the phrase pre-training text uses for it."""
    classes = {shape: f"a {shape}" for shape in SHAPES}
    classes.update({f"digit_{name}": f"a handwritten {name}" for name in DIGIT_NAMES})
    classes.update({f"letter_{c}": f"the letter {c}" for c in LETTERS_SEEN})
    if lib.fashion:
        classes.update({f"fashion_{n.replace(' ', '_')}": f"a {n}" for n in FASHION_NAMES})
    return classes


# ---- sampling ---------------------------------------------------------------------------------------
def sample_object(family: str, rng: random.Random, lib: AssetLibrary, split: str, kind=None) -> dict:
    held_out = split != "train"
    if family == "shape":
        kind = kind or rng.choice(SHAPES)
        colours = [c for c in COLOUR_NAMES if ((kind, c) in NEAR_DOMAIN_COMBOS) == (split == "near")]
        return {"family": family, "kind": kind, "colour": rng.choice(colours), "instance": rng.random()}
    if family == "digit":
        label = DIGIT_NAMES.index(kind) if kind else rng.randrange(10)
        return {"family": family, "kind": DIGIT_NAMES[label], "colour": rng.choice(COLOUR_NAMES),
                "instance": int(rng.choice(lib.digit_indices(label, held_out)))}
    if family == "letter":
        letters = LETTERS_UNSEEN if split == "out" else LETTERS_SEEN
        return {"family": family, "kind": kind or rng.choice(letters), "colour": rng.choice(COLOUR_NAMES),
                "instance": rng.choice(FONTS_HELD_OUT if held_out else FONTS_TRAIN)}
    if family == "fashion":
        split_name = "held_out" if held_out else "train"
        labels = lib.fashion[split_name][1]
        label = FASHION_NAMES.index(kind) if kind else rng.randrange(10)
        index = rng.randrange(len(labels))
        while labels[index] != label:  # walk to the next garment of this class
            index = (index + 1) % len(labels)
        return {"family": family, "kind": FASHION_NAMES[label], "colour": rng.choice(COLOUR_NAMES),
                "instance": [split_name, index]}
    if family == "stamp":
        stamp = rng.choice(lib.stamps["held_out" if split == "out" else "train"])
        return {"family": family, "kind": stamp.phrase, "colour": None, "instance": str(stamp.path)}
    raise ValueError(f"unknown object family {family!r}")


def sample_scene(rng: random.Random, lib: AssetLibrary, *, split: str = "train", family: str | None = None,
                 kind: str | None = None) -> dict:
    """One random scene of ``family`` (weighted choice when None)."""
    if family is None:
        weights = families(lib)
        if split != "train":  # evaluation scenes show single objects of the evaluated concepts
            weights.pop("relation"), weights.pop("photo")
        family = rng.choices(list(weights), list(weights.values()))[0]
    scene = {"layout": "objects", "objects": [], "count": 1, "size": None, "position": None,
             "relation": None, "background": rng.choice(BACKGROUNDS)}
    if family == "photo":
        scene.update(layout="photo", background=None,
                     objects=[{"family": "photo", "kind": kind or rng.choice(list(PHOTOS)), "colour": None,
                               "instance": rng.random()}])
    elif family == "relation":
        first, second = (sample_object(rng.choice(("shape", "digit")), rng, lib, split) for _ in range(2))
        scene.update(layout="relation", objects=[first, second], relation=rng.choice(list(RELATIONS)),
                     count=2)
    else:
        obj = sample_object(family, rng, lib, split, kind)
        count = rng.choice((1, 1, 2, 3)) if family in ("shape", "digit", "letter") else 1
        scene.update(objects=[obj] * count, count=count)
        if count == 1:
            scene["size"] = rng.choice(("small", "large"))
            scene["position"] = "centre" if scene["size"] == "large" else rng.choice(list(POSITIONS))
    return scene


def attributes(scene: dict) -> set[str]:
    """What a sentence could say about this scene, as comparable tokens."""
    attrs = {f"layout:{scene['layout']}"}
    for obj in scene["objects"]:
        attrs.add(f"kind:{obj['kind']}")
        if obj["colour"]:
            attrs.add(f"colour:{obj['colour']}")
    for key in ("count", "size", "position", "relation", "background"):
        if scene.get(key) is not None:
            attrs.add(f"{key}:{scene[key]}")
    return attrs


# ---- drawing ----------------------------------------------------------------------------------------
def render(scene: dict, size: int, lib: AssetLibrary, rng: random.Random) -> Image.Image:
    if scene["layout"] == "photo":
        return photo_crop(lib.photos[scene["objects"][0]["kind"]], size, rng)
    canvas = background(scene["background"], size, rng)
    if scene["layout"] == "relation":
        box = int(size * 0.42)
        centres = RELATIONS[scene["relation"]]
        placements = [(obj, box, centre) for obj, centre in zip(scene["objects"], centres)]
    elif scene["count"] == 1:
        box = int(size * (0.62 if scene["size"] == "large" else 0.4))
        placements = [(scene["objects"][0], box, POSITIONS[scene["position"]])]
    else:
        box = int(size * 0.33)
        cells = rng.sample([(x, y) for x in (0.2, 0.5, 0.8) for y in (0.2, 0.5, 0.8)], scene["count"])
        placements = [(obj, box, cell) for obj, cell in zip(scene["objects"], cells)]
    for obj, box, (cx, cy) in placements:
        jitter = size * 0.04
        x = int(min(max(cx * size + rng.uniform(-jitter, jitter) - box / 2, 0), size - box))
        y = int(min(max(cy * size + rng.uniform(-jitter, jitter) - box / 2, 0), size - box))
        _paste_object(canvas, obj, box, (x, y), lib, rng)
    return canvas


def _paste_object(canvas: Image.Image, obj: dict, box: int, corner, lib: AssetLibrary, rng) -> None:
    family = obj["family"]
    if family == "stamp":
        cutout = stamp_image(obj["instance"], box)
        canvas.paste(cutout, corner, cutout)
        return
    if family == "shape":
        mask = shape_mask(obj["kind"], box, rotation=rng.uniform(-0.15, 0.15))
    elif family == "digit":
        mask = array_mask(lib.digits[obj["instance"]], box)
    elif family == "letter":
        mask = glyph_mask(obj["kind"], obj["instance"], box, lib.font_dir)
    else:  # fashion: instance = [split, index]
        split, index = obj["instance"]
        mask = array_mask(lib.fashion[split][0][index], box)
    colour = tuple(max(0, min(255, c + rng.randint(-15, 15))) for c in COLOURS[obj["colour"]])
    canvas.paste(Image.new("RGB", (box, box), colour), corner, mask)
