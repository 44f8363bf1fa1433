"""Writers for the real on-disk formats. Every archive is written with fixed timestamps and owners so
that one seed gives byte-identical files.

* MMC4: ``docs_shard_{i}_v2.jsonl.zip`` holding ``docs_shard_{i}_v2.jsonl`` + ``images/``;
* OBELICS: parquet with ``texts`` / ``images`` lists, ``metadata`` / ``general_metadata`` JSON strings;
* webdataset tars (``key.png``, ``key.txt``, ``key.json``) with a LAION-style ``sizes.json``;
* evaluation: ImageFolder, Karpathy ``dataset_coco.json``, COCO-caption JSON, NoCaps-style JSON.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

MMC4_SHARD = "docs_shard_{i}_v2.jsonl"
OBELICS_SCHEMA = pa.schema([("texts", pa.list_(pa.string())), ("images", pa.list_(pa.string())),
                            ("metadata", pa.string()), ("general_metadata", pa.string())])
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_mmc4_shard(path: Path, member: str, records: Iterable[dict]) -> None:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    info = zipfile.ZipInfo(member, date_time=FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, lines)


def write_obelics(path: Path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=OBELICS_SCHEMA), path)


class TarShards:
    """webdataset shards ``00000.tar, 00001.tar, …`` of ``per_shard`` samples, plus ``sizes.json``."""

    def __init__(self, folder: Path, per_shard: int) -> None:
        self.folder, self.per_shard = Path(folder), per_shard
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sizes: dict[str, int] = {}
        self._tar: tarfile.TarFile | None = None

    def add(self, key: str, files: dict[str, bytes]) -> None:
        if self._tar is None or self.sizes[self._name] == self.per_shard:
            self._open_next()
        for extension, data in files.items():
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self.sizes[self._name] += 1

    def _open_next(self) -> None:
        self.close_shard()
        self._name = f"{len(self.sizes):05d}.tar"
        self.sizes[self._name] = 0
        self._tar = tarfile.open(self.folder / self._name, "w", format=tarfile.USTAR_FORMAT)

    def close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def close(self) -> int:
        self.close_shard()
        (self.folder / "sizes.json").write_text(json.dumps(self.sizes, indent=1) + "\n")
        return sum(self.sizes.values())


def pair_files(image: bytes, caption: str, meta: dict) -> dict[str, bytes]:
    return {"png": image, "txt": caption.encode("utf-8"), "json": json.dumps(meta, sort_keys=True).encode("utf-8")}


def write_pairs(folder: Path, pairs: Iterable[tuple[str, bytes, str, dict]], *, per_shard: int) -> int:
    shards = TarShards(folder, per_shard)
    for key, image, caption, meta in pairs:
        shards.add(key, pair_files(image, caption, meta))
    return shards.close()


def write_documents(out: Path, documents: Iterable[dict], *, docs_per_shard: int, pairs_per_shard: int) -> dict:
    """MMC4 shards + images + alignment sidecar, OBELICS parquet, MMC4-Pair tars and ``corpus.txt``."""
    mmc4, obelics = out / "mmc4", out / "obelics"
    (mmc4 / "images").mkdir(parents=True, exist_ok=True)
    obelics.mkdir(parents=True, exist_ok=True)
    mmc4_pairs = TarShards(out / "mmc4_pair", pairs_per_shard)
    counts = Counter()
    batch: list[dict] = []

    def flush() -> None:
        shard = counts["mmc4_shards"]
        member = MMC4_SHARD.format(i=shard)
        write_mmc4_shard(mmc4 / f"{member}.zip", member, (d["record"] for d in batch))
        write_obelics(obelics / f"obelics-{shard:05d}.parquet", [d["obelics"] for d in batch])
        counts["mmc4_shards"] += 1
        batch.clear()

    with open(out / "corpus.txt", "w", encoding="utf-8") as corpus, \
            open(mmc4 / "alignment.jsonl", "w", encoding="utf-8") as alignment:
        for doc in documents:
            for name, image in doc["images"]:
                (mmc4 / "images" / name).write_bytes(image)
            for name, image, sentence in doc["pairs"]:
                mmc4_pairs.add(Path(name).stem, pair_files(image, sentence, {"caption": sentence,
                                                                             "url": doc["record"]["url"]}))
            corpus.write(" ".join(doc["record"]["text_list"]) + "\n")
            alignment.write(json.dumps(doc["alignment"], sort_keys=True) + "\n")
            counts["documents"] += 1
            counts["images"] += len(doc["images"])
            counts["sentences"] += len(doc["record"]["text_list"])
            batch.append(doc)
            if len(batch) == docs_per_shard:
                flush()
        if batch:
            flush()
    counts["mmc4_pairs"] = mmc4_pairs.close()
    return dict(counts)


# ---- evaluation sets --------------------------------------------------------------------------------
def karpathy_tokens(sentence: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", sentence.lower())


KARPATHY_SETS = {"coco": "captions", "flickr30k": "flickr30k"}  # caption set -> its folder under eval/


def write_eval_sets(folder: Path, items: Iterable[tuple], *, classes: dict[str, str] | None = None) -> dict[str, int]:
    """The evaluation sets in the real benchmarks' formats. ``items``: (eval set, split or NoCaps domain,
    class name or None, png bytes, reference captions) in a fixed order; eval sets are
    ``classification`` (ImageFolder), ``coco`` and ``flickr30k`` (Karpathy JSON; COCO also gets a
    COCO-caption ``captions_val.json``) and ``nocaps``. ``classes`` (folder -> phrase) goes to
    ``classification/classes.json`` for zero-shot prompts."""
    folder = Path(folder)
    counts = Counter()
    karpathy: dict[str, list] = {name: [] for name in KARPATHY_SETS}
    nocaps, nocaps_json = folder / "nocaps", {"images": [], "annotations": []}
    if classes is not None:
        (folder / "classification").mkdir(parents=True, exist_ok=True)
        (folder / "classification" / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    for kind, split, cls, png, captions in items:
        if kind == "classification":
            target = folder / "classification" / split / cls
            target.mkdir(parents=True, exist_ok=True)
            (target / f"{counts[f'classification/{split}/{cls}']:05d}.png").write_bytes(png)
            counts[f"classification/{split}/{cls}"] += 1
            counts[f"classification_{split}"] += 1
        elif kind in karpathy:
            entries, images = karpathy[kind], folder / KARPATHY_SETS[kind] / "images"
            image_id, filename = len(entries), f"{len(entries):05d}.png"
            images.mkdir(parents=True, exist_ok=True)
            (images / filename).write_bytes(png)
            sentences = [{"raw": raw, "tokens": karpathy_tokens(raw), "imgid": image_id,
                          "sentid": image_id * len(captions) + k} for k, raw in enumerate(captions)]
            entries.append({"filepath": "images", "filename": filename, "imgid": image_id, "cocoid": image_id,
                            "split": split, "sentences": sentences, "sentids": [s["sentid"] for s in sentences]})
        elif kind == "nocaps":
            image_id, filename = len(nocaps_json["images"]), f"{len(nocaps_json['images']):05d}.png"
            (nocaps / "images").mkdir(parents=True, exist_ok=True)
            (nocaps / "images" / filename).write_bytes(png)
            nocaps_json["images"].append({"id": image_id, "file_name": filename, "domain": split})
            nocaps_json["annotations"] += [{"id": image_id * len(captions) + k, "image_id": image_id,
                                            "caption": caption} for k, caption in enumerate(captions)]
        else:
            raise ValueError(f"unknown evaluation set {kind!r}")
    for name, entries in karpathy.items():
        if entries:
            (folder / KARPATHY_SETS[name] / f"dataset_{name}.json").write_text(
                json.dumps({"images": entries, "dataset": name}) + "\n")
    if karpathy["coco"]:  # COCO's captions_val2014.json holds both Karpathy val and test images; so does this one
        held = [entry for entry in karpathy["coco"] if entry["split"] != "train"]
        coco = {"images": [{"id": e["cocoid"], "file_name": e["filename"]} for e in held],
                "annotations": [{"id": s["sentid"], "image_id": e["cocoid"], "caption": s["raw"]}
                                for e in held for s in e["sentences"]]}
        (folder / KARPATHY_SETS["coco"] / "captions_val.json").write_text(json.dumps(coco) + "\n")
    if nocaps_json["images"]:
        (nocaps / "nocaps_val.json").write_text(json.dumps(nocaps_json) + "\n")
    return {"classification_train": counts["classification_train"],
            "classification_val": counts["classification_val"],
            "classification_classes": len({k.split("/")[2] for k in counts if k.startswith("classification/")}),
            "caption_images": len(karpathy["coco"]), "flickr30k_images": len(karpathy["flickr30k"]),
            "nocaps_images": len(nocaps_json["images"])}
