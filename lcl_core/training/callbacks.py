"""Callbacks in the minGPT style: ``trainer.add_callback("on_log", fn)``; ``fn(trainer)`` reads
``trainer.step``, ``trainer.metrics`` (the latest record) and ``trainer.last_checkpoint``.

Events, in order: ``on_train_start``, then per optimiser step ``on_step_end`` (every step), ``on_log``
(every ``log_every`` steps, with collapse diagnostics in ``trainer.metrics``) and ``on_checkpoint``,
then ``on_train_end``. The trainer's own outputs (progress bar, ``metrics.jsonl``, TensorBoard) are
callbacks too, attached on rank 0 only. In a notebook, :class:`lcl_core.viz.LiveDashboard` redraws the
training curves live::

    train_run(spec, root=out_dir, callbacks=[LiveDashboard(label="LCL")])
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable

from ..diagnostics import metric_series

EVENTS = ("on_train_start", "on_step_end", "on_log", "on_checkpoint", "on_restore", "on_train_end")


class CallbackList:
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable]] = defaultdict(list)

    def add(self, event: str, fn: Callable) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events are {', '.join(EVENTS)}")
        self._callbacks[event].append(fn)

    def trigger(self, event: str, trainer) -> None:
        for fn in self._callbacks[event]:
            fn(trainer)


class MetricsHistory:
    """Keeps every logged record in memory (``history.records``) for plotting after a run."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def attach(self, trainer) -> "MetricsHistory":
        trainer.add_callback("on_log", lambda t: self.records.append(dict(t.metrics)))
        return self

    def series(self, key: str) -> tuple[list[int], list[float]]:
        return metric_series(self.records, key)


class JsonLinesWriter:
    """Appends each logged record to ``path`` as one JSON line (NaN written as null); a resumed run
    drops the lines from steps after its checkpoint first, so the file has one line per step."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def attach(self, trainer) -> "JsonLinesWriter":
        trainer.add_callback("on_train_start", self._truncate_after_resume_point)
        trainer.add_callback("on_log", self._write)
        return self

    def _truncate_after_resume_point(self, trainer) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= trainer.step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def _write(self, trainer) -> None:
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in trainer.metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class TensorBoardWriter:
    """Scalars under ``train/`` in ``folder`` when the ``tensorboard`` package is installed (the
    ``tensorboard`` extra). A resumed run purges the events after its checkpoint's step, as
    :class:`JsonLinesWriter` truncates ``metrics.jsonl``, so each step is shown once."""

    def __init__(self, folder: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard

        self.folder, self.summary_writer, self.writer = Path(folder), SummaryWriter, None

    @classmethod
    def if_installed(cls, folder: str | Path) -> "TensorBoardWriter | None":
        try:
            return cls(folder)
        except ImportError:
            return None

    def attach(self, trainer) -> "TensorBoardWriter":
        trainer.add_callback("on_train_start", self._open)
        trainer.add_callback("on_log", self._write)
        trainer.add_callback("on_checkpoint", lambda t: self.writer.flush())  # on disk up to the resume point
        trainer.add_callback("on_train_end", lambda t: self.writer.close())
        return self

    def _open(self, trainer) -> None:
        # purge_step: TensorBoard drops the earlier sitting's events from that step on; the checkpoint's own
        # step was logged before it was saved, so it stays (as in metrics.jsonl)
        self.writer = self.summary_writer(log_dir=str(self.folder), purge_step=trainer.step + 1 if trainer.step else None)

    def _write(self, trainer) -> None:
        for key, value in trainer.metrics.items():
            if key != "step" and isinstance(value, (int, float)) and not math.isnan(value):
                self.writer.add_scalar(f"train/{key}", value, trainer.step)


class ProgressBar:
    """A tqdm bar over optimiser steps showing loss and throughput."""

    def attach(self, trainer) -> "ProgressBar":
        trainer.add_callback("on_train_start", self._open)
        trainer.add_callback("on_log", self._update_postfix)
        trainer.add_callback("on_step_end", lambda t: self.bar.update(1))
        trainer.add_callback("on_train_end", lambda t: self.bar.close())
        return self

    def _open(self, trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.config.steps, initial=trainer.step, desc=trainer.config.objective,
                        unit="step", dynamic_ncols=True)

    def _update_postfix(self, trainer) -> None:
        m = trainer.metrics
        self.bar.set_postfix(loss=f"{m['loss']:.4f}", img_s=f"{m['images_per_s']:.0f}",
                             tok_s=f"{m['tokens_per_s']:.0f}", refresh=False)
