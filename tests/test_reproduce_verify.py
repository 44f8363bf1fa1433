"""``lcl reproduce verify``: the comparison rules on hand values, and the committed smoke result rerun at
the current commit — so a change that silently moves the reproduction's numbers fails here."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from lcl_core.paths import repo_root
from lcl_core.reproduce.verify import Check, leaves, profile_and_world, same, select, unit_names, verify

SMOKE_RESULT = repo_root() / "docs" / "results" / "table1" / "smoke"
# fp32 kernels differ between instruction sets: rerun with ATEN_CPU_CAPABILITY=avx2 or default, the smoke
# result moved no evaluation metric and no number by more than 8e-7 of its size (verify.py's docstring)
ANY_CPU = 1e-5
REGENERATE = ("the committed smoke result no longer comes from this code. If the change is meant to move results, "
              "rerun `lcl reproduce table1 --profile smoke --report docs/results/table1/smoke` from a clean "
              "commit and commit its report; otherwise find what moved them")


def test_values_are_compared_leaf_by_leaf_with_a_relative_tolerance_and_absent_ones_count():
    assert list(leaves({"a": {"b": [1.5, None]}, "c": "x"})) == [("a/b/0", 1.5), ("a/b/1", None), ("c", "x")]
    assert same(100.0, 100.0005, 1e-5) and not same(100.0, 100.002, 1e-5)  # 1e-5 of 100
    assert same(0.0, 1e-6, 1e-5) and not same(0.0, 2e-5, 1e-5)  # near 0: 1e-5 absolute
    assert same(float("nan"), float("nan"), 0.0) and not same(float("nan"), 1.0, 1.0)
    assert not same(True, 1, 1.0) and same("abc", "abc", 0.0) and not same(3, 3.5, 0.0)
    check = Check("unit").compare({"x": 1.0, "y": [2.0, 3.0], "gone": 1}, {"x": 1.0, "y": [2.0, 3.5], "new": 0}, 0.0)
    assert check.values == 5 and check.differences == [("y/1", 3.0, 3.5), ("gone", 1, "absent"), ("new", "absent", 0)]
    assert check.line() == "unit: 3 of 5 values differ"
    # the weights' bit digest is compared exactly or, under a tolerance, not at all
    digests = {"fingerprint": "sha256:aa"}, {"fingerprint": "sha256:bb"}
    assert Check("a").compare(*digests, 0.0).differences and Check("b").compare(*digests, 1e-5).values == 0


def test_units_are_picked_by_name_or_by_label_and_results_name_their_world():
    result = {"schema": "lcl-reproduction/1", "rows": {"LCL": {"seeds": {"0": {}, "1": {}}},
                                                       "CLIP (pairs)": {"seeds": {"0": {}}}}}
    names = unit_names(result)
    assert names == ["LCL · seed 0", "LCL · seed 1", "CLIP (pairs) · seed 0"]
    assert select(names, ["CLIP (pairs)", "LCL · seed 1"]) == ["LCL · seed 1", "CLIP (pairs) · seed 0"]
    assert select(names, None) == names
    with pytest.raises(KeyError, match="no unit 'CLIP' in the result"):
        select(names, ["CLIP"])
    assert profile_and_world("cpu") == ("cpu", "v1") and profile_and_world("cpu-calibrated") == ("cpu", "calibrated")


@pytest.mark.slow
def test_the_committed_smoke_result_comes_from_this_code():
    """Every unit of the committed smoke Table 1 rerun in a fresh folder: every number as committed."""
    verification = verify(SMOKE_RESULT, tolerance=ANY_CPU, progress=lambda message: None)
    result = json.loads((SMOKE_RESULT / "results.json").read_text())
    assert [check.name for check in verification.checks] == ["recipe", "world default", *unit_names(result)]
    assert all(check.values > 0 for check in verification.checks)
    moved = {check.name: check.differences[:3] for check in verification.checks if check.differences}
    assert not moved, f"{REGENERATE}: {moved}"


@pytest.mark.slow
def test_a_moved_number_is_reported_by_path_with_exit_status_1(tmp_path):
    """The same check against a copy of the result with one metric and one loss nudged by 1e-4 of their
    size — ten times the tolerance: both are found, nothing else, and the command says so."""
    result = json.loads((SMOKE_RESULT / "results.json").read_text())
    top1 = result["transfer"]["encoders"]["LCL · seed 1"]["tasks"]["cls/classification"]["metrics"]["top1"]
    top1["mean"] = top1["mean"] * (1 + 1e-4) + 1e-4
    result["rows"]["LCL"]["seeds"]["1"]["final"]["generation_loss"] *= 1 + 1e-4
    copy = tmp_path / "nudged"
    copy.mkdir()
    (copy / "results.json").write_text(json.dumps(result))
    done = subprocess.run([sys.executable, "-m", "lcl_core.cli", "reproduce", "verify", str(copy), "--unit",
                           "LCL · seed 1", "--tolerance", str(ANY_CPU), "--write", str(tmp_path / "v.json")],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ LCL · seed 1: 2 of" in done.stdout and "the result no longer comes from this code" in done.stdout
    written = json.loads((tmp_path / "v.json").read_text())
    differences = {d["path"]: d for check in written["checks"] for d in check["differences"]}
    assert set(differences) == {"evaluation/tasks/cls/classification/metrics/top1/mean",
                                "record/final/generation_loss"}
    assert not math.isclose(differences["record/final/generation_loss"]["now"],
                            differences["record/final/generation_loss"]["committed"], rel_tol=ANY_CPU)


def test_bad_input_gets_a_clear_message(tmp_path, capsys):
    from lcl_core.cli import main as lcl

    assert lcl(["reproduce", "verify", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    shutil.copy(SMOKE_RESULT / "results.json", tmp_path / "results.json")
    assert lcl(["reproduce", "verify", str(tmp_path), "--unit", "LCL · seed 7"]) == 2
    assert "no unit 'LCL · seed 7'" in capsys.readouterr().err
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "runs").mkdir()
    assert lcl(["reproduce", "verify", str(tmp_path), "--out", str(tmp_path / "work")]) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_an_ablation_grid_is_verified_point_by_point(tmp_path):
    """One point of the smoke placement grid and its random-init reference, rebuilt from the grid's own
    definition (GRIDS) and rerun: every value as the grid wrote it."""
    from lcl_core.reproduce import reproduce_ablations

    reproduce_ablations(profile="smoke", only=["placement"], points=["p = 0.0", "random init"], seeds=[0],
                        out=tmp_path / "work", report_dir=tmp_path / "report", progress=lambda message: None)
    verification = verify(tmp_path / "report" / "placement", progress=lambda message: None)
    assert [check.name for check in verification.checks] == ["recipe", "world default", "p = 0.0 · seed 0",
                                                             "random init · seed 0"]
    assert verification.equal and all(check.values > 100 for check in verification.checks[2:])
