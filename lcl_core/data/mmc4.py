"""MMC4 reader: ``docs_shard_{i}_v2.jsonl.zip`` (or plain ``.jsonl``) shards + an image folder.

Rules of the official loader (LCL-METHOD §3), applied per document: drop images with
``matched_sim < sim_threshold``; sort by ``matched_text_index``; keep one random image per matched
sentence; keep at most ``max_images``; drop unreadable images; insert each image before
(``img_first_prob``) or after its sentence; ``<sot> … <eot>`` with the truncation repair at ``<soi>``.
Where the official loader resamples another document, this stream counts a skip and moves on.
"""

from __future__ import annotations

import json
import random
import statistics
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..sequences import interleaved_sequence
from .streaming import ShardedStream, Skip, bounded_lines, json_line

SIM_THRESHOLD = 0.24
MAX_IMAGES = 6


def select_images(image_info: list[dict], *, sim_threshold: float, max_images: int, rng: random.Random,
                  one_per_sentence: bool = True) -> list[tuple[int, str]]:
    """(sentence index, image name) pairs the official rules keep, in sentence order."""
    kept = [(info["matched_text_index"], info["image_name"]) for info in image_info
            if info["matched_sim"] >= sim_threshold]
    kept.sort(key=lambda pair: pair[0])  # stable: ties keep their listed order
    if one_per_sentence:
        by_sentence: dict[int, list[str]] = {}
        for sentence, name in kept:
            by_sentence.setdefault(sentence, []).append(name)
        kept = [(sentence, rng.choice(names)) for sentence, names in by_sentence.items()]
    return kept[:max_images]


def interleave(sentences: list[str], image_sentences: list[int], rng: random.Random,
               img_first_prob: float) -> list[str | int]:
    """Segments for :func:`interleaved_sequence`: image ``k`` goes before (``img_first_prob``) or
    after sentence ``image_sentences[k]``."""
    before: dict[int, list[int]] = {}
    after: dict[int, list[int]] = {}
    for k, sentence in enumerate(image_sentences):
        (before if rng.random() < img_first_prob else after).setdefault(sentence, []).append(k)
    segments: list[str | int] = []
    for index, sentence in enumerate(sentences):
        segments += before.get(index, []) + [sentence] + after.get(index, [])
    return segments


