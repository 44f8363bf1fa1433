"""Executed copies of the tutorial, to read without running it.

``lcl notebooks render`` takes the notebooks a run of the sequence executed (``runs/notebooks/full`` unless
told) into ``docs/executed/``, outputs and figures included, each opened by a cell that names the commit,
profile, machine and wall time of its run, and rewrites the index ``docs/executed/README.md``. The source
notebooks under ``notebooks/`` stay without outputs. A copy is only worth reading while it shows what its source
computes: :func:`drift` lists the code cells where the two differ, and the tests hold every committed copy to it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from .notebooks import EXECUTIONS, SEQUENCE, notebook_path
from .paths import repo_root
from .provenance import DIRTY

# GitHub renders notebooks up to about 10 MB; figures are a few hundred kB each, so a copy past 3 MB carries
# something a reader does not need (an image per training step, a widget's whole state)
COPY_BUDGET = 3_000_000  # bytes per copy
TOTAL_BUDGET = 15_000_000  # bytes for the whole folder
INJECTED = "injected-parameters"  # papermill's tag on the cell it adds after the parameters cell
HEADER_ID = "executed-copy"


def copies_dir() -> Path:
    return repo_root() / "docs" / "executed"


def code_cells(notebook: dict) -> list[str]:
    """The source of every code cell but the parameters papermill injected."""
    return ["".join(cell["source"]) for cell in notebook["cells"]
            if cell["cell_type"] == "code" and INJECTED not in cell.get("metadata", {}).get("tags", [])]


def drift(source: dict, executed: dict) -> list[str]:
    """Where ``executed``'s code is not ``source``'s: one line per differing cell (empty: none). Markdown is
    free to change; code is not, since the outputs beside it would no longer be what it computes."""
    theirs, ours = code_cells(source), code_cells(executed)
    problems = [f"code cell {i + 1}: the copy ran {a.splitlines()[:1]}…, the notebook has {b.splitlines()[:1]}…"
                for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if len(ours) != len(theirs):
        problems.append(f"the copy has {len(ours)} code cells, the notebook {len(theirs)}")
    return problems


def _short(commit: str) -> str:
    return commit[:12] + (DIRTY if commit.endswith(DIRTY) else "")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _cpu(machine: dict) -> str:
    return f"{machine['cpu_model']}, {machine['cores']} cores{', AMX' if machine.get('amx') else ''}"


def header(name: str, execution: dict) -> dict:
    """The markdown cell that opens a copy: what ran, where, at which commit, and for how long."""
    machine = execution["machine"]
    cpu = _cpu(machine)
    text = (f"**Executed copy, to read.** This is [`notebooks/{name}.ipynb`](../../notebooks/{name}.ipynb) as "
            f"`lcl notebooks run --profile {execution['profile']}` executed it: commit `{_short(execution['commit'])}`, "
            f"profile `{execution['profile']}`, on {cpu} ({machine['device']}, torch {machine['torch']}); it ran "
            f"for {_minutes(execution['seconds'])}, finished {execution['finished']}. Widgets show their state at "
            f"that moment only. To run it yourself, open the notebook under `notebooks/`; to refresh this copy, "
            f"`lcl notebooks run --profile {execution['profile']} --only {name}` then `lcl notebooks render`.")
    return {"cell_type": "markdown", "id": HEADER_ID, "metadata": {}, "source": text}


def executed_copy(name: str, executed: dict, execution: dict, source: dict) -> dict:
    """``executed`` (papermill's output) with the header first, the narration as ``source`` (the notebook) has it
    now (markdown may be reworded after a run; code may not, :func:`drift`), papermill's per-cell timings dropped
    (they change on every run and say less than the header's wall time) and the run's record in its metadata."""
    result = copy.deepcopy(executed)
    narration = {cell.get("id"): cell["source"] for cell in source["cells"] if cell["cell_type"] == "markdown"}
    for cell in result["cells"]:
        if cell["cell_type"] == "markdown" and cell.get("id") in narration:
            cell["source"] = narration[cell["id"]]
        for key in ("papermill", "execution"):
            cell.get("metadata", {}).pop(key, None)
    result["metadata"].pop("papermill", None)
    result["metadata"]["lcl_execution"] = execution
    result["cells"].insert(0, header(name, execution))
    return result


def render(run_dir: str | Path, to_dir: str | Path | None = None, *, only=None, allow_dirty: bool = False
           ) -> list[Path]:
    """Copy each notebook ``run_dir`` holds an execution record of (``only``: those) into ``to_dir``
    (default ``docs/executed``) and rewrite its index. Refused, before anything is written: a run of code with
    uncommitted changes (unless ``allow_dirty``: its header then says so), a run whose code is not the
    notebook's any more, a copy over :data:`COPY_BUDGET`."""
    run_dir, to_dir = Path(run_dir), Path(to_dir) if to_dir is not None else copies_dir()
    record = run_dir / EXECUTIONS
    if not record.is_file():
        raise FileNotFoundError(f"no {EXECUTIONS} in {run_dir}: run the notebooks first "
                                f"(lcl notebooks run --profile full)")
    executions = json.loads(record.read_text())
    names = [n for n in SEQUENCE if n in executions and (only is None or n in only)]
    if not names:
        raise ValueError(f"{run_dir} holds no execution of {sorted(only or SEQUENCE)}")
    rendered = {}
    for name in names:
        execution = executions[name]
        if execution["commit"].endswith(DIRTY) and not allow_dirty:
            raise ValueError(f"{name} ran from uncommitted code ({execution['commit']}): commit, rerun, render")
        executed, source = json.loads((run_dir / f"{name}.ipynb").read_text()), json.loads(notebook_path(name).read_text())
        if problems := drift(source, executed):
            raise ValueError(f"{name} in {run_dir} ran other code than notebooks/{name}.ipynb has now; rerun it:\n"
                             + "\n".join(problems))
        text = json.dumps(executed_copy(name, executed, execution, source), indent=1, ensure_ascii=False) + "\n"
        if len(text.encode()) > COPY_BUDGET:
            raise ValueError(f"{name}'s copy is {len(text.encode()) / 1e6:.1f} MB, over the {COPY_BUDGET / 1e6:.0f} MB "
                             "a copy may take: fewer or smaller figures")
        rendered[name] = text
    to_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        (to_dir / f"{name}.ipynb").write_text(text)
        written.append(to_dir / f"{name}.ipynb")
    write_index(to_dir)
    return written


def write_index(to_dir: Path) -> Path:
    """``to_dir/README.md``: every copy there, with its profile, commit, wall time and size, and the total,
    checked against :data:`TOTAL_BUDGET`."""
    rows, total_s, total_bytes = [], 0.0, 0
    for name in SEQUENCE:
        path = to_dir / f"{name}.ipynb"
        if not path.is_file():
            continue
        execution = json.loads(path.read_text())["metadata"]["lcl_execution"]
        size = path.stat().st_size
        total_s, total_bytes = total_s + execution["seconds"], total_bytes + size
        rows.append(f"| [`{name}`]({name}.ipynb) | {execution['profile']} | `{_short(execution['commit'])}` | "
                    f"{_minutes(execution['seconds'])} | {execution['finished']} | {size / 1e3:,.0f} kB |")
    if total_bytes > TOTAL_BUDGET:
        raise ValueError(f"the executed copies take {total_bytes / 1e6:.1f} MB, over {TOTAL_BUDGET / 1e6:.0f} MB")
    machines = {_cpu(json.loads((to_dir / f"{n}.ipynb").read_text())["metadata"]["lcl_execution"]["machine"])
                for n in SEQUENCE if (to_dir / f"{n}.ipynb").is_file()}
    lines = ["# Executed notebooks, to read without running them", "",
             "Written by `lcl notebooks render` from the notebooks `lcl notebooks run` executed; do not edit. Each "
             "copy opens with the commit, profile, machine and wall time of its run. The notebooks to run are under "
             "[`notebooks/`](../../notebooks/); [`docs/notebooks.md`](../notebooks.md) says what each shows. A copy's "
             "closing exercise list is its run's; today's exercises, measured, are in "
             "[`docs/results/exercises/`](../results/exercises/README.md).", "",
             f"Machine: {'; '.join(sorted(machines))}. Size budget: {COPY_BUDGET / 1e6:.0f} MB per copy, "
             f"{TOTAL_BUDGET / 1e6:.0f} MB in all.", "",
             "| notebook | profile | commit | wall time | finished | size |", "|---|---|---|---:|---|---:|", *rows,
             f"| **{len(rows)} of {len(SEQUENCE)}** | | | **{_minutes(total_s)}** | | "
             f"**{total_bytes / 1e3:,.0f} kB** |", ""]
    path = to_dir / "README.md"
    path.write_text("\n".join(lines))
    return path
