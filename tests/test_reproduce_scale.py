"""``lcl reproduce scale``: the trend rules on hand-made gaps, and the smoke profile end to end — the ×1 budget
is the Table 1 unit, reused, and its gap is the table's."""

from __future__ import annotations

import json
import math

import pytest

from lcl_core.reproduce.report import verdict_agreement
from lcl_core.reproduce.scale import BUDGETS, column_trend, group_verdict, reproduce_scale, slope
from lcl_core.reproduce.table1 import PROFILES, reproduce_table1
from lcl_core.transfer.results import TABLE1_COLUMNS, column_value

DECADES = {0: 1e3, 1: 1e4, 2: 1e5}  # images seen at three budgets: log10 = 3, 4, 5


def test_the_slope_is_least_squares_against_log_images():
    assert slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx(2.0)
    assert slope([3.0, 4.0, 5.0], [1.0, 0.0, 2.0]) == pytest.approx(0.5)  # (−1·0 + 0·(−1) + 1·1) / 2
    with pytest.raises(ValueError, match="two different budgets"):
        slope([4.0, 4.0], [1.0, 2.0])


def test_a_gap_that_shrinks_narrows_and_crosses_zero_where_its_line_does():
    # LCL behind by 4 and 5 points at 1e3 images, gaining 2 points per decade in both seeds
    gaps = {0: {0: -4.0, 1: -2.0, 2: 0.0}, 1: {0: -5.0, 1: -3.0, 2: -1.0}}
    trend = column_trend(gaps, {0: DECADES, 1: DECADES})
    assert trend["slope"]["mean"] == pytest.approx(2.0) and trend["call"] == "narrows"
    assert trend["mean_gap"] == pytest.approx(-2.5) and trend["mean_log10_images_seen"] == pytest.approx(4.0)
    # the fitted line −2.5 + 2 (x − 4) is 0 at x = 5.25: beyond the largest budget (1e5)
    assert trend["crossing"]["log10_images_seen"] == pytest.approx(5.25)
    assert trend["crossing"]["images_seen"] == pytest.approx(10 ** 5.25) and trend["crossing"]["extrapolated"]
    # a gap that changes sign between the budgets: mean −0.25, slope 2, so the line crosses 0 at 4.125, inside
    inside = column_trend({0: {0: -2.0, 1: 0.0, 2: 2.0}, 1: {0: -2.5, 1: -0.5, 2: 1.5}}, {0: DECADES, 1: DECADES})
    assert inside["call"] == "narrows" and inside["crossing"]["log10_images_seen"] == pytest.approx(4.125)
    assert not inside["crossing"]["extrapolated"]


def test_a_lead_that_grows_widens_and_an_undecided_slope_is_flat():
    growing = {0: {0: 1.0, 1: 2.0, 2: 3.0}, 1: {0: 2.0, 1: 3.1, 2: 4.0}, 2: {0: 0.5, 1: 1.4, 2: 2.6}}
    trend = column_trend(growing, {s: DECADES for s in growing})
    per_seed = [1.0, 1.0, 1.05]  # slopes by hand: (y2 − y0) / 2 for three evenly spaced points
    assert trend["slope"]["per_seed"] == pytest.approx(per_seed)
    assert trend["slope"]["low"] > 0 and trend["call"] == "widens" and trend["crossing"] is None
    behind_and_losing = {s: {b: -v for b, v in gaps.items()} for s, gaps in growing.items()}
    assert column_trend(behind_and_losing, {s: DECADES for s in growing})["call"] == "widens"
    ahead_and_losing = {s: {b: 10 - v for b, v in gaps.items()} for s, gaps in growing.items()}
    assert column_trend(ahead_and_losing, {s: DECADES for s in growing})["call"] == "narrows"
    split = {0: {0: 0.0, 1: 1.0, 2: 2.0}, 1: {0: 0.0, 1: -1.0, 2: -2.0}}
    assert column_trend(split, {0: DECADES, 1: DECADES})["call"] == "flat"
    one_seed = column_trend({0: growing[0]}, {0: DECADES})
    assert one_seed["call"] == "flat" and math.isnan(one_seed["slope"]["low"])  # no interval from one seed


def test_a_group_narrows_or_widens_only_when_every_column_does():
    assert group_verdict({"a": "narrows", "b": "narrows"}) == "narrows"
    assert group_verdict({"a": "widens"}) == "widens"
    assert group_verdict({"a": "narrows", "b": "flat"}) == "flat"
    assert group_verdict({"a": "narrows", "b": "widens", "c": "flat"}) == "mixed"
    assert group_verdict({"a": "flat"}) == "flat"


def test_every_profile_spans_at_least_eight_times_and_holds_the_table_budget():
    for profile, multipliers in BUDGETS.items():
        assert 1.0 in multipliers and len(multipliers) >= 4 and max(multipliers) / min(multipliers) >= 8
        assert list(multipliers) == sorted(multipliers) and profile in PROFILES


@pytest.mark.slow
def test_smoke_scale_reuses_the_table1_units_and_its_gap_at_x1_is_the_tables(tmp_path):
    out = tmp_path / "work"
    table = reproduce_table1(profile="smoke", seeds=[0], out=out, progress=lambda message: None)
    results = reproduce_scale(profile="smoke", seeds=[0], out=out, progress=lambda message: None)
    report = out / "report" / "scale"
    timing = json.loads((report / "timing.json").read_text())
    reused = {name for name, unit in timing["units"].items() if unit["reused"]}
    assert reused == {"LCL · ×1 · seed 0", "CLIP · ×1 · seed 0", "random init · seed 0"}
    assert [b["steps"] for b in results["budgets"]] == [2, 3, 6, 12]
    seen = [b["images_seen"] for b in results["budgets"]]
    table_seen = [table["rows"][row]["seeds"]["0"]["images_seen"] for row in ("LCL", "CLIP")]  # matched, ± rounding
    assert seen == sorted(seen) and seen[1] == pytest.approx(sum(table_seen) / 2)
    x1 = results["budgets"].index(next(b for b in results["budgets"] if b["multiplier"] == 1.0))
    for header, *_ in TABLE1_COLUMNS:
        lcl, clip = (column_value(table["transfer"], f"{row} · seed 0", header)["mean"] for row in ("LCL", "CLIP"))
        assert results["gaps"][header][x1]["mean"] == pytest.approx(lcl - clip)
    assert {c["verdict"] for c in results["claims"]["claims"]} <= {"narrows", "widens", "mixed", "flat"}
    for name in ("scale.md", "claims.json", "results.json", "figures/scale_gap.png", "figures/scale_rows.png"):
        assert (report / name).is_file(), name
    text, same = verdict_agreement(report, report)  # lcl reproduce compare reads the scale claims
    assert same and "3 of 3 claims" in text
