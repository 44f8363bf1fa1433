"""The offline world: seeded web-like interleaved documents, written in the real on-disk formats.

Every document, pair and evaluation image is generated from ``(seed, kind of item, index)`` alone, so
the output is byte-identical for one seed whatever the number of processes, and items are built in
parallel. A document mimics an MMC4 page: a title, sentences describing some of its images, topical
knowledge, boilerplate, and the knobs below; its images are matched to sentences the way MMC4 did it,
by a linear assignment on an image × sentence similarity matrix, and the true alignment goes to a
sidecar for diagnostics.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import language, writers
from .assets import load_assets, stable_int
from .mmc4 import SIM_THRESHOLD
from .scenes import attributes, classification_classes, families, render, sample_scene

log = logging.getLogger(__name__)
WORLD_FORMAT = "lcl-world/1"
HOST = "https://world.lcl-kit.invalid"  # .invalid: never resolvable, clearly synthetic


@dataclass(frozen=True)
class WorldKnobs:
    """Document statistics (defaults calibrated to real MMC4) and the levers of the paper's effects."""

    images_per_doc: float = 3.9  # mean; 1 + Poisson, at most max_images_per_doc (MMC4: 3.9, max 10)
    max_images_per_doc: int = 10
    sentences_median: float = 17.0  # log-normal length (MMC4: median 17, 19% of sentences matched)
    sentences_spread: float = 0.55
    distractor_prob: float = 0.03  # an image no sentence describes
    misalign_prob: float = 0.03  # the "describing" sentence talks about something else
    leak_prob: float = 0.1  # the description is also stated elsewhere: text predicts it (collapse lever)
    caption_after_prob: float = 0.5  # OBELICS page order: describing sentence after (else before) the image
    detail_prob: float = 0.35  # chance a sentence states each optional detail (colour, size, position, background)
    knowledge_prob: float = 0.5  # a topical fact follows an image's description
    topic_focus: float = 0.7  # share of a page's images drawn from the page's topic
    sim_base: float = 0.13  # similarity = base + gain · agreement + N(0, noise)
    sim_gain: float = 0.2  # full agreement ≈ 0.33: matched sims 0.18–0.39 as in MMC4
    sim_noise: float = 0.03
    # how a page talks about its images ("v1": one sentence describes each image, the rest is title,
    # boilerplate and facts; "restating": pages about one subject that say it several times, as real MMC4
    # pages do — see CALIBRATED and _restating_plan). The knobs below act on "restating" pages only.
    page_style: str = "v1"
    subject_focus: float = 0.0  # share of a page's images that show the page's subject (one kind of object)
    restate_intro: float = 0.0  # mean full descriptions of the subject after the title (Poisson)
    restate_before: float = 0.0  # mean sentences before an image's description restating part of it (Poisson)
    restate_after: float = 0.0  # mean such sentences after it
    loose_description_prob: float = 0.0  # no sentence describes the image: only restatements of the subject
    topical_filler: float = 0.0  # share of the filler sentences that restate one of the page's images
    restate_detail_prob: float = 0.0  # a restatement names one detail besides the object's kind and colour

    def __post_init__(self) -> None:
        if self.page_style not in PAGE_STYLES:
            raise ValueError(f"unknown page_style {self.page_style!r}; choose from {', '.join(PAGE_STYLES)}")
        if self.page_style == "v1" and self.changed_restating_knobs():
            raise ValueError(f"{', '.join(self.changed_restating_knobs())} act on page_style 'restating' pages only")

    def changed_restating_knobs(self) -> list[str]:
        """The restating-page knobs set away from their defaults."""
        return [name for name in RESTATING_KNOBS if getattr(self, name) != 0.0]

    def to_dict(self) -> dict:
        """As JSON; a v1 world's without the restating-page knobs, as every v1 world was written before they
        existed (its manifest, name and reuse by :func:`ensure_world` stay as they were)."""
        values = asdict(self)
        if self.page_style == "v1":
            for name in ("page_style", *RESTATING_KNOBS):
                values.pop(name)
        return values


PAGE_STYLES = ("v1", "restating")
RESTATING_KNOBS = ("subject_focus", "restate_intro", "restate_before", "restate_after", "loose_description_prob",
                   "topical_filler", "restate_detail_prob")


