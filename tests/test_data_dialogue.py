"""Questions from scene graphs (lcl_core/transfer/dialogue_data.py): the answers are the scene's truth, each
benchmark keeps its form, and the benchmark images never meet the instruction images."""

from __future__ import annotations

from collections import Counter

import pytest

from lcl_core.data.assets import load_assets
from lcl_core.data.dialogue import (ANNOTATORS, BENCHMARKS, MME_SUFFIX, OPTION_LETTER, SHORT_ANSWER,
                                             blind_questions, dialogue_scene, instruction_data, name,
                                             popular_names, questions)
from lcl_core.transfer.mllm_scores import vqa_accuracy, vqa_normalize


@pytest.fixture(scope="module")
def scenes():
    lib = load_assets("basic")
    return {split: [dialogue_scene(0, split, i, lib) for i in range(60)] for split in ("train", "test")}


def test_hand_built_scene_gives_the_questions_its_truth_answers():
    scene = {"layout": "objects", "objects": [{"family": "shape", "kind": "star", "colour": "red", "instance": 0.5}],
             "count": 1, "size": "small", "position": "left", "relation": None, "background": "grass"}
    vqa = {q.category: q for q in questions(scene, 7, "vqav2", seed=0)}
    assert set(vqa) == {"colour", "count", "size", "position", "background"}
    assert vqa["colour"].question == "What colour is the star?" and len(vqa["colour"].answers) == ANNOTATORS
    assert vqa_accuracy("red", vqa["colour"].answers) >= 60  # most annotators agree with the truth
    assert Counter(vqa_normalize(a) for a in vqa["count"].answers).most_common(1)[0][0] == "1"
    assert vqa_accuracy("grass", vqa["background"].answers) >= 60
    mme = questions(scene, 7, "mme", seed=0)
    assert [(q.category, q.answers[0]) for q in mme] == [(c, t) for c in ("existence", "position", "color")
                                                         for t in ("yes", "no")]  # one star: no count question
    assert all(q.question.endswith(MME_SUFFIX) and q.group == "image 7" for q in mme)
    assert mme[0].question == "Is there a star in this image?" + MME_SUFFIX
    assert mme[2].question == "Is the star on the left of the image?" + MME_SUFFIX
    assert mme[4].question == "Is the star red?" + MME_SUFFIX and mme[5].question != mme[4].question
    three = dict(scene, count=3, size=None, position=None, objects=scene["objects"] * 3)
    counted = [q for q in questions(three, 8, "mme", seed=0) if q.category == "count"]
    assert [(q.question, q.answers[0]) for q in counted] == [
        ("Are there three stars in this image?" + MME_SUFFIX, "yes"), ("Are there two stars in this image?" + MME_SUFFIX, "no")]


def test_relation_scene_gives_compositional_questions():
    scene = {"layout": "relation", "relation": "left of", "count": 2, "size": None, "position": None,
             "background": "dark",
             "objects": [{"family": "shape", "kind": "ring", "colour": "blue", "instance": 0.1},
                         {"family": "digit", "kind": "seven", "colour": "blue", "instance": 3}]}
    gqa = {(q.category, q.question): q.answers[0] for q in questions(scene, 0, "gqa", seed=0)}
    assert gqa[("relation", "What is to the left of the handwritten seven?")] == "ring"
    assert gqa[("verify", "Is the ring to the left of the handwritten seven?")] == "yes"
    assert gqa[("verify", "Is the ring to the right of the handwritten seven?")] == "no"
    assert gqa[("compare", "Are the ring and the handwritten seven the same colour?")] == "yes"
    assert gqa[("attribute", "What colour is the object to the left of the handwritten seven?")] == "blue"
    (choice,) = questions(scene, 0, "mmbench", seed=0)
    assert choice.options[("ABCD".index(choice.answers[0]))] == "to the left of" and len(set(choice.options)) == 4
    assert questions(scene, 0, "vqav2", seed=0) == [] and questions(scene, 0, "mme", seed=0) == []


