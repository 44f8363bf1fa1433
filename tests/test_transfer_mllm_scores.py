"""The multimodal-benchmark scorers against hand-computed cases, each worked out from the lmms-eval code its
docstring names (lcl_core/transfer/mllm_scores.py)."""

from __future__ import annotations

import pytest

from lcl_core.transfer.mllm_scores import (MMBenchAnswer, MMEAnswer, exact_match, mme_label, mme_scores,
                                           mmbench_choice, mmbench_circular, option_letter_match, pope_scores,
                                           rotations, vqa_accuracy, vqa_normalize)


@pytest.mark.parametrize("raw, normalised", [
    ("Two", "2"),                        # number words become digits, lower case
    ("the red  cube.", "red cube"),      # articles dropped, the final period and double space gone
    ("yes!", "yes "[:-1]),               # "!" not touching a space becomes a space, which split() drops
    ("black-and-white", "black and white"),
    ("1,000", "1000"),                   # a digit-comma-digit anywhere: every mark is deleted, not spaced
    ("3.5", "3.5"),                      # a period before a digit stays
    ("dont", "don't"), ("isnt", "isn't"),
    ("Im", "im"),                        # EvalAI's own table keys "Im" in capitals, after lower-casing: no match
    ("a\tcat\n", "cat"),
])
def test_vqa_normalize_hand_cases(raw, normalised):
    assert vqa_normalize(raw) == normalised


def test_vqa_accuracy_leaves_one_annotator_out():
    # 3 of 10 say red. Held out a "red": 2 reds remain -> 2/3; held out one of the 7 others: 3 reds -> 1.
    references = ["red"] * 3 + ["blue"] * 7
    assert vqa_accuracy("Red.", references) == pytest.approx(100 * (3 * 2 / 3 + 7 * 1) / 10)  # 90.0
    assert vqa_accuracy("blue", references) == 100.0  # 6 or 7 others agree: min(1, ·) caps at 1
    assert vqa_accuracy("two", ["2"] * 2 + ["3"] * 8) == pytest.approx(100 * (2 * 1 / 3 + 8 * 2 / 3) / 10)  # 60.0
    assert vqa_accuracy("green", references) == 0.0
    with pytest.raises(ValueError):
        vqa_accuracy("red", [])


def test_exact_match_and_option_letter():
    assert exact_match("Left.", "left") == 100.0 and exact_match("the left", "left") == 0.0
    assert exact_match(" Yes ", "yes") == 100.0
    assert option_letter_match("B", "B") == 100.0 and option_letter_match("b", "B") == 100.0
    assert option_letter_match("B. a cat", "B") == 100.0 and option_letter_match("C. a cat", "B") == 0.0
    assert option_letter_match("The answer is B", "B") == 0.0  # ScienceQA's scorer reads no further


def test_pope_counts_only_exact_yes_and_no():
    predictions = ["yes", "Yes ", "no", "no", "yes", "maybe", "no", "yes."]
    truths = ["yes", "yes", "yes", "no", "no", "yes", "no", "no"]
    # tp = 2 (0, 1); fp = 1 (4); fn = 1 (2); "maybe" and "yes." are wrong and neither positive nor negative
    scores = pope_scores(predictions, truths)
    assert scores["accuracy"] == pytest.approx(100 * 4 / 8)  # 0, 1, 3, 6
    assert scores["precision"] == pytest.approx(100 * 2 / 3)
    assert scores["recall"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * 2 / 3)
    assert scores["yes_ratio"] == pytest.approx(100 * 3 / 8)  # answers that are "yes"
    assert scores["truth_yes_ratio"] == pytest.approx(100 * 4 / 8)  # what lmms-eval's pope_yes_ratio returns
    with pytest.raises(ValueError, match="one answer per question"):
        pope_scores(["yes"], ["yes", "no"])
    with pytest.raises(ValueError, match="yes or no"):
        pope_scores(["yes"], ["maybe"])


@pytest.mark.parametrize("answer, label", [("Yes.", "yes"), ("n", "no"), ("Yes, there is one.", "yes"),
                                           ("No, it is red.", "no"), ("nope", "no"), ("There is", "other"),
                                           ("x", "other"), ("not sure", "no")])
def test_mme_label_hand_cases(answer, label):
    assert mme_label(answer) == label


def test_mme_scores_accuracy_plus_over_images():
    answers = [  # existence: image a both right, b one right; count: c both wrong
        MMEAnswer("existence", "a", "Yes", "Yes"), MMEAnswer("existence", "a", "no", "No"),
        MMEAnswer("existence", "b", "yes", "yes"), MMEAnswer("existence", "b", "yes", "no"),
        MMEAnswer("count", "c", "no", "yes"), MMEAnswer("count", "c", "banana", "no"),
        MMEAnswer("commonsense_reasoning", "d", "yes", "yes"), MMEAnswer("commonsense_reasoning", "d", "no", "no"),
    ]
    scores = mme_scores(answers)
    existence = scores["categories"]["existence"]
    assert existence["accuracy"] == 75.0 and existence["accuracy_plus"] == 50.0 and existence["score"] == 125.0
    assert scores["categories"]["count"]["score"] == 0.0
    assert scores["perception"] == 125.0 and scores["cognition"] == 200.0 and scores["total"] == 325.0
    with pytest.raises(ValueError, match="two questions per image"):
        mme_scores(answers[:3])


@pytest.mark.parametrize("answer, choice", [
    ("B", "B"), ("The answer is B.", "B"), ("(C) red", "C"), ("A cat", "A"),
    ("A fish sits here", None),  # a lone "A" in a longer answer may be the article: no letter form, no option text
    ("A cat sits here", "A"),    # ... and here "cat", option A's text, decides
    ("A dog sits here", "B"),    # ... then the one option whose text occurs
    ("B or C", None),            # two letters: no rule decides
    ("it is a bird", "D"),
    ("a red cat", None),         # "cat" and "red cat" both occur
])
def test_mmbench_choice_hand_cases(answer, choice):
    assert mmbench_choice(answer, {"A": "cat", "B": "dog", "C": "red cat", "D": "bird"}) == choice


def test_rotations_move_the_right_letter_with_its_option():
    assert rotations(["cat", "dog", "bird"], 1) == [(["cat", "dog", "bird"], "B"), (["dog", "bird", "cat"], "A"),
                                                    (["bird", "cat", "dog"], "C")]
    with pytest.raises(ValueError):
        rotations(["cat"], 0)


def test_mmbench_circular_needs_every_rotation_right():
    def asked(question, answer, predictions):
        return [MMBenchAnswer(question, dict(zip("ABCD", options)), truth, prediction)
                for (options, truth), prediction in zip(rotations(["cat", "dog", "bird"], answer), predictions)]

    answers = (asked("q1", 1, ["B", "A", "C"])           # always the dog: right
               + asked("q2", 1, ["B", "B", "C"])         # second rotation answers "bird": wrong
               + asked("q3", 0, ["A", "no idea", "B"]))  # one answer no rule reads: wrong
    scores = mmbench_circular(answers)
    assert scores["accuracy"] == pytest.approx(100 / 3)
    assert scores["unparseable"] == pytest.approx(100 / 9) and scores["questions"] == 3 and scores["answers"] == 9