# the world of every result committed before issue 24 (docs/results/): one sentence describes each image
V1 = WorldKnobs()
# pages as real MMC4 pages are, by what they say (docs/realism.md): every statistic of `lcl data realism` within
# the tolerance of the real sample. sim_noise 0.02, not 0.03: the real sample's whole image × sentence residual
# (interactions and noise together, two-way decomposition per page) has a spread of 0.022, so CLIP's noise on
# real pages is at most that; 0.03 was larger than everything real pages leave besides their sentence effects.
CALIBRATED = WorldKnobs(
    sentences_median=11.0, sim_noise=0.02, page_style="restating", subject_focus=0.92, restate_intro=1.5,
    restate_before=2.0, restate_after=1.0, loose_description_prob=0.85, topical_filler=0.8, restate_detail_prob=0.2)
WORLD_PRESETS = {"v1": V1, "calibrated": CALIBRATED}
# the world every entry point builds unless told (lcl data world, lcl demo, the notebooks, lcl reproduce); the
# library's WorldKnobs() stays v1, so a world built from code with no knobs is the one it always was
DEFAULT_WORLD = "calibrated"


@dataclass(frozen=True)
class EvalSizes:
    classification_train_per_class: int = 12
    classification_val_per_class: int = 6
    captions_train: int = 200
    captions_val: int = 50
    captions_test: int = 100
    flickr30k_train: int = 200  # a second retrieval set of other held-out instances (Table 1's F30k columns)
    flickr30k_test: int = 100
    nocaps_per_domain: int = 40


# Held-out sets large enough that one evaluation tells a trained encoder from random init (classification:
# 2,480 validation images, ±1.8 points at 30 %; docs/results/table1/recipe.md measured the defaults' 6 per class
# too few): the `cpu` reproductions' and the `full` notebooks'.
MEASURING_EVAL_SIZES = EvalSizes(classification_train_per_class=40, classification_val_per_class=80,
                                 captions_train=400, captions_val=100, captions_test=300, flickr30k_train=400,
                                 flickr30k_test=300, nocaps_per_domain=60)


# ---- one document -----------------------------------------------------------------------------------
def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _image_name(seed: int, doc_id: int, index: int) -> str:
    return f"{stable_int('image', seed, doc_id, index):016x}"[:12] + ".png"


def _sentence_plan(rng: random.Random, scenes: list[dict], described: list[bool], knobs: WorldKnobs,
                   topic: str, lib) -> tuple[list[tuple[str, set]], list[int | None], list[bool]]:
    """Sentences with their mentions, the index of each image's describing sentence, misalignment.

    Page order: title, leaked descriptions, then one group per image (its description, maybe a
    topical fact), with boilerplate scattered anywhere after the title up to a log-normal length.
    """
    intro = [(*language.title_sentence(topic), False)]
    intro += [(*language.leak_sentence(s, rng, knobs.detail_prob), False) for s, d in zip(scenes, described)
              if d and rng.random() < knobs.leak_prob]
    groups, misaligned = [], []  # per image: [(text, mentions, is_its_description)]
    for scene, is_described in zip(scenes, described):
        group = []
        wrong = is_described and rng.random() < knobs.misalign_prob
        if is_described:
            talked_about = sample_scene(rng, lib) if wrong else scene
            group.append((*language.description_sentence(talked_about, rng, knobs.detail_prob), True))
        if rng.random() < knobs.knowledge_prob:
            group.append((*language.knowledge_sentence(scene["objects"][0], rng), False))
        groups.append(group)
        misaligned.append(wrong)
    sentences, described_at = _fill_and_join(rng, intro, groups, knobs, lambda: language.boilerplate_sentence(rng))
    return sentences, described_at, misaligned


def _fill_and_join(rng: random.Random, intro: list, groups: list[list], knobs: WorldKnobs,
                   filler) -> tuple[list[tuple[str, set]], list[int | None]]:
    """``filler()`` sentences anywhere after the title, up to a log-normal page length, then the page in
    order -> (sentences with the attributes each states, each image's describing sentence or None)."""
    planned = len(intro) + sum(map(len, groups))
    target = max(planned + 2, min(60, round(rng.lognormvariate(math.log(knobs.sentences_median),
                                                               knobs.sentences_spread))))
    for _ in range(target - planned):
        where = rng.randrange(len(groups) + 1)
        destination = groups[where] if where < len(groups) else intro
        destination.insert(rng.randint(1 if destination is intro else 0, len(destination)), (*filler(), False))
    sentences, described_at = [(text, m) for text, m, _ in intro], []
    for group in groups:
        marks = [i for i, (_, _, is_description) in enumerate(group) if is_description]
        described_at.append(len(sentences) + marks[0] if marks else None)
        sentences += [(text, m) for text, m, _ in group]
    return sentences, described_at


