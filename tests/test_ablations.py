"""``lcl reproduce ablations``: the grids' verdicts and curves on results with known answers, run sharing
with the Table 1 reproduction and between grids, and the smoke profile of every grid end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lcl_core.reproduce.ablations import (ALL_COLUMNS, GRIDS, LATENT_COLUMNS, best_points, reproduce_ablations,
                                          seed_values)
from lcl_core.reproduce.claims import judge_all
from lcl_core.reproduce.report import ablation_markdown, plot_curves, verdict_agreement
from lcl_core.reproduce.stats import interval
from lcl_core.reproduce.table1 import PROFILES, reproduce_table1

from training_helpers import REPO, run_quietly

SEEDS = (0, 1, 2)


def per_seed_table(values: dict[str, dict[str, list[float]]]):
    """``{label: {column: [value per seed]}}`` -> ``per_seed(label, column)``; one list for every column
    under the key "*"."""
    def lookup(label, column):
        row = values.get(label)
        if row is None:
            return None
        series = row.get(column, row.get("*"))
        return None if series is None else dict(enumerate(series))
    return lookup


def judged(grid: str, values) -> dict[str, str]:
    claims = judge_all(per_seed_table(values), claims=GRIDS[grid].claims, preconditions=(),
                       composites=GRIDS[grid].composites)
    return {c["key"]: c["verdict"] for c in claims["claims"]}


# ---- verdicts on hand-made results -------------------------------------------------------------------------
def test_placement_matters_only_when_random_beats_both_fixed_placements():
    random, below = [30.0, 31.0, 32.0], [25.0, 26.5, 26.0]
    both_below = {"p = 0.5": {"*": random}, "p = 0.0": {"*": below}, "p = 1.0": {"*": below}}
    assert judged("placement", both_below) == {"random beats images always after": "holds",
                                                "random beats images always before": "holds",
                                                "placement randomisation matters": "holds"}
    # images after their sentence beat random placement on one column: that part fails, so does the claim
    after_wins = {**both_below, "p = 0.0": {"*": below, "COCO TR@1": [35.0, 36.0, 37.5]}}
    verdicts = judged("placement", after_wins)
    assert verdicts["random beats images always after"] == "fails"
    assert verdicts["placement randomisation matters"] == "fails"
    # one part unclear (a seed disagrees), the other holds: inconclusive
    noisy = {**both_below, "p = 1.0": {"*": [25.0, 35.0, 26.0]}}
    verdicts = judged("placement", noisy)
    assert verdicts["random beats images always before"] == "inconclusive"
    assert verdicts["placement randomisation matters"] == "inconclusive"


def test_loss_term_claims_read_the_right_columns():
    lcl = {"*": [30.0, 31.0, 32.0]}
    values = {"both (LCL)": lcl, "generation only": {"*": [10.0, 11.0, 10.5]},
              # contrastive only: better on classification, worse on captioning only
              "contrastive only": {"*": [40.0, 41.0, 42.0], "COCO B@4": [20.0, 21.0, 20.5],
                                   "COCO CIDEr": [20.0, 21.0, 20.5], "NoCaps CIDEr": [20.0, 21.0, 20.5]}}
    assert judged("terms", values) == {"contrastive term matters": "holds", "generation term adds captioning": "holds"}


def test_the_leakage_gap_claim_is_a_difference_of_paired_differences():
    grid = GRIDS["leakage"]
    points = {p.label: {"seeds": {}} for p in grid.points}
    lcl = [30.0, 32.0, 31.0]
    flat = {"LCL · leak 0.0": lcl, "LCL · leak 0.1": lcl, "LCL · leak 0.5": [29.5, 32.5, 30.0],
            "Flamingo-style · leak 0.0": [24.0, 27.0, 25.0], "Flamingo-style · leak 0.1": [22.0, 25.0, 23.0],
            "Flamingo-style · leak 0.5": [15.0, 19.0, 16.0]}
    def encoder(top1: float) -> dict:
        return {"tasks": {"cls/classification": {"task": "cls", "dataset": "classification",
                                                 "metrics": {"top1": {"mean": top1}}}}}

    transfer = {"encoders": {f"{label} · seed {s}": encoder(v[s]) for label, v in flat.items() for s in SEEDS}}
    per_seed = seed_values(points, transfer, SEEDS, grid.derived)
    assert per_seed("LCL − Flamingo-style · leak 0.5", "IN-1k") == {0: 14.5, 1: 13.5, 2: 14.0}
    assert per_seed("LCL − Flamingo-style · leak 0.0", "IN-1k") == {0: 6.0, 1: 5.0, 2: 6.0}
    assert per_seed("LCL · leak 0.5", "COCO TR@1") is None  # not measured: never a zero
    claims = {c["key"]: c for c in judge_all(per_seed, claims=grid.claims, preconditions=())["claims"]}
    gap = claims["LCL's lead grows with leakage"]["columns"]["IN-1k"]
    assert gap["difference"]["per_seed"] == [8.5, 8.5, 8.0] and gap["call"] == "supports"
    assert claims["generation-only degrades as text leaks"]["columns"]["IN-1k"]["call"] == "supports"
    assert claims["LCL holds as text leaks"]["columns"]["IN-1k"]["call"] == "supports"  # within ±3
    # the other columns were not measured: the claims cannot hold
    assert {c["verdict"] for c in claims.values()} == {"inconclusive"}


def synthetic_lambda_results():
    """A λ grid whose IN-1k rises to λ = 0.3 then falls, with known intervals."""
    grid = GRIDS["lambda"]
    means = {"λ = 0 (generation only)": 10.0, "λ = 0.01": 14.0, "λ = 0.03": 18.0, "λ = 0.1 (LCL)": 22.0,
             "λ = 0.3": 26.0, "λ = 1.0": 24.0, "contrastive only": 30.0, "random init": 12.0}
    offsets = (-1.0, 0.0, 1.0)
    values = {label: {column: [m + o for o in offsets] for column in ALL_COLUMNS} for label, m in means.items()}
    for label in values:
        values[label]["latent variance"] = [0.01, 0.011, 0.012]
        values[label]["effective rank"] = [20.0, 21.0, 22.0]
    per_seed = per_seed_table(values)
    summary = {label: {c: interval(list(per_seed(label, c).values())).to_dict() for c in ALL_COLUMNS + LATENT_COLUMNS}
               for label in means}
    points = {p.label: {"objective": p.objective, "source": p.source, "changes": p.changes, "knobs": p.knobs,
                        "x": p.x, "series": p.series, "seeds": {}} for p in grid.points}
    return grid, per_seed, summary, points


def test_the_best_lambda_is_the_highest_mean_on_the_curve_with_its_paired_difference():
    grid, per_seed, summary, _ = synthetic_lambda_results()
    best = best_points(grid, summary, per_seed)
    top1 = best["IN-1k"]
    # contrastive only (30) is off the λ axis: the best λ is 0.3, 4 points above the paper's 0.1 on every seed
    assert top1["label"] == "λ = 0.3" and top1["x"] == 0.3 and top1["reference"] == "λ = 0.1 (LCL)"
    assert top1["interval"]["mean"] == 26.0 and top1["interval"]["high"] - 26.0 == pytest.approx(4.302653 * 1 / 3 ** 0.5,
                                                                                               rel=1e-6)
    assert top1["minus_reference"]["per_seed"] == [4.0, 4.0, 4.0]


def test_curves_and_table_are_drawn_from_synthetic_results(tmp_path):
    grid, _, summary, points = synthetic_lambda_results()
    results = {"grid": "lambda", "title": grid.title, "axis": grid.axis, "scale": grid.scale, "profile": "synthetic",
               "coarsened": "", "command": "(synthetic)", "commit": "x", "recipe": {
                   "seeds": list(SEEDS), "preset": "tiny-fast", "steps": 1, "document_batch": 1, "lr": 1e-3,
                   "world_seed": 0},
               "machine": {"processor": "cpu", "cpus": 2, "torch": "x", "device": "cpu"},
               "worlds": {"default": {"folder": "w", "pair_batch": 3}}, "split_sizes": {}, "points": points,
               "summary": summary, "claims": {"preconditions": [], "claims": []},
               "best": best_points(grid, summary, per_seed_table({}))}
    timing = {"total_s": 61.0, "worlds_s": 1.0, "grids_in_this_command": ["lambda"],
              "units": {"a": {"reused": True}, "b": {"reused": False}}}
    plot_curves(results, tmp_path / "lambda.png")
    assert (tmp_path / "lambda.png").stat().st_size > 10_000
    for alone in ("λ = 0 (generation only)", "contrastive only"):  # one point rerun (notebook 06's exercises)
        plot_curves(results | {"points": {alone: points[alone]}}, tmp_path / "alone.png")
        assert (tmp_path / "alone.png").stat().st_size > 10_000
    text = ablation_markdown(results, timing)
    assert "| λ = 0.3 | 0.3 | 26.0 ± 2.5 |" in text and "1 of 2 point × seed units reused" in text
    assert "| IN-1k | λ = 0.3 | 26.0 [23.5, 28.5] |" in text


def test_every_grid_is_well_formed():
    for name, grid in GRIDS.items():
        labels = [p.label for p in grid.points]
        assert len(labels) == len(set(labels)), name
        named = set(labels) | set(grid.derived)
        for claim in grid.claims:
            assert {claim.first, claim.second} <= named, claim.key
        for composite in grid.composites:
            assert set(composite.parts) <= {c.key for c in grid.claims}
        assert any(p.objective is None for p in grid.points), f"{name}: no random-init reference"


def test_an_unknown_grid_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(KeyError, match="unknown ablation grid"):
        reproduce_ablations(profile="smoke", only=["lambda", "lamda"], out=tmp_path)
    assert not any(tmp_path.iterdir())


# ---- run sharing, and the smoke profile end to end ------------------------------------------------------------
def run_folders(out):
    return {p.name for p in (out / "runs").iterdir()}


@pytest.mark.slow
def test_points_identical_to_table1_rows_or_to_each_other_are_not_retrained(tmp_path):
    out = tmp_path / "reproduction"
    table = reproduce_table1(profile="smoke", seeds=[0], out=out, progress=lambda m: None)
    before = run_folders(out)
    documents = reproduce_ablations(profile="smoke", only=["lambda", "terms"], seeds=[0], out=out,
                                    progress=lambda m: None)
    new = run_folders(out) - before
    # λ = 0.01, 0.03, 0.3, 1 and contrastive only are new; λ = 0.1 is the LCL row, λ = 0 the Flamingo-style row,
    # and every point of the terms grid is a point of the λ grid
    assert sorted(name.split("-")[0] for name in new) == ["contrastive", "lcl", "lcl", "lcl", "lcl"]
    timing = json.loads((out / "report" / "ablations" / "lambda" / "timing.json").read_text())["units"]
    assert timing["λ = 0.1 (LCL) · seed 0"]["reused"] and timing["λ = 0 (generation only) · seed 0"]["reused"]
    assert timing["random init · seed 0"]["reused"] and not timing["λ = 0.3 · seed 0"]["reused"]
    lam, terms = documents["lambda"], documents["terms"]
    for column in ALL_COLUMNS:  # the shared runs give the table's numbers
        assert lam["summary"]["λ = 0.1 (LCL)"][column]["mean"] == table["summary"]["LCL"][column]["mean"]
        assert lam["summary"]["λ = 0 (generation only)"][column]["mean"] == \
            table["summary"]["Flamingo-style"][column]["mean"]
        assert terms["summary"]["contrastive only"][column] == lam["summary"]["contrastive only"][column]
    assert lam["points"]["λ = 0.3"]["run_spec"]["train"]["contrastive_weight"] == 0.3


def ablation_command(out, *grids) -> list[str]:
    return [sys.executable, "-m", "lcl_core.cli", "reproduce", "ablations", "--profile", "smoke", "--out", str(out),
            "--only", *grids]


@pytest.mark.slow
def test_smoke_ablations_write_every_grid_and_a_rerun_reuses_everything(tmp_path):
    out = tmp_path / "reproduction"
    first = run_quietly(ablation_command(out, *GRIDS))
    report = out / "report" / "ablations"
    for name in GRIDS:
        for file in ("results.json", "timing.json", "claims.json", "claims.md", f"{name}.md", f"figures/{name}.png"):
            assert (report / name / file).is_file(), f"{name}/{file}"
    results = {name: json.loads((report / name / "results.json").read_text()) for name in GRIDS}
    smoke = PROFILES["smoke"]
    for name, document in results.items():
        assert document["schema"] == "lcl-ablation/1" and document["recipe"]["seeds"] == list(smoke.seeds)
        for label, point in document["points"].items():
            assert set(point["seeds"]) == {"0", "1"}, (name, label)
    # leakage and alignment: one world per knob value, the default world being Table 1's
    worlds = results["leakage"]["worlds"]
    assert set(worlds) == {"default", '{"leak_prob": 0.0}', '{"leak_prob": 0.5}'}
    assert len({w["content_sha256"] for w in worlds.values()}) == 3
    assert len(results["alignment"]["worlds"]) == 3
    # data: a mixed run takes a document batch and a matched pair batch in the asked ratio
    data = results["data"]
    pair_batch = data["worlds"]["default"]["pair_batch"]
    mixed = data["points"]["documents + pairs 2:1"]["run_spec"]
    assert mixed["source"] == "mmc4+pairs" and mixed["mix"] == [2, 1]
    assert mixed["batch_sizes"] == [smoke.document_batch, pair_batch]
    assert data["points"]["pairs"]["run_spec"]["train"]["batch_size"] == pair_batch
    assert {c["key"] for c in results["placement"]["claims"]["claims"]} >= {"placement randomisation matters"}
    assert "[1/" in first.stdout and "reports in" in first.stdout
    before = {name: (report / name / "results.json").read_bytes() for name in GRIDS}
    again = run_quietly(ablation_command(out, *GRIDS))
    assert again.stdout.count(": reused ·") == again.stdout.count("] ")  # every unit reused
    assert {name: (report / name / "results.json").read_bytes() for name in GRIDS} == before


def _claims_file(folder, *claims):
    """A claims.json as a report writes it, reduced to what a comparison reads."""
    folder.mkdir(parents=True)
    records = [{"key": key, "verdict": verdict, "columns": {c: {"call": call} for c, call in calls.items()}}
               for key, verdict, calls in claims]
    (folder / "claims.json").write_text(json.dumps({"preconditions": [], "claims": records}))


def test_a_rerun_is_compared_claim_by_claim_and_a_changed_verdict_is_reported(tmp_path):
    first, second = tmp_path / "seeds-012", tmp_path / "seeds-345"
    _claims_file(first / "terms", ("term matters", "holds", {"IN-1k": "supports", "COCO TR@1": "supports"}))
    _claims_file(first / "placement", ("p = 0.5 > p = 0", "fails", {"IN-1k": "contradicts", "COCO TR@1": "unclear"}),
                 ("p = 0.5 > p = 1", "inconclusive", {"IN-1k": "unclear", "COCO TR@1": "unclear"}))
    _claims_file(first / "data", ("mix ≈ pairs", "inconclusive", {"IN-1k": "unclear"}))
    _claims_file(second / "terms", ("term matters", "holds", {"IN-1k": "supports", "COCO TR@1": "supports"}))
    _claims_file(second / "placement", ("p = 0.5 > p = 0", "fails", {"IN-1k": "contradicts", "COCO TR@1": "contradicts"}),
                 ("p = 0.5 > p = 1", "fails", {"IN-1k": "unclear", "COCO TR@1": "contradicts"}))
    table, agree = verdict_agreement(first, second)
    assert not agree
    assert "2 of 3 claims judged in both got the same verdict" in table
    assert "| terms | term matters | holds | holds | yes | 2 of 2 |" in table
    assert "| placement | p = 0.5 > p = 0 | fails | fails | yes | 1 of 2 |" in table
    assert "| placement | p = 0.5 > p = 1 | inconclusive | fails | **no** | 1 of 2 |" in table
    assert "Not in the second: `data`." in table
    assert verdict_agreement(first / "terms", second / "terms")[1]
    assert not verdict_agreement(first / "data", second / "terms")[1]  # different claims: nothing judged in both

    command = [sys.executable, "-m", "lcl_core.cli", "reproduce", "compare"]
    subprocess.run([*command, str(first / "terms"), str(second / "terms")], cwd=REPO, check=True)
    changed = subprocess.run([*command, str(first), str(second), "--write", str(tmp_path / "check.md")], cwd=REPO,
                             capture_output=True, text=True)
    assert changed.returncode == 1 and (tmp_path / "check.md").read_text() == changed.stdout == table
    empty = subprocess.run([*command, str(tmp_path / "nothing"), str(second)], cwd=REPO, capture_output=True, text=True)
    assert empty.returncode == 2 and "no claims.json under" in empty.stderr
