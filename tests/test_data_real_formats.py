"""Readers of OmniCorpus-CC and MINT-1T (HTML parquet, PDF/ArXiv tars) on files in their published schemas
(tests/real_data_helpers.py): what they keep, what each filter drops, bad input as counted skips, the format
``lcl data inspect`` recognises, and a smoke training from a MINT-1T PDF tar."""

from __future__ import annotations

import io
import json
from collections import Counter

import pyarrow as pa
import pytest
from PIL import Image

from lcl_core.cli import main as lcl
from lcl_core.data import MintHtmlDataset, MintPdfDataset, OmniCorpusDataset, OmniCorpusFilters
from lcl_core.data.inspection import reader_for
from lcl_core.data.mint import FRAMES
from lcl_core.data.obelics import ObelicsDataset
from lcl_core.data.paired import PairedDataset
from lcl_core.data.streaming import url_image_name
from lcl_core.data.writers import OBELICS_SCHEMA, write_pairs
from lcl_core.images import image_transform
from lcl_core.training import RunSpec
from lcl_core.training.runs import run_identity

from real_data_helpers import (MINT_HTML_SCHEMA, OMNICORPUS_SCHEMA, mint_html_row, mint_pdf_document,
                               obelics_row, omnicorpus_row, png_bytes, smoke_model, smoke_pretrain, write_parquet,
                               write_tar)

SIZES = dict(image_size=16, num_image_tokens=1, context_length=512, shuffle=False)
TEXTS = ["A red square sits on grass.", "Below it, a note about the weather.", "The end of the page."]


def place_images(root, urls, *, seed=0):
    """The images fetch-images would have put under ``root`` for ``urls``."""
    for k, url in enumerate(urls):
        target = root / url_image_name(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png_bytes(seed + k))


def urls(prefix: str, n: int) -> list[str]:
    return [f"http://example.org/{prefix}/{k}.jpg" for k in range(n)]


def read(reader) -> tuple[dict[int, int], Counter, Counter]:
    """(record -> images in its row, records skipped by reason, every count)."""
    rows = {sample["position"]["record"]: len(sample["images"]) for sample in reader}
    return rows, reader.records_skipped, reader.skips


def test_omnicorpus_quality_and_safety_filters(tmp_path, clip_tok):
    images = urls("omni", 9)
    place_images(tmp_path / "images", images)
    rows = [omnicorpus_row(TEXTS, images[0:2], doc_id="clean"),
            omnicorpus_row(TEXTS, images[2:4], doc_id="toxic", toxic=0.6),
            omnicorpus_row(TEXTS, images[4:6], doc_id="unfluent", fluency=0.2),
            omnicorpus_row(TEXTS, images[6:8], doc_id="one unsafe image", unsafe=[0.01, 0.9]),
            omnicorpus_row(TEXTS, images[8:9], doc_id="only image unsafe", unsafe=[0.95])]
    path = write_parquet(tmp_path / "CC-MAIN-2013-20" / "train-00000-of-00001.parquet", rows, OMNICORPUS_SCHEMA)
    options = dict(image_root=tmp_path / "images", **SIZES)

    kept, skipped, _ = read(OmniCorpusDataset(path, clip_tok, **options))  # no filter by default (the card sets none)
    assert kept == {0: 2, 1: 2, 2: 2, 3: 2, 4: 1} and not skipped

    filters = OmniCorpusFilters(max_toxic=0.5, min_fluency=0.5, max_unsafe=0.5)
    kept, skipped, counts = read(OmniCorpusDataset(path, clip_tok, filters=filters, **options))
    assert kept == {0: 2, 3: 1}
    assert skipped == Counter({"toxic_prob_filtered": 1, "fluency_prob_filtered": 1, "no_usable_image": 1})
    assert counts["unsafe_prob_filtered"] == 2


