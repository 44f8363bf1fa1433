"""Resumable training checkpoints that a crash can never leave half-written.

Layout of one checkpoint (a folder under ``RUN/checkpoints/``)::

    step_00000200/
        model.safetensors   the weights
        state.pt            torch.save of plain data, loadable with ``weights_only=True``:
                            step, optimizer, schedule, and per rank: rng (python, numpy, torch,
                            cuda), data position (and handover plan), images / sequences / tokens
                            seen; batch_sizes (rows per batch of each stream), train_config,
                            model_config
        manifest.json       step and the SHA-256 of the two files above, written last

A checkpoint is assembled in a hidden ``.partial-*`` folder (each file fsync'd) and renamed into place
with ``os.replace``, so ``step_*`` folders are always complete; a SIGKILL during a save leaves only a
partial folder that the next save removes. The latest ``keep`` checkpoints are kept. On load the
checksums are verified; a corrupt latest checkpoint (disk error, manual edit) is reported and the
previous one is used.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..data.fingerprint import file_digest

log = logging.getLogger(__name__)

WEIGHTS_FILE, STATE_FILE, MANIFEST_FILE = "model.safetensors", "state.pt", "manifest.json"
STEP_PREFIX, PARTIAL_PREFIX = "step_", ".partial-"


class CorruptCheckpointError(RuntimeError):
    pass


@dataclass
class Checkpoint:
    path: Path
    step: int
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]


# ---- random number generators ---------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from, as ``weights_only``-loadable data."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- writing --------------------------------------------------------------------------------------
def same_on_every_rank(states: list[dict], key: str):
    """``states[r][key]`` of every rank's saved data state, which all ranks hold alike (a count of batches
    every rank takes in step); a clear error when they do not."""
    values = {state[key] for state in states}
    if len(values) != 1:
        raise ValueError(f"the ranks' saved data states disagree on {key!r}: {sorted(values)}")
    return values.pop()


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (a folder's fsync makes the names inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_folder_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def save_checkpoint(folder: str | Path, *, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    keep: int) -> Path:
    """Write ``folder/step_XXXXXXXX`` atomically, then drop all but the newest ``keep`` checkpoints."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_partials(folder)
    partial = folder / f"{PARTIAL_PREFIX}{step_folder_name(step)}-{os.getpid()}"
    partial.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(partial / WEIGHTS_FILE))
    torch.save(dict(state, step=step), partial / STATE_FILE)
    files = {name: file_digest(partial / name) for name in (WEIGHTS_FILE, STATE_FILE)}
    (partial / MANIFEST_FILE).write_text(json.dumps({"step": step, "sha256": files}, indent=2) + "\n")
    for name in (*files, MANIFEST_FILE):
        _fsync(partial / name)
    _fsync(partial)

    final = folder / step_folder_name(step)
    if final.exists():  # e.g. re-reaching a step after falling back from a corrupt checkpoint
        stale = folder / f"{PARTIAL_PREFIX}stale-{final.name}-{os.getpid()}"
        os.replace(final, stale)
        os.replace(partial, final)
        shutil.rmtree(stale)
    else:
        os.replace(partial, final)
    _fsync(folder)
    for old in list_checkpoints(folder)[keep:]:
        shutil.rmtree(old)
    return final


def _remove_partials(folder: Path) -> None:
    for leftover in folder.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


# ---- reading --------------------------------------------------------------------------------------
def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoint folders, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Verify the manifest's checksums, then load; raises :class:`CorruptCheckpointError`."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        for name, expected in manifest["sha256"].items():
            if file_digest(path / name) != expected:
                raise CorruptCheckpointError(f"{name} does not match its SHA-256 in {MANIFEST_FILE}")
        weights = load_file(str(path / WEIGHTS_FILE))
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except CorruptCheckpointError:
        raise
    except pickle.UnpicklingError as error:  # weights_only refuses anything but tensors and plain containers
        raise CorruptCheckpointError(f"{STATE_FILE} holds more than tensors and plain data, refused unread: "
                                     f"{error}") from error
    except (OSError, ValueError, KeyError, RuntimeError) as error:  # missing or unreadable files
        raise CorruptCheckpointError(f"{type(error).__name__}: {error}") from error
    return Checkpoint(path=path, step=int(manifest["step"]), weights=weights, state=state)


def load_latest_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The newest checkpoint that verifies; each corrupt newer one is reported. None if there is none."""
    candidates = list_checkpoints(folder)
    problems = []
    for path in candidates:
        try:
            checkpoint = read_checkpoint(path)
        except CorruptCheckpointError as error:
            problems.append(f"{path.name}: {error}")
            log.warning("checkpoint %s is corrupt (%s); trying the previous one", path, error)
            continue
        if problems:
            log.warning("resuming from the older checkpoint %s, step %d", path, checkpoint.step)
        return checkpoint
    if problems:
        raise CorruptCheckpointError(f"every checkpoint in {folder} is corrupt: " + "; ".join(problems))
    return None
