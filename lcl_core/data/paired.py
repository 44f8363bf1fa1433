"""Paired (LAION-style) webdataset tars, also used for MMC4-Pair: ``key.{jpg,png,…}`` + ``key.txt``.

Layouts of one (image, caption) pair:

* ``"sampled"`` — the official wrapper: image-first with probability ``img_first_prob``, else text-first;
* ``"image_first"`` ``[<soi> <img>×N <eoi> caption <eot>]`` / ``"text_first"`` ``[<sot> caption <soi> <img>×N <eoi>]``;
* ``"both"`` — two consecutive samples, image-first then text-first, each with its own image copy;
* ``"contrastive"`` — ``[<sot> caption <soi>]`` with no image block: the image only gives its latent.
"""

from __future__ import annotations

import random
import tarfile
from pathlib import Path
from typing import Iterator

from webdataset.tariterators import base_plus_ext

from ..sequences import paired_sequence, text_query
from .streaming import TOO_LARGE, ShardedStream, Skip

LAYOUTS = ("sampled", "text_first", "image_first", "both", "contrastive")
SAMPLES_PER_PAIR = {"both": 2}  # rows (each with its own image copy) one pair becomes; 1 for the others
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
DUPLICATE_MEMBER = "__duplicate__"  # marks a sample with two members of one extension


def tar_samples(path: Path, *, max_member_bytes: int) -> Iterator[dict[str, bytes | None]]:
    """A tar's members grouped into webdataset samples ``{"__key__": key, extension: bytes}``, in the
    tar's order, key and extension split as webdataset does (key = path up to the first dot of the
    name). A member above ``max_member_bytes`` is read past without being held (the stream mode moves
    over its blocks) and stands as ``TOO_LARGE``; webdataset's own expander reads every member whole.
    A sample with two members of one extension (``a.jpg`` twice, or ``a.JPG`` and ``a.jpg``) is
    ambiguous: it carries ``DUPLICATE_MEMBER`` (webdataset raises and ends the stream there)."""
    sample: dict[str, bytes | None] = {}
    with open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            key, extension = base_plus_ext(member.name)
            if key is None or key.rsplit("/", 1)[-1].startswith("__"):  # no extension, or webdataset metadata
                continue
            if sample and sample["__key__"] != key:
                yield sample
                sample = {}
            sample["__key__"] = key
            if extension.lower() in sample:
                sample[DUPLICATE_MEMBER] = None
            sample[extension.lower()] = (TOO_LARGE if member.size > max_member_bytes
                                         else archive.extractfile(member).read())
    if sample:
        yield sample


class PairedDataset(ShardedStream):
    unit_patterns = ("*.tar",)

    def __init__(self, paths, tokenizer, *, image_size: int, num_image_tokens: int, context_length: int = 128,
                 seed: int = 0, layout: str = "sampled", img_first_prob: float = 0.5, **stream_options) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        super().__init__(paths, tokenizer, image_size=image_size, num_image_tokens=num_image_tokens,
                         context_length=context_length, seed=seed, **stream_options)
        self.layout, self.img_first_prob = layout, img_first_prob

    def _records(self, path: Path) -> Iterator[tuple[int, dict[str, bytes]]]:
        yield from enumerate(tar_samples(path, max_member_bytes=self.limits.max_record_bytes))

    def _samples(self, files: dict[str, bytes | None], rng: random.Random) -> list[dict]:
        if DUPLICATE_MEMBER in files:
            raise Skip("duplicate_member")
        if any(value is TOO_LARGE for value in files.values()):
            raise Skip("record_too_large")
        image_bytes = next((files[e] for e in IMAGE_EXTENSIONS if e in files), None)
        if image_bytes is None:
            raise Skip("missing_image")
        if "txt" not in files:
            raise Skip("missing_caption")
        try:
            caption = files["txt"].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Skip("non_utf8_caption") from None
        image = self.load_image(image_bytes)
        if image is None:
            raise Skip("no_usable_image")
        images = image.unsqueeze(0)
        if self.layout == "contrastive":
            return [{"images": images, "ids": text_query(self.tokenizer, caption, context_length=self.context_length)}]
        if self.layout == "both":
            orders = (True, False)  # SAMPLES_PER_PAIR
        elif self.layout == "sampled":
            orders = (rng.random() < self.img_first_prob,)
        else:
            orders = (self.layout == "image_first",)
        return [{"images": images.clone(), "ids": paired_sequence(
            self.tokenizer, caption, num_image_tokens=self.num_image_tokens, context_length=self.context_length,
            image_first=image_first)} for image_first in orders]
