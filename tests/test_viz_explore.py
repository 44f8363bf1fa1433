"""``lcl_core.viz.explore``, the one way the notebooks make a widget: headless it draws once at the starting
values; with ipywidgets each keyword becomes the control its values call for, and moving one redraws."""

from __future__ import annotations

import pytest

from lcl_core.viz import explore


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