def test_pope_negatives_are_absent_and_each_setting_is_balanced(scenes):
    popular = ("circle", "square", "star")
    for index, scene in enumerate(scenes["test"]):
        asked = questions(scene, index, "pope", seed=0, popular=popular)
        present = {name(obj) for obj in scene["objects"]}
        for q in asked:
            asked_about = q.question.removeprefix("Is there a ").removesuffix(" in the image?")
            assert (asked_about in present) == (q.answers == ("yes",)), q
        for setting, answers in Counter((q.category, q.answers[0]) for q in asked).items():
            assert answers == 1
        popular_no = [q for q in asked if q.category == "popular" and q.answers == ("no",)]
        assert popular_no and popular_no[0].question == f"Is there a {[p for p in popular if p not in present][0]} in the image?"


def test_every_benchmark_is_deterministic_and_asks_something(scenes):
    counts = Counter()
    for index, scene in enumerate(scenes["test"]):
        for benchmark in BENCHMARKS[:-1]:
            first = questions(scene, index, benchmark, seed=0, popular=("circle",))
            assert first == questions(scene, index, benchmark, seed=0, popular=("circle",))
            counts[benchmark] += len(first)
    assert all(counts[b] >= 20 for b in BENCHMARKS[:-1]), counts
    with pytest.raises(ValueError, match="unknown benchmark"):
        questions(scenes["test"][0], 0, "nope", seed=0)


def test_test_scenes_are_held_out_instances_apart_from_the_training_scenes(scenes):
    def key(scene):
        return repr(scene)

    assert not {key(s) for s in scenes["train"]} & {key(s) for s in scenes["test"]}
    lib = load_assets("basic")
    digits_held_out = set(int(i) for label in range(10) for i in lib.digit_indices(label, True))
    test_digits = [obj["instance"] for s in scenes["test"] for obj in s["objects"] if obj["family"] == "digit"]
    assert test_digits and all(i in digits_held_out for i in test_digits)


def test_blind_questions_ask_what_the_pages_state():
    asked = blind_questions(0)
    assert len(asked) == 5 + 9 and all(q.image is None and len(q.options) == 4 for q in asked)
    hexagon = next(q for q in asked if q.question == "Which shape has six sides?")
    assert hexagon.options["ABCD".index(hexagon.answers[0])] == "hexagon"
    after_six = next(q for q in asked if q.question == "Which number comes right after six?")
    assert after_six.options["ABCD".index(after_six.answers[0])] == "seven" and "six" not in after_six.options


def test_instruction_conversations_answer_with_the_truth_in_llava_form(scenes):
    records = instruction_data(scenes["train"], seed=0)
    assert len(records) == len(scenes["train"])
    for record in records:
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and turns
        assert turns[0]["value"].startswith("<image>\n") and not any("<image>" in t["value"] for t in turns[1:])
        prompts = [t["value"].removeprefix("<image>\n") for t in turns[::2]]
        assert len(prompts) == len(set(prompts))  # no question twice
    star = {"layout": "objects", "objects": [{"family": "shape", "kind": "star", "colour": "red", "instance": 0.5}],
            "count": 1, "size": "small", "position": "left", "relation": None, "background": "grass"}
    record = instruction_data([star], seed=0)[0]
    answers = dict(zip((t["value"].removeprefix("<image>\n") for t in record["conversations"][::2]),
                       (t["value"] for t in record["conversations"][1::2])))
    assert answers["What colour is the star?\n" + SHORT_ANSWER] == "red"  # the truth, not an annotator's slip
    assert answers["Where is the star?\n" + SHORT_ANSWER] == "left"
    assert answers["Is the star red?" + MME_SUFFIX] == "yes"
    choice = next(p for p in answers if p.startswith("Which object is shown?"))
    assert choice.endswith(OPTION_LETTER) and f"{answers[choice]}. star" in choice


def test_popular_names_count_scenes_not_objects():
    rings = {"objects": [{"family": "shape", "kind": "ring", "colour": "red"}] * 3}  # one scene, three rings
    star = {"objects": [{"family": "shape", "kind": "star", "colour": "red"}]}
    assert popular_names([rings, star, star]) == ("star", "ring")  # counting objects would put ring first
