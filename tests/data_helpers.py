"""Small bad and good inputs for the readers, written in the real formats: PNG bytes, MMC4 documents and
zipped MMC4 shards with their images."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from PIL import Image


def png(size=(12, 12), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 3 if mode in ("P", "I;16", "I") else None).save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def doc(*images, sentences=3) -> dict:
    """An MMC4 record; each image is ``(image_name, matched_text_index, matched_sim)``."""
    return {"url": "u", "text_list": [f"hello world {i}" for i in range(sentences)], "similarity_matrix": [],
            "image_info": [{"image_name": n, "matched_text_index": i, "matched_sim": s, "raw_url": "", "face_detections": None}
                           for n, i, s in images]}


def shard(folder: Path, lines: list, index=0, member=None, images=None, image_folder: Path | None = None) -> Path:
    """``folder/docs_shard_{index}_v2.jsonl.zip`` holding ``lines`` (records, or raw bytes for broken lines),
    and ``images`` (name -> bytes) in ``image_folder`` (default ``folder/images``, the world's layout)."""
    image_folder = image_folder or folder / "images"
    folder.mkdir(parents=True, exist_ok=True)
    image_folder.mkdir(parents=True, exist_ok=True)
    for name, data in (images or {}).items():
        (image_folder / name).write_bytes(data)
    path = folder / f"docs_shard_{index}_v2.jsonl.zip"
    info = zipfile.ZipInfo(member or path.name[:-4])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, b"".join((json.dumps(l).encode() if isinstance(l, dict) else l) + b"\n" for l in lines))
    return path
