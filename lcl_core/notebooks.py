"""The narrated notebook sequence: where it lives, its profiles, and the papermill runner.

:func:`run_notebooks` (the command ``lcl notebooks run --profile smoke|full [-p NAME VALUE]... [--out DIR]
[--only NAME...]``, in :mod:`.notebooks_cli`) executes the notebooks in order with papermill into one output
folder, exactly as plain papermill would one by one (``papermill notebooks/07_transfer.ipynb out.ipynb -p
profile smoke``, from any directory). Every notebook writes ``{out_dir}/{name}.results.json``, and notebooks sharing an ``out_dir`` share its
worlds (``out_dir/worlds/``) and runs (``out_dir/runs/``, kept by run identity), whichever notebook
trained them first.

A notebook's sizes are parameters left at ``None`` in its parameters cell; :func:`apply_profile`
fills them from :data:`PROFILES` (``"*"``: every notebook that declares the name) for the notebook's
``profile`` and resolves ``out_dir`` (``None``: ``<checkout>/runs/notebooks/<profile>``). ``full`` is
what a reader gets in Jupyter; ``smoke`` shrinks everything so that CI runs the sequence in minutes.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .data.world import DEFAULT_WORLD, MEASURING_EVAL_SIZES
from .paths import repo_root
from .provenance import current_commit, machine

SEQUENCE = (
    "00_quickstart",
    "01_interleaved_data",
    "02_model",
    "03_objective",
    "04_pretrain",
    "05_baselines",
    "06_ablations",
    "07_transfer",
    "08_scale_up",
    "09_reproduction",
    "10_dialogue",
)

# Parameter values by profile, then by notebook ("*": every notebook that declares the name).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "*": {"interactive": True, "world_docs": 2000, "world_preset": DEFAULT_WORLD,
              "world_eval": dataclasses.asdict(MEASURING_EVAL_SIZES), "vocab_size": 4096, "steps": 800,
              "batch_size": 32, "lr": 1e-3},
        "00_quickstart": {"steps": 300, "batch_size": 16, "head_epochs": 20},
        "03_objective": {"collapse_steps": 150, "collapse_batch_size": 16, "collapse_lr": 2e-3},
        "07_transfer": {"head_epochs": 40, "num_seeds": 2},
        "08_scale_up": {"official_preset": "LCL_ViT-B-16_laion"},
        "06_ablations": {"rerun": False, "rerun_profile": "cpu"},
        "09_reproduction": {"reproduce": False},
        "10_dialogue": {"reproduce": False},
    },
    "smoke": {
        "*": {"interactive": False, "world_docs": 200, "world_preset": DEFAULT_WORLD, "world_eval": {},
              "vocab_size": 4096, "steps": 30, "batch_size": 8, "lr": 1e-3},
        "00_quickstart": {"steps": 20, "head_epochs": 3},  # unlike 04's run: 04 trains live
        "03_objective": {"collapse_steps": 25, "collapse_batch_size": 8, "collapse_lr": 2e-3},
        "07_transfer": {"head_epochs": 3, "num_seeds": 1},
        "08_scale_up": {"official_preset": "tiny-fast"},
        "06_ablations": {"rerun": "placement:p = 0.25", "rerun_profile": "smoke"},
        "09_reproduction": {"reproduce": "smoke"},
        "10_dialogue": {"reproduce": "smoke"},
    },
}

KERNEL = "python3"  # jupyter_client runs the kernel spec's "python" with the current interpreter


def notebook_dir() -> Path:
    folder = repo_root() / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks/ beside {Path(__file__).parent}: the notebooks ship with the "
                                "repository, install the kit from a checkout (pip install -e .)")
    return folder


def notebook_path(name: str) -> Path:
    if name not in SEQUENCE:
        raise KeyError(f"unknown notebook {name!r}; the sequence is {', '.join(SEQUENCE)}")
    return notebook_dir() / f"{name}.ipynb"


def notebook_out_dir(out_dir: str | Path | None, profile: str) -> Path:
    """Where a notebook writes: ``out_dir`` as given (relative to the working directory), or
    ``<checkout>/runs/notebooks/<profile>`` — never relative to wherever the kernel happens to start."""
    return Path(out_dir).resolve() if out_dir is not None else repo_root() / "runs" / "notebooks" / profile


def apply_profile(namespace: dict[str, Any], name: str) -> Path:
    """Called by notebook ``name`` with its ``globals()`` after the parameters cell: every parameter left
    at ``None`` takes its ``profile``'s value, ``out_dir`` is resolved; prints the parameters in use and
    returns ``out_dir``."""
    profile = namespace.get("profile")
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    table = PROFILES[profile]
    values = {**table.get("*", {}), **table.get(name, {})}
    used = {}
    for key, value in values.items():
        if key in namespace:
            if namespace[key] is None:
                namespace[key] = value
            used[key] = namespace[key]
    namespace["out_dir"] = notebook_out_dir(namespace.get("out_dir"), profile)
    print(f"{name} · profile {profile} · out_dir {namespace['out_dir']}")
    print("  " + ", ".join(f"{key}={value!r}" for key, value in used.items()))
    return namespace["out_dir"]


def results_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.results.json"


# ---- used inside the notebooks --------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-ready copy: tensors and numpy values become Python numbers/lists, NaN becomes None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(out_dir: str | Path, name: str, results: dict[str, Any]) -> Path:
    """Write a notebook's evidence as ``{out_dir}/{name}.results.json`` and return the path."""
    path = results_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(results), indent=2, allow_nan=False) + "\n")
    return path


