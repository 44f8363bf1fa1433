"""Readers for the evaluation sets, in the formats the real benchmarks ship in.

* ImageNet-style folders: ``ROOT/{train,val}/<class>/<image>``. Readable class names for zero-shot
  prompts come from ``ROOT/classes.json`` (``{folder: phrase}``, the phrase used verbatim, as the
  offline world writes it) or ``ROOT/classnames.txt`` (one name per line in sorted-folder order,
  e.g. ``tench`` for ``n01440764``, prompted as "a photo of a {}."), else from the folder names;
* Karpathy JSON (``dataset_coco.json``, ``dataset_flickr30k.json``): ``{"images": [{"filepath",
  "filename", "split", "sentences": [{"raw", ...}], ...}]}`` with splits train/restval/val/test;
* COCO caption JSON (``captions_val2014.json``-style): ``{"images": [{"id", "file_name"}],
  "annotations": [{"image_id", "caption"}]}``; NoCaps is the same format with ``"domain"`` on each image.

:func:`find_eval_sets` finds whatever of these lies under an evaluation root (the offline world's
``DIR/eval`` or a folder a user arranges the same way).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".JPEG"}
KARPATHY_TRAIN_SPLITS = ("train", "restval")
NOCAPS_DOMAINS = ("in-domain", "near-domain", "out-domain")


@dataclass(frozen=True)
class LabelledImages:
    """One split of an image-classification set."""

    paths: list[Path]
    labels: list[int]
    classes: list[str]  # folder names, sorted; labels index this list
    class_names: list[str]  # readable names (for zero-shot prompts)
    prompt_templates: tuple[str, ...] = ("a photo of a {}.",)  # how zero-shot turns a name into text

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class CaptionedImages:
    """Images with one or more reference captions each (retrieval and captioning)."""

    name: str
    paths: list[Path]
    captions: list[list[str]]
    image_ids: list[int | str]
    domains: list[str] | None = None  # NoCaps only

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_captions(self) -> int:
        return sum(len(c) for c in self.captions)

    def caption_owners(self) -> list[int]:
        """For each caption in flattened order, the index of its image."""
        return [i for i, caps in enumerate(self.captions) for _ in caps]

    def flat_captions(self) -> list[str]:
        return [c for caps in self.captions for c in caps]

    def subset(self, keep: Sequence[int]) -> "CaptionedImages":
        pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
        return CaptionedImages(name=self.name, paths=pick(self.paths), captions=pick(self.captions),
                               image_ids=pick(self.image_ids),
                               domains=None if self.domains is None else pick(self.domains))


# ---- ImageFolder ----------------------------------------------------------------------------------
def read_image_folder(root: str | Path) -> LabelledImages:
    """``root/<class>/<image>``; classes are the sorted sub-folder names (torchvision's convention)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{root} has no class folders")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    phrases_file, names_file = root.parent / "classes.json", root.parent / "classnames.txt"
    if phrases_file.is_file():
        phrases = json.loads(phrases_file.read_text())
        missing = [c for c in classes if c not in phrases]
        if missing:
            raise ValueError(f"{phrases_file} names no phrase for {missing}")
        return LabelledImages(paths=paths, labels=labels, classes=classes, class_names=[phrases[c] for c in classes],
                              prompt_templates=("{}",))
    if names_file.is_file():
        class_names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(class_names) != len(classes):
            raise ValueError(f"{names_file} has {len(class_names)} names for {len(classes)} class folders")
    else:
        class_names = [c.replace("_", " ") for c in classes]
    return LabelledImages(paths=paths, labels=labels, classes=classes, class_names=class_names)


# ---- caption JSONs --------------------------------------------------------------------------------
def _resolve(json_path: Path, relative: str, image_root: Path | None) -> Path:
    """Real releases keep images beside the JSON or in an ``images/`` folder next to it."""
    roots = [image_root] if image_root is not None else [json_path.parent / "images", json_path.parent]
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    raise FileNotFoundError(f"image {relative!r} of {json_path.name} not found under {[str(r) for r in roots]}")


def read_karpathy(json_path: str | Path, *, splits: Sequence[str], image_root: str | Path | None = None,
                  name: str | None = None) -> CaptionedImages:
    """The images of ``splits`` from a Karpathy-split JSON, with their ``raw`` sentences."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text())
    root = None if image_root is None else Path(image_root)
    paths, captions, ids = [], [], []
    for entry in data["images"]:
        if entry["split"] not in splits:
            continue
        relative = str(Path(entry.get("filepath", "")) / entry["filename"])
        paths.append(_resolve(json_path, relative, root))
        captions.append([s["raw"].strip() for s in entry["sentences"]])
        ids.append(entry.get("cocoid", entry.get("imgid")))
    return CaptionedImages(name=name or karpathy_name(json_path), paths=paths, captions=captions, image_ids=ids)


def karpathy_name(json_path: Path) -> str:
    """``dataset_coco.json`` -> ``coco``, ``dataset_flickr30k.json`` -> ``flickr30k``."""
    return json_path.stem.removeprefix("dataset_")


def read_coco_captions(json_path: str | Path, *, image_root: str | Path | None = None,
                       name: str | None = None) -> CaptionedImages:
    """A COCO caption-format file (``images`` + ``annotations``); keeps ``domain`` when images carry it."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text())
    root = None if image_root is None else Path(image_root)
    by_image = defaultdict(list)
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann["caption"].strip())
    images = [im for im in data["images"] if by_image[im["id"]]]
    has_domain = all("domain" in im for im in images)
    return CaptionedImages(
        name=name or json_path.stem,
        paths=[_resolve(json_path, im["file_name"], root) for im in images],
        captions=[by_image[im["id"]] for im in images],
        image_ids=[im["id"] for im in images],
        domains=[im["domain"] for im in images] if has_domain else None,
    )