def read_documents(path: str | Path, *, limit: int | None = None) -> tuple[list[dict], int]:
    """The records of one shard (``.jsonl`` or ``docs_shard_*.jsonl.zip``), in file order, for looking at
    them (training reads through :class:`MMC4Dataset`) -> (documents, number of unreadable lines)."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            member = path.name[: -len(".zip")] if path.name[: -len(".zip")] in names else names[0]
            lines = archive.read(member).splitlines()
    else:
        lines = path.read_bytes().splitlines()
    documents, unreadable = [], 0
    for line in lines[:limit]:
        if not line.strip():
            continue
        try:
            documents.append(json.loads(line))
        except (UnicodeDecodeError, json.JSONDecodeError):
            unreadable += 1
    return documents, unreadable


def document_statistics(documents: Sequence[dict], *, sim_threshold: float = SIM_THRESHOLD) -> dict[str, float]:
    """The statistics MMC4 is described by: images and sentences per document, the share of sentences
    matched to an image, and the matched similarities (with the share the threshold drops)."""
    images = [len(d.get("image_info", [])) for d in documents]
    sentences = [len(d.get("text_list", [])) for d in documents]
    matched = sum(len({i["matched_text_index"] for i in d.get("image_info", [])}) for d in documents)
    sims = [i["matched_sim"] for d in documents for i in d.get("image_info", [])] or [float("nan")]
    return {
        "documents": len(documents), "images": sum(images),
        "images_per_document": sum(images) / max(len(documents), 1), "max_images_per_document": max(images, default=0),
        "median_sentences": statistics.median(sentences or [0]),
        "matched_sentence_share": matched / max(sum(sentences), 1),
        "matched_sim_min": min(sims), "matched_sim_median": statistics.median(sims), "matched_sim_max": max(sims),
        "share_below_threshold": sum(s < sim_threshold for s in sims) / len(sims),
    }


def shard_stem(path: Path) -> str:
    """``docs_shard_3_v2.jsonl.zip`` -> ``docs_shard_3_v2``: the name of a shard's own image folder."""
    name = path.name
    for suffix in (".zip", ".jsonl"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


class MMC4Dataset(ShardedStream):
    """Streams MMC4 documents as interleaved samples. Images are looked up by ``image_name`` in
    ``image_root`` (default ``<shard dir>/images``), or in ``image_root/<shard stem>/`` where that folder
    exists: real MMC4 keeps its shards in one folder and the images fetched for each shard in another."""

    unit_patterns = ("*.jsonl.zip", "*shard*.jsonl")  # not sidecars such as alignment.jsonl

    def __init__(self, paths, tokenizer, *, image_size: int, num_image_tokens: int, context_length: int = 2048,
                 seed: int = 0, image_root=None, sim_threshold: float = SIM_THRESHOLD,
                 max_images: int = MAX_IMAGES, img_first_prob: float = 0.5, one_image_per_sentence: bool = True,
                 **stream_options) -> None:
        super().__init__(paths, tokenizer, image_size=image_size, num_image_tokens=num_image_tokens,
                         context_length=context_length, seed=seed, **stream_options)
        self.image_root = None if image_root is None else Path(image_root)
        self.sim_threshold, self.max_images = sim_threshold, max_images
        self.img_first_prob, self.one_image_per_sentence = img_first_prob, one_image_per_sentence

    def _records(self, path: Path) -> Iterator[tuple[int, tuple[Path, bytes]]]:
        if path.suffix != ".zip":
            with open(path, "rb") as stream:
                yield from ((i, (path, line)) for i, line in enumerate(bounded_lines(stream, self.limits.max_record_bytes)))
            return
        with zipfile.ZipFile(path) as archive:
            expected = path.name[: -len(".zip")]
            names = archive.namelist()
            if expected not in names:
                candidates = [n for n in names if n.endswith(".jsonl")]
                if len(candidates) != 1:
                    raise Skip("zip_member_missing")
                self.count("zip_member_renamed")  # a repair: the only .jsonl member is read
                expected = candidates[0]
            with archive.open(expected) as stream:
                yield from ((i, (path, line)) for i, line in enumerate(bounded_lines(stream, self.limits.max_record_bytes)))

    def _samples(self, raw: tuple[Path, bytes], rng: random.Random) -> list[dict]:
        path, line = raw
        document = json_line(line)
        try:
            if max(len(document["text_list"]), len(document["image_info"])) > self.limits.max_list_items:
                raise Skip("document_too_large")
            sentences = [str(s) for s in document["text_list"]]
            image_info = [info for info in document["image_info"]
                          if 0 <= int(info["matched_text_index"]) < len(sentences)]
            if len(image_info) != len(document["image_info"]):
                self.count("image_matched_outside_text")
            selected = select_images(image_info, sim_threshold=self.sim_threshold, max_images=self.max_images,
                                     rng=rng, one_per_sentence=self.one_image_per_sentence)
        except (KeyError, TypeError, ValueError):
            raise Skip("malformed_document") from None
        if not image_info:
            raise Skip("no_images")
        if not selected:
            raise Skip("no_image_above_threshold")
        root = self.image_root or path.parent / "images"
        if (root / shard_stem(path)).is_dir():
            root = root / shard_stem(path)
        # Lay the page out first and decode only the images its row keeps: a page holds 3.9 images and a
        # 128-token row 2.2 (the calibrated world). Should a kept image fail, or the row keep none, every image
        # is decoded and the page laid out again from the same random state without the failures, as if all had
        # been decoded first: rows and skip reasons are what decoding everything first gives, except that an
        # image past the cut of a row whose images all decode is neither decoded nor counted.
        state = rng.getstate()
        sequence = self._layout(sentences, [sentence for sentence, _ in selected], rng)
        kept = {k: self.load_image(root / selected[k][1]) for k in sequence.image_indices}
        if not kept or any(image is None for image in kept.values()):
            loaded = [(sentence, kept[k] if k in kept else self.load_image(root / name))
                      for k, (sentence, name) in enumerate(selected)]
            loaded = [(sentence, image) for sentence, image in loaded if image is not None]
            if not loaded:
                raise Skip("no_usable_image")
            rng.setstate(state)
            sequence = self._layout(sentences, [sentence for sentence, _ in loaded], rng)
            kept = {k: loaded[k][1] for k in sequence.image_indices}
        if not sequence.image_indices:
            raise Skip("no_image_in_context")
        return [{"images": torch.stack([kept[k] for k in sequence.image_indices]), "ids": sequence.ids}]

    def _layout(self, sentences: list[str], image_sentences: list[int], rng: random.Random):
        segments = interleave(sentences, image_sentences, rng, self.img_first_prob)
        return interleaved_sequence(self.tokenizer, segments, num_image_tokens=self.num_image_tokens,
                                    context_length=self.context_length)