def _showing(subject: dict, scene: dict) -> dict:
    """``scene`` (of the subject's kind) shown as the subject scene is: the same product photographed again —
    another instance of the object, with the subject's colour, count, size, position and background (a
    relation scene repeats the subject's pair and relation; a photo is another crop of the same photo)."""
    if subject["layout"] == "relation":
        return dict(subject)
    if scene["layout"] != "objects" or subject["layout"] != "objects":
        return scene
    obj = dict(scene["objects"][0], colour=subject["objects"][0]["colour"])
    return dict(scene, objects=[obj] * subject["count"], **{key: subject[key] for key in
                                                           ("count", "size", "position", "background")})


def _restating_plan(rng: random.Random, scenes: list[dict], described: list[bool], knobs: WorldKnobs,
                    topic: str, subject: dict, lib) -> tuple[list[tuple[str, set]], list[int | None], list[bool]]:
    """A page about one subject (``page_style="restating"``), as real MMC4 pages are: a title naming it,
    full descriptions of it (``restate_intro``) and leaked descriptions (``leak_prob``), then per image
    sentences restating part of it (``restate_before``), its own description unless it has none
    (``loose_description_prob``: then the page matches it to the best of the loose ones), more restatements
    (``restate_after``); filler anywhere after the title restates one of the page's images
    (``topical_filler``) or is boilerplate. So the text before an image often says about as much about it
    as the sentence it is matched to."""
    counts = np.random.default_rng(rng.getrandbits(32))

    def restating(scene):
        return (*language.restating_sentence(scene, rng, knobs.restate_detail_prob), False)

    intro = [(*language.subject_title(topic, subject["objects"][0]), False)]
    intro += [(*language.description_sentence(subject, rng, 1.0), False)
              for _ in range(counts.poisson(knobs.restate_intro))]
    intro += [(*language.leak_sentence(s, rng, knobs.detail_prob), False) for s, d in zip(scenes, described)
              if d and rng.random() < knobs.leak_prob]  # as on v1 pages: the leakage ablation's lever
    groups, misaligned = [], []
    for scene, is_described in zip(scenes, described):
        group = [restating(scene) for _ in range(counts.poisson(knobs.restate_before))]
        own = is_described and rng.random() >= knobs.loose_description_prob
        wrong = own and rng.random() < knobs.misalign_prob
        if own:
            group.append((*language.description_sentence(sample_scene(rng, lib) if wrong else scene, rng,
                                                         knobs.detail_prob), True))
        group += [restating(scene) for _ in range(counts.poisson(knobs.restate_after))]
        groups.append(group)
        misaligned.append(wrong)

    def filler():
        if rng.random() < knobs.topical_filler:
            return language.restating_sentence(rng.choice(scenes), rng, knobs.restate_detail_prob)
        return language.boilerplate_sentence(rng)

    sentences, described_at = _fill_and_join(rng, intro, groups, knobs, filler)
    return sentences, described_at, misaligned


def agreement(scene: dict, mentions: set[str]) -> float:
    """How well a sentence fits an image, in [0, 1]: the mean of the share of its statements that are
    true of the image and the share of the image's attributes it states. A short but correct
    description ("two stars") thus scores close to a full one, as a CLIP score would."""
    if not mentions:
        return 0.0
    shown = attributes(scene)
    hits = len(shown & mentions)
    return (hits / len(mentions) + hits / len(shown)) / 2


def similarity_matrix(scenes: list[dict], mentions: list[set], knobs: WorldKnobs, rng: np.random.Generator):
    """images × sentences: base + gain · agreement + noise."""
    fit = np.array([[agreement(s, m) for m in mentions] for s in scenes])
    sim = knobs.sim_base + knobs.sim_gain * fit + rng.normal(0.0, knobs.sim_noise, fit.shape)
    return np.round(sim.clip(0.0, 1.0), 4)


