"""Executed copies of the notebooks (lcl_core/notebook_copies.py): what ``lcl notebooks render`` writes, what it
refuses, and that every committed copy still shows what its source notebook computes."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from lcl_core.notebook_copies import (COPY_BUDGET, HEADER_ID, INJECTED, code_cells, copies_dir, drift, render)
from lcl_core.notebooks import EXECUTIONS, SEQUENCE, notebook_path
from lcl_core.provenance import DIRTY, machine

NAME = "02_model"


def source() -> dict:
    return json.loads(notebook_path(NAME).read_text())


def as_papermill_wrote_it(notebook: dict) -> dict:
    """``notebook`` as papermill leaves it: the injected parameters after the parameters cell, outputs, timings."""
    executed = copy.deepcopy(notebook)
    first = next(i for i, c in enumerate(executed["cells"]) if c["cell_type"] == "code")
    executed["cells"].insert(first + 1, {"cell_type": "code", "id": "injected", "execution_count": 1,
                                         "metadata": {"tags": [INJECTED]}, "outputs": [],
                                         "source": 'profile = "full"\n'})
    for count, cell in enumerate(c for c in executed["cells"] if c["cell_type"] == "code"):
        cell.update(execution_count=count + 1, outputs=[{"output_type": "stream", "name": "stdout",
                                                         "text": f"cell {count}\n"}])
        cell["metadata"]["papermill"] = {"duration": 0.5}
    executed["metadata"]["papermill"] = {"input_path": "x", "output_path": "y"}
    return executed


def a_run(tmp_path, notebook: dict, *, commit: str = "c0ffee" * 7) -> tuple:
    run = tmp_path / "run"
    run.mkdir()
    (run / f"{NAME}.ipynb").write_text(json.dumps(notebook))
    execution = {"commit": commit, "profile": "full", "parameters": {"profile": "full"}, "seconds": 65.4,
                 "machine": machine(), "finished": "2026-12-06 11:00 UTC"}
    (run / EXECUTIONS).write_text(json.dumps({NAME: execution}))
    return run, tmp_path / "copies"


def test_drift_is_a_changed_added_or_dropped_code_cell_never_markdown_or_the_injected_parameters():
    executed = as_papermill_wrote_it(source())
    assert drift(source(), executed) == []
    markdown = next(c for c in executed["cells"] if c["cell_type"] == "markdown")
    markdown["source"] = "reworded narration"
    assert drift(source(), executed) == []
    code = [c for c in executed["cells"] if c["cell_type"] == "code" and INJECTED not in c["metadata"].get("tags", [])]
    code[2]["source"] = "print('other code')"
    assert drift(source(), executed) == [f"code cell 3: the copy ran [\"print('other code')\"]…, the notebook has "
                                         f"{code_cells(source())[2].splitlines()[:1]}…"]
    executed["cells"].remove(code[-1])
    assert drift(source(), executed)[-1] == f"the copy has {len(code) - 1} code cells, the notebook {len(code)}"


def test_render_opens_the_copy_with_its_run_keeps_the_outputs_and_takes_the_narration_of_now(tmp_path):
    executed = as_papermill_wrote_it(source())
    next(c for c in executed["cells"] if c["cell_type"] == "markdown")["source"] = "the narration when it ran"
    run, to = a_run(tmp_path, executed)
    (written,) = render(run, to)
    notebook = nbformat.read(written, as_version=4)
    nbformat.validate(notebook)
    header = notebook.cells[0]
    assert header.id == HEADER_ID and header.cell_type == "markdown"
    assert "commit `c0ffeec0ffee`, profile `full`" in header.source and "ran for 1 min 05 s" in header.source
    assert machine()["cpu_model"] in header.source and "2026-12-06 11:00 UTC" in header.source
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code) and not any("papermill" in c.metadata for c in code)
    narration = [c.source for c in notebook.cells[1:] if c.cell_type == "markdown"]
    assert narration == ["".join(c["source"]) for c in source()["cells"] if c["cell_type"] == "markdown"]
    assert "papermill" not in notebook.metadata and notebook.metadata["lcl_execution"]["seconds"] == 65.4
    index = (to / "README.md").read_text()
    assert f"| [`{NAME}`]({NAME}.ipynb) | full | `c0ffeec0ffee` | 1 min 05 s |" in index
    assert f"**1 of {len(SEQUENCE)}**" in index


@pytest.mark.parametrize("case", ["uncommitted code", "other code", "over budget"])
def test_render_refuses_and_writes_nothing(tmp_path, case):
    executed, commit = as_papermill_wrote_it(source()), "c0ffee" * 7
    if case == "uncommitted code":
        commit += DIRTY
    elif case == "other code":
        next(c for c in executed["cells"] if c["cell_type"] == "code")["source"] = "seed = 1\n"
    else:
        executed["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * COPY_BUDGET}]
    run, to = a_run(tmp_path, executed, commit=commit)
    with pytest.raises(ValueError, match={"uncommitted code": "uncommitted", "other code": "rerun it",
                                          "over budget": "over the 3 MB"}[case]):
        render(run, to)
    assert not to.exists()
    if case == "uncommitted code":  # on purpose: the copy then says so
        render(run, to, allow_dirty=True)
        assert DIRTY in nbformat.read(to / f"{NAME}.ipynb", as_version=4).cells[0].source


COMMITTED = sorted(copies_dir().glob("*.ipynb"))


def test_the_committed_copies_are_the_full_run_and_indexed():
    assert COMMITTED, "docs/executed/ holds no executed copy: lcl notebooks run --profile full; lcl notebooks render"
    assert {p.stem for p in COMMITTED} <= set(SEQUENCE)
    index = (copies_dir() / "README.md").read_text()
    for path in COMMITTED:
        execution = json.loads(path.read_text())["metadata"]["lcl_execution"]
        assert execution["profile"] == "full" and not execution["commit"].endswith(DIRTY), path.name
        assert f"[`{path.stem}`]({path.name})" in index


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_a_committed_copy_shows_what_its_notebook_computes(path):
    problems = drift(json.loads(notebook_path(path.stem).read_text()), json.loads(path.read_text()))
    assert not problems, (f"notebooks/{path.name} changed since its executed copy was made; rerun it at full and "
                          f"render (lcl notebooks run --profile full --only {path.stem}; lcl notebooks render):\n"
                          + "\n".join(problems))
