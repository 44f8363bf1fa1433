"""The paper's claims and the rules that decide them, fixed here before any run (LCL-METHOD §6).

Each claim compares two rows on some Table 1 columns through the paired difference over pre-training
seeds (``first − second`` per seed, mean and 95 % t-interval, :mod:`lcl_core.reproduce.stats`):

* a **greater** claim ("``first`` transfers better than ``second``"): a column *supports* it when the
  interval lies above 0, *contradicts* it when it lies below 0, and is *unclear* otherwise;
* an **equivalent** claim ("``first`` ≈ ``second``"): a column supports it when the interval lies
  inside ``[−margin, +margin]`` (two one-sided tests at 2.5 % each), contradicts it when the interval
  lies wholly outside, and is unclear otherwise;
* a **noninferior** claim ("``first`` is at least as good as ``second``"): a column supports it when the
  interval's low end lies above ``−margin``, contradicts it when its high end lies below ``−margin``, and is
  unclear otherwise (the one-sided half of the equivalence test).

A claim **holds** when every one of its columns supports it, **fails** when any column contradicts
it, and is **inconclusive** otherwise. A claim about two encoders that must each have learned
something first (LCL ≈ CLIP means nothing if neither beats random init) names those
**preconditions**; when one of them does not hold, the claim is inconclusive whatever its columns say.

The equivalence margin is 3 points (top-1 and R@1, in %): the largest LCL–CLIP gap the paper calls
"on par" is 2.1 points (COCO TR@1), and in the measurements that chose the CPU recipe
(``docs/results/table1/recipe.md``) pre-training added 6–9 points of top-1 over random init, so 3 points
is a third to a half of what pre-training adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .stats import Interval, paired_difference

EQUIVALENCE_MARGIN = 3.0  # points, for top-1 and R@1 columns
CLASSIFICATION_RETRIEVAL = ("IN-1k", "COCO TR@1", "COCO IR@1", "F30k TR@1", "F30k IR@1")
CAPTIONING = ("COCO B@4", "COCO CIDEr", "NoCaps CIDEr")
ALL_COLUMNS = CLASSIFICATION_RETRIEVAL + CAPTIONING
LEARNED = ("IN-1k", "COCO TR@1", "COCO IR@1", "COCO CIDEr")  # what "learned something" is judged on
RANDOM = "random init"
VERDICTS = ("holds", "fails", "inconclusive")


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    kind: str  # "greater" | "equivalent" | "noninferior"
    first: str  # row labels
    second: str
    columns: tuple[str, ...]
    margin: float | None = None  # equivalence and non-inferiority claims
    preconditions: tuple[str, ...] = ()  # keys of claims that must hold first


def _learned(row: str) -> Claim:
    return Claim(f"{row} beats random init", f"{row} beats a random-init encoder of the same shape on classification, "
                 "retrieval and captioning (the comparison is not vacuous)", "greater", row, RANDOM, LEARNED)


PRECONDITIONS = tuple(_learned(row) for row in ("LCL", "CLIP", "LCL (pairs)", "CLIP (pairs)"))
CLAIMS = (
    Claim("generation-only collapses", "Generation-only pre-training (Flamingo-style) collapses: it transfers "
          "worse than LCL on every column", "greater", "LCL", "Flamingo-style", ALL_COLUMNS),
    Claim("regression collapses harder", "Adding feature regression to generation (Emu-style) collapses harder "
          "than generation alone", "greater", "Flamingo-style", "Emu-style", ALL_COLUMNS),
    Claim("LCL ≈ CLIP on classification and retrieval", "LCL matches contrastive pre-training (CLIP on "
          "MMC4-Pair) on classification and retrieval", "equivalent", "LCL", "CLIP", CLASSIFICATION_RETRIEVAL,
          EQUIVALENCE_MARGIN, ("LCL beats random init", "CLIP beats random init")),
    Claim("LCL > CLIP on captioning", "LCL beats CLIP on captioning", "greater", "LCL", "CLIP", CAPTIONING,
          preconditions=("LCL beats random init", "CLIP beats random init")),
    Claim("on pairs LCL ≈ CLIP", "On paired data LCL matches CLIP (classification and retrieval)", "equivalent",
          "LCL (pairs)", "CLIP (pairs)", CLASSIFICATION_RETRIEVAL, EQUIVALENCE_MARGIN,
          ("LCL (pairs) beats random init", "CLIP (pairs) beats random init")),
)


def column_call(claim: Claim, difference: Interval) -> str:
    """supports / contradicts / unclear for one column's paired-difference interval."""
    if difference.n < 2:
        return "unclear"
    if claim.kind == "greater":
        return "supports" if difference.low > 0 else "contradicts" if difference.high < 0 else "unclear"
    margin = claim.margin
    if claim.kind == "noninferior":
        return "supports" if difference.low > -margin else "contradicts" if difference.high < -margin else "unclear"
    if -margin <= difference.low and difference.high <= margin:
        return "supports"
    return "contradicts" if difference.low > margin or difference.high < -margin else "unclear"


