"""``lcl reproduce ablations``: the paper's ablations, and two of its arguments pushed further, as curves over
pre-training seeds with 95 % bands and verdicts decided by rules fixed here before any run.

    lcl reproduce ablations --profile smoke|cpu|gpu [--world calibrated|v1]
                            [--only lambda terms placement data leakage alignment]
                            [--seeds 0 1 2] [--world-seed 0] [--out DIR] [--report DIR]

Every grid (:data:`GRIDS`) changes one thing of the Table 1 recipe (:mod:`.table1`: its profiles, world,
model, tokenizer, schedule, images seen, evaluation and statistics):

* ``lambda``: the contrastive weight λ of LCL on documents, 0 (generation only) to 1, and contrastive only;
* ``terms``: generation only / contrastive only / both, and the paper's claim that the contrastive term
  matters;
* ``placement``: ``img_first_prob``, the chance an image goes before its sentence (0 and 1 fix the
  placement), and the paper's claim that randomising it matters;
* ``data``: LCL on documents, on pairs, and on both mixed batch by batch at several ratios, each step
  holding the same number of images;
* ``leakage`` (beyond the paper): the world's ``leak_prob``, for LCL and generation only;
* ``alignment`` (beyond the paper): the world's ``misalign_prob`` and ``distractor_prob``, for LCL on the
  documents and CLIP on MMC4-Pair.

The grids work in the Table 1 reproduction's folder (default ``runs/reproduce/table1-<profile>``), so a
point identical to a Table 1 row (λ = 0.1 and p = 0.5 are the LCL row, λ = 0 is the Flamingo-style row) is
that row's run and evaluation, reused by run identity, never retrained; a point shared by two grids is
trained once. Each grid's report goes to ``REPORT/<grid>/`` (default ``REPORT`` = ``OUT/report/ablations``):
``results.json`` (deterministic), ``timing.json``, ``<grid>.md``, ``claims.md``/``claims.json`` and
``figures/<grid>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..data import WorldKnobs
from ..data.world import DEFAULT_WORLD
from ..transfer.results import column_value, validate_results
from ..provenance import machine
from . import report
from .claims import (ALL_COLUMNS, CAPTIONING, CLASSIFICATION_RETRIEVAL, EQUIVALENCE_MARGIN, LEARNED, RANDOM, Claim,
                     Composite, judge_all)
from .report import LATENT_COLUMNS
from .stats import interval, paired_difference
from .table1 import (Progress, Row, default_out, from_command_line, make_unit, prepare_setting, recipe_on,
                     run_units, source_commit)

SCHEMA = "lcl-ablation/1"
EQUIVALENCE_COLUMNS = ("IN-1k", "COCO TR@1", "COCO IR@1")


@dataclass(frozen=True)
class Point:
    """One setting of a grid: a row of the Table 1 recipe with some run settings and world knobs changed."""

    label: str
    objective: str | None  # None: the random-init encoder (the reference line of every grid)
    source: str | None = None  # None: the objective's own data
    changes: dict = field(default_factory=dict)  # RunSpec.changed arguments
    knobs: dict = field(default_factory=dict)  # WorldKnobs fields of this point's world
    x: float | None = None  # position on the grid's axis; None: drawn apart (contrastive only, random init)
    series: str = "LCL"  # the curve it belongs to


@dataclass(frozen=True)
class Grid:
    name: str
    title: str
    axis: str  # what x is
    scale: str  # "log", "linear" or "categorical"
    points: tuple[Point, ...]
    claims: tuple[Claim, ...] = ()
    composites: tuple[Composite, ...] = ()
    derived: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # label -> (a, b): a − b per seed
    coarsened: str = ""  # points dropped or coarsened to fit the budget, and why


def _lcl(label: str, x: float | None = None, **changes) -> Point:
    return Point(label, "lcl", changes=changes, x=x)


RANDOM_POINT = Point(RANDOM, None)
LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0)  # and 0: generation only
PLACEMENTS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIXES = ((2, 1), (1, 1), (1, 2))  # document batches : pair batches per cycle
LEAKS = (0.0, 0.1, 0.5)  # 0.1: the world's default
NOISES = (0.03, 0.15, 0.4)  # misalign_prob = distractor_prob; 0.03: the world's default


def _knobs(**values) -> dict:
    """Only the knobs that differ from the world's defaults: the default world is Table 1's own."""
    return {k: v for k, v in values.items() if getattr(WorldKnobs(), k) != v}


def _gap(first: str, second: str, suffix: str) -> str:
    return f"{first} − {second} · {suffix}"


GRIDS: dict[str, Grid] = {
    "lambda": Grid(
        "lambda", "The contrastive weight λ of LCL on documents", "contrastive weight λ", "log",
        (Point("λ = 0 (generation only)", "generation", x=0.0),
         *(_lcl(f"λ = {v}" + (" (LCL)" if v == 0.1 else ""), v, **({} if v == 0.1 else {"contrastive_weight": v}))
           for v in LAMBDAS),
         Point("contrastive only", "contrastive", "mmc4"), RANDOM_POINT)),
    "terms": Grid(
        "terms", "Which loss terms", "loss terms", "categorical",
        (Point("generation only", "generation", x=0), Point("contrastive only", "contrastive", "mmc4", x=1),
         Point("both (LCL)", "lcl", x=2), RANDOM_POINT),
        claims=(Claim("contrastive term matters", "The contrastive term matters: LCL (both terms) transfers better "
                      "than generation alone on every column", "greater", "both (LCL)", "generation only",
                      ALL_COLUMNS),
                Claim("generation term adds captioning", "The generation term adds to captioning: both terms "
                      "caption better than the contrastive term alone", "greater", "both (LCL)", "contrastive only",
                      CAPTIONING))),
    "placement": Grid(
        "placement", "Where images go: before their sentence with probability p", "img_first_prob p", "linear",
        tuple(_lcl(f"p = {v}", v, **({} if v == 0.5 else {"img_first_prob": v})) for v in PLACEMENTS)
        + (RANDOM_POINT,),
        claims=(Claim("random beats images always after", "Random placement (p = 0.5) transfers better than images "
                      "always after their sentence (p = 0) on every column", "greater", "p = 0.5", "p = 0.0",
                      ALL_COLUMNS),
                Claim("random beats images always before", "Random placement (p = 0.5) transfers better than images "
                      "always before their sentence (p = 1) on every column", "greater", "p = 0.5", "p = 1.0",
                      ALL_COLUMNS)),
        composites=(Composite("placement randomisation matters", "Randomising the image placement matters: p = 0.5 "
                              "beats both fixed placements", ("random beats images always after",
                                                              "random beats images always before")),)),
    "data": Grid(
        "data", "Interleaved documents, pairs, or both (same images per step)", "share of pair batches", "linear",
        (Point("documents", "lcl", "mmc4", x=0.0),
         *(Point(f"documents + pairs {d}:{p}", "lcl", "mmc4+pairs", changes={"mix": [d, p]}, x=p / (d + p))
           for d, p in MIXES),
         Point("pairs", "lcl", "pairs", x=1.0), RANDOM_POINT),
        claims=(Claim("mixing documents into pairs costs nothing", "LCL on pairs and documents mixed 1:1 matches LCL "
                      "on pairs alone on classification and retrieval (the paper's LAION + MMC4 row: 82.0 vs 82.2)",
                      "equivalent", "documents + pairs 1:1", "pairs", CLASSIFICATION_RETRIEVAL, EQUIVALENCE_MARGIN),)),
    "leakage": Grid(
        "leakage", "Text that already states the image's description (leak_prob)", "leak_prob", "linear",
        tuple(Point(f"{series} · leak {v}", objective, knobs=_knobs(leak_prob=v), x=v, series=series)
              for series, objective in (("LCL", "lcl"), ("Flamingo-style", "generation")) for v in LEAKS)
        + (RANDOM_POINT,),
        claims=(Claim("generation-only degrades as text leaks", "Generation-only pre-training transfers worse when "
                      f"the text predicts the image (leak {LEAKS[0]} better than leak {LEAKS[-1]})", "greater",
                      f"Flamingo-style · leak {LEAKS[0]}", f"Flamingo-style · leak {LEAKS[-1]}", LEARNED),
                Claim("LCL holds as text leaks", f"LCL transfers as well at leak {LEAKS[-1]} as at leak {LEAKS[0]} "
                      "(classification and COCO retrieval)", "equivalent", f"LCL · leak {LEAKS[-1]}",
                      f"LCL · leak {LEAKS[0]}", EQUIVALENCE_COLUMNS, EQUIVALENCE_MARGIN),
                Claim("LCL's lead grows with leakage", "LCL's lead over generation only grows as the text leaks",
                      "greater", _gap("LCL", "Flamingo-style", f"leak {LEAKS[-1]}"),
                      _gap("LCL", "Flamingo-style", f"leak {LEAKS[0]}"), LEARNED)),
        derived={_gap("LCL", "Flamingo-style", f"leak {v}"): (f"LCL · leak {v}", f"Flamingo-style · leak {v}")
                 for v in LEAKS},
        coarsened="leak_prob at 0, 0.1 and 0.5 only (each value is a world of its own, with two series and three "
                  "seeds: 12 new runs fill the 45-minute budget)"),
    "alignment": Grid(
        "alignment", "Noisy alignment: misaligned and undescribed images (misalign_prob = distractor_prob)",
        "misalign_prob = distractor_prob", "linear",
        tuple(Point(f"{series} · noise {v}", objective, source, knobs=_knobs(misalign_prob=v, distractor_prob=v),
                    x=v, series=series)
              for series, objective, source in (("LCL", "lcl", "mmc4"), ("CLIP", "contrastive", "mmc4_pair"))
              for v in NOISES) + (RANDOM_POINT,),
        claims=(Claim("CLIP loses more to noisy alignment", "CLIP on MMC4-Pair loses more than LCL on the documents "
                      f"as alignment degrades (LCL − CLIP larger at noise {NOISES[-1]} than at {NOISES[0]})",
                      "greater", _gap("LCL", "CLIP", f"noise {NOISES[-1]}"), _gap("LCL", "CLIP", f"noise {NOISES[0]}"),
                      CLASSIFICATION_RETRIEVAL),),
        derived={_gap("LCL", "CLIP", f"noise {v}"): (f"LCL · noise {v}", f"CLIP · noise {v}") for v in NOISES},
        coarsened="noise at 0.03, 0.15 and 0.4 only (each value is a world of its own)"),
}


def grid_units(grid: Grid, *, recipe, seeds: Sequence[int], out: Path, setting_for: Callable[[dict], object]) -> list[tuple[Point, object]]:
    """(point, unit) for every point and seed of ``grid``, seed-major (a grid stopped early has whole seeds)."""
    units = []
    for seed in seeds:
        for point in grid.points:
            setting = setting_for(point.knobs)
            row = Row(point.label, point.objective, point.source, grid.name)
            units.append((point, make_unit(setting, row, seed, recipe, out, changes=point.changes)))
    return units


def unit_key(unit) -> str:
    """Units with the same run (spec, seed and world) share their training and evaluation."""
    return json.dumps([unit.spec, unit.seed, unit.base], sort_keys=True)


def reproduce_ablations(*, profile: str = "cpu", world: str = DEFAULT_WORLD, only: Sequence[str] | None = None,
                        seeds: Sequence[int] | None = None, world_seed: int = 0, out: str | Path | None = None,
                        report_dir: str | Path | None = None, points: Sequence[str] | None = None,
                        allow_dirty: bool = False, progress: Callable[[str], None] = print) -> dict[str, dict]:
    """Train, evaluate and judge the grids ``only`` (default all); returns {grid: results document}.
    ``points``: only the points with these labels (e.g. ``["p = 0.25"]``; the claims then lack their other
    rows and are inconclusive), to rerun one point of a grid."""
    recipe = recipe_on(profile, world)
    commit = source_commit(profile, allow_dirty=allow_dirty)
    names = list(only or GRIDS)
    unknown = [name for name in names if name not in GRIDS]
    if unknown:
        raise KeyError(f"unknown ablation grid(s) {', '.join(unknown)}; choose from {', '.join(GRIDS)}")
    grids = {name: GRIDS[name] for name in names}
    if points is not None:
        missing = set(points) - {p.label for grid in grids.values() for p in grid.points}
        if missing:
            raise KeyError(f"no point {', '.join(sorted(missing))} in {', '.join(names)}; its points: "
                           + "; ".join(p.label for grid in grids.values() for p in grid.points))
        grids = {name: dataclasses.replace(grid, points=tuple(p for p in grid.points if p.label in points))
                 for name, grid in grids.items()}
        grids = {name: grid for name, grid in grids.items() if grid.points}
        names = list(grids)
    seeds = tuple(seeds if seeds is not None else recipe.seeds)
    out = Path(out or default_out(recipe))
    report_dir = Path(report_dir or out / "report" / "ablations")
    command = (f"lcl reproduce ablations --profile {profile} --world {world}"
               + f" --only {' '.join(names)} "
               f"--seeds {' '.join(map(str, seeds))} --world-seed {world_seed} --out {out} --report {report_dir}"
               + ("" if points is None else " --points " + " ".join(f"'{label}'" for label in points)))
    started = time.perf_counter()
    progress(f"$ {command}")
    settings: dict[str, object] = {}

    def setting_for(knobs: dict):
        key = json.dumps(knobs, sort_keys=True)  # as assemble() looks a grid's worlds up
        if key not in settings:
            settings[key] = prepare_setting(recipe, out, world_seed=world_seed, knobs=knobs, progress=progress)
        return settings[key]

    planned = {name: grid_units(grids[name], recipe=recipe, seeds=seeds, out=out, setting_for=setting_for)
               for name in names}
    worlds_s = time.perf_counter() - started
    unique = {}
    for pairs in planned.values():
        for _, unit in pairs:
            unique.setdefault(unit_key(unit), unit)
    progress(f"{sum(len(p) for p in planned.values())} points × seeds, {len(unique)} distinct runs")
    tracker = Progress(total=len(unique), write=progress, jobs=recipe.jobs)
    done: dict[str, dict] = {}
    for unit, result in run_units(list(unique.values()), jobs=recipe.jobs):
        done[unit_key(unit)] = result
        tracker.report(unit.name, result["seconds"], result["reused"])
    total_s = time.perf_counter() - started
    documents = {}
    for name in names:
        grid = grids[name]
        results = assemble(grid, planned[name], done, recipe=recipe, seeds=seeds, world_seed=world_seed,
                           command=command, commit=commit, settings=settings)
        timing = {"total_s": total_s, "worlds_s": worlds_s, "grids_in_this_command": names,
                  "units": {f"{point.label} · seed {unit.seed}": {"train_s": done[unit_key(unit)]["train_s"],
                                                                 "evaluate_s": done[unit_key(unit)]["evaluate_s"],
                                                                 "reused": done[unit_key(unit)]["reused"]}
                            for point, unit in planned[name]}}
        report.write_ablation_report(results, timing, report_dir / name)
        documents[name] = results
    progress(f"reports in {report_dir} ({total_s / 60:.1f} min in all)")
    return documents


def assemble(grid: Grid, planned, done: Mapping[str, dict], *, recipe, seeds, world_seed: int, command: str,
             commit: str, settings: Mapping[str, object]) -> dict:
    """The grid's results document: every point per seed, its intervals, the claims and the best point."""
    points, evaluations = {}, {}
    for point, unit in planned:
        result = done[unit_key(unit)]
        entry = points.setdefault(point.label, {
            "objective": point.objective, "source": point.source, "changes": point.changes, "knobs": point.knobs,
            "x": point.x, "series": point.series, "run_spec": None if unit.spec is None else {
                k: v for k, v in unit.spec.items() if k != "train"} | {"train": {
                    k: v for k, v in unit.spec["train"].items() if k in ("objective", "batch_size", "steps",
                                                                          "contrastive_weight", "img_first_prob")}},
            "seeds": {}})
        entry["seeds"][str(unit.seed)] = result["record"]
        evaluations[f"{point.label} · seed {unit.seed}"] = result["evaluation"]["encoders"]["checkpoint"]
    first = next(iter(done.values()))["evaluation"]
    transfer = {**first, "checkpoint": {"source": "one encoder per point and seed"}, "encoders": evaluations}
    validate_results(transfer)
    per_seed = seed_values(points, transfer, seeds, grid.derived)
    summary = {label: {column: _interval_or_none(per_seed(label, column)) for column in ALL_COLUMNS + LATENT_COLUMNS}
               for label in points}
    claims = judge_all(per_seed, claims=grid.claims, preconditions=(), composites=grid.composites)
    used_worlds = {json.dumps(point.knobs, sort_keys=True) for point in grid.points}
    split_sizes = {key: entry["splits"] for key, entry in next(iter(evaluations.values()))["tasks"].items()}
    return {
        "schema": SCHEMA, "grid": grid.name, "title": grid.title, "axis": grid.axis, "scale": grid.scale,
        "coarsened": grid.coarsened, "profile": recipe.name, "command": command, "commit": commit,
        "machine": machine(),
        "recipe": dataclasses.asdict(recipe) | {"seeds": list(seeds), "world_seed": world_seed},
        "worlds": {"default" if knobs == "{}" else knobs: {
            "folder": setting.world.name, "knobs": json.loads(knobs), "pair_batch": setting.pair_batch,
            "images_per_document_row": setting.images_per_row,
            "content_sha256": json.loads((setting.world / "world.json").read_text())["content_sha256"]}
            for knobs, setting in settings.items() if knobs in used_worlds},
        "split_sizes": split_sizes, "points": points, "summary": summary,
        "derived": {label: list(pair) for label, pair in grid.derived.items()},
        "claims": claims, "best": best_points(grid, summary, per_seed) if grid.scale == "log" else None,
        "transfer": transfer,
    }


