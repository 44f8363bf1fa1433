"""From benchmark questions to prompts and from answers to Table 4's numbers (lcl_core/transfer/dialogue_eval.py),
against scores worked out by hand from each benchmark's rule."""

from __future__ import annotations

import pytest

from lcl_core.data.dialogue import MME_SUFFIX, Question, prompt, questions
from lcl_core.transfer.dialogue_eval import Ask, as_letter, asks, folds_case, score

SHAPES = ("circle", "square", "star", "ring")


def choice(question: str = "Which object is shown?", truth: str = "C", benchmark: str = "mmbench") -> Question:
    """Four options, "star" the right one (letter C as first shown)."""
    return Question(benchmark, None if benchmark == "blind" else 4, question, truth, (truth,), "object recognition",
                    options=SHAPES)


def yes_no(benchmark: str, truth: str, category: str, group: str = "") -> Question:
    return Question(benchmark, 1, "Is there a star in the image?", truth, (truth,), category, group)


def test_one_ask_per_question_and_one_per_rotation_for_mmbench():
    vqa = Question("vqav2", 0, "What colour is the star?", "red", ("red",) * 10, "colour")
    blind = choice("Which shape has five points?", benchmark="blind")
    asked = asks([vqa, choice(), blind])
    assert [(a.index, a.image, a.rotation) for a in asked] == [(0, 0, 0), (1, 4, 0), (1, 4, 1), (1, 4, 2), (1, 4, 3),
                                                               (2, None, 0)]
    assert asked[0].text == "What colour is the star?\nAnswer the question using a single word or phrase."
    assert asked[1].text == prompt(choice()) and asked[-1].text == prompt(blind)  # blind options are not rotated


def test_rotated_prompt_shows_the_options_shifted():
    # shift 1 of (circle, square, star, ring): the star moves from C to B
    assert asks([choice()])[1].text == ("Which object is shown?\nA. square\nB. star\nC. ring\nD. circle\n"
                                        "Answer with the option's letter from the given choices directly.")
    assert asks([choice()])[3].text.split("\n")[1:5] == ["A. ring", "B. circle", "C. square", "D. star"]


def test_vqa_accuracy_is_the_mean_of_hand_computed_question_scores():
    # "red" given by 2 of 10: held out a "red", 1 other agrees -> 1/3; held out a "blue", 2 agree -> 2/3 => 60
    # "two" reads as "2", given by 3 of 10: held out a "2" -> 2/3; held out a "3" -> 3/3 => (3*2/3 + 7)/10 = 90
    colour = Question("vqav2", 0, "What colour is the star?", "red", ("red",) * 2 + ("blue",) * 8, "colour")
    count = Question("vqav2", 1, "How many stars are there?", "2", ("2",) * 3 + ("3",) * 7, "count")
    result = score([colour, count], asks([colour, count]), ["Red", "two"])
    assert result["vqav2"] == {"accuracy": pytest.approx(75.0), "n": 2}


def test_gqa_exact_match_and_blind_option_letters():
    gqa = [Question("gqa", 0, "What is to the left of the seven?", "ring", ("ring",), "relation"),
           Question("gqa", 0, "What colour is the ring?", "blue", ("blue",), "attribute")]
    blind = [choice(f"Blind question {i}?", truth="B", benchmark="blind") for i in range(4)]
    both = gqa + blind
    # "Ring." matches once lower-cased without punctuation; "a ring" keeps its article: 1 of 2
    # "B", "b", "B. square" name B; "C" does not: 3 of 4
    result = score(both, asks(both), ["Ring.", "a ring", "B", "b", "B. square", "C"])
    assert result["gqa"] == {"accuracy": 50.0, "n": 2}
    assert result["blind"] == {"accuracy": 75.0, "n": 4}
    assert "average" in result and set(result["average"]["benchmarks"]) == {"gqa"}  # blind stays out


def test_mmbench_circular_accuracy_needs_every_rotation_right():
    first, second = choice(), choice("Which object is it?")
    both = [first, second]
    asked = asks(both)
    # the right letters by rotation are C, B, A, D; "the star" is read by the option text
    result = score(both, asked, ["C", "B", "A", "D"] + ["the star", "B", "A", "A"])
    assert result["mmbench"]["accuracy"] == 50.0 and result["mmbench"]["n"] == 2
    assert result["mmbench"]["unparseable"] == 0.0
    right = score([first], asks([first]), ["C", "B", "A", "D"])["mmbench"]
    one_wrong = score([first], asks([first]), ["C", "B", "I do not know", "D"])["mmbench"]
    assert right["accuracy"] == 100.0 and one_wrong["accuracy"] == 0.0
    assert one_wrong["unparseable"] == 25.0 and one_wrong["answers"] == 4


def test_mme_category_score_is_accuracy_plus_accuracy_plus():
    existence = [Question("mme", 3, "Is there a star in this image?" + MME_SUFFIX, "yes", ("yes",), "existence",
                          "image 3"),
                 Question("mme", 3, "Is there a ring in this image?" + MME_SUFFIX, "no", ("no",), "existence",
                          "image 3")]
    colour = [Question("mme", 3, "Is the star red?" + MME_SUFFIX, "yes", ("yes",), "color", "image 3"),
              Question("mme", 3, "Is the star blue?" + MME_SUFFIX, "no", ("no",), "color", "image 3")]
    asked = existence + colour
    # existence: one of two right -> accuracy 50, accuracy+ 0 -> 50; color: both right -> 100 + 100 = 200
    result = score(asked, asks(asked), ["Yes", "yes", "Yes.", "No"])["mme"]
    assert result["categories"]["existence"]["score"] == 50.0
    assert result["categories"]["existence"]["accuracy_plus"] == 0.0
    assert result["categories"]["color"]["score"] == 200.0
    assert result["total"] == 250.0 and result["perception"] == 250.0 and result["n"] == 4