def judge(claim: Claim, per_seed: Callable[[str, str], Mapping[int, float] | None],
          decided: Mapping[str, dict] | None = None) -> dict:
    """Decide ``claim`` from ``per_seed(row, column) -> {seed: value}`` (None where a row lacks the column);
    ``decided``: the judged preconditions by key. Returns the claim, its per-column statistics and verdict."""
    columns = {}
    for column in claim.columns:
        first, second = per_seed(claim.first, column), per_seed(claim.second, column)
        if not first or not second:
            columns[column] = {"call": "unclear", "reason": "not measured"}
            continue
        difference = paired_difference(first, second)
        columns[column] = {"difference": difference.to_dict(), "call": column_call(claim, difference)}
    calls = [c["call"] for c in columns.values()]
    verdict = "fails" if "contradicts" in calls else "holds" if calls and all(c == "supports" for c in calls) \
        else "inconclusive"
    unmet = [key for key in claim.preconditions if (decided or {}).get(key, {}).get("verdict") != "holds"]
    reason = None
    if unmet:
        reason = f"precondition not met: {', '.join(unmet)}"
        verdict = "inconclusive"
    return {"key": claim.key, "statement": claim.statement, "kind": claim.kind, "first": claim.first,
            "second": claim.second, "margin": claim.margin, "columns": columns, "verdict": verdict,
            "preconditions": list(claim.preconditions), "reason": reason}


@dataclass(frozen=True)
class Composite:
    """A claim made of others: holds when every part holds, fails when any part fails, else inconclusive."""

    key: str
    statement: str
    parts: tuple[str, ...]  # keys of claims judged beside it


def judge_composite(composite: Composite, decided: Mapping[str, dict]) -> dict:
    verdicts = [decided[key]["verdict"] for key in composite.parts]
    verdict = "holds" if all(v == "holds" for v in verdicts) else "fails" if "fails" in verdicts else "inconclusive"
    return {"key": composite.key, "statement": composite.statement, "kind": "all of", "first": None,
            "second": None, "margin": None, "columns": {}, "verdict": verdict, "parts": list(composite.parts),
            "preconditions": [], "reason": None}


def judge_all(per_seed: Callable[[str, str], Mapping[int, float] | None], *, claims=CLAIMS,
              preconditions=PRECONDITIONS, composites: tuple[Composite, ...] = ()) -> dict[str, list[dict]]:
    """The preconditions, then every claim, then the composites (of claims or preconditions); rows a reproduction
    did not train are judged unclear."""
    decided = {c.key: judge(c, per_seed) for c in preconditions}
    judged = [judge(c, per_seed, decided) for c in claims]
    parts = decided | {c["key"]: c for c in judged}
    return {"preconditions": list(decided.values()),
            "claims": judged + [judge_composite(c, parts) for c in composites]}
