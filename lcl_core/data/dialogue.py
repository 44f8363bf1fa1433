"""Questions about an image, from its scene graph: the instruction data and the benchmark stand-ins of the
tiny LLaVA-1.5 (the paper's Table 4).

Every image of the offline world is drawn from a scene graph (:mod:`lcl_core.data.scenes`: objects with kind
and colour, their count, size, position, relation and background), so the right answer to a question about an
image is known exactly. :func:`questions` turns one scene into the questions of one benchmark, in that
benchmark's form, deterministically from a seed:

* ``vqav2`` — short open answers about the object, its colour, count, size, position and background, each with
  ten annotators' answers: the truth in the surface forms people type ("2", "two", "on the left"), and with
  probability :data:`ANNOTATOR_DISAGREEMENT` per annotator another value of the same attribute, as real
  annotators disagree; scored by VQA accuracy;
* ``gqa`` — compositional questions about two objects (what is left of the ring; is the circle above the
  seven; are they the same colour), one-word answers, exact match;
* ``pope`` — "Is there a … in the image?": one question whose answer is yes and one whose answer is no per
  image and setting — ``random`` (any absent object), ``popular`` (the absent object the training
  conversations name most) and ``adversarial`` (an absent object of the same family, the nearest confusion);
* ``mme`` — two yes/no questions per image and aspect (existence, count, position, color), one answered yes
  and one no, ending "Please answer yes or no." as MME's do;
* ``mmbench`` — four-option multiple choice (object, colour, count, position, relation), the truth and three
  values of the same attribute as distractors; the scorer asks every rotation (:func:`.mllm_scores.rotations`);
* ``blind`` — multiple choice answerable from the world's text alone (the facts its pages state: a hexagon
  has six sides, seven comes after six): the stand-in for ScienceQA's questions without an image, the check
  that a model's score without its eyes is measured, not assumed to be chance.

The instruction data (``instructions``) is every open form above (VQA-style questions with the truth as the
answer, GQA-style questions, yes/no questions, multiple choice with the letter) on *training* scenes; the
benchmarks use held-out scenes only (:func:`dialogue_scene`: another split of the world's generator, other
instances, another random stream), so no test image or question is in the training data.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from .assets import DIGIT_NAMES, SHAPES, stable_int
from .language import SHAPE_FACTS, noun_phrase
from .scenes import (BACKGROUND_PHRASES, BACKGROUNDS, COLOUR_NAMES, POSITION_PHRASES, RELATION_PHRASES,
                           sample_scene)

BENCHMARKS = ("vqav2", "gqa", "pope", "mme", "mmbench", "blind")
ANNOTATORS = 10  # VQAv2 collects ten answers per question
ANNOTATOR_DISAGREEMENT = 0.1  # chance that one annotator gives another value of the attribute
MME_SUFFIX = " Please answer yes or no."
POPE_SETTINGS = ("random", "popular", "adversarial")
# the family mix of dialogue images: relations for GQA's compositional questions, single objects for the rest
FAMILY_WEIGHTS = {"shape": 0.3, "digit": 0.2, "letter": 0.1, "relation": 0.3, "photo": 0.1}
SIZES = ("small", "large")
COUNTS = (1, 2, 3)
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@dataclass(frozen=True)
class Question:
    """One question about one image (``image`` None: asked without one)."""

    benchmark: str
    image: int | None
    question: str
    truth: str  # the scene's answer (a letter for multiple choice): what a training conversation answers
    answers: tuple[str, ...]  # what the scorer compares with — vqav2: the ten annotators'; otherwise (truth,)
    category: str  # the aspect asked about (MME's category, POPE's setting, MMBench's skill)
    group: str = ""  # MME: the image both of its questions share; MMBench: the question its rotations share
    options: tuple[str, ...] = field(default=())  # multiple choice, in the order shown


def dialogue_scene(seed: int, split: str, index: int, lib) -> dict:
    """The scene of dialogue image ``index`` of ``split`` (``"train"``: instruction data; ``"test"``: the
    benchmarks, drawn from held-out instances), its own random stream, apart from the world's images."""
    rng = random.Random(stable_int("dialogue", seed, split, index))
    family = rng.choices(list(FAMILY_WEIGHTS), list(FAMILY_WEIGHTS.values()))[0]
    return sample_scene(rng, lib, split="train" if split == "train" else "held_out", family=family)