@dataclass
class PagePlan:
    """What a page says before anything is drawn: its scenes, its sentences with the attributes each states,
    each image's describing sentence (None: no sentence of its own), the similarities and the MMC4 matching.
    ``rng`` goes on to draw the images, so a plan replayed without drawing is the page that was written."""

    rng: random.Random
    lib: object
    topic: str
    scenes: list[dict]
    distractor: list[bool]
    sentences: list[tuple[str, set]]
    described_at: list[int | None]
    misaligned: list[bool]
    sim: np.ndarray
    matched: dict[int, int]


def plan_document(doc_id: int, seed: int, knobs: WorldKnobs, tier: str) -> PagePlan:
    """The page ``doc_id`` of the world ``seed`` up to its drawing (see :class:`PagePlan`)."""
    lib = load_assets(tier)
    rng = random.Random(stable_int("document", seed, doc_id))
    weights = families(lib)
    topic = rng.choices(list(weights), list(weights.values()))[0]
    n_images = min(knobs.max_images_per_doc, 1 + int(np.random.default_rng(rng.getrandbits(32))
                                                    .poisson(knobs.images_per_doc - 1)))
    if knobs.page_style == "restating":  # one subject: most images show it again
        subject = sample_scene(rng, lib, family=topic)
        scenes = [_showing(subject, sample_scene(rng, lib, family=topic, kind=subject["objects"][0]["kind"]))
                  if rng.random() < knobs.subject_focus
                  else sample_scene(rng, lib, family=topic if rng.random() < knobs.topic_focus else None)
                  for _ in range(n_images)]
        described = [rng.random() >= knobs.distractor_prob for _ in scenes]
        sentences, described_at, misaligned = _restating_plan(rng, scenes, described, knobs, topic, subject, lib)
    else:
        scenes = [sample_scene(rng, lib, family=topic if rng.random() < knobs.topic_focus else None)
                  for _ in range(n_images)]
        described = [rng.random() >= knobs.distractor_prob for _ in scenes]
        sentences, described_at, misaligned = _sentence_plan(rng, scenes, described, knobs, topic, lib)
    sim = similarity_matrix(scenes, [m for _, m in sentences], knobs,
                            np.random.default_rng(rng.getrandbits(32)))
    image_rows, sentence_cols = linear_sum_assignment(sim, maximize=True)
    matched = dict(zip(image_rows.tolist(), sentence_cols.tolist()))
    for i in range(n_images):  # more images than sentences (many distractors): the rest take their most similar
        matched.setdefault(i, int(sim[i].argmax()))  # sentence, as several MMC4 images share one
    return PagePlan(rng=rng, lib=lib, topic=topic, scenes=scenes, distractor=[not d for d in described],
                    sentences=sentences, described_at=described_at, misaligned=misaligned, sim=sim, matched=matched)


TRUTH_DETAILS = ("colour", "count", "size", "position", "background")


def earlier_text_truth(*, docs: int, seed: int, knobs: WorldKnobs, tier: str = "basic") -> dict:
    """From the world's own ground truth: over the images the official rule keeps (matched sim ≥ 0.24), the
    share whose earlier text — the sentences before their matched one, what LCL reads when the image goes
    first — states their object's kind, each detail they have (among the images that have it), and all of
    them; and the share with an earlier image on the page that shows all the same attributes (which a causal
    model may copy from). "States" is the similarity model's view: the attribute appears among what an earlier
    sentence states, whichever object it was said of. The pages are replayed from their plans (nothing is
    drawn)."""
    named = {key: [] for key in ("kind", *TRUTH_DETAILS, "everything", "same_image_before")}
    for doc_id in range(docs):
        page = plan_document(doc_id, seed, knobs, tier)
        for i, scene in enumerate(page.scenes):
            m = page.matched[i]
            if page.sim[i, m] < SIM_THRESHOLD:
                continue
            stated = set().union(*(mentions for _, mentions in page.sentences[:m]))
            shown = attributes(scene)
            named["kind"].append(f"kind:{scene['objects'][0]['kind']}" in stated)
            for key in TRUTH_DETAILS:
                have = {a for a in shown if a.startswith(f"{key}:")}
                if have:
                    named[key].append(have <= stated)
            named["everything"].append(shown <= stated)
            named["same_image_before"].append(any(attributes(other) == shown for other in page.scenes[:i]))
    return {key: {"share": float(np.mean(values)) if values else float("nan"), "images": len(values)}
            for key, values in named.items()}


