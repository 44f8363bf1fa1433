"""Scorers of the multimodal-LLM benchmarks (the paper's Table 4), computed as lmms-eval computes them.

lmms-eval is the harness LLaVA-style results are reported with; it is not a dependency (its scorers import
its whole task API, and its install pulls wandb, yt-dlp, openai, av). Each function below states the
lmms-eval code it follows (read at commit 75571cf of EvolvingLMMs-Lab/lmms-eval) and where it departs;
``tests/test_transfer_mllm_scores.py`` holds each to hand cases. Every score is in percent, except MME's,
which is on MME's own scale (≤ 200 per category).

* **VQAv2** (``tasks/vqav2/utils.py``, ``tasks/_task_utils/vqa_eval_metric.py``): the prediction and each
  reference answer go through EvalAI's normalisation (punctuation, then number words to digits, articles
  dropped, contractions restored); the accuracy is the mean over the references of
  ``min(1, matches among the *other* references / 3)`` — VQA's leave-one-annotator-out average.
* **GQA** (``tasks/gqa/gqa.yaml``): exact match after lower-casing and deleting ASCII punctuation.
* **POPE** (``tasks/pope/utils.py``): an answer counts as "yes" or "no" only when it *is* that word after
  lower-casing and stripping; accuracy, precision, recall and F1 of "yes". lmms-eval's ``pope_yes_ratio``
  aggregates the share of "yes" in the *ground truth* (0.5 by POPE's construction); POPE's own evaluation and
  the LLaVA papers report the share of "yes" *answers*, which says whether a model simply agrees. Both are
  returned: ``yes_ratio`` (answers) and ``truth_yes_ratio``.
* **MME** (``tasks/mme/utils.py``): an answer (periods removed, lower-cased) reads as "yes" or "no" when it is
  that word or its first letter alone; else as "yes" when its first four characters contain "yes", as "no"
  when they contain "no", else as neither. Per category: the accuracy over questions ×100 plus the accuracy+
  over images (both of an image's two questions right) ×100, so at most 200; summed over the categories of
  perception and of cognition.
* **MMBench** (``tasks/mmbench/mmbench_evals.py``, circular evaluation): a question is asked once per
  rotation of its options, and counts as right only when every rotation's answer is the right option. The
  choice is extracted by rules only — an option letter standing alone or in one of the forms ``B.`` ``B,``
  ``B:`` ``B)`` ``B).`` ``(B)`` ``(B).`` ``:B`` ``:B,`` ``:B.`` ``:B)`` ``:B).``, exactly one of them;
  else the one option whose text occurs in the answer. lmms-eval then asks a judge model (``openai``) or
  runs a further extractor (``static``), and finally draws a random letter; here an answer no rule reads is
  wrong and counted (``unparseable``): no judge, no random fallback.
* **ScienceQA** (``tasks/scienceqa/utils.py``): right when the stripped answer is the option letter, or
  starts with an upper-case letter and a period and that letter is the right one.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

# ---- VQAv2: EvalAI's answer normalisation ---------------------------------------------------------------
# contractions written without their apostrophe, as annotators type them, restored to EvalAI's spelling
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                "?", "!")
_COMMA_IN_NUMBER = re.compile(r"(?<=\d)(,)+(?=\d)")
# EvalAI's pattern is written "(?!<=\d)(\.)(?!\d)" — a look-*ahead* for the text "<=digit", always true — and
# called with re.UNICODE in the place of ``count`` (32): every period not followed by a digit, at most 32.
_PERIOD = re.compile(r"\.(?!\d)")
_PERIOD_LIMIT = 32


def vqa_normalize(answer: str) -> str:
    """EvalAI's normalisation of one answer, as lmms-eval's VQAv2 scorer applies it."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    # a mark touching a space, or any text with a digit-comma-digit, loses the mark; else it becomes a space
    glue = _COMMA_IN_NUMBER.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        out = out.replace(mark, "" if glue or f"{mark} " in text or f" {mark}" in text else " ")
    out = _PERIOD.sub("", out, count=_PERIOD_LIMIT)
    words = [_NUMBERS.get(word, word) for word in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """VQA accuracy (%) of one answer against its annotators' answers (10 in VQAv2): the mean over references
    of min(1, matches among the other references / 3), all normalised by :func:`vqa_normalize`."""
    if not references:
        raise ValueError("VQA accuracy needs at least one reference answer")
    answer = vqa_normalize(prediction)
    normalised = [vqa_normalize(reference) for reference in references]
    per_held_out = [min(1.0, sum(other == answer for j, other in enumerate(normalised) if j != i) / 3)
                    for i in range(len(normalised))]
    return 100.0 * sum(per_held_out) / len(per_held_out)


# ---- GQA and ScienceQA: exact match ---------------------------------------------------------------------
_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def exact_match(prediction: str, answer: str) -> float:
    """GQA's exact match (%): lower-cased, ASCII punctuation deleted, surrounding spaces stripped."""
    def clean(text: str) -> str:
        return text.lower().translate(_DROP_PUNCTUATION).strip()
    return 100.0 * (clean(prediction) == clean(answer))


def option_letter_match(prediction: str, letter: str) -> float:
    """ScienceQA's scorer (%): the answer is the letter, or starts with an upper-case letter and a period."""
    answer, target = prediction.strip(), letter.strip().lower()
    if answer.lower() == target:
        return 100.0
    if len(answer) >= 2 and answer[0].isupper() and answer[1] == ".":
        return 100.0 * (answer[0].lower() == target)
    return 0.0


# ---- POPE -------------------------------------------------------------------------------------------------
def pope_scores(predictions: Sequence[str], truths: Sequence[str]) -> dict[str, float]:
    """POPE's scores (%) of "yes"/"no" answers against the truth: an answer counts as yes or no only when
    it is that word (lower-cased, stripped); anything else is wrong and neither a positive nor a negative."""
    if len(predictions) != len(truths) or not truths:
        raise ValueError(f"POPE needs one answer per question: {len(predictions)} answers, {len(truths)} truths")
    answers = [p.lower().strip() for p in predictions]
    truth = [t.lower().strip() for t in truths]
    if set(truth) - {"yes", "no"}:
        raise ValueError(f"POPE's truths are yes or no, not {sorted(set(truth) - {'yes', 'no'})}")
    tp = sum(a == "yes" and t == "yes" for a, t in zip(answers, truth))
    fp = sum(a == "yes" and t == "no" for a, t in zip(answers, truth))
    fn = sum(a == "no" and t == "yes" for a, t in zip(answers, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": 100.0 * sum(a == t for a, t in zip(answers, truth)) / len(truth),
            "precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1,
            "yes_ratio": 100.0 * answers.count("yes") / len(answers),
            "truth_yes_ratio": 100.0 * truth.count("yes") / len(truth)}


# ---- MME --------------------------------------------------------------------------------------------------
MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")


def mme_label(answer: str) -> str:
    """"yes", "no" or "other", as MME's scorer reads an answer (from Otter's evaluation)."""
    text = answer.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


@dataclass(frozen=True)
class MMEAnswer:
    category: str
    image: str  # MME asks two questions of every image, one answered yes and one no
    prediction: str
    truth: str


def mme_scores(answers: Iterable[MMEAnswer]) -> dict:
    """Per category: accuracy over questions and accuracy+ over images (both ×100) and their sum (≤ 200);
    the perception and cognition totals (sums over their categories) and the total."""
    by_image: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for a in answers:
        by_image[a.category][a.image].append(mme_label(a.prediction) == a.truth.lower().strip().replace(".", ""))
    categories = {}
    for category, images in sorted(by_image.items()):
        if any(len(right) != 2 for right in images.values()):
            raise ValueError(f"MME scores two questions per image; category {category!r} has images with "
                             f"{sorted({len(r) for r in images.values()})}")
        accuracy = 100.0 * sum(sum(r) for r in images.values()) / (2 * len(images))
        accuracy_plus = 100.0 * sum(all(r) for r in images.values()) / len(images)
        categories[category] = {"accuracy": accuracy, "accuracy_plus": accuracy_plus,
                                "score": accuracy + accuracy_plus, "images": len(images)}
    perception = sum(c["score"] for name, c in categories.items() if name in MME_PERCEPTION)
    cognition = sum(c["score"] for name, c in categories.items() if name not in MME_PERCEPTION)
    return {"categories": categories, "perception": perception, "cognition": cognition,
            "total": perception + cognition}


# ---- MMBench: rule-based choice extraction, circular evaluation -----------------------------------------
LETTERS = "ABCD"
_LETTER_FORMS = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""),
                 (":", ","), (":", "."), (":", ")"), (":", ")."))


