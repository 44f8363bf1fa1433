"""``lcl reproduce table1``: the verdict rules on results with known answers, the statistics against
hand values, and the smoke profile end to end — its schema, and a killed reproduction that resumes to a
byte-identical results.json."""

from __future__ import annotations

import json
import math
import shutil
import sys

import pytest

from lcl_core.reproduce.claims import CLAIMS, EQUIVALENCE_MARGIN, PRECONDITIONS, Claim, judge, judge_all
from lcl_core.reproduce.stats import binomial_half_width, interval, paired_difference
from lcl_core.cli import main as lcl_main
from lcl_core.reproduce import table1
from lcl_core.reproduce.table1 import DIRTY, PROFILES, ROWS, source_commit
from lcl_core.transfer.results import TABLE1_COLUMNS

from training_helpers import kill_when, run_quietly


# ---- statistics ---------------------------------------------------------------------------------------
def test_interval_is_the_student_t_interval():
    values = [20.0, 22.0, 27.0]
    mean, sd = 23.0, math.sqrt(((20 - 23) ** 2 + (22 - 23) ** 2 + (27 - 23) ** 2) / 2)
    ci = interval(values)
    assert ci.mean == mean and ci.n == 3
    assert ci.high - mean == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)  # t_0.975 with 2 df
    assert math.isnan(interval([5.0]).low)
    # paired: the seed-to-seed noise both rows share cancels
    a, b = {0: 30.0, 1: 40.0, 2: 35.0}, {0: 28.0, 1: 38.0, 2: 33.5}
    difference = paired_difference(a, b)
    assert difference.per_seed == (2.0, 2.0, 1.5) and difference.low > 0
    assert binomial_half_width(30.0, 2480) == pytest.approx(100 * 1.959964 * math.sqrt(0.21 / 2480))


# ---- verdict rules on hand-made results ---------------------------------------------------------------------
def table(values: dict[str, dict[str, list[float]]]):
    """``{row: {column: [value per seed]}}`` -> the ``per_seed(row, column)`` callable the rules read."""
    return lambda row, column: (dict(enumerate(values[row][column])) if column in values.get(row, {}) else None)


GREATER = Claim("g", "first beats second", "greater", "A", "B", ("IN-1k", "COCO TR@1"))
SAME = Claim("e", "first matches second", "equivalent", "A", "B", ("IN-1k", "COCO TR@1"), EQUIVALENCE_MARGIN)


def test_a_greater_claim_holds_fails_or_is_inconclusive():
    clearly_better = table({"A": {"IN-1k": [30, 31, 32], "COCO TR@1": [50, 52, 51]},
                            "B": {"IN-1k": [20, 22, 21], "COCO TR@1": [40, 41, 39]}})
    assert judge(GREATER, clearly_better)["verdict"] == "holds"
    reversed_on_one = table({"A": {"IN-1k": [30, 31, 32], "COCO TR@1": [30, 31, 29]},
                             "B": {"IN-1k": [20, 22, 21], "COCO TR@1": [40, 41, 39]}})
    judged = judge(GREATER, reversed_on_one)
    assert judged["verdict"] == "fails" and judged["columns"]["COCO TR@1"]["call"] == "contradicts"
    noisy = table({"A": {"IN-1k": [30, 20, 32], "COCO TR@1": [50, 52, 51]},
                   "B": {"IN-1k": [25, 27, 26], "COCO TR@1": [40, 41, 39]}})
    judged = judge(GREATER, noisy)
    assert judged["verdict"] == "inconclusive" and judged["columns"]["IN-1k"]["call"] == "unclear"
    assert judge(GREATER, table({"A": {"IN-1k": [1, 2, 3]}, "B": {"IN-1k": [0, 1, 2]}}))["verdict"] == "inconclusive"