def make_document(doc_id: int, seed: int, knobs: WorldKnobs, tier: str, image_size: int) -> dict:
    """One page: its MMC4 record, images, OBELICS row, true alignment and MMC4-Pair pairs."""
    page = plan_document(doc_id, seed, knobs, tier)
    rng, scenes, sim, matched, described_at = page.rng, page.scenes, page.sim, page.matched, page.described_at
    n_images = len(scenes)
    text_list = [text for text, _ in page.sentences]
    names = [_image_name(seed, doc_id, i) for i in range(n_images)]
    images = [png_bytes(render(scene, image_size, page.lib, rng)) for scene in scenes]
    url = f"{HOST}/{page.topic}/page-{doc_id}.html"
    image_info = [{"image_name": name, "raw_url": f"{HOST}/img/{name}", "matched_text_index": matched[i],
                   "matched_sim": float(sim[i, matched[i]]), "face_detections": None}
                  for i, name in enumerate(names)]
    record = {"url": url, "text_list": text_list, "image_info": image_info,
              "similarity_matrix": sim.tolist()}
    alignment = {"doc_id": doc_id, "url": url, "topic": page.topic, "images": [
        {"image_name": name, "true_text_index": described_at[i], "matched_text_index": matched[i],
         "misaligned": page.misaligned[i], "distractor": page.distractor[i], "scene": scenes[i]}
        for i, name in enumerate(names)]}
    # an image no sentence of its own describes, but the page talks about, goes beside its matched sentence
    anchors = [None if page.distractor[i] else matched[i] if at is None else at for i, at in enumerate(described_at)]
    return {"record": record, "images": list(zip(names, images)), "alignment": alignment,
            "obelics": _obelics_row(rng, text_list, names, anchors, knobs, url, doc_id),
            "pairs": [(names[i], images[i], text_list[matched[i]]) for i in range(n_images)
                      if sim[i, matched[i]] >= SIM_THRESHOLD]}


def draw_pages(knobs: WorldKnobs, *, count: int, seed: int = 0, tier: str = "basic", image_size: int = 32) -> list[dict]:
    """The MMC4 records of the first ``count`` pages a world with ``knobs`` would hold (the same pages
    :func:`build_world` writes), drawn in memory: to look at what a knob does without building a world."""
    return [make_document(doc_id, seed, knobs, tier, image_size)["record"] for doc_id in range(count)]


def _obelics_row(rng, text_list, names, anchors, knobs, url, doc_id) -> dict:
    """Page order: each image next to its anchor sentence (before or after), those without one (distractors)
    anywhere."""
    slots: dict[int, list[tuple[str, str]]] = {}  # sentence index -> images to insert before/after it
    for name, at in zip(names, anchors):
        if at is None:
            slots.setdefault(rng.randrange(len(text_list)), []).append(("before", name))
        else:
            side = "before" if rng.random() < knobs.caption_after_prob else "after"
            slots.setdefault(at, []).append((side, name))
    texts, images, paragraph = [], [], []

    def flush():
        if paragraph:
            texts.append(" ".join(paragraph)), images.append(None)
            paragraph.clear()

    for index, sentence in enumerate(text_list):
        for side in ("before", "after"):
            if side == "after":
                paragraph.append(sentence)
            for where, name in slots.get(index, []):
                if where == side:
                    flush()
                    texts.append(None), images.append(f"../mmc4/images/{name}")  # one copy of the pixels
    flush()
    metadata = [None if entry is None else {"src": f"{HOST}/img/{Path(entry).name}", "alt_text": ""}
                for entry in images]
    return {"texts": texts, "images": images, "metadata": json.dumps(metadata),
            "general_metadata": json.dumps({"url": url, "doc_id": doc_id})}


# ---- pairs and evaluation images ----------------------------------------------------------------------
def make_pair(pair_id: int, seed: int, knobs: WorldKnobs, tier: str, image_size: int) -> tuple[str, bytes, str, dict]:
    """A LAION-style (image, alt-text) pair."""
    lib = load_assets(tier)
    rng = random.Random(stable_int("pair", seed, pair_id))
    scene = sample_scene(rng, lib)
    image = png_bytes(render(scene, image_size, lib, rng))
    return f"{pair_id:08d}", image, language.alt_text(scene, rng, knobs.detail_prob), scene