def read_nocaps(json_path: str | Path, *, image_root: str | Path | None = None) -> CaptionedImages:
    """NoCaps validation JSON: COCO caption format whose images name their ``domain``."""
    data = read_coco_captions(json_path, image_root=image_root, name="nocaps")
    if data.domains is None:
        raise ValueError(f"{json_path} is not a NoCaps file: images carry no 'domain'")
    unknown = set(data.domains) - set(NOCAPS_DOMAINS)
    if unknown:
        raise ValueError(f"unknown NoCaps domains {sorted(unknown)}")
    return data


# ---- discovery ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassificationBenchmark:
    name: str
    train: LabelledImages
    val: LabelledImages


@dataclass(frozen=True)
class CaptionBenchmark:
    """A Karpathy-split caption set: heads train on train+restval and are scored on ``test``."""

    name: str
    train: CaptionedImages
    test: CaptionedImages
    caption_references: CaptionedImages  # what captioning is scored against


@dataclass(frozen=True)
class EvalSets:
    classification: ClassificationBenchmark | None = None
    caption_sets: list[CaptionBenchmark] = field(default_factory=list)
    nocaps: CaptionedImages | None = None

    def describe(self) -> str:
        parts = []
        if self.classification:
            c = self.classification
            parts.append(f"classification {c.name}: {len(c.train)} train / {len(c.val)} val, "
                         f"{len(c.train.classes)} classes")
        for s in self.caption_sets:
            parts.append(f"{s.name}: {len(s.train)} train / {len(s.test)} test images")
        if self.nocaps:
            parts.append(f"nocaps: {len(self.nocaps)} images")
        return "; ".join(parts) or "no evaluation sets"


def find_eval_sets(eval_root: str | Path) -> EvalSets:
    """Everything evaluable under ``eval_root`` (the world's ``DIR`` or ``DIR/eval``).

    * ``classification/`` or ``imagenet/`` holding ``train/`` and ``val/`` ImageFolders;
    * ``dataset_<name>.json`` Karpathy files (anywhere one level down). The scored split is ``test``
      (``val`` when a file has no test split); a ``captions_val.json`` beside it, when present, holds
      the COCO-format captioning references, and its images are removed from the training split;
    * ``nocaps/nocaps_val*.json``.
    """
    root = Path(eval_root)
    if (root / "eval").is_dir():
        root = root / "eval"
    classification = None
    for folder in ("classification", "imagenet"):
        if (root / folder / "train").is_dir() and (root / folder / "val").is_dir():
            train, val = read_image_folder(root / folder / "train"), read_image_folder(root / folder / "val")
            if train.classes != val.classes:
                raise ValueError(f"{root / folder}: train and val have different class folders")
            classification = ClassificationBenchmark(name=folder, train=train, val=val)
            break
    karpathy_files = sorted(root.glob("dataset_*.json")) + sorted(root.glob("*/dataset_*.json"))
    caption_sets = [_caption_benchmark(p) for p in karpathy_files]
    nocaps_files = sorted(root.glob("nocaps/nocaps_val*.json"))
    nocaps = read_nocaps(nocaps_files[0]) if nocaps_files else None
    return EvalSets(classification=classification, caption_sets=caption_sets, nocaps=nocaps)


def _caption_benchmark(karpathy_json: Path) -> CaptionBenchmark:
    splits = {im["split"] for im in json.loads(karpathy_json.read_text())["images"]}
    test_split = "test" if "test" in splits else "val"
    name = karpathy_name(karpathy_json)
    train = read_karpathy(karpathy_json, splits=KARPATHY_TRAIN_SPLITS)
    test = read_karpathy(karpathy_json, splits=(test_split,))
    references = test
    coco_refs = karpathy_json.parent / "captions_val.json"
    if coco_refs.is_file():
        references = read_coco_captions(coco_refs, name=name)
        held_out = {p.resolve() for p in references.paths}
        train = train.subset([i for i, p in enumerate(train.paths) if p.resolve() not in held_out])
    return CaptionBenchmark(name=name, train=train, test=test, caption_references=references)


def probe_images(eval_root: str | Path, *, image_size: int, per_class: int = 1, max_classes: int | None = None):
    """Held-out images (never seen in pre-training) for looking at a model: ``per_class`` validation
    images of each of the first ``max_classes`` classes of the classification set under ``eval_root``
    -> (images [M, 3, H, W], labels [M], class names)."""
    import torch

    from .features import ImageSet

    bench = find_eval_sets(eval_root).classification
    if bench is None:
        raise FileNotFoundError(f"no classification set under {eval_root}")
    split = bench.val
    classes = range(len(split.classes))[:max_classes]
    chosen = [i for c in classes for i in [j for j, label in enumerate(split.labels) if label == c][:per_class]]
    images = ImageSet(paths=[split.paths[i] for i in chosen], image_size=image_size).load(range(len(chosen)))
    return images, torch.tensor([split.labels[i] for i in chosen]), [split.class_names[c] for c in classes]
