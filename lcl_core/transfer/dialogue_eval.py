"""From benchmark questions to the prompts a multimodal model is asked, and from its answers to the numbers of
the paper's Table 4, each as lmms-eval reports it (the scorers are :mod:`.mllm_scores`).

:func:`asks` lists the prompts: one per question (:func:`lcl_core.data.dialogue.prompt`), except MMBench's,
which are asked once per rotation of their options, because circular evaluation needs every rotation.
:func:`score` takes the answers to those prompts, in the same order, and returns per benchmark, in percent:

* ``vqav2`` — the mean VQA accuracy over questions: an answer earns partial credit when few of the ten
  annotators gave it, as VQAv2 rewards agreement with people, not with one truth;
* ``gqa`` — exact match with the one-word answer, as GQA's answers are a closed vocabulary;
* ``pope`` — accuracy, precision, recall, F1 and yes-ratio per setting (random, popular, adversarial), and
  accuracy, F1 and yes-ratio as the mean over the settings: LLaVA-1.5 reports POPE's F1 averaged over the
  three, and the yes-ratio says whether a model simply agrees;
* ``mme`` — MME's own scale, not percent: per category accuracy plus accuracy+ (both questions of an image
  right), at most 200, summed into perception, cognition and total, as MME's leaderboard adds them;
* ``mmbench`` — circular accuracy (a question is right only when every rotation is), which removes the gain
  of always naming one letter, and the share of answers no rule could read;
* ``blind`` — ScienceQA's option-letter accuracy on questions asked without an image: the score a model gets
  from its language alone, measured rather than assumed to be chance.

``average`` is the kit's own summary — the paper reports no average: the mean over the image benchmarks of
one number each (VQAv2 and GQA accuracy, POPE's mean F1, MME's total as a percentage of its maximum, MMBench's
circular accuracy), so that one number follows a run.

A tokenizer that lower-cases everything it reads (the world's BPE, like CLIP's) leaves its model no way to write
"B": :func:`evaluate_dialogue` then reads an answer that is one option letter alone, to a multiple-choice
question, as that letter upper-cased (:func:`as_letter`) — the same rule for every row — and leaves every other
answer as written, so that the benchmarks' own rules read it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Callable, Sequence

import torch
from PIL import Image

from ..data.dialogue import BENCHMARKS, Question, prompt
from ..data.dialogue_world import read_questions
from ..images import image_transform
from ..sequences import IMAGE_MARK, dialogue_row
from .mllm_scores import (LETTERS, MMBenchAnswer, MMEAnswer, exact_match, mmbench_circular, mme_scores,
                          option_letter_match, pope_scores, rotations, vqa_accuracy)

MME_CATEGORY_MAX = 200.0  # accuracy (≤ 100) plus accuracy+ (≤ 100)
# How answers are read. Cached evaluations carry it, so a change here rescores them. 2: option letters of a
# case-folding tokenizer read upper-cased (as_letter).
READING = 2
LETTER_BENCHMARKS = ("mmbench", "blind")  # answered with an option letter
_LONE_LETTER = re.compile(r"([(:]?)([a-e])([.,:)]*)")  # MMBench's letter forms: "b", "b.", "(b)", ":b", ...


@dataclass(frozen=True)
class Ask:
    """One prompt to put to the model: question ``index`` of the list given, about held-out image ``image``
    (None: asked blind), its options shifted by ``rotation`` places (MMBench; 0 elsewhere)."""

    index: int
    image: int | None
    text: str
    rotation: int = 0


def _rotated(question: Question) -> list[Question]:
    """An MMBench question once per rotation of its options, each with the right letter of that rotation."""
    shifts = rotations(question.options, LETTERS.index(question.truth))
    return [replace(question, options=tuple(options), truth=letter, answers=(letter,)) for options, letter in shifts]


def asks(questions: Sequence[Question]) -> list[Ask]:
    """The prompts for ``questions``, in their order: one per question, one per rotation for MMBench's."""
    asked = []
    for index, question in enumerate(questions):
        shown = _rotated(question) if question.benchmark == "mmbench" else [question]
        asked += [Ask(index, question.image, prompt(q), rotation) for rotation, q in enumerate(shown)]
    return asked


