"""How the world's web pages talk: descriptions of scenes, topical knowledge, boilerplate.

Each generated sentence comes with the set of scene attributes it states (``mentions``), which the
similarity model compares with an image's attributes (see :func:`scenes.attributes`).
"""

from __future__ import annotations

import random

from .assets import DIGIT_NAMES, LETTERS_SEEN, LETTERS_UNSEEN, PHOTOS
from .scenes import BACKGROUND_PHRASES, NUMBER_WORDS, POSITION_PHRASES, RELATION_PHRASES, attributes

DESCRIPTION_TEMPLATES = (
    "The picture shows {d}.", "Here you can see {d}.", "This image contains {d}.", "Look closely at {d}.",
    "Our photo of the day: {d}.", "In this shot there is {d}.", "Pictured: {d}.", "We found {d}.",
)
ALT_TEMPLATES = ("{d}", "{D}.", "image of {d}", "photo: {d}")
CAPTION_TEMPLATES = ("{D}.", "A picture of {d}.", "An image showing {d}.", "There is {d}.", "{short}.")
LEAK_TEMPLATES = ("Further down the page you will find {d}.", "Scroll down to see {d}.",
                  "The next picture is {d}.")
SHAPE_FACTS = {
    "circle": "A circle is perfectly round.", "square": "A square has four equal sides.",
    "triangle": "A triangle has three corners.", "diamond": "A diamond is a square standing on one corner.",
    "star": "A star has five points.", "cross": "A cross is made of two crossing bars.",
    "ring": "A ring is a circle with a hole in the middle.", "hexagon": "A hexagon has six sides.",
}
BOILERPLATE = (
    "Share this post with your friends.", "Click here to subscribe to our newsletter.",
    "Free shipping on all orders over fifty dollars.", "All rights reserved.", "Leave a comment below.",
    "Read more about our privacy policy.", "This post may contain affiliate links.",
    "Sign up for updates and special offers.", "Thanks for stopping by today.", "Follow us for more ideas.",
    "We hope you enjoyed this article.", "Posted in Uncategorized.", "Related posts are listed below.",
    "Cookies help us deliver our services.", "Please enable JavaScript to view the comments.",
    "Last updated on a sunny Tuesday.", "Questions? Contact our support team.", "Back to the top.",
    "Our team writes new posts every week.", "Tag us in your pictures.",
)
OPTIONAL_DETAILS = ("colour", "size", "position", "background")  # the object's kind and count are always named
ALL_DETAILS = frozenset(OPTIONAL_DETAILS)
TOPIC_TITLES = {
    "shape": "A gallery of colourful shapes", "digit": "Handwritten numbers from our readers",
    "letter": "Letters of the alphabet", "relation": "Where things are: a little puzzle page",
    "photo": "Classic test photographs", "fashion": "New arrivals in our clothing store",
    "stamp": "Clip art collection",
}


def noun_phrase(obj: dict, count: int = 1, size: str | None = None, *, colour: bool = True) -> str:
    family, kind = obj["family"], obj["kind"]
    if family == "stamp":
        return kind
    if family == "photo":
        return f"a photo of a {kind}"
    noun = {"digit": f"handwritten {kind}", "letter": f"letter {kind}"}.get(family, kind)
    if count > 1:
        noun = f"{noun}es" if noun.endswith(("x", "s", "ch")) else f"{noun}s"
    words = [NUMBER_WORDS[count]] + ([size] if size else []) + ([obj["colour"]] if colour else []) + [noun]
    if count == 1 and words[1][0] in "aeiou":
        words[0] = "an"
    return " ".join(words)


def describe(scene: dict, *, details: frozenset[str] = ALL_DETAILS) -> str:
    """A description naming the scene's objects and the optional ``details`` it states; with all of
    them the canonical one, e.g. ``a small red circle on the left, on grass``."""
    first, colour = scene["objects"][0], "colour" in details
    if scene["layout"] == "photo":
        return noun_phrase(first)
    if scene["layout"] == "relation":
        text = (f"{noun_phrase(first, colour=colour)} {RELATION_PHRASES[scene['relation']]} "
                f"{noun_phrase(scene['objects'][1], colour=colour)}")
    else:
        text = noun_phrase(first, scene["count"], scene["size"] if "size" in details else None, colour=colour)
        if scene["position"] and "position" in details:
            text += f" {POSITION_PHRASES[scene['position']]}"
    if scene["background"] and "background" in details:
        text += f", {BACKGROUND_PHRASES[scene['background']]}"
    return text


def sample_details(rng: random.Random, detail_prob: float) -> frozenset[str]:
    """The optional details one sentence states, each with ``detail_prob``: web text names the
    object but rarely lists everything visible (see ``WorldKnobs.detail_prob``)."""
    return frozenset(d for d in OPTIONAL_DETAILS if rng.random() < detail_prob)


