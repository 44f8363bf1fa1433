"""What a run read, as one string: part of a run's identity (``lcl_core.training.runs``).

* A world (a folder with ``world.json``) is identified by the SHA-256 of its content, which
  :func:`lcl_core.data.world.build_world` records: a world rebuilt with other knobs, another seed or a
  changed generator is another world, even in the same folder.
* A folder (or file) of the user's own shards is identified by every file's relative path and size:
  hashing a corpus of terabytes on each run is not an option, and a shard rewritten in place almost
  never keeps its size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def data_fingerprint(data: str | Path) -> str:
    path = Path(data)
    manifest = path / "world.json"
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("content_sha256")
        if recorded:
            return f"world:{recorded}"
    if not path.exists():
        raise FileNotFoundError(f"data folder {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix() if file != path else file.name}|{file.stat().st_size}\n"
                      .encode())
    return f"files:{digest.hexdigest()}"


def file_digest(path: str | Path) -> str:
    """SHA-256 of one file's bytes (a tokenizer's training corpus)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
