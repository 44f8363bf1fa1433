"""The learners' exercises: each notebook ends with one to three, each changes parameters its notebook
declares and reads one number of its results; the direction is judged on results with known answers, and
one exercise runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from lcl_core.exercises import (EXERCISES, Exercise, exercise_id, exercise_markdown, exercises_for, judge, lookup,
                                plain_results, write_exercise_table)
from lcl_core.notebooks import EXECUTIONS, SEQUENCE, declared_parameters, notebook_path

from training_helpers import run_quietly


@pytest.mark.parametrize("name", SEQUENCE)
def test_every_notebook_ends_with_exercises_on_parameters_it_declares(name):
    found = exercises_for(name)
    assert 1 <= len(found) <= 3
    declared = declared_parameters(name)
    for exercise in found:
        assert set(exercise.change) | set(exercise.baseline) <= set(declared), exercise
        assert exercise.change != {k: exercise.baseline.get(k) for k in exercise.change}, "the change changes nothing"
    code = [c for c in nbformat.read(notebook_path(name), as_version=4).cells if c.cell_type == "code"]
    assert f'exercise_markdown("{name}")' in code[-1].source or f'exercise_markdown("{name}")' in code[-2].source
    shown = exercise_markdown(name)
    assert all(f"lcl notebooks exercise {name} {n} " in shown for n in range(1, len(found) + 1))
    assert all(e.question in shown for e in found) and not any(e.why in shown for e in found)  # answers kept back


def test_lookup_follows_names_that_hold_dots_and_refuses_what_is_not_a_number():
    results = {"rerun": {"summary": {"COCO TR@1": {"mean": 43.9}}}, "top1": {"random-init": 20.6},
               "a.b": {"c": 1}, "a": {"b": {"c": 2}}, "verdicts": {"x": "holds"}}
    assert lookup(results, "rerun.summary.COCO TR@1.mean") == 43.9
    assert lookup(results, "top1.random-init") == 20.6
    assert lookup(results, "a.b.c") == 1.0  # the longer name first
    with pytest.raises(KeyError, match="nothing for 'missing'"):
        lookup(results, "top1.missing")
    with pytest.raises(KeyError, match="not a number"):
        lookup(results, "verdicts.x")


def test_the_direction_is_judged_against_the_prediction():
    up = Exercise(notebook="04_pretrain", change={"steps": 2400}, question="q", key="last.acc", expected="higher",
                  why="w")
    assert judge(up, {"last": {"acc": 0.1}}, {"last": {"acc": 0.3}}) == {
        "key": "last.acc", "before": 0.1, "after": 0.3, "moved": "higher", "as_predicted": True}
    assert judge(up, {"last": {"acc": 0.3}}, {"last": {"acc": 0.1}})["as_predicted"] is False
    assert judge(up, {"last": {"acc": 0.3}}, {"last": {"acc": 0.3}})["moved"] == "unchanged"
    with pytest.raises(ValueError, match="'higher' or 'lower'"):
        Exercise(notebook="04_pretrain", change={}, question="q", key="k", expected="up", why="w")


def test_exercises_are_unique_per_notebook():
    seen = {(e.notebook, json.dumps(e.change, sort_keys=True), json.dumps(e.baseline, sort_keys=True), e.key)
            for e in EXERCISES}
    assert len(seen) == len(EXERCISES)


def test_a_plain_run_stands_in_for_a_baseline_only_when_nothing_was_changed(tmp_path):
    (tmp_path / "02_model.results.json").write_text('{"num_pairs": 3}')
    record = {"02_model": {"parameters": {"profile": "full", "out_dir": "x"}, "seconds": 7.5},
              "04_pretrain": {"parameters": {"profile": "full", "out_dir": "x", "steps": 400}, "seconds": 60.0}}
    (tmp_path / EXECUTIONS).write_text(json.dumps(record))
    assert plain_results(tmp_path, "02_model", "full") == ({"num_pairs": 3}, 7.5)
    with pytest.raises(ValueError, match="not the plain 'smoke' profile"):
        plain_results(tmp_path, "02_model", "smoke")
    (tmp_path / "04_pretrain.results.json").write_text("{}")
    with pytest.raises(ValueError, match="'steps': 400"):
        plain_results(tmp_path, "04_pretrain", "full")
    with pytest.raises(FileNotFoundError, match="no executed 03_objective"):
        plain_results(tmp_path, "03_objective", "full")
    refused = subprocess.run([sys.executable, "-m", "lcl_core.cli", "notebooks", "exercises", "--only", "03_objective",
                              "--plain-run", str(tmp_path), "--out", str(tmp_path / "work"), "--report",
                              str(tmp_path / "report")], capture_output=True, text=True)
    assert refused.returncode == 2 and "error:" in refused.stderr and "no executed 03_objective" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_table_shows_every_exercise_measured_or_not_and_counts_the_predictions_that_held(tmp_path):
    first, second = exercises_for("02_model")
    machine = {"cpu_model": "Some CPU", "cores": 2, "amx": False, "cpus": 2}
    for exercise, after, held, reused in ((first, 2.0, True, "runs/full"), (second, 2.0, False, None)):
        (tmp_path / f"{exercise_id(exercise)}.json").write_text(json.dumps({
            "before": 3.0, "after": after, "moved": "lower", "as_predicted": held, "seconds": {"before": 7.5, "after": 150},
            "commit": "0123456789abcdef", "machine": machine, "before_from": reused}))
    table = write_exercise_table(tmp_path).read_text()
    assert f"2 of {len(EXERCISES)} exercises measured; 1 moved as predicted" in table
    assert "| 02_model-1 | `pair_image_first = True` | `num_pairs` | lower | 3 → 2 (lower) | yes | 8 s (reused) + 2.5 min |" in table
    assert "| 02_model-2 | `preset = 'tiny'` | `attention_entropy` | higher | 3 → 2 (lower) | **no** | 8 s + 2.5 min |" in table
    assert "| 00_quickstart-1 | `steps = 900` | `margin_over_random_init` | higher | not measured | | |" in table
    assert "Some CPU (2 cores, AMX no, torch threads 2)" in table and "0123456789ab" in table


def test_a_notebook_runs_once_per_set_of_parameters_across_exercises(tmp_path, monkeypatch):
    # 08's second exercise is measured against the B/32 LAION preset, which its first exercise changed to
    import lcl_core.exercises as exercises
    from lcl_core.notebooks import NotebookRun

    ran = []

    def fake_run(*, profile, out_dir, only, overrides, progress):
        (name,) = only
        ran.append(dict(overrides))
        cost = {"tiny-fast": 1.0, "LCL_ViT-B-32_laion": 55.7, "LCL_ViT-B-32_mmc4": 491.5}
        results = exercises.results_path(out_dir, name)
        results.write_text(json.dumps({"cost": {"GFLOPs per image": cost[overrides.get("official_preset", "tiny-fast")]}}))
        return [NotebookRun(name=name, notebook=out_dir / f"{name}.ipynb", results=results, seconds=2.0)]

    monkeypatch.setattr(exercises, "run_notebooks", fake_run)
    exercises.measure_exercises(profile="smoke", out_dir=tmp_path / "work", report_dir=tmp_path / "report",
                                only=["08_scale_up"], progress=lambda _: None)
    assert ran == [{}, {"official_preset": "LCL_ViT-B-32_laion"}, {"official_preset": "LCL_ViT-B-32_mmc4"}]
    second = json.loads((tmp_path / "report" / "08_scale_up-2.json").read_text())
    assert second["before_from"] == "exercise 08_scale_up-1" and (second["before"], second["after"]) == (55.7, 491.5)
    assert "| 08_scale_up-2 |" in (tmp_path / "report" / "exercises.md").read_text()


@pytest.mark.slow
def test_an_exercise_runs_both_sides_and_says_which_way_the_number_moved(tmp_path):
    out = run_quietly([sys.executable, "-m", "lcl_core.cli", "notebooks", "exercise", "02_model", "1",
                       "--profile", "smoke", "--out", str(tmp_path)]).stdout
    # by hand: the document gives two pairs and the text-first coffee pair a third; image-first, its <soi> is at 0
    assert "num_pairs: 3 -> 2 (lower); predicted lower: as predicted" in out
    assert (tmp_path / "02_model-1.before.results.json").is_file() and (tmp_path / "02_model-1.after.results.json").is_file()
    listed = run_quietly([sys.executable, "-m", "lcl_core.cli", "notebooks", "exercise", "02_model"]).stdout
    assert "lcl notebooks exercise 02_model 2 --profile full" in listed


@pytest.mark.slow
def test_measuring_every_exercise_reuses_the_plain_run_and_resumes(tmp_path):
    plain, work, report = tmp_path / "plain", tmp_path / "work", tmp_path / "report"
    run_quietly([sys.executable, "-m", "lcl_core.cli", "notebooks", "run", "--profile", "smoke", "--only", "02_model",
                 "--out", str(plain)])
    measure = [sys.executable, "-m", "lcl_core.cli", "notebooks", "exercises", "--profile", "smoke", "--only",
               "02_model", "--plain-run", str(plain), "--out", str(work), "--report", str(report)]
    log = run_quietly(measure).stdout
    assert log.count("[02_model] running with") == 2  # the two changed sides; both baselines are the plain run
    outcomes = [json.loads((report / f"02_model-{n}.json").read_text()) for n in (1, 2)]
    assert [o["before_from"] for o in outcomes] == [str(plain)] * 2
    assert outcomes[0]["before"] == 3 and outcomes[0]["after"] == 2
    # the untrained pooler attends almost uniformly: entropy near log 16, then near log 36
    assert 2.6 < outcomes[1]["before"] < 2.78 and 3.4 < outcomes[1]["after"] < 3.59
    assert "2 moved as predicted" in (report / "exercises.md").read_text()
    assert "[02_model] running with" not in run_quietly(measure).stdout  # resumed: nothing left to run
