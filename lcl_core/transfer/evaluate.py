"""Frozen-transfer evaluation of one LCL model against its calibration baselines.

``evaluate`` finds the evaluation sets under a root (see :func:`~lcl_core.transfer.datasets.find_eval_sets`),
then for every encoder — the model under test, a random-init model of the same architecture and, for
classification, raw pixel patches — trains each head with every seed and records the numbers, with
their split sizes, in the results schema of :mod:`lcl_core.transfer.results`.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..tokenizer import Tokenizer
from .datasets import (NOCAPS_DOMAINS, CaptionBenchmark, CaptionedImages, ClassificationBenchmark, EvalSets,
                       find_eval_sets)
from ..images import patchify
from .features import FeatureCache, ImageSet, extract, weights_fingerprint
from .heads import (CachedTokens, EncoderTokens, TokenSource, TransferSettings, encode_captions,
                    train_captioner, train_classifier, train_retrieval)
from .metrics import caption_scores, retrieval_recall, topk_accuracy
from .results import add_encoder, new_results, task_entry, validate_results
from .zeroshot import class_embeddings, encode_texts, zeroshot_classification, zeroshot_retrieval

ALL_TASKS = ("cls", "ret", "cap", "zeroshot")
ALL_BASELINES = ("random-init", "raw-pixels")


@dataclass(frozen=True)
class Encoder:
    """One row of the report: how it turns images into vision tokens, and the model behind it."""

    name: str
    description: str
    fingerprint: str
    model: nn.Module | None  # None for raw pixels: nothing to fine-tune, no zero-shot towers
    patch_size: int

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] -> vision tokens [B, N, Dv]."""
        if self.model is None:
            return patchify(images, patch_size=self.patch_size)
        return self.model.patch_features(images)