def stated_attributes(scene: dict, details: frozenset[str]) -> set[str]:
    """The scene attributes a description with ``details`` states (what the similarity model compares)."""
    return {a for a in attributes(scene) if (key := a.split(":")[0]) not in OPTIONAL_DETAILS or key in details}


def _detailed_description(scene: dict, rng: random.Random, detail_prob: float) -> tuple[str, set[str]]:
    details = sample_details(rng, detail_prob)
    return describe(scene, details=details), stated_attributes(scene, details)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def description_sentence(scene: dict, rng: random.Random, detail_prob: float) -> tuple[str, set[str]]:
    d, mentions = _detailed_description(scene, rng, detail_prob)
    return rng.choice(DESCRIPTION_TEMPLATES).format(d=d), mentions


RESTATING_TEMPLATES = (
    "We keep coming back to {d}.", "Another look at {d}.", "Many readers asked us about {d}.",
    "You can never have too much of {d}.", "Here is more about {d}.", "Everyone loves {d}.",
    "Do not miss {d}.", "More on {d} below.",
)


def restating_sentence(scene: dict, rng: random.Random, detail_prob: float) -> tuple[str, set[str]]:
    """Part of what an image shows, said again, more or less fully: its object's kind; or kind and colour;
    or that and that it is a picture of it (its layout) — and with ``detail_prob`` one detail, never the
    count (real pages name their subject many times, rarely in full)."""
    obj = scene["objects"][0]
    fullness = rng.randrange(3)
    phrase = noun_phrase(obj, colour=fullness > 0)
    phrase = "the " + phrase.split(" ", 1)[1] if phrase.startswith(("a ", "an ")) else phrase
    mentions = {f"kind:{obj['kind']}"} | ({f"colour:{obj['colour']}"} if obj["colour"] and fullness > 0 else set())
    if fullness == 2:
        phrase, mentions = f"pictures of {phrase}", mentions | {f"layout:{scene['layout']}"}
    details = [key for key in ("size", "position", "background") if scene.get(key)]
    if details and rng.random() < detail_prob:
        key = rng.choice(details)
        value = scene[key]
        phrase += (f", the {value} one" if key == "size" else f" {POSITION_PHRASES[value]}" if key == "position"
                   else f", {BACKGROUND_PHRASES[value]}")
        mentions.add(f"{key}:{value}")
    return rng.choice(RESTATING_TEMPLATES).format(d=phrase), mentions


def leak_sentence(scene: dict, rng: random.Random, detail_prob: float) -> tuple[str, set[str]]:
    """States the description elsewhere in the page: the text alone then predicts it."""
    d, mentions = _detailed_description(scene, rng, detail_prob)
    return rng.choice(LEAK_TEMPLATES).format(d=d), mentions


def alt_text(scene: dict, rng: random.Random, detail_prob: float) -> str:
    d, _ = _detailed_description(scene, rng, detail_prob)
    return rng.choice(ALT_TEMPLATES).format(d=d, D=_capitalised(d))


def reference_captions(scene: dict) -> list[str]:
    """Five human-like reference captions (Karpathy / COCO style) for an evaluation image."""
    d, short = describe(scene), describe(scene, details=ALL_DETAILS - {"background"})
    return [t.format(d=d, D=_capitalised(d), short=_capitalised(short)) for t in CAPTION_TEMPLATES]


def knowledge_sentence(obj: dict, rng: random.Random) -> tuple[str, set[str]]:
    """A topical fact about an object's kind (mentions the kind, not this image's specifics)."""
    family, kind = obj["family"], obj["kind"]
    if family == "shape":
        text = SHAPE_FACTS[kind]
    elif family == "digit":
        value = DIGIT_NAMES.index(kind)
        text = rng.choice((f"The number {kind} is written as {value}.",
                           f"{_capitalised(kind)} comes right after {DIGIT_NAMES[value - 1]}." if value else
                           "Zero is the smallest digit."))
    elif family == "letter":
        alphabet = LETTERS_SEEN + LETTERS_UNSEEN
        text = f"The letter {kind} is letter number {alphabet.index(kind) + 1} of the alphabet."
    elif family == "photo":
        text = f"The {kind} picture is a classic test image." if kind in PHOTOS else "Photos tell stories."
    elif family == "fashion":
        text = rng.choice((f"Every wardrobe needs a good {kind}.", f"This season the {kind} is back in style."))
    else:
        text = f"{_capitalised(kind)} is part of our clip art collection."
    return text, {f"kind:{kind}"}


def boilerplate_sentence(rng: random.Random) -> tuple[str, set[str]]:
    return rng.choice(BOILERPLATE), set()


def title_sentence(topic: str) -> tuple[str, set[str]]:
    return f"{TOPIC_TITLES[topic]}.", set()


def subject_title(topic: str, subject: dict) -> tuple[str, set[str]]:
    """A title naming the page's subject, e.g. ``A gallery of colourful shapes: the star.``"""
    return f"{TOPIC_TITLES[topic]}: the {subject['kind']}.", {f"kind:{subject['kind']}"}