# ---- the runner -------------------------------------------------------------------------------------
@dataclass
class NotebookRun:
    name: str
    notebook: Path
    results: Path
    seconds: float


def declared_parameters(name: str) -> dict[str, Any]:
    """The parameters a notebook's ``parameters`` cell declares, with their default values."""
    import papermill

    found = papermill.inspect_notebook(str(notebook_path(name)))
    return {key: python_literal(info["default"]) for key, info in found.items()}


def injected_parameters(name: str, *, profile: str, out_dir: str | Path,
                        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What papermill injects into one notebook: the profile, ``overrides`` and ``out_dir`` (the
    notebook resolves its sizes from its profile itself); names it does not declare are left out."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    declared = declared_parameters(name)
    merged = {**(overrides or {}), "profile": profile, "out_dir": str(out_dir)}
    return {key: value for key, value in merged.items() if key in declared}


def run_notebooks(*, profile: str, out_dir: str | Path, only: Iterable[str] | None = None,
                  overrides: dict[str, Any] | None = None, progress: Callable[[str], None] = print,
                  log_output: bool = False, cell_timeout: float | None = None) -> list[NotebookRun]:
    """Execute the sequence (or ``only`` those notebooks, kept in sequence order) with papermill.
    ``cell_timeout`` (seconds; None waits as long as a cell runs) turns a hung kernel into an error."""
    import papermill

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = list(SEQUENCE) if not only else [n for n in SEQUENCE if n in set(only)]
    unknown = set(only or ()) - set(SEQUENCE)
    if unknown:
        raise KeyError(f"unknown notebooks {sorted(unknown)}; the sequence is {', '.join(SEQUENCE)}")
    if overrides:
        declared_somewhere = set().union(*(declared_parameters(n) for n in selected))
        undeclared = sorted(set(overrides) - declared_somewhere)
        if undeclared:
            raise KeyError(f"no selected notebook declares the parameters {undeclared}")
    runs = []
    for name in selected:
        parameters = injected_parameters(name, profile=profile, out_dir=out_dir, overrides=overrides)
        executed = out_dir / f"{name}.ipynb"
        progress(f"[{name}] running with {json.dumps(parameters)}")
        commit = current_commit()  # the code as the notebook starts, whatever lands while it runs
        start = time.perf_counter()
        papermill.execute_notebook(str(notebook_path(name)), str(executed), parameters=parameters,
                                   kernel_name=KERNEL, cwd=str(notebook_dir()), progress_bar=False,
                                   log_output=log_output, execution_timeout=cell_timeout)
        run = NotebookRun(name=name, notebook=executed, results=results_path(out_dir, name),
                          seconds=time.perf_counter() - start)
        if not run.results.is_file():
            raise RuntimeError(f"{name} ran but wrote no {run.results.name}")
        record_execution(out_dir, run, commit=commit, profile=profile, parameters=parameters)
        progress(f"[{name}] {run.seconds:.0f} s  notebook: {run.notebook}  results: {run.results}")
        runs.append(run)
    return runs


EXECUTIONS = "executed.json"


def record_execution(out_dir: Path, run: NotebookRun, *, commit: str, profile: str, parameters: dict[str, Any]
                     ) -> None:
    """Add ``run`` to ``out_dir/executed.json`` (one entry per notebook, the latest run's): the commit, profile,
    parameters, machine, wall time and finishing time that an executed copy states (:mod:`.notebook_copies`)."""
    path = out_dir / EXECUTIONS
    executions = json.loads(path.read_text()) if path.is_file() else {}
    executions[run.name] = {"commit": commit, "profile": profile, "parameters": parameters,
                            "seconds": round(run.seconds, 1), "machine": machine(),
                            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(_plain(executions), indent=1) + "\n")
    temporary.replace(path)


def python_literal(text: str) -> Any:
    """A parameter value from the command line or a parameters cell: a Python literal, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
