"""LLaVA-format conversations and plain text as JSON lines: what the tiny LLaVA-1.5's stages train on.

One record per line, in LLaVA's own format (``llava_v1_5_mix665k.json``, one record per line here so that the
shared streaming order, counted skips and exact resume apply)::

    {"id": "dialogue-12", "image": "images/train/00012.png",
     "conversations": [{"from": "human", "value": "<image>\\nWhat colour is the star?\\n…"},
                       {"from": "gpt", "value": "red"}, …]}
    {"id": "text-3", "text": "A hexagon has six sides. …"}          # language-model pre-training, no image

A conversation becomes :func:`lcl_core.sequences.dialogue_row` (the loss on the answers only); a text record
``<sot> text <eot>`` with the loss on every token after ``<sot>``. ``image`` is relative to ``image_root``
(default: the folder above the shards' folder, as :mod:`.dialogue_world` writes them). ``blind=True`` drops
every image and its ``<image>`` mark: the blind control, an LM trained and asked without its eyes.

Each sample is ``{"images": FloatTensor[k,3,H,W] (k = 0 or 1), "ids": list[int], "labels": list[int]}``;
:func:`~.collate.collate` pads ``labels`` with ``IGNORE_INDEX``. Skips: ``broken_json_line``,
``non_utf8_line``, ``record_too_large``, ``empty_line``, ``not_a_conversation`` (neither ``conversations`` nor ``text``, or a
turn that is not from ``human`` / ``gpt``), ``missing_image`` and the image decoder's reasons, and
``image_past_context`` (the image block would not fit the context).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import torch

from ..sequences import IGNORE_INDEX, IMAGE_MARK, dialogue_row
from .streaming import ShardedStream, Skip, bounded_lines, json_line


class ConversationDataset(ShardedStream):
    unit_patterns = ("*.jsonl",)

    def __init__(self, paths, tokenizer, *, image_size: int, num_image_tokens: int, context_length: int,
                 image_root: str | Path | None = None, blind: bool = False, **stream_options) -> None:
        super().__init__(paths, tokenizer, image_size=image_size, num_image_tokens=num_image_tokens,
                         context_length=context_length, **stream_options)
        self.image_root = Path(image_root) if image_root is not None else self.units[0].parent.parent
        self.blind = blind

    def _records(self, path: Path) -> Iterator[tuple[int, bytes | None]]:
        with open(path, "rb") as stream:
            yield from enumerate(bounded_lines(stream, self.limits.max_record_bytes))

    def _samples(self, line: bytes | None, rng: random.Random) -> list[dict]:
        record = json_line(line)
        empty = torch.zeros(0, 3, self.image_size, self.image_size)
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            ids = [self.tokenizer.sot_id] + self.tokenizer.encode(record["text"])[: self.context_length - 2]
            ids.append(self.tokenizer.eot_id)
            return [{"images": empty, "ids": ids, "labels": [IGNORE_INDEX] + ids[1:]}]
        turns = record.get("conversations") if isinstance(record, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("value"), str)
                                                  for t in turns):
            raise Skip("not_a_conversation")
        shows = any(IMAGE_MARK in t["value"] for t in turns) and not self.blind
        if self.blind:
            turns = [{**t, "value": t["value"].replace(IMAGE_MARK + "\n", "").replace(IMAGE_MARK, "")} for t in turns]
        images = empty
        if shows:
            if not isinstance(record.get("image"), str):
                raise Skip("missing_image")
            path = self.image_root / record["image"]
            if not path.is_file():
                raise Skip("missing_image")
            image = self.load_image(path)
            if image is None:  # counted by the decoder
                raise Skip("no_usable_image")
            images = image.unsqueeze(0)
        try:
            row = dialogue_row(self.tokenizer, turns, image_tokens=self.num_image_tokens,
                               max_tokens=self.context_length)
        except ValueError as error:
            raise Skip("image_past_context" if "image block" in str(error) else "not_a_conversation") from None
        return [{"images": images, "ids": row.ids, "labels": row.labels}]
