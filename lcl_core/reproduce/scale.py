"""``lcl reproduce scale``: does the LCL − CLIP gap move with budget? The Table 1 comparison repeated at several
budgets of images seen, with the trend judged by a rule fixed here before any run.

    lcl reproduce scale --profile smoke|cpu|gpu [--world calibrated|v1] [--seeds 0 1 2] [--world-seed 0]
                        [--out DIR] [--report DIR]

Rows: LCL on the MMC4 documents and CLIP on MMC4-Pair — the Table 1 rows, with their data and their matched
images per step — and the random-init encoder (one per seed, budget-free). Budgets (:data:`BUDGETS`): the
Table 1 profile's steps times each multiplier, nothing else changed — the world (so a larger budget reads its
documents more often: ``epochs`` in the results), the batch (32 documents or the pairs that hold as many
images), the learning rate and its schedule (warm-up and cosine decay stretched over the steps), the
evaluation. The ×1 budget *is* the Table 1 unit: the work folder is the table's
(``runs/reproduce/table1-<profile>…``), so those runs and evaluations are reused by run identity.

The claims (:data:`GROUPS`), decided by these rules before any run:

* per column and seed, the least-squares slope of LCL − CLIP (the paired difference at each budget) against
  log₁₀(images seen); over seeds, its mean and 95 % t-interval (:mod:`.stats`);
* a column's call: the interval above 0 — LCL gains on CLIP as the budget grows; below 0 — CLIP gains on LCL;
  across 0 — **flat** (cannot be told apart from flat). A gain *narrows* the gap when it moves toward the other
  side of the mean gap over budgets and seeds (LCL behind and gaining, or ahead and losing), else *widens*;
* a group's verdict (classification, retrieval, captioning): **narrows** or **widens** when every column of
  the group is called so, **mixed** when columns are called in opposite directions, **flat** otherwise (its
  decided columns are listed);
* where a column narrows, the budget at which the fitted line (mean gap and mean slope) crosses 0:
  ``10 ** (x̄ − ḡ / slope)`` images, labelled *extrapolated* when outside the budgets measured.

Every row's own curve against random init (the paired difference at each budget) is reported beside, with no
verdict. The report (``--report``, default ``OUT/report/scale``): ``results.json`` (deterministic),
``timing.json``, ``scale.md``, ``claims.json`` (readable by ``lcl reproduce compare``) and
``figures/scale_gap.png`` / ``figures/scale_rows.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

from ..data.world import DEFAULT_WORLD
from ..transfer.results import PAPER_TABLE1, TABLE1_COLUMNS, column_value, validate_results
from ..provenance import machine
from . import report
from .claims import CAPTIONING, RANDOM
from .stats import interval, paired_difference
from .table1 import ROWS, Progress, make_unit, prepare_setting, run_units, start

SCHEMA = "lcl-scale/1"
# multipliers of the Table 1 profile's steps; ×1 is the table's own units. cpu: 175 to 1,400 steps (8×).
BUDGETS = {"smoke": (0.5, 1.0, 2.0, 4.0), "cpu": (0.25, 0.5, 1.0, 2.0), "gpu": (0.5, 1.0, 2.0, 4.0, 8.0)}
COMPARED = ("LCL", "CLIP")  # first − second
GROUPS = {"classification": ("IN-1k",), "retrieval": ("COCO TR@1", "COCO IR@1", "F30k TR@1", "F30k IR@1"),
          "captioning": CAPTIONING}
COLUMNS = tuple(header for header, *_ in TABLE1_COLUMNS)


def budget_steps(steps: int, multiplier: float) -> int:
    return max(1, round(steps * multiplier))


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs``."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise ValueError("a slope needs at least two different budgets")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


def column_trend(gaps: dict[int, dict[int, float]], images: dict[int, dict[int, float]]) -> dict:
    """One column's trend from ``gaps[seed][budget index]`` (LCL − CLIP) and ``images[seed][budget index]``
    (images seen): the slope per seed against log₁₀(images), its interval, the call and the crossing."""
    seeds = sorted(gaps)
    slopes = [slope([math.log10(images[s][b]) for b in sorted(gaps[s])], [gaps[s][b] for b in sorted(gaps[s])])
              for s in seeds]
    fitted = interval(slopes)
    xs = [math.log10(images[s][b]) for s in seeds for b in gaps[s]]
    mean_gap, mean_x = statistics.fmean(gaps[s][b] for s in seeds for b in gaps[s]), statistics.fmean(xs)
    if fitted.n < 2 or not (fitted.low > 0 or fitted.high < 0):
        call = "flat"
    else:
        gaining = fitted.low > 0  # LCL gains on CLIP
        call = "narrows" if (mean_gap < 0) == gaining else "widens"
    crossing = None
    if call == "narrows":
        at = mean_x - mean_gap / fitted.mean
        crossing = {"images_seen": 10 ** at, "log10_images_seen": at, "extrapolated": not min(xs) <= at <= max(xs)}
    return {"slope": fitted.to_dict(), "mean_gap": mean_gap, "mean_log10_images_seen": mean_x, "call": call,
            "crossing": crossing}


def group_verdict(calls: dict[str, str]) -> str:
    """narrows / widens when every column is called so, mixed when both directions occur, flat otherwise."""
    found = set(calls.values())
    if found in ({"narrows"}, {"widens"}):
        return found.pop()
    return "mixed" if {"narrows", "widens"} <= found else "flat"


def reproduce_scale(*, profile: str = "cpu", world: str = DEFAULT_WORLD, seeds: Sequence[int] | None = None,
                    world_seed: int = 0, out: str | Path | None = None, report_dir: str | Path | None = None,
                    allow_dirty: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Train and evaluate LCL and CLIP at every budget (the ×1 budget reused from Table 1), judge the trend."""
    begun = start("scale", profile=profile, world=world, seeds=seeds, world_seed=world_seed, out=out,
                  report_dir=report_dir, allow_dirty=allow_dirty, progress=progress)
    recipe, commit, seeds, out, report_dir, command, started = begun
    setting = prepare_setting(recipe, out, world_seed=world_seed, progress=progress)
    rows = {row.label: row for row in ROWS}
    budgets = [{"multiplier": m, "steps": budget_steps(recipe.steps, m)} for m in BUDGETS[profile]]
    planned = []  # (row label, budget index or None, seed, unit), seed-major
    for seed in seeds:
        for index, budget in enumerate(budgets):
            changes = {} if budget["steps"] == recipe.steps else {"steps": budget["steps"]}
            planned += [(label, index, seed, make_unit(setting, rows[label], seed, recipe, out, changes=changes))
                        for label in COMPARED]
        planned.append((RANDOM, None, seed, make_unit(setting, rows[RANDOM], seed, recipe, out)))
    world_s = time.perf_counter() - started
    tracker = Progress(total=len(planned), write=progress, jobs=recipe.jobs)
    done = []
    for (label, index, seed, unit), (_, result) in zip(planned, run_units([p[3] for p in planned], jobs=recipe.jobs)):
        name = unit.name if index is None else f"{label} · ×{budgets[index]['multiplier']:g} · seed {seed}"
        done.append((label, index, seed, name, result))
        tracker.report(name, result["seconds"], result["reused"])
    results = assemble(recipe, setting, budgets, seeds, world_seed, command, commit, done)
    timing = {"total_s": time.perf_counter() - started, "world_s": world_s,
              "units": {name: {"train_s": r["train_s"], "evaluate_s": r["evaluate_s"], "reused": r["reused"]}
                        for _, _, _, name, r in done}}
    report.write_scale_report(results, timing, report_dir)
    progress(f"report in {report_dir} ({timing['total_s'] / 60:.1f} min in all)")
    return results