def make_eval_image(task: tuple, seed: int, tier: str, image_size: int) -> tuple[bytes, dict]:
    """``task`` = (name, split, family, kind): a held-out scene (never in pre-training)."""
    name, split, family, kind = task
    lib = load_assets(tier)
    rng = random.Random(stable_int("eval", seed, name))
    scene = sample_scene(rng, lib, split=split, family=family, kind=kind)
    return png_bytes(render(scene, image_size, lib, rng)), scene


# ---- the whole world --------------------------------------------------------------------------------
def _call(job):
    function, args = job
    return function(*args)


def _parallel(function, argument_tuples, processes: int, chunksize: int = 16):
    """Ordered map over worker processes. A caller that runs other threads (a Jupyter kernel) gets workers
    from a fork server, never forked from itself: a child forked from a process with running threads can wait
    forever on a lock another thread held at the fork. A fork server's workers re-run the caller's main
    script unless it is guarded by ``if __name__ == "__main__"`` (as a kernel's and a console script's are, and
    a quick script often is not), so a caller with one thread keeps plain fork. The server is one clean
    process per caller that imports this module once; each worker loads the asset arrays itself
    (``load_assets`` is cached per process)."""
    jobs = ((function, args) for args in argument_tuples)
    if processes <= 1:
        yield from map(_call, jobs)
        return
    context = multiprocessing.get_context("forkserver" if threading.active_count() > 1 else "fork")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])  # not the caller's __main__: a notebook or test runner
    with context.Pool(processes) as pool:
        yield from pool.imap(_call, jobs, chunksize=chunksize)


