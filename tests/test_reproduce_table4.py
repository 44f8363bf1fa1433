"""``lcl reproduce table4``: the non-inferiority rule on hand-made differences, and the smoke profile end to end —
the Table 1 pair rows reused, every chain and control run, the report in the paper's layout, a rerun reusing all."""

from __future__ import annotations

import json

import pytest

from lcl_core.reproduce.claims import Claim, column_call
from lcl_core.reproduce.stats import interval
from lcl_core.reproduce.table4 import (BLIND, CLAIMS, COLUMNS, COMPOSITES, ENCODERS, PRECONDITIONS, SETTINGS,
                                       reproduce_table4)


def test_non_inferiority_is_the_low_end_above_minus_the_margin():
    claim = Claim("k", "s", "noninferior", "a", "b", ("average",), 3.0)
    assert column_call(claim, interval([-1.0, -2.0, -1.5])) == "supports"  # −1.5 ± 1.24: low −2.74 > −3
    assert column_call(claim, interval([-4.0, -5.0, -4.5])) == "contradicts"  # high −3.26 < −3
    assert column_call(claim, interval([-1.0, -5.0, -3.0])) == "unclear"  # [−7.97, 1.97] straddles −3
    assert column_call(claim, interval([2.0])) == "unclear"  # one seed: no interval


def test_the_claims_are_fixed_before_any_run():
    assert len(PRECONDITIONS) == len(ENCODERS) * len(SETTINGS) * 2
    assert {c.first for c in PRECONDITIONS} == {f"{r} · {s}" for r in ENCODERS for s in SETTINGS}
    assert {c.second for c in PRECONDITIONS} == {"random init · frozen", "random init · full", BLIND}
    assert all(c.columns == ("VQAv2", "GQA", "POPE", "MME", "MMB") for c in PRECONDITIONS)
    assert all(c.kind == "noninferior" and c.columns == ("average",) and c.margin == 3.0 for c in CLAIMS)
    assert set(COMPOSITES[0].parts) == {c.key for c in PRECONDITIONS}


@pytest.mark.slow
def test_the_smoke_table_runs_reports_and_resumes(tmp_path):
    out = tmp_path / "work"
    results = reproduce_table4(profile="smoke", out=out, progress=lambda message: None)
    report = out / "report" / "table4"
    assert {p.name for p in report.iterdir()} >= {"results.json", "timing.json", "table4.md", "claims.md",
                                                   "claims.json", "figures"}
    assert (report / "figures" / "table4.png").stat().st_size > 0
    labels = {f"{row} · {setting}" for row in (*ENCODERS, "random init") for setting in SETTINGS} | {BLIND}
    assert set(results["summary"]) == labels
    assert all(set(results["summary"][label]) == {h for h, *_ in COLUMNS} for label in labels)
    seeds = results["recipe"]["seeds"]
    assert len(results["chains"]) == (len(ENCODERS) + 2) * len(seeds)
    assert [c["key"] for c in results["claims"]["claims"]] == [c.key for c in CLAIMS] + [c.key for c in COMPOSITES]
    assert all(c["verdict"] in ("holds", "fails", "inconclusive") for c in results["claims"]["claims"])
    table = (report / "table4.md").read_text()
    assert "| frozen | *paper: LCL (LAION-400M + MMC4)* | 70.7 | 57.4 | 69.7 | 81.7 | 1291.7 | 55.3 | — |" in table
    again = reproduce_table4(profile="smoke", out=out, progress=lambda message: None)
    timing = json.loads((report / "timing.json").read_text())
    assert all(chain["reused"] for chain in timing["chains"].values())
    assert again["summary"] == results["summary"] and again["claims"] == results["claims"]