def seed_values(points: Mapping[str, dict], transfer: dict, seeds: Sequence[int],
                derived: Mapping[str, tuple[str, str]]) -> Callable[[str, str], dict[int, float] | None]:
    """``per_seed(label, column) -> {seed: value}`` over the grid's points (transfer columns and held-out latent
    statistics) and its derived rows (``a − b`` seed by seed); None where nothing was measured."""

    def per_seed(label: str, column: str) -> dict[int, float] | None:
        if label in derived:
            a, b = (per_seed(name, column) for name in derived[label])
            common = sorted(set(a or {}) & set(b or {}))
            return {s: a[s] - b[s] for s in common} or None
        if label not in points:
            return None
        values = {}
        for seed in seeds:
            if column in LATENT_COLUMNS:
                record = points[label]["seeds"].get(str(seed))
                value = None if record is None else record["held_out_latents"][column.replace(" ", "_")]
            else:
                entry = column_value(transfer, f"{label} · seed {seed}", column) \
                    if f"{label} · seed {seed}" in transfer["encoders"] else None
                value = None if entry is None else entry["mean"]
            if value is not None:
                values[seed] = value
        return values or None

    return per_seed


def _interval_or_none(values: Mapping[int, float] | None) -> dict | None:
    return None if not values else interval(list(values.values())).to_dict()