def mmbench_choice(answer: str, options: Mapping[str, str]) -> str | None:
    """The option letter an answer names, by MMBench's rules, or None when no rule reads it."""
    words = [w.strip() for w in answer.split()]
    letters = "ABCDE"  # lmms-eval looks for five letters whatever the number of options

    def named(prefix: str = "", suffix: str = "") -> list[str]:
        return [c for c in letters if prefix + c + suffix in words]

    bare = named()
    # a lone "A" in a longer answer may be the article, not the option: the forms below decide then
    if len(bare) == 1 and not ("A" in words and len(words) > 3):
        return bare[0]
    for prefix, suffix in _LETTER_FORMS:
        if len(found := named(prefix, suffix)) == 1:
            return found[0]
    text = answer.lower()
    by_text = [letter for letter, option in options.items() if str(option).lower() in text]
    return by_text[0] if len(by_text) == 1 else None


def rotations(options: Sequence[str], answer: int) -> list[tuple[list[str], str]]:
    """Every circular shift of a question's options and the right letter in each: MMBench asks each."""
    n = len(options)
    if not 2 <= n <= len(LETTERS) or not 0 <= answer < n:
        raise ValueError(f"MMBench questions have 2 to {len(LETTERS)} options and one right one: {n}, {answer}")
    return [([options[(i + shift) % n] for i in range(n)], LETTERS[(answer - shift) % n]) for shift in range(n)]


@dataclass(frozen=True)
class MMBenchAnswer:
    question: str  # every rotation of one question shares it
    options: Mapping[str, str]  # letter -> option text, as shown in this rotation
    truth: str  # the right letter in this rotation
    prediction: str


def mmbench_circular(answers: Iterable[MMBenchAnswer]) -> dict[str, float]:
    """Circular accuracy (%): a question is right when every rotation's answer reads as its right letter;
    ``unparseable``: the share (%) of answers no rule reads (each makes its question wrong)."""
    questions: dict[str, list[bool]] = defaultdict(list)
    unread = total = 0
    for a in answers:
        choice = mmbench_choice(a.prediction, a.options)
        unread += choice is None
        total += 1
        questions[a.question].append(choice == a.truth)
    if not questions:
        raise ValueError("no MMBench answers to score")
    return {"accuracy": 100.0 * sum(all(r) for r in questions.values()) / len(questions),
            "unparseable": 100.0 * unread / total, "questions": len(questions), "answers": total}