def test_an_equivalence_claim_needs_its_interval_inside_the_margin():
    close = table({"A": {"IN-1k": [30.0, 31.0, 32.0], "COCO TR@1": [50.0, 51.0, 52.0]},
                   "B": {"IN-1k": [29.5, 31.2, 31.6], "COCO TR@1": [50.4, 50.5, 52.4]}})
    assert judge(SAME, close)["verdict"] == "holds"
    far = table({"A": {"IN-1k": [30.0, 31.0, 32.0], "COCO TR@1": [50.0, 51.0, 52.0]},
                 "B": {"IN-1k": [20.0, 21.5, 22.0], "COCO TR@1": [50.4, 50.5, 52.4]}})
    assert judge(SAME, far)["verdict"] == "fails"
    wide = table({"A": {"IN-1k": [30.0, 36.0, 32.0], "COCO TR@1": [50.0, 51.0, 52.0]},
                  "B": {"IN-1k": [31.0, 30.0, 31.5], "COCO TR@1": [50.4, 50.5, 52.4]}})
    judged = judge(SAME, wide)  # a mean difference of 1.8 with an interval reaching past the margin
    assert judged["verdict"] == "inconclusive" and judged["columns"]["IN-1k"]["call"] == "unclear"


def test_a_claim_whose_preconditions_fail_is_inconclusive_whatever_its_columns_say():
    seeds = lambda base: [base, base + 0.5, base + 1.0]  # noqa: E731
    columns = [c[0] for c in TABLE1_COLUMNS]
    values = {"random init": {c: seeds(10.0) for c in columns},
              "LCL": {c: seeds(20.0) for c in columns}, "CLIP": {c: seeds(20.2) for c in columns},
              "Flamingo-style": {c: seeds(12.0) for c in columns}, "Emu-style": {c: seeds(11.0) for c in columns},
              "LCL (pairs)": {c: seeds(20.0) for c in columns}, "CLIP (pairs)": {c: seeds(10.0) for c in columns}}
    judged = judge_all(table(values))
    verdicts = {c["key"]: c["verdict"] for c in judged["claims"]}
    assert verdicts["generation-only collapses"] == verdicts["regression collapses harder"] == "holds"
    assert verdicts["LCL ≈ CLIP on classification and retrieval"] == "holds"
    assert verdicts["LCL > CLIP on captioning"] == "fails"  # CLIP is 0.2 above LCL on every seed
    pairs = next(c for c in judged["claims"] if c["key"] == "on pairs LCL ≈ CLIP")
    assert pairs["verdict"] == "inconclusive" and "CLIP (pairs) beats random init" in pairs["reason"]
    assert {c.key for c in PRECONDITIONS} >= {key for claim in CLAIMS for key in claim.preconditions}


# ---- the smoke profile end to end -------------------------------------------------------------------------
def reproduce_command(out, *extra) -> list[str]:
    return [sys.executable, "-m", "lcl_core.cli", "reproduce", "table1", "--profile", "smoke", "--out", str(out),
            *extra]