def test_mme_questions_of_a_real_scene_all_answered_right_score_the_maximum():
    star = {"layout": "objects", "objects": [{"family": "shape", "kind": "star", "colour": "red", "instance": 0.5}],
            "count": 1, "size": "small", "position": "left", "relation": None, "background": "grass"}
    asked_questions = questions(star, 7, "mme", seed=0)
    result = score(asked_questions, asks(asked_questions), [q.truth.capitalize() for q in asked_questions])
    assert result["mme"]["total"] == 600.0  # three categories (existence, position, color), 200 each
    assert result["average"]["score"] == 100.0


def test_pope_averages_f1_over_the_settings():
    truths = ("yes", "yes", "no", "no")
    answers = {"random": ("yes", "no", "yes", "no"),        # TP 1, FP 1, FN 1: P = R = 1/2 -> F1 50, accuracy 50
               "popular": ("yes", "yes", "yes", "no"),      # TP 2, FP 1, FN 0: P 2/3, R 1 -> F1 80, accuracy 75
               "adversarial": ("yes", "Yes.", "no", "no")}  # "Yes." is no answer: TP 1, FN 0 -> F1 100, acc. 75
    asked = [yes_no("pope", t, setting) for setting in answers for t in truths]
    result = score(asked, asks(asked), [a for setting in answers for a in answers[setting]])["pope"]
    assert result["settings"]["popular"]["f1"] == pytest.approx(80.0)
    assert result["settings"]["adversarial"]["recall"] == 100.0 and result["settings"]["adversarial"]["f1"] == 100.0
    assert result["f1"] == pytest.approx((50 + 80 + 100) / 3)
    assert result["accuracy"] == pytest.approx((50 + 75 + 75) / 3)
    assert result["yes_ratio"] == pytest.approx((50 + 75 + 25) / 3) and result["n"] == 12


def test_average_is_the_mean_of_one_number_per_image_benchmark():
    vqa = Question("vqav2", 0, "What colour is the star?", "red", ("red",) * 2 + ("blue",) * 8, "colour")  # 60
    gqa = Question("gqa", 0, "What is to the left of the seven?", "ring", ("ring",), "relation")  # 100
    pope = [yes_no("pope", "yes", "random"), yes_no("pope", "no", "random")]  # yes, yes: P 1/2, R 1 -> F1 200/3
    mme = [yes_no("mme", "yes", "existence", "image 1"), yes_no("mme", "no", "existence", "image 1")]  # 50 of 200
    blind = choice("Which shape has five points?", benchmark="blind")  # 0, and not in the average
    asked = [vqa, gqa, *pope, *mme, choice(), blind]
    answers = ["red", "ring", "yes", "yes", "yes", "yes", "C", "B", "A", "D", "A"]  # mmbench: 100
    average = score(asked, asks(asked), answers)["average"]
    assert average["benchmarks"] == pytest.approx({"vqav2": 60.0, "gqa": 100.0, "pope": 200 / 3, "mme": 25.0,
                                                   "mmbench": 100.0})
    assert average["score"] == pytest.approx((60 + 100 + 200 / 3 + 25 + 100) / 5)


def test_answers_must_match_the_asks():
    asked_questions = [choice(), yes_no("pope", "yes", "random")]
    asked = asks(asked_questions)
    with pytest.raises(ValueError, match="one answer per ask: 4 answers to 5 asks"):
        score(asked_questions, asked, ["C", "B", "A", "D"])
    with pytest.raises(ValueError, match=r"missing \[\(0, 3\)\]"):  # a dropped rotation would flatter MMBench
        score(asked_questions, asked[:3] + asked[4:], ["C", "B", "A", "yes"])
    with pytest.raises(ValueError, match=r"missing \[\], unexpected or repeated \[\(1, 0\)\]"):
        score(asked_questions, asked + [Ask(1, 1, asked[-1].text)], ["C", "B", "A", "D", "yes", "yes"])
    with pytest.raises(ValueError, match="unknown benchmarks"):
        score([yes_no("seed", "yes", "random")], [Ask(0, 1, "?")], ["yes"])


def test_a_lone_letter_reads_upper_cased_and_nothing_else_changes():
    for written, read in {"b": "B", " b. ": "B.", "(c)": "(C)", ":d": ":D", "e": "E", "B": "B"}.items():
        assert as_letter(written) == read, written
    for kept in ("a cat", "b above", "f", "bb", "yes", "", "2"):
        assert as_letter(kept) == kept


def test_only_a_case_folding_tokenizer_has_its_letters_read_upper_cased():
    from lcl_core.tokenizer import ClipTokenizer, TrainedTokenizer

    bpe = TrainedTokenizer.train(["A b c D star circle"] * 4, vocab_size=300)

    class Cased:  # stands in for a tokenizer that keeps case
        encode = staticmethod(lambda text: list(text.encode()))
        decode = staticmethod(lambda ids: bytes(ids).decode())

    assert folds_case(bpe) and folds_case(ClipTokenizer()) and not folds_case(Cased())
    # the lower-cased "b" then earns MMBench's rotation and ScienceQA's letter as "B" does
    mmbench = choice(truth="C")
    assert score([mmbench], asks([mmbench]), [as_letter(x) for x in "cbad"])["mmbench"]["accuracy"] == 100.0
    assert score([mmbench], asks([mmbench]), list("cbad"))["mmbench"]["unparseable"] == 100.0
