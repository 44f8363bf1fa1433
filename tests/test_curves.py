"""What a person looks at after training: ``lcl plot`` and the TensorBoard events, both drawn from what the
trainer logged, checked value by value against ``metrics.jsonl``."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from lcl_core.curves import histories
from lcl_core.diagnostics import metric_series
from lcl_core.training import train_run
from lcl_core.training.checkpointing import list_checkpoints
from lcl_core.training.runs import read_history
from lcl_core.viz import RUN_PANELS, plot_training

from training_helpers import REPO, losses, pretrain_command, run_quietly, tiny_spec


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny LCL run (4 steps) and a generation-only run (3 steps), which logs no contrastive metric."""
    root = tmp_path_factory.mktemp("runs")
    quiet = {"root": root, "progress": lambda message: None}
    lcl = train_run(tiny_spec(steps=4), label="LCL", **quiet)
    generation = train_run(tiny_spec(steps=3).changed(objective="generation"), label="generation only", **quiet)
    return lcl.folder, generation.folder


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_every_panel_draws_each_runs_logged_values_in_one_colour_per_run(two_runs):
    runs = histories(list(two_runs))
    assert list(runs) == ["LCL", "generation only"] and [len(r) for r in runs.values()] == [4, 3]
    axes = visible_axes(plot_training(runs, panels=RUN_PANELS))
    assert [ax.get_title() for ax in axes] == [title for _, _, title in RUN_PANELS]
    for ax, (key, _, title) in zip(axes, RUN_PANELS):
        lines = lines_by_label(ax)
        for name, records in runs.items():
            steps, values = metric_series(records, key)
            if not steps:
                assert name not in lines, f"{title}: {name} logs no {key}"
                continue
            assert list(lines[name].get_xdata()) == steps and list(lines[name].get_ydata()) == values
    panel = dict(zip((key for key, _, _ in RUN_PANELS), axes))
    assert set(lines_by_label(panel["contrastive_loss"])) == {"LCL"}  # generation only has no contrastive term
    assert set(lines_by_label(panel["generation_loss"])) == {"LCL", "generation only"}
    # the InfoNCE bound, by hand: log N − L_con of each logged LCL step
    lcl = runs["LCL"]
    assert list(lines_by_label(panel["info_nce_bound"])["LCL"].get_ydata()) == pytest.approx(
        [math.log(r["num_pairs"]) - r["contrastive_loss"] for r in lcl])
    colours = {lines_by_label(ax)["LCL"].get_color() for ax in axes}
    assert len(colours) == 1  # LCL keeps its colour in the panels where generation only is absent
    alone = visible_axes(plot_training({"generation only": runs["generation only"]}, panels=RUN_PANELS))
    assert [ax.get_title() for ax in alone] == ["training loss", "next-token prediction",
                                                "latent spread (collapse diagnostic)", "latent effective rank (collapse)"]


def test_lcl_plot_writes_the_panels_of_several_runs_to_a_png(two_runs, tmp_path):
    out = tmp_path / "figures" / "curves.png"
    command = [sys.executable, "-m", "lcl_core.cli", "plot", *map(str, two_runs), "--out", str(out), "--title", "two"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{out}: {len(RUN_PANELS)} panels; LCL: 4 steps, generation only: 3 steps" in result.stdout
    with Image.open(out) as image:
        width, height = image.size
    assert image.format == "PNG" and width > 2 * height > 400  # two rows of four panels


def test_runs_sharing_a_label_are_told_apart_and_bad_folders_are_refused(two_runs, tmp_path):
    copy = tmp_path / "lcl-copy"
    shutil.copytree(two_runs[0], copy)
    assert list(histories([two_runs[0], copy])) == [f"LCL ({two_runs[0].name})", "LCL (lcl-copy)"]
    with pytest.raises(ValueError, match="named twice"):
        histories([copy, copy])
    command = [sys.executable, "-m", "lcl_core.cli", "plot"]
    not_a_run = subprocess.run([*command, str(tmp_path / "nothing")], cwd=REPO, capture_output=True, text=True)
    assert not_a_run.returncode == 2 and "has no metrics.jsonl" in not_a_run.stderr
    (copy / "metrics.jsonl").write_text("")
    empty = subprocess.run([*command, str(copy)], cwd=REPO, capture_output=True, text=True)
    assert empty.returncode == 2 and "nothing logged yet in LCL" in empty.stderr


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def logged(folder, key) -> list[tuple[int, float]]:
    return [(record["step"], pytest.approx(record[key], rel=1e-6)) for record in read_history(folder)]


def test_tensorboard_events_hold_the_logged_values(two_runs):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    for folder in two_runs:
        scalars = tensorboard_scalars(folder)
        for key in ("loss", "generation_loss", "lr", "grad_norm", "latent_variance", "images_seen"):
            assert scalars[f"train/{key}"] == logged(folder, key), key
    lcl, generation = (tensorboard_scalars(folder) for folder in two_runs)
    assert lcl["train/contrastive_accuracy"] == logged(two_runs[0], "contrastive_accuracy")
    assert "train/contrastive_accuracy" not in generation  # None in metrics.jsonl: not a number to draw


@pytest.mark.slow
def test_a_resumed_run_shows_each_step_once_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    settings = ("--steps", "8", "--save-every", "4")
    run = tmp_path / "run"
    run_quietly(pretrain_command(run, *settings))
    first_sitting = tensorboard_scalars(run)["train/loss"]
    # a crash after step 8 was logged and flushed but before it was saved: only the step-4 checkpoint survives
    newest = list_checkpoints(run / "checkpoints")[0]
    assert newest.name.endswith("8")
    shutil.rmtree(newest), shutil.rmtree(run / "final")
    result = run_quietly(pretrain_command(run, *settings, "--resume"))
    assert "resuming" in result.stderr
    loss = tensorboard_scalars(run)["train/loss"]
    assert [step for step, _ in loss] == list(range(1, 9))  # steps 5-8 of the first sitting purged, not doubled
    assert loss == [(step, pytest.approx(value, rel=1e-6)) for step, value in losses(run).items()]
    assert loss == [(step, pytest.approx(value, rel=1e-6)) for step, value in first_sitting]  # exact resume
