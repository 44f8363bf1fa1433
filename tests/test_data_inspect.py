"""Real data layouts: MMC4 shards in one folder and their images in another (flat, or one folder per
shard), read by ``lcl data inspect`` and ``lcl pretrain --images`` with the training readers; every
faulty input is listed by reason, with counts worked out by hand below."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lcl_core.data.inspection import inspect_files, reader_for
from lcl_core.sequences import laid_out
from lcl_core.tokenizer import ClipTokenizer

from data_helpers import doc, png, shard
from training_helpers import REPO, run_quietly, small_world, tiny_model_config_file

CLIP = ClipTokenizer()


@pytest.fixture
def mmc4_apart(tmp_path):
    """Two shards in ``shards/``; shard 0's images flat in ``images/``, shard 1's in
    ``images/docs_shard_1_v2/``. Shard 0: a document with one good and one missing image, one whose images
    are all below the 0.24 threshold, a broken line, one whose only image is corrupt. Shard 1: two good
    documents (two images and one)."""
    shards, images = tmp_path / "shards", tmp_path / "images"
    shard(shards, [doc(("good.png", 0, 0.3), ("gone.png", 1, 0.3)), doc(("good.png", 1, 0.2)), b'{"url": "u", "text_',
                   doc(("corrupt.png", 2, 0.5))],
          index=0, images={"good.png": png(), "corrupt.png": png()[:40]}, image_folder=images)
    shard(shards, [doc(("d1.png", 0, 0.3), ("d2.png", 2, 0.4)), doc(("e.png", 1, 0.3))], index=1,
          images={"d1.png": png(), "d2.png": png(), "e.png": png()}, image_folder=images / "docs_shard_1_v2")
    assert not (shards / "images").exists()  # nothing beside the shards, as in a real download
    return shards, images


def test_inspect_runs_the_reader_over_shards_with_images_apart(mmc4_apart):
    shards, images = mmc4_apart
    report = inspect_files(shards, CLIP, images=images, show=3)
    assert (report.kind, report.files, report.records) == ("MMC4 shards", 2, 6)
    assert (report.rows, report.images) == (3, 4)  # 1 + 2 + 1 images in the three usable documents
    assert report.skipped == {"no_image_above_threshold": 1, "broken_json_line": 1, "no_usable_image": 1}
    assert report.counted == {"missing_image": 1, "corrupt_image": 1}  # images dropped from kept documents
    assert [text.count("[image") for text in report.examples] == [1, 2, 1]
    # the good image is matched to sentence 0; the reader puts it before or after that sentence (p = 0.5)
    assert report.examples[0] in ("[image 1] hello world 0 hello world 1 hello world 2",
                                  "hello world 0 [image 1] hello world 1 hello world 2")


def test_without_the_image_folder_every_image_is_missing(mmc4_apart):
    shards, _ = mmc4_apart
    report = inspect_files(shards, CLIP)
    assert (report.records, report.rows, report.images) == (6, 0, 0)
    assert report.skipped == {"no_usable_image": 4, "no_image_above_threshold": 1, "broken_json_line": 1}
    assert report.counted == {"missing_image": 6}  # 2 + 1 in shard 0, 2 + 1 in shard 1


def test_lcl_data_inspect_prints_the_counts_and_reasons(mmc4_apart):
    shards, images = mmc4_apart
    command = [sys.executable, "-m", "lcl_core.cli", "data", "inspect", str(shards), "--tokenizer", "clip"]
    found = run_quietly([*command, "--images", str(images), "--show", "1"]).stdout
    assert f"{shards}: MMC4 shards, 2 files" in found
    assert "records read        6\n" in found and "rows kept           3 with 4 images" in found
    assert "records skipped     3: broken_json_line 1, no_image_above_threshold 1, no_usable_image 1" in found
    assert "also counted        corrupt_image 1, missing_image 1" in found
    assert f"  row 1: {inspect_files(shards, CLIP, images=images).examples[0]}\n" in found and "row 2:" not in found
    limited = run_quietly([*command, "--images", str(images), "--limit", "2"]).stdout
    assert "records read        2 (stopped at --limit)" in limited
    missing = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 1 and "also counted        missing_image 6" in missing.stdout
    one_shard = run_quietly([*command[:-3], str(shards / "docs_shard_1_v2.jsonl.zip"), "--images", str(images)]).stdout
    assert "2 documents (0 unreadable lines), 3 images" in one_shard and "rows kept           2 with 3 images" in one_shard


def test_pretrain_reads_documents_whose_images_are_elsewhere(mmc4_apart, tmp_path):
    shards, images = mmc4_apart
    world = small_world()
    base = [sys.executable, "-m", "lcl_core.cli", "pretrain", "--data", str(shards), "--tokenizer",
            str(world / "tokenizer"), "--model-config", str(tiny_model_config_file(tmp_path)), "--no-progress",
            "--batch-size", "3", "--steps", "2", "--warmup", "1"]
    run_quietly([*base, "--images", str(images), "--out", str(tmp_path / "run")])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["images"] for r in records] == [4, 4]  # a batch of 3 = the 3 usable documents of one pass: 1 + 2 + 1
    spec = json.loads((tmp_path / "run" / "run.json").read_text())["spec"]
    assert spec["images"] == str(images)
    without = subprocess.run([*base, "--out", str(tmp_path / "no-images")], cwd=REPO, capture_output=True, text=True)
    assert without.returncode == 2
    assert "no usable sample" in without.stderr and "give --images DIR" in without.stderr
    assert "Traceback" not in without.stderr
    pairs = subprocess.run([*base, "--images", str(images), "--data-source", "pairs", "--out", str(tmp_path / "p")],
                           cwd=REPO, capture_output=True, text=True)
    assert pairs.returncode == 2 and "carries its images in its tars" in pairs.stderr


def test_a_folder_must_hold_one_format(tmp_path):
    shard(tmp_path, [doc()])
    (tmp_path / "0.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="MMC4 shards and webdataset pairs"):
        reader_for(tmp_path)
    with pytest.raises(ValueError, match="no MMC4 shard"):
        reader_for(tmp_path / "images")
    with pytest.raises(FileNotFoundError):
        reader_for(tmp_path / "absent")


def test_a_row_reads_back_with_its_images_in_place():
    tok = CLIP
    ids = [tok.sot_id, *tok.encode("a red circle"), tok.soi_id, tok.img_id, tok.img_id, tok.eoi_id,
           *tok.encode("on grass"), tok.soi_id, tok.img_id, tok.img_id, tok.eoi_id, tok.eot_id, tok.pad_id]
    assert laid_out(tok, ids) == "a red circle [image 1] on grass [image 2]"
