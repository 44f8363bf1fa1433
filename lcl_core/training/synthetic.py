"""Learnable batches made in memory, for benchmarks and quick checks that need no files.

Each image shows one of ``num_classes`` fixed random patterns plus noise, and the text next to it is
that class's token phrase, so both the contrastive and the generation terms can fall. Batch ``g`` is a
pure function of ``(seed, g)``; with several ranks each takes its slice of the same global batch, so
a two-rank run sees exactly the rows of a one-rank run with twice the batch size.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ..config import ModelConfig
from ..sequences import image_block, pad_rows

PHRASE_LENGTH = 4
LAYOUTS = ("interleaved", "sampled", "contrastive", "both")


class SyntheticBatches:
    """Layouts: ``interleaved`` ``[<sot> caption image caption image <eot>]`` (lcl, generation),
    ``sampled`` one pair per row, image-first or text-first with even odds (the official LAION
    layout), ``contrastive`` ``[<sot> caption <soi>]`` (CLIP), ``both`` a text-first and an
    image-first row per pair (CoCa). A caption is its class's phrase repeated to ``caption_tokens``.
    Implements the trainer's data protocol: iterate, ``state()``, ``resume_from``."""

    def __init__(self, *, model_config: ModelConfig, layout: str = "interleaved", batch_size: int, seed: int = 0,
                 num_classes: int = 8, caption_tokens: int = PHRASE_LENGTH, rank: int = 0,
                 world_size: int = 1) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        self.layout, self.batch_size, self.seed = layout, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.tok = SimpleNamespace(**{f"{k}_id": v for k, v in model_config.special_ids.items()})
        self.num_image_tokens = model_config.vision.num_patches
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

    def state(self) -> dict:
        return {"batch_index": self.batch_index}

    def resume_from(self, state: dict) -> None:
        self.batch_index = int(state["batch_index"])

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
        tok, block = self.tok, image_block(self.tok, self.num_image_tokens)
        caption = [self.captions[c] for c in classes]
        text_first_row = [tok.sot_id] + caption[0] + block
        image_first_row = block + caption[0] + [tok.eot_id]
        if self.layout == "interleaved":
            return [[tok.sot_id] + caption[0] + block + caption[1] + block + [tok.eot_id]]
        if self.layout == "sampled":
            return [image_first_row if image_first else text_first_row]
        if self.layout == "contrastive":
            return [[tok.sot_id] + caption[0] + [tok.soi_id]]
        return [text_first_row, image_first_row]
