"""Every bad-input case is a counted skip (or repair), and an error naming the file when nothing is usable;
plus the real MMC4 sample with stand-in images."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcl_core.data import MMC4Dataset, NothingReadable, PairedDataset, make_loader
from lcl_core.data.writers import TarShards, pair_files
from lcl_core.tokenizer import TrainedTokenizer

from data_helpers import doc, png, shard

FIXTURE = Path(__file__).parents[2] / "shared" / "fixtures" / "mmc4-sample" / "docs_no_face_shard_151_v3.jsonl"
TOK = TrainedTokenizer.train(["a picture of a red circle on grass", "hello world text"] * 5, vocab_size=120)


def read(folder, **options):
    data = MMC4Dataset(folder, TOK, image_size=8, num_image_tokens=2, context_length=128, **options)
    return data, list(data)


GOOD = ("good.png", 0, 0.3)


@pytest.mark.parametrize("case, line, images, reason, samples", [
    ("corrupt image", doc(GOOD, ("bad.png", 1, 0.3)), {"bad.png": png()[:40]}, "corrupt_image", 1),
    ("missing image", doc(GOOD, ("gone.png", 1, 0.3)), {}, "missing_image", 1),
    ("broken json", b'{"url": "u", "text_list": [', {}, "broken_json_line", 0),
    ("non-utf8", b'{"url": "\xff\xfe"}', {}, "non_utf8_line", 0),
    ("no usable image", doc(("bad.png", 1, 0.3)), {"bad.png": b"not an image"}, "no_usable_image", 0),
    ("all below threshold", doc(("good.png", 1, 0.2), ("good.png", 2, 0.239)), {}, "no_image_above_threshold", 0),
    ("no images at all", doc(), {}, "no_images", 0),
    ("odd size", doc(GOOD, ("thin.png", 1, 0.3)), {"thin.png": png((2, 40))}, "odd_image_size", 1),
    ("malformed document", {"url": "u", "text_list": "x"}, {}, "malformed_document", 0),
    ("layout token in text", {**doc(GOOD), "text_list": ["hello <start_of_img> world", "x", "y"]}, {},
     "image_token_in_text", 0),
])
def test_each_bad_input_is_a_counted_skip(tmp_path, case, line, images, reason, samples):
    shard(tmp_path, [doc(GOOD), line], images={"good.png": png(), **images})
    data, out = read(tmp_path)
    assert len(out) == 1 + samples and data.skips[reason] == 1, case
    assert data.last_epoch_summary["skips"] == dict(data.skips) and data.last_epoch_summary["samples"] == len(out)
    if samples:  # the skip travels with the next sample's position (how worker counts reach the trainer)
        assert out[1]["position"]["skipped"] == {reason: 1}


def test_odd_image_modes_are_converted_and_used(tmp_path):
    odd = {"cmyk.jpg": png(mode="CMYK", format="JPEG"), "grey16.png": png(mode="I;16"),
           "palette.png": png(mode="P", transparency=3), "rgba.png": png(mode="RGBA")}
    shard(tmp_path, [doc(*[(n, i, 0.3) for i, n in enumerate(odd)], sentences=4)], images=odd)
    data, out = read(tmp_path)
    assert out[0]["images"].shape == (4, 3, 8, 8) and data.skips == {"converted_image_mode": 4}


def test_zip_member_named_differently_is_read_and_counted(tmp_path):
    shard(tmp_path, [doc(GOOD)], member="renamed.jsonl", images={"good.png": png()})
    data, out = read(tmp_path)
    assert len(out) == 1 and data.skips == {"zip_member_renamed": 1}


def test_truncated_zip_is_counted_and_other_shards_still_read(tmp_path):
    path = shard(tmp_path, [doc(GOOD)] * 3, index=0, images={"good.png": png()})
    shard(tmp_path, [doc(GOOD)] * 2, index=1)
    path.write_bytes(path.read_bytes()[:30])
    data, out = read(tmp_path, shuffle=False)
    assert len(out) == 2 and data.skips == {"unreadable_file": 1}


def test_nothing_readable_names_the_file(tmp_path):
    path = shard(tmp_path, [doc(("gone.png", 0, 0.3)), b"{broken"])
    with pytest.raises(NothingReadable, match=path.name):
        read(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MMC4Dataset(tmp_path / "nowhere", TOK, image_size=8, num_image_tokens=2, context_length=64)


def test_worker_skips_reach_the_main_process(tmp_path):
    for index in range(2):
        shard(tmp_path, [doc(GOOD), b"{broken", doc(("gone.png", 0, 0.3)), doc(GOOD)], index=index,
              images={"good.png": png()})
    data = MMC4Dataset(tmp_path, TOK, image_size=8, num_image_tokens=2, context_length=64)
    batches = list(make_loader(data, batch_size=1, num_workers=2))
    assert len(batches) == 4 and data.skips == {"broken_json_line": 2, "missing_image": 2, "no_usable_image": 2}


def test_paired_tar_bad_samples(tmp_path):
    shards = TarShards(tmp_path, per_shard=10)
    shards.add("ok", pair_files(png(), "a red circle", {}))
    shards.add("corrupt", pair_files(png()[:30], "a red circle", {}))
    shards.add("nocaption", {"png": png()})
    shards.add("latin1", {"png": png(), "txt": "caf\xe9".encode("latin-1")})
    shards.add("noimage", {"txt": b"text only"})
    shards.close()
    data = PairedDataset(tmp_path, TOK, image_size=8, num_image_tokens=2, context_length=16)
    assert len(list(data)) == 1
    assert data.skips == {"corrupt_image": 1, "no_usable_image": 1, "missing_caption": 1, "non_utf8_caption": 1,
                          "missing_image": 1}


def test_a_pair_with_two_members_of_one_extension_is_a_counted_skip(tmp_path):
    """``k.png`` twice (or ``k.PNG`` beside ``k.png``): which image is the pair's is ambiguous, so the pair
    is skipped and counted; the pairs around it are read (webdataset raises and ends the stream)."""
    members = [("before.png", png()), ("before.txt", b"a red circle"),
               ("twice.png", png()), ("twice.png", png((14, 14))), ("twice.txt", b"a blue square"),
               ("cased.PNG", png()), ("cased.png", png()), ("cased.txt", b"a green star"),
               ("after.png", png()), ("after.txt", b"a white moon")]
    with tarfile.open(tmp_path / "pairs-000000.tar", "w") as archive:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    data = PairedDataset(tmp_path, TOK, image_size=8, num_image_tokens=2, context_length=16, shuffle=False)
    assert [s["position"]["record"] for s in data] == [0, 3]
    assert data.skips == {"duplicate_member": 2}


@pytest.mark.skipif(not FIXTURE.is_file(), reason=f"real MMC4 sample not found at {FIXTURE}")
def test_real_mmc4_sample_with_stand_in_images(tmp_path):
    docs = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    rng = np.random.default_rng(0)
    for info in (i for d in docs for i in d["image_info"]):
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(tmp_path / info["image_name"], "PNG")
    tok = TrainedTokenizer.train([" ".join(d["text_list"]) for d in docs], vocab_size=800)
    data = MMC4Dataset(FIXTURE, tok, image_size=8, num_image_tokens=2, context_length=100_000,
                       image_root=tmp_path, shuffle=False)
    samples = list(data)
    expected = [min(6, len({i["matched_text_index"] for i in d["image_info"] if i["matched_sim"] >= 0.24}))
                for d in docs]
    assert [len(s["images"]) for s in samples] == [n for n in expected if n]
    assert data.skips == ({"no_image_above_threshold": expected.count(0)} if expected.count(0) else {})
    assert len(samples) + sum(data.skips.values()) == 107
    for sample in samples:
        assert sum(t == tok.soi_id for t in sample["ids"]) == len(sample["images"])
    short = MMC4Dataset(FIXTURE, tok, image_size=8, num_image_tokens=2, context_length=256, image_root=tmp_path)
    for sample in short:
        ids = sample["ids"]
        assert len(ids) <= 256 and ids[-1] == tok.eot_id
        assert sum(t == tok.img_id for t in ids) == 2 * len(sample["images"])


def decoded_first(folder, line: dict, context_length: int) -> tuple[list[int], list]:
    """The row the reader made before it laid pages out first: every selected image decoded, the failures
    dropped, then the page laid out (the same random draws: one reader, one document)."""
    import random

    from lcl_core.data.mmc4 import interleave, select_images
    from lcl_core.data.streaming import Skip, decode_image, stable_int
    from lcl_core.sequences import interleaved_sequence

    data = MMC4Dataset(folder, TOK, image_size=8, num_image_tokens=2, context_length=context_length)
    (path,) = folder.glob("*.zip")
    rng = random.Random(stable_int(data.seed, 0, path.name, 0))  # the stream's draws for record 0 of epoch 0
    selected = select_images(line["image_info"], sim_threshold=data.sim_threshold, max_images=data.max_images,
                             rng=rng, one_per_sentence=True)
    loaded = []
    for sentence, name in selected:
        try:
            loaded.append((sentence, decode_image(folder / "images" / name, lambda reason: None)))
        except Skip:
            pass
    segments = interleave(line["text_list"], [s for s, _ in loaded], rng, data.img_first_prob)
    sequence = interleaved_sequence(TOK, segments, num_image_tokens=2, context_length=context_length)
    return sequence.ids, [np.asarray(loaded[k][1]).mean() for k in sequence.image_indices]


@pytest.mark.parametrize("broken", [None, "kept", "past the cut"])
def test_a_page_laid_out_first_gives_the_row_of_decoding_every_image_first(tmp_path, broken):
    """The reader decodes only the images a row keeps; the row and its images are those of decoding all first
    (a kept image that fails makes it decode all); an image past the cut is never read."""
    shades = {f"i{k}.png": png((12, 12)) for k in range(5)}
    for k, name in enumerate(shades):  # a shade per image, to tell them apart after decoding
        buffer = io.BytesIO()
        Image.new("RGB", (12, 12), (40 * k, 40 * k, 40 * k)).save(buffer, format="PNG")
        shades[name] = buffer.getvalue()
    line = doc(*[(f"i{k}.png", k, 0.3) for k in range(5)], sentences=5)
    line["text_list"] = [f"a picture of a red circle {k}" for k in range(5)]
    if broken:
        shades["i0.png" if broken == "kept" else "i4.png"] = b"not an image"
    shard(tmp_path, [line], images=shades)
    data = MMC4Dataset(tmp_path, TOK, image_size=8, num_image_tokens=2, context_length=40)
    opened = []
    original = data.load_image
    data.load_image = lambda source, **options: opened.append(Path(source).name) or original(source, **options)
    (sample,) = list(data)
    ids, means = decoded_first(tmp_path, line, 40)
    assert sample["ids"] == ids and 1 <= len(means) < 5
    got = [(sample["images"][k] * 0.2686 + 0.4815)[0].mean().item() * 255 for k in range(len(sample["images"]))]
    assert got == pytest.approx(means, abs=1.0)
    assert len(opened) == (5 if broken == "kept" else len(means))
    assert data.skips == ({"corrupt_image": 1} if broken == "kept" else {})