def name(obj: dict, count: int = 1) -> str:
    """The object without article or colour: ``circle``, ``handwritten seven``, ``letter K``, ``cat``."""
    if obj["family"] == "photo":
        return obj["kind"]
    return noun_phrase(obj, count, colour=False).split(" ", 1)[1]


def _answer_forms(attribute: str, value) -> tuple[str, ...]:
    """The ways annotators write one true answer."""
    if attribute == "count":
        return (str(value), ("one", "two", "three")[value - 1])
    if attribute == "position":
        return (value, POSITION_PHRASES[value], f"{value} side" if value in ("left", "right") else value)
    if attribute == "background":
        return (BACKGROUND_PHRASES[value].removeprefix("on ").removeprefix("a "),)
    return (value,)


def _alternatives(attribute: str, value) -> list:
    values = {"colour": COLOUR_NAMES, "count": COUNTS, "size": SIZES, "position": tuple(POSITION_PHRASES),
              "background": BACKGROUNDS}[attribute]
    return [v for v in values if v != value]


def _annotators(rng: random.Random, attribute: str, value) -> tuple[str, ...]:
    answers = []
    for _ in range(ANNOTATORS):
        shown = value if rng.random() >= ANNOTATOR_DISAGREEMENT else rng.choice(_alternatives(attribute, value))
        answers.append(rng.choice(_answer_forms(attribute, shown)))
    return tuple(answers)


def _facts(scene: dict) -> dict:
    """attribute -> value for a single-object scene's askable attributes."""
    obj = scene["objects"][0]
    facts = {"count": scene["count"], "background": scene["background"]}
    if obj["colour"]:
        facts["colour"] = obj["colour"]
    if scene["count"] == 1 and scene["size"]:
        facts.update(size=scene["size"], position=scene["position"])
    return {k: v for k, v in facts.items() if v is not None}


OPEN_QUESTIONS = {
    "colour": "What colour is the {n}?", "count": "How many {p} are there?", "size": "Is the {n} small or large?",
    "position": "Where is the {n}?", "background": "What is the {n} on?",
}


def _vqa(scene: dict, image: int, rng: random.Random) -> list[Question]:
    if scene["layout"] != "objects":
        return []
    obj = scene["objects"][0]
    words = {"n": name(obj), "p": name(obj, 2)}
    return [Question("vqav2", image, OPEN_QUESTIONS[attribute].format(**words), _answer_forms(attribute, value)[0],
                     _annotators(rng, attribute, value), attribute) for attribute, value in _facts(scene).items()]


def _gqa(scene: dict, image: int, rng: random.Random) -> list[Question]:
    if scene["layout"] != "relation":
        return []
    a, b = scene["objects"]
    relation = scene["relation"]
    asked = [("relation", f"What is {RELATION_PHRASES[relation]} the {name(b)}?", name(a).split()[-1]),
             ("verify", f"Is the {name(a)} {RELATION_PHRASES[relation]} the {name(b)}?", "yes"),
             ("verify", f"Is the {name(a)} {RELATION_PHRASES[OPPOSITE[relation]]} the {name(b)}?", "no"),
             ("compare", f"Are the {name(a)} and the {name(b)} the same colour?",
              "yes" if a["colour"] == b["colour"] else "no"),
             ("attribute", f"What colour is the object {RELATION_PHRASES[relation]} the {name(b)}?", a["colour"])]
    return [Question("gqa", image, q, answer, (answer,), category) for category, q, answer in asked if answer]


def _present(scene: dict) -> set[str]:
    return {name(obj) for obj in scene["objects"]}


def _family_names(family: str) -> list[str]:
    if family == "shape":
        return list(SHAPES)
    if family == "digit":
        return [f"handwritten {d}" for d in DIGIT_NAMES]
    return []


ALL_NAMES = tuple(_family_names("shape") + _family_names("digit"))


