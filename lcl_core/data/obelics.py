"""OBELICS reader: parquet rows with ``texts`` / ``images`` lists (exactly one non-null per position),
and the base of every reader of that page layout (OmniCorpus-CC, MINT-1T HTML: :mod:`.omnicorpus`,
:mod:`.mint`).

The page order is the alignment: text pieces and images are laid out as they stand, the first
``max_images`` readable images are kept, and the truncation repair applies as for MMC4. An image
entry is a URL (real OBELICS, OmniCorpus, MINT-1T), found under ``image_root`` at
:func:`~.streaming.url_image_name` (where ``lcl data fetch-images`` puts it), or a path relative to
``image_root`` (the offline world's). ``image_root`` defaults to the parquet file's folder;
``resolve_image(entry) -> Path`` replaces the lookup.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..sequences import interleaved_sequence
from .mmc4 import MAX_IMAGES
from .streaming import TOO_LARGE, ShardedStream, Skip, is_url, url_image_name


class ObelicsDataset(ShardedStream):
    """Subclasses read more ``columns`` and drop documents (:meth:`_document_skip`) or images
    (:meth:`_image_skip`) by what those columns say; each drop is a counted skip."""

    unit_patterns = ("*.parquet",)
    columns: tuple[str, ...] = ("texts", "images")

    def __init__(self, paths, tokenizer, *, image_size: int, num_image_tokens: int, context_length: int = 2048,
                 seed: int = 0, image_root=None, resolve_image: Callable[[str], Path] | None = None,
                 max_images: int = MAX_IMAGES, rows_per_read: int = 64, **stream_options) -> None:
        super().__init__(paths, tokenizer, image_size=image_size, num_image_tokens=num_image_tokens,
                         context_length=context_length, seed=seed, **stream_options)
        self.image_root = None if image_root is None else Path(image_root)
        self.resolve_image = resolve_image
        self.max_images, self.rows_per_read = max_images, rows_per_read

    def _records(self, path: Path) -> Iterator[tuple[int, tuple[Path, dict]]]:
        index = 0
        parquet = pq.ParquetFile(path)
        missing = [name for name in self.columns if name not in parquet.schema_arrow.names]
        if missing:  # arrow would read the others and leave it out
            raise Skip(f"missing_column_{missing[0]}")
        for batch in parquet.iter_batches(batch_size=self.rows_per_read, columns=list(self.columns)):
            # sizes from the Arrow buffers, so a row over the limits never becomes Python objects (parquet is
            # read a row group at a time: its buffers are in memory, but nothing is built from them)
            too_large = self._rows_over_limits(batch)
            rows = (batch.to_pylist() if not any(too_large) else
                    [TOO_LARGE if over else batch.slice(k, 1).to_pylist()[0] for k, over in enumerate(too_large)])
            for row in rows:
                yield index, (path, row)
                index += 1

    def _rows_over_limits(self, batch) -> list[bool]:
        """Per row: more list items than ``max_list_items`` or more text bytes than ``max_record_bytes``,
        read from Arrow arrays (list offsets give each row's items, string lengths their bytes)."""
        over = np.zeros(batch.num_rows, dtype=bool)
        for name in ("texts", "images"):
            column = batch.column(name)
            if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
                continue  # a malformed column: each row's own checks name it
            items = column.offsets.to_numpy()
            over |= np.diff(items) > self.limits.max_list_items
            if pa.types.is_string(column.type.value_type) or pa.types.is_large_string(column.type.value_type):
                lengths = pc.fill_null(pc.binary_length(column.values), 0).to_numpy(zero_copy_only=False)
                text = np.concatenate([[0], np.cumsum(lengths)])  # bytes before each string of the child array
                over |= (text[items[1:]] - text[items[:-1]]) > self.limits.max_record_bytes
        return over.tolist()

    def _samples(self, raw: tuple[Path, dict], rng: random.Random) -> list[dict]:
        path, row = raw
        if row is TOO_LARGE:
            raise Skip("document_too_large")
        texts, image_entries = row.get("texts"), row.get("images")
        if not isinstance(texts, list) or not isinstance(image_entries, list):
            raise Skip("malformed_document")
        if len(texts) != len(image_entries):
            raise Skip("unequal_lists")
        if not any(entry is not None for entry in image_entries):
            raise Skip("no_images")
        reason = self._document_skip(row)
        if reason:
            raise Skip(reason)
        segments: list[str | int] = []
        images: list[torch.Tensor] = []
        image_number = -1  # of the entry among the page's images
        for position, (text, entry) in enumerate(zip(texts, image_entries)):
            image_number += entry is not None
            if (text is None) == (entry is None):
                self.count("malformed_position")
            elif text is not None:
                segments.append(text)
            elif len(images) < self.max_images:
                reason = self._image_skip(row, position)
                if reason:
                    self.count(reason)
                    continue
                image = self._load_entry(path, row, entry, image_number)
                if image is not None:
                    segments.append(len(images))
                    images.append(image)
        if not images:
            raise Skip("no_usable_image")
        sequence = interleaved_sequence(self.tokenizer, segments, num_image_tokens=self.num_image_tokens,
                                        context_length=self.context_length)
        if not sequence.image_indices:
            raise Skip("no_image_in_context")
        return [{"images": torch.stack([images[k] for k in sequence.image_indices]), "ids": sequence.ids}]

    def _load_entry(self, path: Path, row: dict, entry: str, image_number: int) -> torch.Tensor | None:
        """The image of ``entry``, the ``image_number``-th image of the page (None: counted why not)."""
        if self.resolve_image:
            return self.load_image(self.resolve_image(entry))
        root = self.image_root or path.parent
        return self.load_image(root / (url_image_name(entry) if is_url(entry) else entry))

    def _document_skip(self, row: dict) -> str | None:
        """Why the document is dropped by what its other columns say (None: kept)."""
        return None

    def _image_skip(self, row: dict, position: int) -> str | None:
        """Why the image at ``position`` of ``images`` is dropped by what its other columns say (None: kept)."""
        return None
