"""``lcl reproduce verify RESULT [--unit NAME …]``: does a committed result still come from the code? Reruns the
result's units (row or point × seed) at the current commit, in a fresh folder so that nothing is reused, and
reports every number against the committed one: equal, or the difference.

    lcl reproduce verify docs/results/table1/cpu --unit "LCL · seed 0"
    lcl reproduce verify docs/results/ablations/cpu/placement --unit "p = 0.0"    # every seed of a point

RESULT is a Table 1 report or one ablation grid's report (a folder with ``results.json``, or the file).
The units are rebuilt from the *current* code — the profile the result names (``cpu``, ``cpu-calibrated``…),
the rows or the grid's points by label — with the result's seeds and world seed, and run the way the
reproduction runs them (the profile's worker processes and threads), so a change to the code, the recipe or
the world shows as moved numbers. What is compared:

* the recipe: every field of the profile but its description, against the one the result records;
* each world: its content digest, images per document row and the pair batch measured on it;
* each unit: every number and identifier of its training record (steps, images and tokens seen, final
  losses, latent curves and held-out latent statistics, run identity) and of its evaluation (split sizes,
  every metric's mean, spread and per-head-seed values, the encoder's fingerprint).

Numbers count as equal when ``|now − committed| ≤ tolerance × max(1, |committed|)``; the default tolerance 0
asks for the same floats, which a rerun on the same kind of CPU gives. fp32 kernels differ between instruction
sets: the smoke result made with AVX-512 kernels, rerun with ``ATEN_CPU_CAPABILITY=avx2`` or ``default``, moved
no evaluation metric and no other number by more than 8e-7 of its size, so ``--tolerance 1e-5`` checks a
result on another CPU. At a tolerance above 0 the encoders' fingerprints (digests of the weights' bits) are not
compared, since they differ at the first changed bit. Exit status 0 when everything is equal, 1 when anything
differs, 2 on bad input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..provenance import current_commit
from .table1 import ROWS, WORLDS, Progress, Row, from_command_line, make_unit, prepare_setting, recipe_on, run_units

BITWISE = "fingerprint"  # a digest of the weights' bits: compared at tolerance 0 only
# fields the results add to the profile's own in their "recipe" record (run arguments and measurements)
RUN_FIELDS = ("seeds", "world_seed", "pair_batch", "images_per_document_row")


def load_result(path: str | Path) -> dict:
    """A Table 1 or ablation ``results.json``, given it or its folder."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no results.json at {path} (give a report folder of lcl reproduce table1, or one "
                                f"grid's folder of lcl reproduce ablations)")
    result = json.loads(file.read_text())
    if result.get("schema") not in ("lcl-reproduction/1", "lcl-ablation/1"):
        raise ValueError(f"{file} is not a reproduction result (schema {result.get('schema')!r})")
    return result


def profile_and_world(recipe_name: str) -> tuple[str, str]:
    """``cpu`` -> (cpu, v1); ``cpu-calibrated`` -> (cpu, calibrated): the names :func:`recipe_on` gives."""
    for world in WORLDS:
        if recipe_name.endswith(f"-{world}"):
            return recipe_name[: -len(world) - 1], world
    return recipe_name, "v1"


def leaves(value, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path, value) for every number, string, bool and null inside ``value``; paths like ``a/b/0``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from leaves(item, f"{prefix}/{index}" if prefix else str(index))
    else:
        yield prefix, value


def same(committed, now, tolerance: float) -> bool:
    """Equal values: numbers within the tolerance (NaN equals NaN), anything else exactly (a bool only a bool)."""
    if isinstance(committed, bool) or isinstance(now, bool):
        return type(committed) is type(now) and committed == now
    if isinstance(committed, (int, float)) and isinstance(now, (int, float)):
        if math.isnan(committed) or math.isnan(now):
            return math.isnan(committed) and math.isnan(now)
        return abs(now - committed) <= tolerance * max(1.0, abs(committed))
    return committed == now


