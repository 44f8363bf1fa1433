"""``lcl pretrain`` that also appends the data position of every row the trainer takes to
``OUT/positions-rank<R>.jsonl``, one JSON line per row, so that a test can count the documents a run
read. The arguments are ``lcl pretrain``'s (the real entry point runs; only the run builder's batches
are wrapped)::

    python [-m torch.distributed.run --nproc_per_node N] tests/recorded_pretrain.py --data ... --out OUT ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lcl_core.training.runs as runs
from lcl_core.cli import main

POSITION_KEYS = ("epoch", "file", "record", "part")


class RecordedBatches:
    """The run's batches; each batch's positions are written down as the trainer takes it."""

    def __init__(self, batches, path: Path) -> None:
        self.batches, self.path = batches, path

    @property
    def batch_sizes(self) -> list[int]:
        return self.batches.batch_sizes

    def __iter__(self):
        with open(self.path, "a") as out:
            for batch in self.batches:
                out.writelines(json.dumps({k: p[k] for k in POSITION_KEYS}) + "\n" for p in batch["positions"])
                out.flush()
                yield batch

    def state(self) -> dict:
        return self.batches.state()

    def resume_from(self, states: list[dict]) -> None:
        self.batches.resume_from(states)


def recorded_build_batches(*, rank: int, **options):
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    return RecordedBatches(build_batches(rank=rank, **options), out / f"positions-rank{rank}.jsonl")


build_batches = runs.build_batches
runs.build_batches = recorded_build_batches

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
