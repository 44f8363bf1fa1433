"""What the text *before* an image says about it: statistics of MMC4-format pages, real or generated.

LCL contrasts each image with the causal output just before it, so what it can learn turns on how much
the earlier text of a page says about the image; CLIP on MMC4-Pair sees only the matched sentence. Both
are read off each page's own ``similarity_matrix`` (images × sentences, CLIP similarities in real MMC4,
what the sentences state about the images plus noise in the kit's world). Every statistic is a mean over
the images with ``matched_sim`` at or above the official threshold (0.24), each image one row ``s`` of its
page's matrix, ``m`` its matched sentence, ``z = (s − mean(s)) / std(s)`` (population spread; 0 for a
one-sentence page):

=========================  ===========================================================================
``matched_minus_page_mean``  ``s[m]`` minus the mean of the whole page's matrix
``z_matched``                ``z[m]``: how far the matched sentence stands out in its row
``z_best_before``            ``max(z[:m])``: the best sentence before the matched one *
``near_before_share``        share with ``max(s[:m]) ≥ s[m] − 0.02``: an earlier sentence about as similar *
``z_previous``               ``z[m − 1]``: the sentence just before the matched one *
``before_share``             share whose matched sentence is not the page's first (the rows * counts)
``better_before_share``      share with ``max(s[:m]) > s[m]``: an earlier sentence more similar *
``matched_is_best_share``    share with ``s[m] = max(s)``: the match is its row's best sentence
``matched_position``         ``m / (sentences − 1)``: where on the page the matched sentence is (0: first)
``median_sentences``         median sentences per page (every page, whatever its images)
``images_per_page``          images per page, every image counted
=========================  ===========================================================================

\\* over the images whose matched sentence is not the page's first (there is no text before it otherwise).

Standard errors come from a document bootstrap (pages resampled with replacement). The real sample of
``../shared/fixtures/mmc4-sample`` (107 pages of the fewer-faces core set, 396 images at or above the
threshold, 340 of them with a sentence before) gives, ± its bootstrap standard error (1,000 resamples,
seed 0): matched − page mean 0.067 ± 0.003, z matched 1.57 ± 0.05, z best before 1.18 ± 0.05, near
before 0.64 ± 0.03, z previous 0.12 ± 0.06, median sentences 17 ± 1.2 (:data:`REAL_SAMPLE`); also text
before the match 0.86, an earlier sentence more similar 0.26, the match its row's best 0.67, the matched
sentence's place 0.45, images per page 3.9.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .mmc4 import SIM_THRESHOLD, MMC4Dataset, read_documents

NEAR_MARGIN = 0.02  # "about as similar": within this of the matched similarity
PER_IMAGE = ("matched_minus_page_mean", "z_matched", "matched_is_best_share", "matched_position", "before_share")
BEFORE = ("z_best_before", "near_before_share", "z_previous", "better_before_share")
PER_PAGE = ("median_sentences", "images_per_page")
STATISTICS = PER_IMAGE[:2] + BEFORE[:3] + ("median_sentences", "before_share", "better_before_share",
                                            "matched_is_best_share", "matched_position", "images_per_page")

# the real MMC4 sample (docs_no_face_shard_151_v3.jsonl): (value, bootstrap standard error), measured with
# this module and checked by hand in tests/test_data_realism.py
REAL_SAMPLE = {
    "matched_minus_page_mean": (0.0671, 0.0025),
    "z_matched": (1.575, 0.046),
    "z_best_before": (1.183, 0.051),
    "near_before_share": (0.638, 0.031),
    "z_previous": (0.121, 0.056),
    "median_sentences": (17.0, 1.19),
}
# how far a calibrated world may be from the real sample (issue 24; a world drawn from the real distribution
# passes all at once about 98 % of the time)
TOLERANCES = {"matched_minus_page_mean": 0.010, "z_matched": 0.15, "z_best_before": 0.15, "near_before_share": 0.10,
              "z_previous": 0.20, "median_sentences": 3.0}


@dataclass(frozen=True)
class PageRows:
    """One page's contribution: per-image values (one list per statistic) and its sentence and image counts."""

    values: dict[str, list[float]]
    sentences: int
    images: int