def _check(questions: Sequence[Question], asked: Sequence[Ask], answers: Sequence[str]) -> None:
    """Every answer must belong to an ask and the asks must be exactly :func:`asks`' — a missing MMBench
    rotation would make circular accuracy score a question on fewer rotations than it was asked."""
    if len(answers) != len(asked):
        raise ValueError(f"one answer per ask: {len(answers)} answers to {len(asked)} asks")
    unknown = sorted({q.benchmark for q in questions} - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}")
    expected = Counter((i, r) for i, q in enumerate(questions)
                       for r in range(len(q.options) if q.benchmark == "mmbench" else 1))
    given = Counter((a.index, a.rotation) for a in asked)
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise ValueError(f"the asks are not those of these {len(questions)} questions: (index, rotation) "
                         f"missing {missing[:5]}, unexpected or repeated {extra[:5]}")


def _pope(answered: list[tuple[Question, Ask, str]]) -> dict:
    by_setting: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for question, _, answer in answered:
        by_setting[question.category].append((answer, question.truth))
    settings = {setting: pope_scores(*zip(*pairs)) for setting, pairs in sorted(by_setting.items())}
    return {key: fmean(s[key] for s in settings.values()) for key in ("accuracy", "f1", "yes_ratio")} | {
        "settings": settings, "n": len(answered)}


def _mme(answered: list[tuple[Question, Ask, str]]) -> dict:
    scores = mme_scores(MMEAnswer(q.category, q.group, answer, q.truth) for q, _, answer in answered)
    return scores | {"n": len(answered)}


def _mmbench(answered: list[tuple[Question, Ask, str]]) -> dict:
    graded = []
    for question, ask, answer in answered:
        shown = _rotated(question)[ask.rotation]
        # keyed by the question's index: a hand-built list may leave ``group`` empty on several questions
        graded.append(MMBenchAnswer(str(ask.index), dict(zip(LETTERS, shown.options)), shown.truth, answer))
    scores = mmbench_circular(graded)
    return scores | {"n": scores["questions"]}


def _mean(answered: list[tuple[Question, Ask, str]], scorer: Callable[[str, Question], float]) -> dict:
    return {"accuracy": fmean(scorer(answer, q) for q, _, answer in answered), "n": len(answered)}


SCORERS = {
    "vqav2": lambda answered: _mean(answered, lambda answer, q: vqa_accuracy(answer, q.answers)),
    "gqa": lambda answered: _mean(answered, lambda answer, q: exact_match(answer, q.truth)),
    "pope": _pope,
    "mme": _mme,
    "mmbench": _mmbench,
    "blind": lambda answered: _mean(answered, lambda answer, q: option_letter_match(answer, q.truth)),
}


def headline(benchmark: str, scores: dict) -> float:
    """One number in percent per image benchmark: POPE's F1, MME's total over its maximum (200 per category
    asked), the accuracy elsewhere."""
    if benchmark == "pope":
        return scores["f1"]
    if benchmark == "mme":
        return 100.0 * scores["total"] / (MME_CATEGORY_MAX * len(scores["categories"]))
    return scores["accuracy"]


def score(questions: Sequence[Question], asked: Sequence[Ask], answers: Sequence[str]) -> dict[str, dict]:
    """The scores of every benchmark among ``questions``, from ``answers[i]``, the model's answer to
    ``asked[i]`` (the list :func:`asks` made for these questions, in any order).

    ``"average"``, present when an image benchmark was asked, is the kit's own summary — the paper reports no
    average: ``score``, the mean over the image benchmarks asked of :func:`headline` (VQAv2 and GQA accuracy,
    POPE F1, MME total as a percentage of its maximum, MMBench circular accuracy), and ``benchmarks``, those
    headline numbers. ``blind`` stays out of it: it measures the language model without the image, not the
    multimodal model.
    """
    _check(questions, asked, answers)
    by_benchmark: dict[str, list[tuple[Question, Ask, str]]] = defaultdict(list)
    for ask, answer in zip(asked, answers):
        by_benchmark[questions[ask.index].benchmark].append((questions[ask.index], ask, answer))
    scores = {b: SCORERS[b](by_benchmark[b]) for b in BENCHMARKS if b in by_benchmark}
    image = {b: headline(b, s) for b, s in scores.items() if b != "blind"}
    if image:
        scores["average"] = {"score": fmean(image.values()), "benchmarks": image}
    return scores


def folds_case(tokenizer) -> bool:
    """Whether ``tokenizer`` lower-cases what it reads, so that a model using it can never write "B"."""
    return tokenizer.decode(tokenizer.encode("B")).strip() == "b"