def test_omnicorpus_metadata_aligned_by_position_or_by_image_and_otherwise_counted(tmp_path, clip_tok):
    images = urls("align", 6)
    place_images(tmp_path / "images", images)
    by_image = omnicorpus_row(TEXTS, images[0:2], doc_id="a", unsafe=[0.9, 0.01])  # second image kept
    by_position = omnicorpus_row(TEXTS, images[2:4], doc_id="b")
    scores = iter(by_position["metadata"])
    by_position["metadata"] = [None if entry is None else {**next(scores), "unsafe_prob": 0.9}
                               for entry in by_position["images"]]
    by_position["metadata"][1] = {**by_position["metadata"][1], "unsafe_prob": 0.01}  # the first image is safe
    misaligned = omnicorpus_row(TEXTS, images[4:6], doc_id="c")
    misaligned["metadata"] = misaligned["metadata"][:1]
    no_scores = omnicorpus_row(TEXTS, images[4:6], doc_id="d")
    no_scores["general_metadata"] = None
    path = write_parquet(tmp_path / "omni.parquet", [by_image, by_position, misaligned, no_scores], OMNICORPUS_SCHEMA)
    kept, skipped, counts = read(OmniCorpusDataset(path, clip_tok, image_root=tmp_path / "images",
                                                   filters=OmniCorpusFilters(max_unsafe=0.5), **SIZES))
    assert kept == {0: 1, 1: 1, 3: 2}
    assert skipped == Counter({"no_usable_image": 1}) and counts["metadata_misaligned"] == 2
    kept, skipped, _ = read(OmniCorpusDataset(path, clip_tok, image_root=tmp_path / "images",
                                              filters=OmniCorpusFilters(max_toxic=0.5), **SIZES))
    assert kept == {0: 2, 1: 2, 2: 2} and skipped == Counter({"toxic_prob_missing": 1})
    with pytest.raises(ValueError, match="max_unsafe"):
        OmniCorpusFilters(max_unsafe=1.5)


def test_parquet_bad_input_is_a_counted_skip(tmp_path, clip_tok):
    images = urls("bad", 3)
    place_images(tmp_path / "images", images)
    good = mint_html_row(TEXTS, images[:2], url="http://example.org/good")
    unequal = {**good, "texts": good["texts"][:-1]}
    no_texts = {**good, "texts": None}
    both_at_once = {**good, "texts": [good["texts"][0], "caption", *good["texts"][2:]]}  # position 1: text and image
    path = write_parquet(tmp_path / "shard_0000.parquet", [good, unequal, no_texts, both_at_once], MINT_HTML_SCHEMA)
    kept, skipped, counts = read(MintHtmlDataset(path, clip_tok, image_root=tmp_path / "images", **SIZES))
    assert kept == {0: 2, 3: 1}
    assert skipped == Counter({"unequal_lists": 1, "malformed_document": 1})
    assert counts["malformed_position"] == 1

    no_images_column = tmp_path / "missing" / "shard_0001.parquet"
    write_parquet(no_images_column, [{"texts": ["only text"], "url": "u", "cc_dump": "c"}],
                  pa.schema([("texts", pa.list_(pa.string())), ("url", pa.string()), ("cc_dump", pa.string())]))
    reader = MintHtmlDataset([path, no_images_column], clip_tok, image_root=tmp_path / "images", **SIZES)
    assert len(list(reader)) == 2 and reader.skips["missing_column_images"] == 1


def test_mint_pdf_documents_take_their_images_from_the_tiff_frames(tmp_path, clip_tok):
    frames = [png_bytes(1), png_bytes(2), png_bytes(3)]
    two_images = mint_pdf_document(TEXTS, frames[:2])
    one_frame_short = mint_pdf_document(TEXTS, frames[:2])
    one_frame_short["tiff"] = mint_pdf_document(TEXTS, frames[2:3])["tiff"]
    no_tiff = {"json": two_images["json"]}
    broken = {"json": b"{not json", "tiff": two_images["tiff"]}
    tar = write_tar(tmp_path / "CC-MAIN-2023-23-shard-0",
                    {"a1": two_images, "a2": one_frame_short, "a3": no_tiff, "a4": broken})
    reader = MintPdfDataset(tar, clip_tok, **SIZES)
    samples = list(reader)
    assert [(s["position"]["record"], len(s["images"])) for s in samples] == [(0, 2), (1, 1)]
    transform = image_transform(16)
    for k in range(2):  # frame k is the page's k-th image, decoded whole
        assert samples[0]["images"][k].equal(transform(Image.open(io.BytesIO(frames[k])).convert("RGB")))
    assert samples[1]["images"][0].equal(transform(Image.open(io.BytesIO(frames[2])).convert("RGB")))
    assert reader.records_skipped == Counter({"missing_image": 1, "broken_json": 1})
    assert reader.skips["missing_frame"] == 1
    assert FRAMES not in two_images["json"]