@dataclass
class Check:
    """One compared thing (the recipe, a world, a unit): how many values, and those that differ as
    (path, committed, now); a value missing on one side is ``"absent"`` there."""

    name: str
    values: int = 0
    differences: list[tuple[str, object, object]] = field(default_factory=list)

    def compare(self, committed, now, tolerance: float) -> "Check":
        mine, theirs = dict(leaves(committed)), dict(leaves(now))
        for path in list(mine) + [p for p in theirs if p not in mine]:
            if tolerance > 0 and path.rsplit("/", 1)[-1] == BITWISE:
                continue
            self.values += 1
            old, new = mine.get(path, "absent"), theirs.get(path, "absent")
            if not same(old, new, tolerance):
                self.differences.append((path, old, new))
        return self

    def line(self) -> str:
        if not self.differences:
            return f"{self.name}: {self.values} values, all equal"
        return f"{self.name}: {len(self.differences)} of {self.values} values differ"

    def to_dict(self) -> dict:
        return {"name": self.name, "values": self.values,
                "differences": [{"path": p, "committed": c, "now": n} for p, c, n in self.differences]}


@dataclass
class Verification:
    result: str
    commit: str
    tolerance: float
    checks: list[Check]
    seconds: float

    @property
    def equal(self) -> bool:
        return all(not check.differences for check in self.checks)

    def to_dict(self) -> dict:
        return {"result": self.result, "commit": self.commit, "tolerance": self.tolerance, "equal": self.equal,
                "seconds": self.seconds, "checks": [check.to_dict() for check in self.checks]}


def unit_names(result: dict) -> list[str]:
    """The result's units, in its order: ``<row or point label> · seed <seed>``."""
    entries = result["rows"] if result["schema"] == "lcl-reproduction/1" else result["points"]
    return [f"{label} · seed {seed}" for label, entry in entries.items() for seed in entry["seeds"]]


def _planned(result: dict, chosen: set[str], recipe, out: Path, setting_for) -> list[tuple[str, object, dict, dict]]:
    """(unit name, unit built from today's code, committed record, committed evaluation) for each ``chosen``
    unit of the result, in its order (only their worlds are built)."""
    encoders = result["transfer"]["encoders"]
    planned = []
    if result["schema"] == "lcl-reproduction/1":
        rows = {row.label: row for row in ROWS}
        for label, entry in result["rows"].items():
            if label not in rows:
                raise ValueError(f"row {label!r} of the result is no longer a Table 1 row ({', '.join(rows)})")
            for seed, record in entry["seeds"].items():
                if f"{label} · seed {seed}" in chosen:
                    unit = make_unit(setting_for({}), rows[label], int(seed), recipe, out)
                    planned.append((unit.name, unit, record, encoders[unit.name]))
        return planned
    from .ablations import GRIDS

    grid = GRIDS.get(result["grid"])
    if grid is None:
        raise ValueError(f"grid {result['grid']!r} of the result is no longer an ablation grid ({', '.join(GRIDS)})")
    points = {point.label: point for point in grid.points}
    for label, entry in result["points"].items():
        if label not in points:
            raise ValueError(f"point {label!r} is no longer in the {grid.name} grid ({', '.join(points)})")
        point = points[label]
        row = Row(point.label, point.objective, point.source, grid.name)
        for seed, record in entry["seeds"].items():
            if f"{label} · seed {seed}" in chosen:
                unit = make_unit(setting_for(point.knobs), row, int(seed), recipe, out, changes=point.changes)
                planned.append((unit.name, unit, record, encoders[unit.name]))
    return planned


def _committed_worlds(result: dict) -> dict[str, dict]:
    """{knobs as JSON: the world's committed digest, images per row and pair batch}."""
    if result["schema"] == "lcl-reproduction/1":
        return {"{}": {"content_sha256": result["world"]["content_sha256"],
                       "images_per_document_row": result["recipe"]["images_per_document_row"],
                       "pair_batch": result["recipe"]["pair_batch"]}}
    return {("{}" if key == "default" else key): {name: world[name] for name in
                                                  ("content_sha256", "images_per_document_row", "pair_batch")}
            for key, world in result["worlds"].items()}


