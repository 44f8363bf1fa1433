"""The learners' exercises: each notebook ends with two or three, each changes parameters its notebook
declares and reads one number of its results; the direction is judged on results with known answers, and
one exercise runs end to end."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest

from lcl_core.exercises import EXERCISES, Exercise, exercise_markdown, exercises_for, judge, lookup
from lcl_core.notebooks import SEQUENCE, declared_parameters, notebook_path

from training_helpers import run_quietly


@pytest.mark.parametrize("name", SEQUENCE)
def test_every_notebook_ends_with_exercises_on_parameters_it_declares(name):
    found = exercises_for(name)
    assert 2 <= len(found) <= 3
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


@pytest.mark.slow
def test_an_exercise_runs_both_sides_and_says_which_way_the_number_moved(tmp_path):
    out = run_quietly([sys.executable, "-m", "lcl_core.cli", "notebooks", "exercise", "02_model", "1",
                       "--profile", "smoke", "--out", str(tmp_path)]).stdout
    # by hand: the vision tower of tiny-fast has 887,296 parameters, tiny's 2,863,488
    assert "parameters.vision: 8.873e+05 -> 2.863e+06 (higher); predicted higher: as predicted" in out
    assert (tmp_path / "02_model.before.results.json").is_file() and (tmp_path / "02_model.after.results.json").is_file()
    listed = run_quietly([sys.executable, "-m", "lcl_core.cli", "notebooks", "exercise", "02_model"]).stdout
    assert "lcl notebooks exercise 02_model 2 --profile full" in listed
