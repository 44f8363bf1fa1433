"""MINT-1T readers: the HTML subset (parquet, the OBELICS page layout) and the PDF / ArXiv subsets
(webdataset tars of ``key.json`` + ``key.tiff``).

HTML (``mlfoundations/MINT-1T-HTML``, ``data_v1_1/shard_*.parquet``): ``texts`` and ``images``, lists of one
length with exactly one non-null per position (images as URLs, fetched by ``lcl data fetch-images``), and
``url``, ``cc_dump``. Source: the card's viewer and a public extraction script that read these four columns
from the real shards and checked the alignment. The shards hold further columns (``image_hashes``,
``images_metadata``, ``metadata``) which that script reports are in image order, not position order; their
inner fields are NOT confirmed, so this reader uses none of them and offers no filter on them. The card
states no score thresholds (its image safety filtering was applied before release).

PDF / ArXiv (``mlfoundations/MINT-1T-PDF-CC-*``, ``MINT-1T-ArXiv``): each document is ``key.json`` and
``key.tiff`` in a tar. From the card's dataset viewer, the json holds ``images`` (placeholders
``page_{page}_image_{xref}``, null where the page has text), ``image_metadata`` (one per image: ``page``,
``xref``, ``width``, ``height``, ``sha256``), ``url``, ``bff_contained_ngram_count_before_dedupe`` and a
fastText language id; ``pdf_name`` and ``previous_word_count`` are read by NVIDIA NeMo Curator's MINT-1T
reader. From the dataset authors (MINT-1T issue #10): the tiff holds one frame per image of the document.
NOT confirmed: the name ``texts`` for the text list aligned with ``images`` (the viewer's excerpt is cut
before it; it is the HTML subset's name and layout), and that frame ``k`` is the ``k``-th non-null entry of
``images`` (the order of ``image_metadata``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

import torch

from .obelics import ObelicsDataset
from .paired import DUPLICATE_MEMBER, tar_samples
from .streaming import TOO_LARGE, Skip

FRAMES = "__tiff__"  # where a PDF document's row keeps its tiff bytes


class MintHtmlDataset(ObelicsDataset):
    """MINT-1T HTML parquet: the OBELICS layout with image URLs."""


class MintPdfDataset(ObelicsDataset):
    """MINT-1T PDF and ArXiv tars: each ``key.json`` page laid out as OBELICS rows are, its images the
    frames of ``key.tiff``."""

    unit_patterns = ("*.tar",)

    def _records(self, path: Path) -> Iterator[tuple[int, tuple[Path, dict]]]:
        for index, files in enumerate(tar_samples(path, max_member_bytes=self.limits.max_record_bytes)):
            yield index, (path, files)

    def _samples(self, raw: tuple[Path, dict], rng: random.Random) -> list[dict]:
        path, files = raw
        if DUPLICATE_MEMBER in files:
            raise Skip("duplicate_member")
        if any(value is TOO_LARGE for value in files.values()):
            raise Skip("record_too_large")
        if "json" not in files:
            raise Skip("missing_json")
        if "tiff" not in files:
            raise Skip("missing_image")
        try:
            row = json.loads(files["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Skip("broken_json") from None
        if not isinstance(row, dict):
            raise Skip("malformed_document")
        return super()._samples((path, {**row, FRAMES: files["tiff"]}), rng)

    def _load_entry(self, path: Path, row: dict, entry: str, image_number: int) -> torch.Tensor | None:
        return self.load_image(row[FRAMES], frame=image_number)