def select(names: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The unit names ``wanted`` picks: a unit's name (``LCL · seed 0``) or a row's or point's label (all its
    seeds); all when ``wanted`` is None."""
    if wanted is None:
        return list(names)
    chosen, unknown = [], []
    for want in wanted:
        hits = [name for name in names if name == want or name.rsplit(" · seed ", 1)[0] == want]
        (chosen.extend(hits) if hits else unknown.append(want))
    if unknown:
        raise KeyError(f"no unit {', '.join(map(repr, unknown))} in the result; its units: {'; '.join(names)}")
    return [name for name in names if name in chosen]


def verify(path: str | Path, *, units: Sequence[str] | None = None, out: str | Path | None = None,
           tolerance: float = 0.0, progress: Callable[[str], None] = print) -> Verification:
    """Rerun the units of the result at ``path`` (all, or those ``units`` names) in ``out`` (default: a
    temporary folder, removed afterwards; a given one must hold no runs, which would be reused) and compare."""
    result = load_result(path)
    profile, world = profile_and_world(result["profile"])
    recipe = recipe_on(profile, world)
    commit = current_commit()  # the code being checked, committed or not: a verification is not a result
    started = time.perf_counter()
    if out is not None and Path(out).exists() and any(Path(out).iterdir()):
        raise ValueError(f"{out} is not empty: a verification reruns every unit, in an empty folder")
    with tempfile.TemporaryDirectory(prefix="lcl-verify-") as scratch:
        folder = Path(out) if out is not None else Path(scratch)
        progress(f"verifying {path} ({result['profile']}, made at {result['commit']}) at {commit} in {folder}")
        recorded = {k: v for k, v in result["recipe"].items() if k not in RUN_FIELDS + ("description",)}
        today = {k: v for k, v in dataclasses.asdict(recipe).items() if k not in RUN_FIELDS + ("description",)}
        checks = [Check("recipe").compare(recorded, json.loads(json.dumps(today)), tolerance)]
        settings: dict[str, object] = {}

        def setting_for(knobs: dict):
            key = json.dumps(knobs, sort_keys=True)
            if key not in settings:
                settings[key] = prepare_setting(recipe, folder, world_seed=result["recipe"]["world_seed"],
                                                knobs=knobs, progress=progress)
            return settings[key]

        planned = _planned(result, set(select(unit_names(result), units)), recipe, folder, setting_for)
        for key, committed in _committed_worlds(result).items():
            if key in settings:
                setting = settings[key]
                now = {"content_sha256": json.loads((setting.world / "world.json").read_text())["content_sha256"],
                       "images_per_document_row": setting.images_per_row, "pair_batch": setting.pair_batch}
                checks.append(Check(f"world {'default' if key == '{}' else key}").compare(committed, now, tolerance))
        tracker = Progress(total=len(planned), write=progress, jobs=recipe.jobs)
        for (name, _, record, evaluation), (_, done) in zip(planned, run_units([u for _, u, _, _ in planned],
                                                                               jobs=recipe.jobs)):
            now = {"record": done["record"], "evaluation": done["evaluation"]["encoders"]["checkpoint"]}
            check = Check(name).compare({"record": record, "evaluation": evaluation}, now, tolerance)
            checks.append(check)
            tracker.report(f"{check.line()}", done["seconds"], False)
    return Verification(result=str(path), commit=commit, tolerance=tolerance, checks=checks,
                        seconds=time.perf_counter() - started)


def report_lines(verification: Verification, *, shown: int = 12) -> list[str]:
    """The summary a user reads: one line per check, then up to ``shown`` differing values of each."""
    lines = []
    for check in verification.checks:
        lines.append(("  " if not check.differences else "✗ ") + check.line())
        for path, committed, now in check.differences[:shown]:
            delta = (f" (difference {now - committed:+.6g})" if all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in (committed, now)) else "")
            lines.append(f"    {path}: committed {committed!r}, now {now!r}{delta}")
        if len(check.differences) > shown:
            lines.append(f"    … and {len(check.differences) - shown} more (--write FILE lists every one)")
    equal = sum(not check.differences for check in verification.checks)
    lines.append(f"{equal} of {len(verification.checks)} checks equal at tolerance {verification.tolerance:g} "
                 f"({verification.seconds:.0f} s)" + ("" if verification.equal else
                                                      "; the result no longer comes from this code"))
    return lines


def main_verify(args) -> int:
    verification = from_command_line(verify, path=args.result, units=args.unit, out=args.out, tolerance=args.tolerance)
    if verification is None:
        return 2
    print("\n".join(report_lines(verification)))
    if args.write:
        Path(args.write).write_text(json.dumps(verification.to_dict(), indent=1) + "\n")
    return 0 if verification.equal else 1
