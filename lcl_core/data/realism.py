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
``sentence_effect_share``    pages of ≥ 2 images and sentences: the matrix as page mean + image effects +
                             sentence effects + residual; the sentence effects' variance over the matrix's
``residual_spread``          the square root of the residual's variance, averaged over those pages: what is
                             left besides the two effects — true image × sentence fit and noise together, so
                             an upper bound on the similarities' noise
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
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..sequences import LayoutTokenInText, interleaved_sequence, token_ids
from .mmc4 import MAX_IMAGES, SIM_THRESHOLD, MMC4Dataset, interleave, read_documents, select_images
from .streaming import expand_paths

NEAR_MARGIN = 0.02  # "about as similar": within this of the matched similarity
PER_IMAGE = ("matched_minus_page_mean", "z_matched", "matched_is_best_share", "matched_position", "before_share")
BEFORE = ("z_best_before", "near_before_share", "z_previous", "better_before_share")
PER_MATRIX = ("residual_variance", "sentence_effect_share")  # pages with at least 2 images and 2 sentences
STATISTICS = ("matched_minus_page_mean", "z_matched", "z_best_before", "near_before_share", "z_previous",
              "median_sentences", "before_share", "better_before_share", "matched_is_best_share", "matched_position",
              "images_per_page", "sentence_effect_share", "residual_spread")  # in the order they are shown

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
REAL_SAMPLE_COUNTS = {"pages": 107, "images": 396, "images_with_text_before": 340}
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
    values: dict[str, list[float]] = {name: [] for name in PER_IMAGE + BEFORE + PER_MATRIX}
    matrix = np.asarray(document.get("similarity_matrix") or [], dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < len(infos) or matrix.shape[1] != sentences or matrix.size == 0:
        return PageRows(values, sentences, len(infos))
    page_mean = matrix.mean()
    if min(matrix.shape) >= 2 and matrix.var() > 0:  # two-way decomposition: sentence and image effects, residual
        sentence_effects = matrix.mean(axis=0) - page_mean
        residual = matrix - matrix.mean(axis=1, keepdims=True) - sentence_effects
        values["residual_variance"].append(residual.var())
        values["sentence_effect_share"].append(sentence_effects.var() / matrix.var())
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
    for name in PER_IMAGE + BEFORE + PER_MATRIX:
        pooled = [v for page in pages for v in page.values[name]]
        out[name] = float(np.mean(pooled)) if pooled else math.nan
    out["residual_spread"] = math.sqrt(out.pop("residual_variance"))
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
    naming: ``docs_shard_*_v2``, ``docs_no_face_shard_*_v3``, the core sets…), or a kit world (its ``mmc4/``),
    found as the training reader finds them."""
    path = Path(path)
    return expand_paths(path / "mmc4" if (path / "world.json").is_file() else path, MMC4Dataset.unit_patterns)


def read_pages(path: str | Path, *, limit: int | None = None) -> list[dict]:
    """Every readable record under ``path`` (at most ``limit``), in shard and file order."""
    documents: list[dict] = []
    for file in mmc4_files(path):
        documents += read_documents(file, limit=None if limit is None else limit - len(documents))[0]
        if limit is not None and len(documents) >= limit:
            break
    return documents


def window_coverage(documents: Iterable[dict], tokenizer, *, context_length: int, num_image_tokens: int,
                    seed: int = 0, img_first_prob: float = 0.5) -> dict:
    """What a training window keeps of each page, laid out by the training reader's own rules (the official
    rules choose the images, each goes before or after its sentence at even odds, and
    :func:`~lcl_core.sequences.interleaved_sequence` lays out and truncates the row): the mean over pages of
    the share of the chosen images the row keeps, and of the page's sentences it keeps whole. A page whose
    text spells a layout token is left out, as the reader skips it. ``seed`` fixes the choices."""
    rng = random.Random(seed)
    images, sentences_kept = [], []
    for document in documents:
        sentences = [str(s) for s in document.get("text_list", [])]
        infos = [i for i in document.get("image_info", []) if 0 <= int(i["matched_text_index"]) < len(sentences)]
        chosen = select_images(infos, sim_threshold=SIM_THRESHOLD, max_images=MAX_IMAGES, rng=rng)
        if not chosen:
            continue
        segments = interleave(sentences, [sentence for sentence, _ in chosen], rng, img_first_prob)
        try:  # tokenised once: the layout takes token ids, and their lengths say which sentences fit whole
            segments = [s if isinstance(s, int) else token_ids(tokenizer, s) for s in segments]
        except LayoutTokenInText:
            continue
        row = interleaved_sequence(tokenizer, segments, num_image_tokens=num_image_tokens,
                                   context_length=context_length)
        end, whole = 1, 0  # after <sot>; the row's last place is <eot>
        for segment in segments:
            end += num_image_tokens + 2 if isinstance(segment, int) else len(segment)
            whole += not isinstance(segment, int) and end <= len(row.ids) - 1
        images.append(len(row.image_indices) / len(chosen))
        sentences_kept.append(whole / len(sentences))
    return {"pages": len(images), "context_length": context_length, "image_tokens": num_image_tokens,
            "images_kept": float(np.mean(images)) if images else math.nan,
            "sentences_kept": float(np.mean(sentences_kept)) if sentences_kept else math.nan}


def world_truth(path: str | Path, *, limit: int | None = None) -> dict | None:
    """For a kit world (a folder with ``world.json``): its own ground truth of what the text before each image
    states (:func:`lcl_core.data.world.earlier_text_truth`, over its first ``limit`` pages); else None."""
    manifest = Path(path) / "world.json"
    if not manifest.is_file():
        return None
    from .world import WorldKnobs, earlier_text_truth

    settings = json.loads(manifest.read_text())["settings"]
    return earlier_text_truth(docs=min(settings["docs"], limit or settings["docs"]), seed=settings["seed"],
                              knobs=WorldKnobs(**settings["knobs"]), tier=settings["tier"])


def truth_line(source: str, truth: dict) -> str:
    details = ", ".join(f"{key} {truth[key]['share']:.0%}" for key in truth if key not in ("kind", "everything",
                                                                                             "same_image_before"))
    return (f"{source} (its ground truth, {truth['kind']['images']} images): the text before the matched sentence "
            f"states the image's kind for {truth['kind']['share']:.0%}, its details ({details}), all of it for "
            f"{truth['everything']['share']:.0%}; an earlier image on the page shows the same attributes for "
            f"{truth['same_image_before']['share']:.0%}")


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
    "sentence_effect_share": "share of a page's variance that is sentence effects",
    "residual_spread": "image × sentence residual spread (≥ the noise)",
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
    real = REAL_SAMPLE_COUNTS
    lines.append("| counted | " + " | ".join(counts) + f" | {real['pages']} pages, {real['images']} images "
                 f"({real['images_with_text_before']}) | |")
    return "\n".join(lines)


def main(args) -> int:
    """``lcl data realism PATH [PATH …]``: the table, or JSON with ``--json``."""
    results, truths, windows = [], [], []
    for path in args.paths:
        try:
            pages = read_pages(path, limit=args.limit or None)
            tokenizer = _tokenizer(args.tokenizer, path, args.vocab_size) if args.window else None
        except FileNotFoundError as error:
            print(f"lcl data realism: error: {error}", flush=True)
            return 2
        results.append(realism(pages, source=str(path), bootstrap=args.bootstrap, seed=args.seed))
        truths.append(world_truth(path, limit=args.limit or None))
        windows.append(tokenizer and window_coverage(pages, tokenizer, context_length=args.window,
                                                     num_image_tokens=args.image_tokens, seed=args.seed))
    if args.json:
        print(json.dumps([r.to_dict() | {"off_real_in_tolerances": r.off_real(), "world_truth": truth,
                                         "window": window} for r, truth, window in zip(results, truths, windows)],
                         indent=1))
        return 0
    print(table(results))
    print("\n* over the images whose matched sentence is not the page's first; ± one bootstrap standard error "
          f"({args.bootstrap} page resamples)")
    for result, truth, window in zip(results, truths, windows):
        if truth is not None:
            print(truth_line(result.source, truth))
        if window is not None:
            print(f"{result.source}: a window of {window['context_length']} tokens ({window['image_tokens']} per "
                  f"image, {args.tokenizer} tokenizer) keeps {window['images_kept']:.0%} of a page's chosen images and "
                  f"{window['sentences_kept']:.0%} of its sentences whole (mean over {window['pages']} pages)")
    return 0


def _tokenizer(name: str, path: str | Path, vocab_size: int):
    """``trained``: a BPE of ``vocab_size`` trained on a kit world's corpus, as the reproduction's; else what
    :func:`~lcl_core.tokenizer.load_tokenizer` reads (``clip`` or a saved tokenizer folder)."""
    from ..tokenizer import TrainedTokenizer, load_tokenizer

    if name != "trained":
        return load_tokenizer(name)
    corpus = Path(path) / "corpus.txt"
    if not corpus.is_file():
        raise FileNotFoundError(f"--tokenizer trained needs a kit world ({corpus} is missing)")
    with open(corpus, encoding="utf-8") as lines:
        return TrainedTokenizer.train(lines, vocab_size=vocab_size)