def test_inspect_tells_the_formats_apart(tmp_path, clip_tok, capsys):
    images = urls("inspect", 2)
    place_images(tmp_path / "images", images)
    write_parquet(tmp_path / "omni" / "train-00000-of-00001.parquet",
                  [omnicorpus_row(TEXTS, images, doc_id="x")], OMNICORPUS_SCHEMA)
    write_parquet(tmp_path / "mint" / "shard_0000.parquet", [mint_html_row(TEXTS, images, url="u")], MINT_HTML_SCHEMA)
    write_parquet(tmp_path / "obelics" / "obelics-0.parquet", [obelics_row(TEXTS, images)], OBELICS_SCHEMA)
    write_tar(tmp_path / "pdf", {"a": mint_pdf_document(TEXTS, [png_bytes(0)])})
    write_pairs(tmp_path / "pairs", [("p0", png_bytes(0), "a square", {})], per_shard=1)
    assert [reader_for(tmp_path / name) for name in ("omni", "mint", "obelics", "pdf", "pairs")] == \
        [OmniCorpusDataset, MintHtmlDataset, ObelicsDataset, MintPdfDataset, PairedDataset]
    assert lcl(["data", "inspect", str(tmp_path / "omni"), "--images", str(tmp_path / "images"), "--show", "0"]) == 0
    printed = capsys.readouterr().out
    assert "OmniCorpus-CC parquet, 1 file" in printed and "rows kept           1 with 2 images" in printed
    assert lcl(["data", "inspect", str(tmp_path / "omni"), "--images", str(tmp_path / "images"), "--show", "0",
                "--max-unsafe", "0.005"]) == 1  # every image above it: nothing usable, and why
    printed = capsys.readouterr().out
    assert "records skipped     1: no_usable_image 1" in printed and "unsafe_prob_filtered 2" in printed
    assert lcl(["data", "inspect", str(tmp_path / "mint"), "--max-toxic", "0.5"]) == 2
    assert "MINT-1T HTML parquet have no OmniCorpus scores" in capsys.readouterr().err
    assert lcl(["data", "inspect", str(tmp_path / "pdf"), "--images", str(tmp_path / "images")]) == 2
    assert "carry their images in the tars" in capsys.readouterr().err


def test_fetch_images_refuses_what_names_no_urls_before_installing_anything(tmp_path, capsys):
    write_tar(tmp_path / "pdf", {"a": mint_pdf_document(TEXTS, [png_bytes(0)])})
    argv = ["data", "fetch-images", "--out", str(tmp_path / "images"), "--img2dataset-env", str(tmp_path / "env")]
    assert lcl([*argv, str(tmp_path / "pdf" / "00000.tar")]) == 2
    assert "MINT-1T PDF/ArXiv tars carry their images" in capsys.readouterr().err
    assert lcl([*argv, str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "env").exists()


def test_pretrain_takes_omnicorpus_filters_for_omnicorpus_only(tmp_path, capsys):
    argv = ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--tokenizer", "clip", "--max-unsafe"]
    assert lcl([*argv, "0.5", "--data-source", "mint"]) == 2
    assert "OmniCorpus filters are for the omnicorpus source, not mint" in capsys.readouterr().err
    assert lcl([*argv, "2", "--data-source", "omnicorpus"]) == 2
    assert "probabilities in [0, 1]: max_unsafe" in capsys.readouterr().err


def test_omnicorpus_filters_are_part_of_a_runs_identity(tmp_path):
    write_parquet(tmp_path / "omnicorpus" / "train-00000-of-00001.parquet",
                  [omnicorpus_row(TEXTS, urls("id", 1), doc_id="x")], OMNICORPUS_SCHEMA)
    spec = RunSpec(data=str(tmp_path), source="omnicorpus", tokenizer="clip")
    strict, stricter = (spec.changed(omnicorpus_filters={"max_unsafe": value}) for value in (0.5, 0.4))
    assert len({run_identity(spec), run_identity(strict), run_identity(stricter)}) == 3
    assert RunSpec.from_dict(json.loads(json.dumps(strict.to_dict()))) == strict


def test_smoke_training_from_mint_pdf_tars(tmp_path, capsys):
    documents = {f"d{k}": mint_pdf_document(TEXTS, [png_bytes(k), png_bytes(k + 50)]) for k in range(4)}
    write_tar(tmp_path / "data" / "mint_pdf", documents)
    tokenizer, config = smoke_model(tmp_path, TEXTS * 20)
    assert lcl(smoke_pretrain(tmp_path / "data", "mint_pdf", tmp_path / "run", tokenizer, config)) == 0
    assert "done:" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["spec"]["source"] == "mint_pdf"