def evaluate(
    model: nn.Module, tokenizer: Tokenizer, eval_root: str | Path, *, tasks: Sequence[str] = ALL_TASKS,
    full_transfer: bool = False, seed: int = 0, num_seeds: int = 1, baselines: Sequence[str] = ALL_BASELINES,
    settings: TransferSettings | None = None, cache_dir: str | Path | None = None,
    checkpoint_source: str | None = None, templates: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate ``model`` (anything with ``patch_features``/``encode_image``/``encode_text`` and a
    ``config``) on every set under ``eval_root``; returns a results dict (see :mod:`.results`).

    ``full_transfer`` fine-tunes a copy of the encoder with each head; the caller's model is never
    changed. Seeds are ``seed … seed + num_seeds - 1``; each fixes head init and batch order.
    ``templates`` overrides the zero-shot prompt templates the classification set suggests.
    """
    unknown = (set(tasks) - set(ALL_TASKS)) | (set(baselines) - set(ALL_BASELINES))
    if unknown:
        raise ValueError(f"unknown tasks or baselines {sorted(unknown)}")
    settings = settings or TransferSettings()
    seeds = list(range(seed, seed + num_seeds))
    sets = find_eval_sets(eval_root)
    fingerprint = weights_fingerprint(model)
    results = new_results(
        checkpoint={"source": checkpoint_source, "fingerprint": fingerprint,
                    "config": getattr(model.config, "name", None),
                    "parameters": sum(p.numel() for p in model.parameters())},
        protocol={"full_transfer": full_transfer, "seeds": seeds, "tasks": list(tasks), "baselines": list(baselines),
                  "zeroshot_templates": None if templates is None else list(templates),
                  "settings": settings.to_dict()},
        data={"root": str(eval_root), "sets": sets.describe()},
    )
    patch_size = model.config.vision.patch_size
    encoders = [Encoder(name="checkpoint", description="the model under test", fingerprint=fingerprint,
                        model=model, patch_size=patch_size)]
    if "random-init" in baselines:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
            torch.manual_seed(seed)
            random_model = type(model)(config=model.config)
        encoders.append(Encoder(name="random-init", description=f"same architecture, random init (seed {seed})",
                                fingerprint=weights_fingerprint(random_model), model=random_model,
                                patch_size=patch_size))
    if "raw-pixels" in baselines:
        encoders.append(Encoder(name="raw-pixels", description=f"{patch_size}px pixel patches as tokens",
                                fingerprint=f"raw-pixels-p{patch_size}", model=None, patch_size=patch_size))
    runner = _Runner(tokenizer=tokenizer, settings=settings, seeds=seeds, full_transfer=full_transfer,
                     image_size=model.config.vision.image_size, cache=FeatureCache(folder=cache_dir),
                     templates=templates, log=log or (lambda message: None))
    with _eval_mode(*(e.model for e in encoders if e.model is not None)), torch.random.fork_rng(devices=[]):
        for encoder in encoders:
            entries = add_encoder(results, encoder.name, description=encoder.description,
                                  fingerprint=encoder.fingerprint)
            for entry in runner.run(encoder, sets, tasks):
                entries[f"{entry['task']}/{entry['dataset']}"] = entry
    validate_results(results)
    return results


def frozen_captions(model: nn.Module, tokenizer: Tokenizer, bench: CaptionBenchmark, *, settings: TransferSettings,
                    seed: int, count: int) -> list[str]:
    """Greedy captions of ``bench``'s first ``count`` test images by a captioning head trained, with ``seed``, on
    ``model``'s frozen patch tokens of ``bench``'s training images: the head Table 1's captioning columns score,
    for reading its captions rather than their scores."""
    size = model.config.vision.image_size
    with _eval_mode(model), torch.no_grad():
        train = extract(model.patch_features, ImageSet(paths=bench.train.paths, image_size=size),
                        batch_size=settings.feature_batch_size)
        test = extract(model.patch_features, ImageSet(paths=bench.test.paths[:count], image_size=size),
                       batch_size=settings.feature_batch_size)
    captioner = train_captioner(CachedTokens(train), bench.train.captions, tokenizer=tokenizer, settings=settings,
                                seed=seed)
    ids = captioner.generate(test, num_beams=1, max_new_tokens=settings.max_caption_tokens)
    return [tokenizer.decode(row) for row in ids]


@contextlib.contextmanager
def _eval_mode(*models: nn.Module) -> Iterator[None]:
    """Evaluate in eval mode, then hand the caller's models back in the mode they came in."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


class _Runner:
    """Trains and scores the heads of one encoder; holds what every task shares."""

    def __init__(self, *, tokenizer: Tokenizer, settings: TransferSettings, seeds: list[int], full_transfer: bool,
                 image_size: int, cache: FeatureCache, templates: Sequence[str] | None,
                 log: Callable[[str], None]) -> None:
        self.tokenizer, self.settings, self.seeds = tokenizer, settings, seeds
        self.full_transfer, self.image_size, self.cache = full_transfer, image_size, cache
        self.templates, self.log = templates, log

    def run(self, encoder: Encoder, sets: EvalSets, tasks: Sequence[str]) -> Iterator[dict]:
        is_model = encoder.model is not None
        if "cls" in tasks and sets.classification:
            self.log(f"[{encoder.name}] classification {sets.classification.name}")
            yield self.classification(encoder, sets.classification)
        if "ret" in tasks and is_model:
            for bench in sets.caption_sets:
                self.log(f"[{encoder.name}] retrieval {bench.name}")
                yield self.retrieval(encoder, bench)
        if "cap" in tasks and is_model and sets.caption_sets:
            bench = _captioning_set(sets.caption_sets)
            self.log(f"[{encoder.name}] captioning {bench.name}")
            yield from self.captioning(encoder, bench, sets.nocaps)
        if "zeroshot" in tasks and is_model:
            self.log(f"[{encoder.name}] zero-shot")
            yield from self.zeroshot(encoder, sets)

    # ---- shared plumbing ------------------------------------------------------------------------
    def images(self, paths) -> ImageSet:
        return ImageSet(paths=paths, image_size=self.image_size)

    def frozen_tokens(self, encoder: Encoder, images: ImageSet) -> torch.Tensor:
        return self.cache.get(encoder_id=encoder.fingerprint, kind="patch_tokens", images=images,
                              encode=encoder.patch_tokens, batch_size=self.settings.feature_batch_size)

    def train_and_embed(self, encoder: Encoder, train: ImageSet, evaluated: Sequence[ImageSet],
                        train_head: Callable[[TokenSource], nn.Module]) -> tuple[nn.Module, list[torch.Tensor]]:
        """Train a head on ``train``'s tokens; return it with the tokens of each evaluated set.

        Frozen: tokens come from the cache. Full transfer: a copy of the encoder is trained with the
        head and the evaluated sets are encoded by that copy.
        """
        if not (self.full_transfer and encoder.model is not None):
            head = train_head(CachedTokens(self.frozen_tokens(encoder, train)))
            return head, [self.frozen_tokens(encoder, images) for images in evaluated]
        tuned = copy.deepcopy(encoder.model)
        head = train_head(EncoderTokens(encoder=tuned, images=train))
        return head, [extract(tuned.patch_features, images, batch_size=self.settings.feature_batch_size)
                      for images in evaluated]

    # ---- tasks ----------------------------------------------------------------------------------
    def classification(self, encoder: Encoder, bench: ClassificationBenchmark) -> dict:
        train_labels, val_labels = torch.tensor(bench.train.labels), torch.tensor(bench.val.labels)
        per_seed = []
        for seed in self.seeds:
            head, (val_tokens,) = self.train_and_embed(
                encoder, self.images(bench.train.paths), [self.images(bench.val.paths)],
                lambda tokens: train_classifier(tokens, train_labels, num_classes=len(bench.train.classes),
                                                settings=self.settings, seed=seed))
            with torch.no_grad():
                per_seed.append(topk_accuracy(_batched(head, val_tokens, self.settings.feature_batch_size), val_labels))
        return task_entry(task="cls", dataset=bench.name, seeds=self.seeds, per_seed=per_seed,
                            splits={"train": len(bench.train), "val": len(bench.val),
                                    "classes": len(bench.train.classes)})

    def retrieval(self, encoder: Encoder, bench: CaptionBenchmark) -> dict:
        owners = torch.tensor(bench.test.caption_owners())
        per_seed = []
        for seed in self.seeds:
            heads, (test_tokens,) = self.train_and_embed(
                encoder, self.images(bench.train.paths), [self.images(bench.test.paths)],
                lambda tokens: train_retrieval(tokens, bench.train.captions, tokenizer=self.tokenizer,
                                               settings=self.settings, seed=seed))
            with torch.no_grad():
                image_emb = _batched(heads.embed_images, test_tokens, self.settings.feature_batch_size)
                text_emb = heads.embed_texts(*encode_captions(self.tokenizer, bench.test.flat_captions(),
                                                              settings=self.settings))
            per_seed.append(retrieval_recall(image_emb @ text_emb.T, owners))
        return task_entry(task="ret", dataset=bench.name, seeds=self.seeds, per_seed=per_seed,
                            splits=_caption_splits(train=bench.train, test=bench.test))

    def captioning(self, encoder: Encoder, bench: CaptionBenchmark, nocaps: CaptionedImages | None) -> Iterator[dict]:
        references = bench.caption_references
        evaluated = [self.images(references.paths)] + ([self.images(nocaps.paths)] if nocaps else [])
        per_seed, nocaps_per_seed = [], []
        for seed in self.seeds:
            captioner, tokens = self.train_and_embed(
                encoder, self.images(bench.train.paths), evaluated,
                lambda tokens: train_captioner(tokens, bench.train.captions, tokenizer=self.tokenizer,
                                               settings=self.settings, seed=seed))
            beam = caption_scores(*self.captions(captioner, references, tokens[0], num_beams=self.settings.beam_size))
            greedy = caption_scores(*self.captions(captioner, references, tokens[0], num_beams=1))
            per_seed.append(beam | {f"{k}_greedy": v for k, v in greedy.items()})
            if nocaps:
                nocaps_per_seed.append(self.nocaps_scores(captioner, nocaps, tokens[1]))
        yield task_entry(task="cap", dataset=bench.name, seeds=self.seeds, per_seed=per_seed,
                           splits=_caption_splits(train=bench.train, test=references))
        if nocaps:
            splits = _caption_splits(train=bench.train, test=nocaps)
            splits |= {f"test_{d}": nocaps.domains.count(d) for d in NOCAPS_DOMAINS}
            yield task_entry(task="cap", dataset="nocaps", seeds=self.seeds, per_seed=nocaps_per_seed, splits=splits)

    def captions(self, captioner, data: CaptionedImages, tokens: torch.Tensor, *, num_beams: int):
        """-> (references, predictions) keyed by image index, ready for :func:`caption_scores`."""
        ids = []
        for chunk in tokens.split(self.settings.feature_batch_size):
            ids += captioner.generate(chunk, num_beams=num_beams, max_new_tokens=self.settings.max_caption_tokens)
        predictions = {i: self.tokenizer.decode(row) for i, row in enumerate(ids)}
        return dict(enumerate(data.captions)), predictions

    def nocaps_scores(self, captioner, nocaps: CaptionedImages, tokens: torch.Tensor) -> dict[str, float]:
        """Overall BLEU-4/CIDEr plus CIDEr per domain (each domain scored on its own, as NoCaps does)."""
        references, predictions = self.captions(captioner, nocaps, tokens, num_beams=self.settings.beam_size)
        scores = caption_scores(references, predictions)
        for domain in NOCAPS_DOMAINS:
            keep = [i for i, d in enumerate(nocaps.domains) if d == domain]
            if keep:
                subset = caption_scores({i: references[i] for i in keep}, {i: predictions[i] for i in keep})
                scores[f"cider_{domain}"] = subset["cider"]
        return scores

    def zeroshot(self, encoder: Encoder, sets: EvalSets) -> Iterator[dict]:
        model = encoder.model
        if sets.classification:
            bench = sets.classification
            latents = self.latents(encoder, self.images(bench.val.paths))
            classes = class_embeddings(model, self.tokenizer, bench.val.class_names,
                                       templates=self.templates or bench.val.prompt_templates)
            metrics = zeroshot_classification(latents, torch.tensor(bench.val.labels), classes)
            yield task_entry(task="zeroshot-cls", dataset=bench.name, seeds=[], per_seed=[metrics],
                               splits={"val": len(bench.val), "classes": len(bench.val.classes)})
        for bench in sets.caption_sets:
            latents = self.latents(encoder, self.images(bench.test.paths))
            captions = encode_texts(model, self.tokenizer, bench.test.flat_captions())
            metrics = zeroshot_retrieval(latents, captions, torch.tensor(bench.test.caption_owners()))
            yield task_entry(task="zeroshot-ret", dataset=bench.name, seeds=[], per_seed=[metrics],
                               splits={"test_images": len(bench.test), "test_captions": bench.test.num_captions})

    def latents(self, encoder: Encoder, images: ImageSet) -> torch.Tensor:
        return self.cache.get(encoder_id=encoder.fingerprint, kind="image_latents", images=images,
                              encode=lambda x: encoder.model.encode_image(x, normalize=True),
                              batch_size=self.settings.feature_batch_size)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(chunk) for chunk in tokens.split(batch_size)])


def _caption_splits(*, train: CaptionedImages, test: CaptionedImages) -> dict[str, int]:
    return {"train_images": len(train), "train_captions": train.num_captions,
            "test_images": len(test), "test_captions": test.num_captions}


def _captioning_set(caption_sets: Sequence[CaptionBenchmark]) -> CaptionBenchmark:
    """Captioning is trained and scored on COCO, as in Table 1 (the first caption set if none is named so),
    and NoCaps is scored with that same captioner; the other caption sets serve retrieval."""
    return next((b for b in caption_sets if b.name == "coco"), caption_sets[0])