def page_rows(document: dict, *, sim_threshold: float = SIM_THRESHOLD) -> PageRows:
    """The statistics' per-image values of one MMC4 record (images below ``sim_threshold`` are left out, as
    the official loader drops them; an image whose matched sentence is outside the page is left out too)."""
    sentences = len(document.get("text_list", []))
    infos = document.get("image_info", [])
    values: dict[str, list[float]] = {name: [] for name in PER_IMAGE + BEFORE}
    matrix = np.asarray(document.get("similarity_matrix") or [], dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < len(infos) or matrix.shape[1] != sentences or matrix.size == 0:
        return PageRows(values, sentences, len(infos))
    page_mean = matrix.mean()
    for row, info in zip(matrix, infos):
        m = int(info["matched_text_index"])
        if float(info["matched_sim"]) < sim_threshold or not 0 <= m < sentences:
            continue
        spread = row.std()
        z = (row - row.mean()) / spread if spread > 0 else np.zeros_like(row)
        values["matched_minus_page_mean"].append(row[m] - page_mean)
        values["z_matched"].append(z[m])
        values["matched_is_best_share"].append(float(row[m] >= row.max()))
        values["matched_position"].append(m / (sentences - 1) if sentences > 1 else 0.0)
        values["before_share"].append(float(m > 0))
        if m > 0:
            values["z_best_before"].append(z[:m].max())
            values["near_before_share"].append(float(row[:m].max() >= row[m] - NEAR_MARGIN))
            values["z_previous"].append(z[m - 1])
            values["better_before_share"].append(float(row[:m].max() > row[m]))
    return PageRows(values, sentences, len(infos))


def summarise(pages: Sequence[PageRows]) -> dict[str, float]:
    """Means over the images (``BEFORE`` ones over the images with a sentence before), per-page figures over
    the pages; nan where nothing counts."""
    out = {}
    for name in PER_IMAGE + BEFORE:
        pooled = [v for page in pages for v in page.values[name]]
        out[name] = float(np.mean(pooled)) if pooled else math.nan
    out["median_sentences"] = float(np.median([p.sentences for p in pages])) if pages else math.nan
    out["images_per_page"] = float(np.mean([p.images for p in pages])) if pages else math.nan
    return out


@dataclass(frozen=True)
class Realism:
    """The statistics of one set of pages, their bootstrap standard errors and the counts behind them."""

    source: str
    pages: int
    images: int  # at or above the threshold
    images_with_text_before: int
    values: dict[str, float]
    standard_errors: dict[str, float]

    def to_dict(self) -> dict:
        return {"source": self.source, "pages": self.pages, "images": self.images,
                "images_with_text_before": self.images_with_text_before,
                "statistics": {name: {"value": self.values[name], "se": self.standard_errors[name]}
                               for name in STATISTICS}}

    def off_real(self) -> dict[str, float]:
        """Each toleranced statistic's distance from the real sample, in units of its tolerance (≤ 1: within)."""
        return {name: abs(self.values[name] - REAL_SAMPLE[name][0]) / tolerance
                for name, tolerance in TOLERANCES.items()}


def realism(documents: Iterable[dict], *, source: str = "", bootstrap: int = 1000, seed: int = 0,
            sim_threshold: float = SIM_THRESHOLD) -> Realism:
    """The statistics of MMC4 records, with document-bootstrap standard errors (``bootstrap`` resamples)."""
    pages = [page_rows(document, sim_threshold=sim_threshold) for document in documents]
    values = summarise(pages)
    errors = dict.fromkeys(STATISTICS, math.nan)
    if bootstrap and len(pages) > 1:
        rng = np.random.default_rng(seed)
        draws = [summarise([pages[i] for i in rng.integers(0, len(pages), len(pages))]) for _ in range(bootstrap)]
        errors = {name: float(np.nanstd([d[name] for d in draws], ddof=1)) for name in STATISTICS}
    return Realism(source=source, pages=len(pages), images=sum(len(p.values["z_matched"]) for p in pages),
                   images_with_text_before=sum(len(p.values["z_previous"]) for p in pages), values=values,
                   standard_errors=errors)


def mmc4_files(path: str | Path) -> list[Path]:
    """The MMC4 shards a path stands for: one ``.jsonl``/``.jsonl.zip`` file, a folder of them (every public
    naming: ``docs_shard_*_v2``, ``docs_no_face_shard_*_v3``, the core sets…), or a kit world (its ``mmc4/``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "world.json").is_file():
        path = path / "mmc4"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted({f for pattern in MMC4Dataset.unit_patterns for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise FileNotFoundError(f"{path}: no MMC4 shards ({' or '.join(MMC4Dataset.unit_patterns)}) in this folder")
    return files


def read_pages(path: str | Path, *, limit: int | None = None) -> list[dict]:
    """Every readable record under ``path`` (at most ``limit``), in shard and file order."""
    documents: list[dict] = []
    for file in mmc4_files(path):
        documents += read_documents(file, limit=None if limit is None else limit - len(documents))[0]
        if limit is not None and len(documents) >= limit:
            break
    return documents


LABELS = {
    "matched_minus_page_mean": "matched sim − page mean sim",
    "z_matched": "z of the matched sentence",
    "z_best_before": "z of the best sentence before *",
    "near_before_share": "share with one before ≥ matched − 0.02 *",
    "z_previous": "z of the sentence just before *",
    "median_sentences": "median sentences per page",
    "before_share": "share with text before the match",
    "better_before_share": "share with one before > matched *",
    "matched_is_best_share": "share whose match is its row's best",
    "matched_position": "matched sentence's place (0 first, 1 last)",
    "images_per_page": "images per page",
}


def table(results: Sequence[Realism]) -> str:
    """The statistics side by side (value ± standard error; ✓ within the tolerance of the real sample's value,
    ✗ outside it), the real sample's and the tolerance beside them."""
    header = ["statistic", *(r.source for r in results), "real sample", "tolerance"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in STATISTICS:
        cells = [f"{r.values[name]:.3f} ± {r.standard_errors[name]:.3f}"
                 + ("" if name not in TOLERANCES else " ✓" if r.off_real()[name] <= 1 else " ✗") for r in results]
        real = f"{REAL_SAMPLE[name][0]:.3f} ± {REAL_SAMPLE[name][1]:.3f}" if name in REAL_SAMPLE else ""
        lines.append("| " + " | ".join([LABELS[name], *cells, real, f"± {TOLERANCES[name]:g}" if name in TOLERANCES
                                        else ""]) + " |")
    counts = [f"{r.pages} pages, {r.images} images ({r.images_with_text_before} with text before)" for r in results]
    lines.append("| counted | " + " | ".join(counts) + " | 107 pages, 396 images (340) | |")
    return "\n".join(lines)


def main(args) -> int:
    """``lcl data realism PATH [PATH …]``: the table, or JSON with ``--json``."""
    results = []
    for path in args.paths:
        try:
            pages = read_pages(path, limit=args.limit or None)
        except FileNotFoundError as error:
            print(f"lcl data realism: error: {error}", flush=True)
            return 2
        results.append(realism(pages, source=str(path), bootstrap=args.bootstrap, seed=args.seed))
    if args.json:
        print(json.dumps([r.to_dict() | {"off_real_in_tolerances": r.off_real()} for r in results], indent=1))
    else:
        print(table(results))
        print("\n* over the images whose matched sentence is not the page's first; ± one bootstrap standard error "
              f"({args.bootstrap} page resamples)")
    return 0
