"""Hostile files: each gives a counted skip (found before it is decoded or read whole) or a clear refusal."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import pytest
import torch

from lcl_core.data import MMC4Dataset, ObelicsDataset, PairedDataset, ReadLimits
from lcl_core.data.streaming import TOO_LARGE, bounded_lines
from lcl_core.data.writers import write_obelics
from lcl_core.training.checkpointing import CorruptCheckpointError, read_checkpoint, save_checkpoint

from data_helpers import doc, png, shard

SIZES = dict(image_size=16, num_image_tokens=4, context_length=64)


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` pixels, with a few bytes of image data: tiny on
    disk, gigapixels if decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _read(dataset) -> list[dict]:
    return list(dataset)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, clip_tok):
    images = {"bomb.png": bomb_png(30_000, 30_000), "fine.png": png((16, 16))}  # 900 M pixels in 96 bytes
    assert len(images["bomb.png"]) < 200
    shard(tmp_path, [doc(("bomb.png", 0, 0.9)), doc(("fine.png", 0, 0.9))], images=images)
    data = MMC4Dataset(tmp_path, clip_tok, **SIZES)
    samples = _read(data)
    assert len(samples) == 1 and data.skips["image_too_large"] == 1 and data.skips["no_usable_image"] == 1


def test_the_pixel_limit_is_an_option_checked_before_decoding(tmp_path, clip_tok, monkeypatch):
    shard(tmp_path, [doc(("a.png", 0, 0.9)), doc(("b.png", 0, 0.9))],
          images={"a.png": png((40, 40)), "b.png": png((16, 16))})
    decoded = []
    from PIL import ImageFile
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or original(self))
    data = MMC4Dataset(tmp_path, clip_tok, limits=ReadLimits(max_image_pixels=40 * 40 - 1), **SIZES)
    assert len(_read(data)) == 1 and data.skips["image_too_large"] == 1
    assert (40, 40) not in decoded and (16, 16) in decoded


def test_an_enormous_json_line_is_skipped_unread_and_counted(tmp_path, clip_tok):
    huge = json.dumps(doc(("a.png", 0, 0.9), sentences=2000)).encode()  # ~50 KB with 2,000 sentences
    assert len(huge) > 20_000
    shard(tmp_path, [doc(("a.png", 0, 0.9)), huge, doc(("a.png", 1, 0.9))], images={"a.png": png((16, 16))})
    data = MMC4Dataset(tmp_path, clip_tok, limits=ReadLimits(max_record_bytes=20_000), **SIZES)
    samples = _read(data)
    assert [s["position"]["record"] for s in samples] == [0, 2] and data.skips["record_too_large"] == 1


def test_bounded_lines_never_hold_a_long_line(monkeypatch):
    monkeypatch.setattr("lcl_core.data.streaming.SKIP_CHUNK", 7)
    stream = io.BytesIO(b"short\n" + b"x" * 100 + b"\nlast")
    reads = []
    readline = stream.readline
    stream.readline = lambda size=-1: reads.append(size) or readline(size)
    assert list(bounded_lines(stream, 10)) == [b"short\n", TOO_LARGE, b"last"]
    assert max(reads) == 11  # at most limit + 1 bytes asked for at once


def test_a_document_with_absurd_lists_is_skipped(tmp_path, clip_tok):
    shard(tmp_path, [doc(("a.png", 0, 0.9), sentences=50), doc(("a.png", 0, 0.9))], images={"a.png": png((16, 16))})
    data = MMC4Dataset(tmp_path, clip_tok, limits=ReadLimits(max_list_items=20), **SIZES)
    assert len(_read(data)) == 1 and data.skips["document_too_large"] == 1


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_an_oversized_tar_member_is_passed_over_and_counted(tmp_path, clip_tok, monkeypatch):
    big = png((16, 16), format="BMP")  # an uncompressed image: large for its pixels
    _tar(tmp_path / "pairs-0.tar", {"a.jpg": png((16, 16)), "a.txt": b"a red square", "b.jpg": big,
                                    "b.txt": b"a big one", "c.jpg": png((16, 16)), "c.txt": b"two cats"})
    read_sizes = []
    original = tarfile.ExFileObject.read
    monkeypatch.setattr(tarfile.ExFileObject, "read", lambda self, *a: read_sizes.append(len(out := original(self, *a)))
                        or out)
    data = PairedDataset(tmp_path, clip_tok, limits=ReadLimits(max_record_bytes=len(big) - 1), **SIZES)
    samples = _read(data)
    assert [s["position"]["record"] for s in samples] == [0, 2] and data.skips["record_too_large"] == 1
    assert len(big) not in read_sizes, "the large member was read"


def test_parquet_rows_with_absurd_lists_or_text_are_skipped(tmp_path, clip_tok):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png((16, 16)))
    good = {"texts": ["a red square", None], "images": [None, "images/a.png"]}
    many = {"texts": ["x"] * 30 + [None], "images": [None] * 30 + ["images/a.png"]}
    long_text = {"texts": ["y" * 5000, None], "images": [None, "images/a.png"]}
    write_obelics(tmp_path / "obelics-0.parquet", [good, many, long_text, good])
    data = ObelicsDataset(tmp_path, clip_tok, limits=ReadLimits(max_list_items=20, max_record_bytes=4000), **SIZES)
    samples = _read(data)
    assert [s["position"]["record"] for s in samples] == [0, 3] and data.skips["document_too_large"] == 2


def test_read_limits_must_be_positive():
    with pytest.raises(ValueError, match="read limits must be at least 1: max_record_bytes"):
        ReadLimits(max_record_bytes=0)


class _Payload:
    def __reduce__(self):
        return os.system, ("touch PWNED",)


def test_a_checkpoint_state_with_code_in_it_is_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = save_checkpoint(tmp_path / "checkpoints", step=1, weights={"w": torch.zeros(2)}, state={"ok": 1}, keep=2)
    torch.save({"evil": _Payload()}, saved / "state.pt")  # then make the manifest agree, as an attacker would
    manifest = json.loads((saved / "manifest.json").read_text())
    from lcl_core.data.fingerprint import file_digest
    manifest["sha256"]["state.pt"] = file_digest(saved / "state.pt")
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptCheckpointError, match="holds more than tensors and plain data, refused unread"):
        read_checkpoint(saved)
    assert not (tmp_path / "PWNED").exists()