def _pope(scene: dict, image: int, rng: random.Random, popular: tuple[str, ...]) -> list[Question]:
    present = _present(scene)
    shown = rng.choice(sorted(present))
    family = next(obj["family"] for obj in scene["objects"] if name(obj) == shown)
    negatives = {"random": [n for n in ALL_NAMES if n not in present],
                 "popular": [n for n in popular if n not in present][:1],
                 "adversarial": [n for n in _family_names(family) if n not in present]}
    asked = []
    for setting in POPE_SETTINGS:
        if not negatives[setting]:
            continue
        absent = rng.choice(negatives[setting])
        asked += [Question("pope", image, f"Is there a {shown} in the image?", "yes", ("yes",), setting),
                  Question("pope", image, f"Is there a {absent} in the image?", "no", ("no",), setting)]
    return asked


def _mme(scene: dict, image: int, rng: random.Random) -> list[Question]:
    if scene["layout"] != "objects":
        return []
    obj, facts, group = scene["objects"][0], _facts(scene), f"image {image}"
    n = name(obj)
    pairs = {"existence": (f"Is there a {n} in this image?",
                           f"Is there a {rng.choice([m for m in ALL_NAMES if m != n])} in this image?")}
    if facts["count"] > 1:  # "is there a star" is true of three stars: counts are asked among several
        wrong = next(k for k in COUNTS[1:] if k != facts["count"])
        pairs["count"] = tuple(f"Are there {noun_phrase(obj, k, colour=False)} in this image?"
                               for k in (facts["count"], wrong))
    if "position" in facts:
        wrong = rng.choice(_alternatives("position", facts["position"]))
        pairs["position"] = (f"Is the {n} {POSITION_PHRASES[facts['position']]} of the image?",
                             f"Is the {n} {POSITION_PHRASES[wrong]} of the image?")
    if "colour" in facts:
        pairs["color"] = (f"Is the {n} {facts['colour']}?",
                          f"Is the {n} {rng.choice(_alternatives('colour', facts['colour']))}?")
    return [Question("mme", image, question + MME_SUFFIX, answer, (answer,), category, group)
            for category, both in pairs.items() for question, answer in zip(both, ("yes", "no"))]


def _choice(benchmark: str, image: int | None, question: str, truth: str, others: list[str], category: str,
            rng: random.Random, group: str) -> Question:
    """Four options (the truth among three distractors), in a random order, the right letter as the answer."""
    options = [truth] + rng.sample(others, 3)
    rng.shuffle(options)
    letter = "ABCD"[options.index(truth)]
    return Question(benchmark, image, question, letter, (letter,), category, group, tuple(options))


def _mmbench(scene: dict, image: int, rng: random.Random) -> list[Question]:
    group = f"image {image}"
    if scene["layout"] == "relation":
        a, b = scene["objects"]
        return [_choice("mmbench", image, f"Where is the {name(a)} relative to the {name(b)}?",
                        RELATION_PHRASES[scene["relation"]],
                        [p for r, p in RELATION_PHRASES.items() if r != scene["relation"]], "spatial relationship",
                        rng, f"{group} relation")]
    if scene["layout"] != "objects" or scene["objects"][0]["family"] not in ("shape", "digit"):
        return []
    obj, facts = scene["objects"][0], _facts(scene)
    asked = [_choice("mmbench", image, "Which object is shown?", name(obj),
                     [m for m in _family_names(obj["family"]) if m != name(obj)], "object recognition", rng,
                     f"{group} object")]
    if "colour" in facts:
        asked.append(_choice("mmbench", image, f"What colour is the {name(obj)}?", facts["colour"],
                             _alternatives("colour", facts["colour"]), "attribute recognition", rng, f"{group} colour"))
    if "position" in facts:
        asked.append(_choice("mmbench", image, f"Where is the {name(obj)}?", POSITION_PHRASES[facts["position"]],
                             [POSITION_PHRASES[p] for p in _alternatives("position", facts["position"])],
                             "object localization", rng, f"{group} position"))
    return asked


