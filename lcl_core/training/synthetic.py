"""Learnable batches made in memory, for benchmarks and quick checks that need no files.

Each image shows one of ``num_classes`` fixed random patterns plus noise, and the text next to it is
that class's token phrase, so both the contrastive and the generation terms can fall. Batch ``g`` is a
pure function of ``(seed, g)``; with several ranks each takes its slice of the same global batch, so
a two-rank run sees exactly the rows of a one-rank run with twice the batch size.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..data.paired import LAYOUTS as PAIR_LAYOUTS
from ..sequences import interleaved_sequence, pad_rows, paired_sequence, special_tokens, text_query
from .checkpointing import same_on_every_rank

PHRASE_LENGTH = 4
LAYOUTS = ("interleaved", *PAIR_LAYOUTS)


class SyntheticBatches:
    """Layouts: ``interleaved`` ``[<sot> caption image caption image <eot>]`` (documents), or a pair
    layout of :mod:`lcl_core.data.paired` (``sampled``: image-first or text-first with even odds, the
    official LAION wrapper; ``image_first``; ``text_first``; ``contrastive`` ``[<sot> caption <soi>]``;
    ``both``: a text-first and an image-first row per pair). Rows are built by
    :mod:`lcl_core.sequences`, as the readers build them. A caption is its class's phrase repeated to
    ``caption_tokens``. Implements the trainer's data protocol: iterate, ``state()``, ``resume_from``."""

    def __init__(self, *, model_config: ModelConfig, layout: str = "interleaved", batch_size: int, seed: int = 0,
                 num_classes: int = 8, caption_tokens: int = PHRASE_LENGTH, rank: int = 0,
                 world_size: int = 1) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        self.layout, self.batch_size, self.seed = layout, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.tok = special_tokens(model_config.special_ids)
        self.num_image_tokens = model_config.vision.num_patches
        self.context_length = model_config.bridge.context_length
        size = model_config.vision.image_size
        g = torch.Generator().manual_seed(seed)
        self.prototypes = torch.randn(num_classes, 3, size, size, generator=g)
        specials = set(model_config.special_ids.values())
        words = [i for i in range(model_config.bridge.vocab_size) if i not in specials]
        needed = num_classes * PHRASE_LENGTH
        if len(words) < needed:
            raise ValueError(f"the vocabulary has {len(words)} ordinary tokens, {needed} are needed")
        phrases = [words[c * PHRASE_LENGTH:(c + 1) * PHRASE_LENGTH] for c in range(num_classes)]
        self.captions = [(p * caption_tokens)[:caption_tokens] for p in phrases]
        self.batch_index = 0

    @property
    def batch_sizes(self) -> list[int]:
        return [self.batch_size]

    def state(self) -> dict:
        return {"batch_index": self.batch_index}

    def resume_from(self, states: list[dict]) -> None:
        """Every rank's saved state; on another number of ranks with the same global batch the run goes on
        with exactly the rows it would have had (batch ``g`` is split, not drawn, per rank)."""
        self.batch_index = int(same_on_every_rank(states, "batch_index"))

    def __iter__(self):
        while True:
            batch = self.batch(self.batch_index)
            self.batch_index += 1
            yield batch

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """This rank's share of global batch ``index``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        per_row = 2 if self.layout == "interleaved" else 1
        total = self.batch_size * self.world_size
        classes = torch.randint(len(self.captions), (total, per_row), generator=g)
        image_first = torch.rand(total, generator=g) < 0.5
        noise = torch.randn(total, per_row, *self.prototypes.shape[1:], generator=g)
        rows = range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        ids, images = [], []
        for r in rows:
            c = classes[r].tolist()
            ids += self._rows(c, image_first=bool(image_first[r]))
            pictures = self.prototypes[c] + 0.5 * noise[r]
            images.append(pictures.repeat(2, 1, 1, 1) if self.layout == "both" else pictures)
        return {"images": torch.cat(images), "input_ids": pad_rows(ids, pad_id=self.tok.pad_id)}

    def _rows(self, classes: list[int], *, image_first: bool) -> list[list[int]]:
        caption = [self.captions[c] for c in classes]
        shape = dict(num_image_tokens=self.num_image_tokens, context_length=self.context_length)
        if self.layout == "interleaved":
            return [interleaved_sequence(self.tok, [caption[0], 0, caption[1], 1], **shape).ids]
        if self.layout == "contrastive":
            return [text_query(self.tok, caption[0], context_length=self.context_length)]
        if self.layout == "both":
            return [paired_sequence(self.tok, caption[0], image_first=first, **shape) for first in (False, True)]
        first = {"sampled": image_first, "image_first": True, "text_first": False}[self.layout]
        return [paired_sequence(self.tok, caption[0], image_first=first, **shape)]