@pytest.mark.slow
def test_smoke_reproduction_writes_the_report_and_resumes_to_identical_results(tmp_path):
    out = tmp_path / "table1"
    kill_when(reproduce_command(out), lambda: len(list((out / "evaluations").glob("*.json"))) >= 7)  # seed 0, part-way
    assert not (out / "report" / "results.json").exists()
    resumed = run_quietly(reproduce_command(out))
    assert "reused" in resumed.stdout and "report in" in resumed.stdout
    after_kill = (out / "report" / "results.json").read_bytes()

    shutil.rmtree(out / "runs"), shutil.rmtree(out / "evaluations"), shutil.rmtree(out / "report")
    run_quietly(reproduce_command(out))  # the same reproduction, uninterrupted, from scratch
    assert (out / "report" / "results.json").read_bytes() == after_kill

    results = json.loads(after_kill)
    assert results["schema"] == "lcl-reproduction/1" and results["recipe"]["seeds"] == list(PROFILES["smoke"].seeds)
    assert set(results["rows"]) == {row.label for row in ROWS}
    for label, row in results["rows"].items():
        assert set(row["seeds"]) == {"0", "1"}
        if row["objective"]:
            assert all(seed["images_seen"] > 0 and seed["tokens_seen"] > 0 for seed in row["seeds"].values())
    images = {label: [s["images_seen"] for s in row["seeds"].values()] for label, row in results["rows"].items()}
    assert images["CLIP"] == images["CoCa"] == images["BLIP2"] == images["LCL (pairs)"]  # the same pairs per step
    lcl = results["summary"]["LCL"]["IN-1k"]
    assert lcl["n"] == 2 and lcl["low"] <= lcl["mean"] <= lcl["high"] and lcl["paper"] == 75.2
    # each task's number is the mean of the profile's heads, with head seeds from the pre-training seed on
    head_seeds = PROFILES["smoke"].head_seeds
    for seed in (0, 1):
        tasks = results["transfer"]["encoders"][f"LCL · seed {seed}"]["tasks"]
        top1 = tasks["cls/classification"]["metrics"]["top1"]
        assert len(top1["per_seed"]) == head_seeds["cls"] and top1["mean"] == pytest.approx(
            sum(top1["per_seed"]) / head_seeds["cls"])
        assert len(tasks["ret/coco"]["metrics"]["tr@1"]["per_seed"]) == head_seeds["ret"]
    assert results["transfer"]["protocol"]["seeds_per_task"] == {task: list(range(count))
                                                                 for task, count in head_seeds.items()}
    assert {c["verdict"] for c in results["claims"]["claims"]} <= {"holds", "fails", "inconclusive"}
    for name in ("table1.md", "claims.md", "claims.json", "timing.json", "figures/table1_columns.png",
                 "figures/latent_collapse.png"):
        assert (out / "report" / name).is_file(), name
    assert "| LCL | MMC4 |" in (out / "report" / "table1.md").read_text()


@pytest.mark.slow
def test_smoke_reproduction_runs_on_either_world_and_says_which(tmp_path):
    """The calibrated world is the default; v1 (the world of the results committed before it) on request."""
    for world, profile, style in ((None, "smoke-calibrated", "restating"), ("v1", "smoke", None)):
        out = tmp_path / (world or "default")
        run_quietly(reproduce_command(out, "--seeds", "0", *(("--world", world) if world else ())))
        results = json.loads((out / "report" / "results.json").read_text())
        assert results["profile"] == profile and f"--world {world or 'calibrated'}" in results["command"]
        knobs = results["recipe"]["world"].get("knobs", {})  # the smoke profile's v1 world changes no knob
        assert knobs.get("page_style", "v1") == (style or "v1")
        manifest = json.loads(next((out / "worlds").glob("*/world.json")).read_text())
        assert manifest["knobs"].get("page_style") == style  # a v1 world's manifest is written as it always was
        assert manifest["content_sha256"] == results["world"]["content_sha256"]
    assert {c["verdict"] for c in results["claims"]["claims"]} <= {"holds", "fails", "inconclusive"}


def test_a_reproduction_from_uncommitted_code_is_refused_unless_asked_for_and_then_says_so(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.setattr(table1, "current_commit", lambda: "c0ffee")
    assert source_commit("cpu") == "c0ffee"
    monkeypatch.setattr(table1, "current_commit", lambda: "c0ffee" + DIRTY)
    assert source_commit("cpu", allow_dirty=True) == "c0ffee (with uncommitted changes)"
    assert source_commit("smoke") == "c0ffee" + DIRTY  # the path check is never a result
    with pytest.raises(ValueError, match="uncommitted changes .* or pass --allow-dirty"):
        source_commit("gpu")
    for table in ("table1", "ablations"):  # refused before anything is built or written
        out = tmp_path / table
        assert lcl_main(["reproduce", table, "--profile", "cpu", "--world", "calibrated", "--out", str(out)]) == 2
        assert "commit them first" in capsys.readouterr().err and not out.exists()