def assemble(recipe, setting, budgets: list[dict], seeds: Sequence[int], world_seed: int, command: str,
             commit: str, done: list) -> dict:
    """The results document: every unit, each row's curve, the gaps, the slopes and the group verdicts."""
    records, encoders = {}, {}
    for label, index, seed, name, result in done:
        records[name] = {"row": label, "budget": index, "seed": seed, **result["record"]}
        encoders[name] = result["evaluation"]["encoders"]["checkpoint"]
    transfer = {**done[0][4]["evaluation"], "checkpoint": {"source": "one encoder per row, budget and seed"},
                "encoders": encoders}
    validate_results(transfer)

    def value(name: str, header: str) -> float | None:
        entry = column_value(transfer, name, header)
        return None if entry is None else entry["mean"]

    def unit(label: str, index: int | None, seed: int) -> str:
        return f"{RANDOM} · seed {seed}" if index is None else f"{label} · ×{budgets[index]['multiplier']:g} · seed {seed}"

    documents = json.loads((setting.world / "world.json").read_text())["counts"]["documents"]
    for index, budget in enumerate(budgets):
        seen = [records[unit(label, index, s)]["images_seen"] for label in COMPARED for s in seeds]
        budget["images_seen"] = statistics.fmean(seen)
        budget["epochs"] = budget["steps"] * recipe.document_batch / documents  # document rows read / documents
    curves, gaps, trends = {}, {}, {}
    for header in COLUMNS:
        random = {s: value(unit(RANDOM, None, s), header) for s in seeds}
        for label in COMPARED:
            curves.setdefault(label, {})[header] = [
                {"values": interval([value(unit(label, i, s), header) for s in seeds]).to_dict(),
                 "minus_random": paired_difference({s: value(unit(label, i, s), header) for s in seeds},
                                                   random).to_dict()} for i in range(len(budgets))]
        per_seed = {s: {i: value(unit("LCL", i, s), header) - value(unit("CLIP", i, s), header)
                        for i in range(len(budgets))} for s in seeds}
        images = {s: {i: statistics.fmean(records[unit(label, i, s)]["images_seen"] for label in COMPARED)
                      for i in range(len(budgets))} for s in seeds}
        gaps[header] = [interval([per_seed[s][i] for s in seeds]).to_dict() for i in range(len(budgets))]
        trends[header] = column_trend(per_seed, images) | {
            "paper_gap": PAPER_TABLE1["LCL"][header] - PAPER_TABLE1["CLIP"][header]}
        curves.setdefault(RANDOM, {})[header] = interval(list(random.values())).to_dict()
    claims = [{"key": f"LCL − CLIP on {group} with budget",
               "statement": f"the LCL − CLIP gap on {group} ({', '.join(columns)}) against log10(images seen)",
               "verdict": group_verdict({c: trends[c]["call"] for c in columns}),
               "columns": {c: {"call": trends[c]["call"], "difference": trends[c]["slope"]} for c in columns}}
              for group, columns in GROUPS.items()]
    return {
        "schema": SCHEMA, "profile": recipe.name, "command": command, "commit": commit, "machine": machine(),
        "recipe": dataclasses.asdict(recipe) | {"seeds": list(seeds), "world_seed": world_seed,
                                                "pair_batch": setting.pair_batch,
                                                "images_per_document_row": setting.images_per_row},
        "world": {"folder": setting.world.name, "documents": documents,
                  "content_sha256": json.loads((setting.world / "world.json").read_text())["content_sha256"]},
        "budgets": budgets, "rows": list(COMPARED) + [RANDOM], "records": records, "curves": curves, "gaps": gaps,
        "trends": trends, "claims": {"claims": claims}, "transfer": transfer,
    }
