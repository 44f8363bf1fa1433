"""What the notebooks' widgets are made of. ``lcl_core.viz.explore``, the one way a notebook makes a widget:
headless it draws once at the starting values; with ipywidgets each keyword becomes the control its values
call for, and moving one redraws. And what they draw: pages of a world drawn in memory (01's page knobs) and
each loss term's gradient on a module (03's λ slider), against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lcl_core.data.mmc4 import read_documents
from lcl_core.data.world import V1, build_world, draw_pages
from lcl_core.diagnostics import term_gradients, weighted_share
from lcl_core.viz import explore

from test_data_world import SMALL_EVAL


def test_headless_draws_once_at_the_first_or_the_start_values():
    drawn = []
    explore(lambda **values: drawn.append(values), interactive=False, index=range(3), label=["b", "a"])
    assert drawn == [{"index": 0, "label": "b"}]
    drawn.clear()
    explore(lambda **values: drawn.append(values), interactive=False, start={"lam": 0.1}, lam=[0.0, 0.1, 1.0])
    assert drawn == [{"lam": 0.1}]


@pytest.mark.parametrize("controls, start, message", [
    ({}, None, "at least one control"),
    ({"lam": []}, None, "has no values"),
    ({"lam": [0.0, 1.0]}, {"lam": 0.5}, "not one of that control's values"),
    ({"lam": [0.0, 1.0]}, {"other": 0.0}, "not one of that control's values"),
])
def test_bad_controls_are_refused_before_anything_is_drawn(controls, start, message):
    drawn = []
    with pytest.raises(ValueError, match=message):
        explore(lambda **values: drawn.append(values), interactive=False, start=start, **controls)
    assert drawn == []


def test_interactive_controls_by_kind_and_a_move_redraws(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects: shown.extend(objects))
    drawn = []
    explore(lambda **values: drawn.append(values), interactive=True, start={"lam": 0.1},
            index=range(0, 9, 2), lam=[0.0, 0.1, 1.0], label=["LCL", "CLIP"])
    row, output = shown
    index, lam, label = row.children
    assert isinstance(output, widgets.Output)
    assert isinstance(index, widgets.IntSlider) and (index.min, index.max, index.step, index.value) == (0, 8, 2, 0)
    assert isinstance(lam, widgets.SelectionSlider) and list(lam.options) == [0.0, 0.1, 1.0] and lam.value == 0.1
    assert isinstance(label, widgets.Dropdown) and label.value == "LCL"
    assert drawn == [{"index": 0, "lam": 0.1, "label": "LCL"}]  # drawn once when shown
    lam.value = 1.0
    label.value = "CLIP"
    assert drawn[1:] == [{"index": 0, "lam": 1.0, "label": "LCL"}, {"index": 0, "lam": 1.0, "label": "CLIP"}]


def test_drawn_pages_are_the_pages_a_built_world_holds(tmp_path):
    build_world(tmp_path / "world", docs=5, seed=3, eval_sizes=SMALL_EVAL, docs_per_shard=5)
    built, _ = read_documents(next((tmp_path / "world" / "mmc4").glob("docs_shard_*.jsonl.zip")))
    assert draw_pages(V1, count=5, seed=3) == built


def test_term_gradients_by_hand():
    """y = w·x + b on x = (1, 2); generation = y, contrastive = 3b; a third weight no term reads."""
    module = nn.Module()
    module.w, module.b, module.unused = (nn.Parameter(torch.tensor(v)) for v in ([0.5, -1.0], 0.25, [7.0]))
    y = module.w @ torch.tensor([1.0, 2.0]) + module.b
    losses = {"generation_loss": y, "contrastive_loss": 3 * module.b}
    gradients = term_gradients(module, losses, ("generation", "contrastive"))
    generation, unreached = gradients["generation"]
    assert generation.tolist() == [1.0, 2.0, 1.0, 0.0] and unreached == ["unused"]  # dy/dw = x, dy/db = 1
    contrastive, unreached = gradients["contrastive"]
    assert contrastive.tolist() == [0.0, 0.0, 3.0, 0.0] and unreached == ["w", "unused"]


def test_weighted_share_by_hand():
    other, weighted = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])  # norms 3 and 4
    assert weighted_share(other, weighted, 0.0) == 0.0
    assert weighted_share(other, weighted, 0.5) == pytest.approx(2 / 5)  # 0.5 · 4 = 2 against 3
    assert weighted_share(other, weighted, 3.0) == pytest.approx(12 / 15)
    assert math.isclose(weighted_share(torch.zeros(2), weighted, 1.0), 1.0)