def best_points(grid: Grid, summary: Mapping[str, dict], per_seed) -> dict:
    """For each column: the point of the curve with the highest mean, its interval, and its paired difference
    with the paper's setting (the point whose run is the Table 1 LCL row)."""
    curve = [p for p in grid.points if p.x is not None and p.objective is not None]
    reference = next((p.label for p in curve if p.objective == "lcl" and not p.changes), None)
    best = {}
    for column in ALL_COLUMNS + LATENT_COLUMNS:
        scored = [(summary[p.label][column]["mean"], p) for p in curve if summary[p.label][column]]
        if not scored:
            continue
        mean, point = max(scored, key=lambda pair: pair[0])
        versus = None
        if reference is not None and point.label != reference and per_seed(reference, column):
            versus = paired_difference(per_seed(point.label, column), per_seed(reference, column)).to_dict()
        best[column] = {"label": point.label, "x": point.x, "interval": summary[point.label][column],
                        "minus_reference": versus, "reference": reference}
    return best


def main_ablations(args) -> int:
    documents = from_command_line(reproduce_ablations, profile=args.profile, world=args.world, only=args.only,
                                  seeds=args.seeds, world_seed=args.world_seed, out=args.out, report_dir=args.report,
                                  points=args.points, allow_dirty=args.allow_dirty)
    if documents is None:
        return 2
    for name, results in documents.items():
        for claim in results["claims"]["claims"]:
            print(f"  {name:>10}  {claim['verdict']:>12}  {claim['key']}")
    return 0