def blind_questions(seed: int) -> list[Question]:
    """Multiple choice on what the world's pages state, no image: sides and corners of shapes, digit order."""
    rng = random.Random(stable_int("dialogue-blind", seed))
    asked = []
    for shape in ("square", "triangle", "star", "hexagon", "circle"):  # facts that single out one shape
        says = SHAPE_FACTS[shape].removeprefix(f"A {shape} ").removesuffix(".")  # "has six sides"
        asked.append(_choice("blind", None, f"Which shape {says}?", shape, [s for s in SHAPES if s != shape],
                             "shapes", rng, f"blind {shape}"))
    for value in range(1, len(DIGIT_NAMES)):
        before, number = DIGIT_NAMES[value - 1], DIGIT_NAMES[value]
        asked.append(_choice("blind", None, f"Which number comes right after {before}?", number,
                             [d for d in DIGIT_NAMES if d not in (number, before)], "numbers", rng,
                             f"blind {number}"))
    return asked


def questions(scene: dict, image: int, benchmark: str, *, seed: int,
              popular: tuple[str, ...] = ()) -> list[Question]:
    """The questions of ``benchmark`` about one scene (image number ``image``), deterministic in ``seed``.
    ``popular``: object names by how often the training conversations name them (POPE's popular setting)."""
    rng = random.Random(stable_int("dialogue-questions", seed, benchmark, image))
    if benchmark == "vqav2":
        return _vqa(scene, image, rng)
    if benchmark == "gqa":
        return _gqa(scene, image, rng)
    if benchmark == "pope":
        return _pope(scene, image, rng, popular)
    if benchmark == "mme":
        return _mme(scene, image, rng)
    if benchmark == "mmbench":
        return _mmbench(scene, image, rng)
    raise ValueError(f"unknown benchmark {benchmark!r}; the image benchmarks are {', '.join(BENCHMARKS[:-1])}")



# ---- the instruction data ------------------------------------------------------------------------------
# LLaVA-1.5's response-format prompts: short answers, yes/no and option letters are asked for in words
SHORT_ANSWER = "Answer the question using a single word or phrase."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."


def prompt(question: Question) -> str:
    """What the model is asked: the question, its options as ``A. …`` lines, and LLaVA-1.5's format prompt."""
    if question.options:
        lines = "\n".join(f"{letter}. {option}" for letter, option in zip("ABCD", question.options))
        return f"{question.question}\n{lines}\n{OPTION_LETTER}"
    if question.question.endswith(MME_SUFFIX):
        return question.question
    return f"{question.question}\n{SHORT_ANSWER}"


def popular_names(scenes: list[dict]) -> tuple[str, ...]:
    """Object names by how many training scenes show them, most first (ties by name): POPE's popular setting."""
    counts = Counter(n for scene in scenes for n in {name(obj) for obj in scene["objects"]})
    return tuple(sorted(counts, key=lambda n: (-counts[n], n)))


def conversation(image: int, asked: list[Question]) -> dict:
    """One LLaVA-format record: the image's questions as turns (``<image>`` opens the first), answered with
    the scene's truth — never an annotator's slip, so no noise is taught."""
    turns = []
    for turn, question in enumerate(asked):
        turns += [{"from": "human", "value": ("<image>\n" if turn == 0 else "") + prompt(question)},
                  {"from": "gpt", "value": question.truth}]
    return {"id": f"dialogue-{image}", "image": image, "conversations": turns}


def instruction_data(scenes: list[dict], *, seed: int) -> list[dict]:
    """The stage-2 training set: one conversation per training scene holding every image benchmark's
    questions about it (LLaVA-1.5 mixes VQAv2, GQA and multiple-choice data in the same way)."""
    popular = popular_names(scenes)
    records = []
    for image, scene in enumerate(scenes):
        asked: dict[str, Question] = {}  # a question two benchmarks ask (POPE's "yes" one) is asked once
        for benchmark in BENCHMARKS[:-1]:
            for q in questions(scene, image, benchmark, seed=seed, popular=popular):
                asked.setdefault(prompt(q), q)
        records.append(conversation(image, list(asked.values())))
    return records