def build_world(out, *, docs: int = 2000, seed: int = 0, tier: str = "basic", image_size: int = 32,
                knobs: WorldKnobs = WorldKnobs(), pairs: int | None = None, eval_sizes: EvalSizes = EvalSizes(),
                docs_per_shard: int = 250, pairs_per_shard: int = 500, processes: int | None = None,
                progress: bool = False) -> dict:
    """Write the offline world to ``out`` (layout in :mod:`lcl_core.data`) and return its manifest."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lib = load_assets(tier)  # here first: a missing real tier fails before any worker starts
    processes = processes or min(multiprocessing.cpu_count(), 8)
    pairs = docs if pairs is None else pairs
    counts: dict[str, int] = {}

    documents = _parallel(make_document, ((i, seed, knobs, tier, image_size) for i in range(docs)), processes)
    if progress:
        from tqdm import tqdm
        documents = tqdm(documents, total=docs, desc="documents", unit="doc")
    counts.update(writers.write_documents(out, documents, docs_per_shard=docs_per_shard,
                                          pairs_per_shard=pairs_per_shard))
    pair_items = _parallel(make_pair, ((i, seed, knobs, tier, image_size) for i in range(pairs)), processes)
    counts["pairs"] = writers.write_pairs(out / "pairs", ((k, png, caption, {"caption": caption, "scene": s})
                                                          for k, png, caption, s in pair_items),
                                          per_shard=pairs_per_shard)
    counts.update(_build_eval(out / "eval", seed, tier, image_size, eval_sizes, lib, processes))
    settings = world_settings(docs=docs, seed=seed, tier=tier, image_size=image_size, knobs=knobs, pairs=pairs,
                              eval_sizes=eval_sizes, docs_per_shard=docs_per_shard, pairs_per_shard=pairs_per_shard)
    manifest = {
        "format": WORLD_FORMAT, "seed": seed, "tier": tier, "image_size": image_size, "knobs": knobs.to_dict(),
        "eval_sizes": asdict(eval_sizes), "docs_per_shard": docs_per_shard, "counts": counts,
        "settings": settings, "content_sha256": content_digest(out),
        "classes": classification_classes(lib),
        "paths": {"corpus": "corpus.txt", "mmc4": "mmc4", "mmc4_images": "mmc4/images",
                  "alignment": "mmc4/alignment.jsonl", "obelics": "obelics", "pairs": "pairs",
                  "mmc4_pair": "mmc4_pair", "classification": "eval/classification",
                  "captions": "eval/captions/dataset_coco.json", "nocaps": "eval/nocaps/nocaps_val.json"},
    }
    (out / "world.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    log.info("built %s in %.1f s: %s", out, time.perf_counter() - started, counts)
    return manifest


def world_settings(*, docs: int = 2000, seed: int = 0, tier: str = "basic", image_size: int = 32,
                   knobs: WorldKnobs = WorldKnobs(), pairs: int | None = None, eval_sizes: EvalSizes = EvalSizes(),
                   docs_per_shard: int = 250, pairs_per_shard: int = 500) -> dict:
    """Every argument of :func:`build_world` that changes what it writes, as plain JSON (the world's
    manifest records it; :func:`ensure_world` compares it)."""
    return {"format": WORLD_FORMAT, "docs": docs, "seed": seed, "tier": tier, "image_size": image_size,
            "knobs": knobs.to_dict(), "pairs": docs if pairs is None else pairs, "eval_sizes": asdict(eval_sizes),
            "docs_per_shard": docs_per_shard, "pairs_per_shard": pairs_per_shard}


def content_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes (``world.json`` aside): the content a run trained on."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "world.json"):
        digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ensure_world(folder, *, progress: bool = False, processes: int | None = None, **settings) -> Path:
    """The world for ``settings`` (:func:`world_settings`' arguments) in ``folder``, built unless a world
    with exactly these settings is already there; a world built with others is replaced."""
    folder = Path(folder)
    manifest = folder / "world.json"
    wanted = world_settings(**settings)
    if manifest.is_file() and json.loads(manifest.read_text()).get("settings") == wanted:
        return folder
    if manifest.is_file():
        log.warning("rebuilding %s: it holds a world built with other settings", folder)
        shutil.rmtree(folder)
    build_world(folder, progress=progress, processes=processes, **settings)
    return folder


def cached_world(root, *, progress: bool = False, processes: int | None = None, **settings) -> Path:
    """:func:`ensure_world` in ``root/worlds/<name>``, the name spelling out the settings that differ from
    the defaults, so that notebooks and reproductions sharing ``root`` share worlds."""
    defaults, wanted = world_settings(), world_settings(**settings)
    changed = {k: v for k, v in wanted.items() if v != defaults[k]}
    flat = {**{k: v for k, v in changed.items() if not isinstance(v, dict)},
            **{k: v for group in ("knobs", "eval_sizes") for k, v in changed.get(group, {}).items()
               if v != defaults[group].get(k)}}
    name = "world" + "".join(f"-{k}{v}" for k, v in sorted(flat.items()))
    if len(name) > 120:  # many changed knobs: a digest keeps the folder name short
        name = "world-" + hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    return ensure_world(Path(root) / "worlds" / name, progress=progress, processes=processes, **settings)


def _build_eval(folder: Path, seed: int, tier: str, image_size: int, sizes: EvalSizes, lib,
                processes: int) -> dict[str, int]:
    classes = classification_classes(lib)
    tasks = []  # (eval set, split or domain, class, render task), rendered in one parallel pass
    for cls in classes:
        family, kind = cls.split("_", 1) if "_" in cls else ("shape", cls)
        kind = kind.replace("_", " ")
        for split, n in (("train", sizes.classification_train_per_class),
                         ("val", sizes.classification_val_per_class)):
            tasks += [("classification", split, cls, (f"cls/{split}/{cls}/{i}", "held_out", family, kind))
                      for i in range(n)]
    caption_splits = {"coco": (("train", sizes.captions_train), ("val", sizes.captions_val),
                               ("test", sizes.captions_test)),
                      "flickr30k": (("train", sizes.flickr30k_train), ("test", sizes.flickr30k_test))}
    for name, splits in caption_splits.items():
        prefix = "cap" if name == "coco" else name  # the COCO stand-in keeps its images when F30k is added
        tasks += [(name, split, None, (f"{prefix}/{split}/{i}", "held_out", None, None))
                  for split, n in splits for i in range(n)]
    domains = {"in-domain": ("held_out", (None,)), "near-domain": ("near", ("shape",)),
               "out-domain": ("out", ("letter", "stamp") if lib.stamps else ("letter",))}
    for domain, (split, domain_families) in domains.items():
        tasks += [("nocaps", domain, None, (f"nocaps/{domain}/{i}", split,
                                            domain_families[i % len(domain_families)], None))
                  for i in range(sizes.nocaps_per_domain)]
    rendered = _parallel(make_eval_image, ((t[3], seed, tier, image_size) for t in tasks), processes)
    return writers.write_eval_sets(folder, ((t[0], t[1], t[2], png, language.reference_captions(scene))
                                            for t, (png, scene) in zip(tasks, rendered)), classes=classes)
