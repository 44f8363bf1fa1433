"""Batches: images concatenated in row-major ``<soi>`` order, token rows right-padded."""

from __future__ import annotations

from collections import Counter
from functools import partial

import torch
from torch.utils.data import DataLoader

from ..sequences import IGNORE_INDEX, pad_rows


def collate(samples: list[dict], pad_id: int) -> dict:
    """``{"images": [M,3,H,W], "input_ids": [B,L], "num_images": [B], "positions": [...], "skips": {...}}``,
    and ``"labels": [B,L]`` (padded with ``IGNORE_INDEX``) when the samples carry labels (conversations)."""
    skips: Counter = Counter()
    for sample in samples:
        skips.update(sample["position"].get("skipped", {}))
    labelled = ({"labels": pad_rows([s["labels"] for s in samples], pad_id=IGNORE_INDEX)}
                if "labels" in samples[0] else {})
    return {**labelled,
        "images": torch.cat([s["images"] for s in samples]),
        "input_ids": pad_rows([s["ids"] for s in samples], pad_id=pad_id),
        "num_images": torch.tensor([len(s["images"]) for s in samples], dtype=torch.long),
        "positions": [s["position"] for s in samples],
        "skips": dict(skips),
    }


class StreamLoader:
    """A DataLoader over a reader that also adds the workers' skip counts to ``dataset.skips``."""

    def __init__(self, dataset, *, batch_size: int, num_workers: int = 0, pad_id: int | None = None,
                 **loader_options) -> None:
        self.dataset = dataset
        pad_id = dataset.tokenizer.pad_id if pad_id is None else pad_id
        self.loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                 collate_fn=partial(collate, pad_id=pad_id), **loader_options)

    def __iter__(self):
        from_workers = self.loader.num_workers > 0  # in-process readers count for themselves
        for batch in self.loader:
            if from_workers:
                self.dataset.skips.update(batch["skips"])
            yield batch


def make_loader(dataset, batch_size: int, num_workers: int = 0, pad_id: int | None = None,
                **loader_options) -> StreamLoader:
    return StreamLoader(dataset, batch_size=batch_size, num_workers=num_workers, pad_id=pad_id, **loader_options)