def as_letter(answer: str) -> str:
    """``answer`` with its letter upper-cased when it is one option letter (a–e) alone, in one of MMBench's forms
    ("b", "b.", "(b)"); any other answer as written, "a cat" included, where "a" is an article."""
    lone = _LONE_LETTER.fullmatch(answer.strip())
    return lone[1] + lone[2].upper() + lone[3] if lone else answer


# ---- asking a model ---------------------------------------------------------------------------------------
def prompt_row(tokenizer, text: str, *, image_tokens: int, max_tokens: int) -> list[int]:
    """The ids of one question put to a tiny LLaVA-1.5, ending at ``ASSISTANT:`` (``image_tokens`` 0: no image),
    in the layout its conversations were trained in (:func:`lcl_core.sequences.dialogue_row`)."""
    value = f"{IMAGE_MARK}\n{text}" if image_tokens else text
    return dialogue_row(tokenizer, [{"from": "human", "value": value}], image_tokens=image_tokens,
                        max_tokens=max_tokens).ids


def answer_all(model, tokenizer, folder: str | Path, asked: Sequence[Ask], *, batch_size: int = 64,
               max_new_tokens: int = 8) -> list[str]:
    """Greedy answers of ``model`` (:class:`lcl_core.llava.DialogueModel`) to every ask, its held-out image read
    from ``folder/images/test`` when the ask has one and the model has eyes (the blind control gets the words
    alone), decoded and stripped."""
    transform = image_transform(model.config.image_size)
    sees = model.vision is not None
    image_tokens = model.config.stream_sizes()["num_image_tokens"]
    answers: list[str] = []
    model.eval()
    for start in range(0, len(asked), batch_size):
        batch = asked[start: start + batch_size]
        shown = [a for a in batch if a.image is not None and sees]
        images = (torch.stack([transform(Image.open(Path(folder) / "images" / "test" / f"{a.image:05d}.png"))
                               for a in shown]) if shown else None)
        prompts = [prompt_row(tokenizer, a.text, image_tokens=image_tokens if a.image is not None and sees else 0,
                              max_tokens=model.config.context_length - max_new_tokens) for a in batch]
        answers += [tokenizer.decode(ids).strip() for ids in model.answer(prompts, images,
                                                                          max_new_tokens=max_new_tokens)]
    return answers


def evaluate_dialogue(model, tokenizer, folder: str | Path, *, batch_size: int = 64, max_new_tokens: int = 8,
                      examples: int = 0) -> dict:
    """Every held-out question of a dialogue folder put to ``model`` and scored (:func:`score`), a lone option
    letter read upper-cased when ``tokenizer`` folds case (:func:`as_letter`); ``examples``: that many (question, answer) pairs per benchmark kept under ``"examples"``, for reading."""
    questions = read_questions(folder)
    asked = asks(questions)
    answers = answer_all(model, tokenizer, folder, asked, batch_size=batch_size, max_new_tokens=max_new_tokens)
    if folds_case(tokenizer):
        answers = [as_letter(answer) if questions[a.index].benchmark in LETTER_BENCHMARKS else answer
                   for a, answer in zip(asked, answers)]
    scores = score(questions, asked, answers)
    if examples:
        kept: dict[str, list] = defaultdict(list)
        for ask, answer in zip(asked, answers):
            question = questions[ask.index]
            if len(kept[question.benchmark]) < examples and ask.rotation == 0:
                kept[question.benchmark].append({"image": ask.image, "prompt": ask.text, "answer": answer,
                                                 "truth": question.truth})
        scores["examples"] = dict(kept)
    return scores


def ask(model, tokenizer, question: str, image: Image.Image | None = None, *, max_new_tokens: int = 16) -> str:
    """One question, with or without an image, put to a tiny LLaVA-1.5 as the benchmarks are (the notebook's
    widget and ``lcl chat``); a model without eyes (the blind control) is asked the words alone."""
    if not question.strip():
        raise ValueError("the question is empty")
    sees = image is not None and model.vision is not None
    images = image_transform(model.config.image_size)(image).unsqueeze(0) if sees else None
    ids = prompt_row(tokenizer, question.strip(), image_tokens=model.config.stream_sizes()["num_image_tokens"]
                     if sees else 0, max_tokens=model.config.context_length - max_new_tokens)
    return tokenizer.decode(model.eval().answer([ids], images, max_new_tokens=max_new_tokens)[0]).strip()
