"""Files in the exact schemas of today's public interleaved corpora (see the readers' docstrings for where each
field comes from), a PNG maker, and a tokenizer and tiny model for smoke trainings on them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from lcl_core.data.writers import TarShards
from lcl_core.paths import shared_fixture
from lcl_core.tokenizer import TrainedTokenizer, load_tokenizer

from training_helpers import tiny_model_config

MMC4_SAMPLE = shared_fixture("mmc4-sample", "docs_no_face_shard_151_v3.jsonl")

OMNICORPUS_SCHEMA = pa.schema([  # OpenGVLab/OmniCorpus-CC README, dataset_info.features
    ("general_metadata", pa.struct([("domain", pa.list_(pa.string())), ("fluency_prob", pa.float64()),
                                    ("id", pa.string()), ("non_advertisement_prob", pa.float64()),
                                    ("politics_prob", pa.float64()), ("porn_prob", pa.float64()),
                                    ("toxic_prob", pa.float64()), ("url", pa.string())])),
    ("images", pa.list_(pa.string())),
    ("texts", pa.list_(pa.string())),
    ("metadata", pa.list_(pa.struct([("aesthetic_prob", pa.float64()), ("bytes", pa.int64()), ("d_hash", pa.string()),
                                     ("d_hash_dup_count", pa.int64()), ("height", pa.int64()),
                                     ("img_url_sha", pa.string()), ("p_hash", pa.string()),
                                     ("p_hash_dup_count", pa.int64()), ("unsafe_prob", pa.float64()),
                                     ("width", pa.int64())]))),
])
MINT_HTML_SCHEMA = pa.schema([("texts", pa.list_(pa.string())), ("images", pa.list_(pa.string())),
                              ("url", pa.string()), ("cc_dump", pa.string())])


def png_bytes(seed: int, size: tuple[int, int] = (40, 32)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def page(texts: list[str], urls: list[str]) -> tuple[list, list]:
    """(texts, images) of a page alternating text and image, one non-null per position."""
    text_list, image_list = [], []
    for k, text in enumerate(texts):
        text_list.append(text)
        image_list.append(None)
        if k < len(urls):
            text_list.append(None)
            image_list.append(urls[k])
    return text_list, image_list


def image_scores(k: int, *, unsafe: float = 0.01, aesthetic: float = 0.5) -> dict:
    return {"aesthetic_prob": aesthetic, "bytes": 2048 + k, "d_hash": f"{k:016x}", "d_hash_dup_count": 0,
            "height": 32, "img_url_sha": f"{k:064x}", "p_hash": f"{k:016x}", "p_hash_dup_count": 0,
            "unsafe_prob": unsafe, "width": 40}


def omnicorpus_row(texts, urls, *, doc_id: str, fluency=0.9, toxic=0.01, unsafe=None) -> dict:
    """``unsafe``: per image (default 0.01 each); ``metadata`` has one entry per image in page order."""
    text_list, image_list = page(texts, urls)
    unsafe = unsafe or [0.01] * len(urls)
    return {"general_metadata": {"domain": ["example.org"], "fluency_prob": fluency, "id": doc_id,
                                 "non_advertisement_prob": 0.8, "politics_prob": 0.02, "porn_prob": 0.001,
                                 "toxic_prob": toxic, "url": f"http://example.org/{doc_id}"},
            "images": image_list, "texts": text_list,
            "metadata": [image_scores(k, unsafe=u) for k, u in enumerate(unsafe)]}


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def obelics_row(texts, urls) -> dict:
    text_list, image_list = page(texts, urls)
    return {"images": image_list, "metadata": json.dumps([None] * len(image_list)),
            "general_metadata": json.dumps({"url": "http://example.org/"}), "texts": text_list}


def mint_html_row(texts, urls, *, url: str) -> dict:
    text_list, image_list = page(texts, urls)
    return {"texts": text_list, "images": image_list, "url": url, "cc_dump": "CC-MAIN-2023-23"}


def tiff_frames(frames: list[bytes]) -> bytes:
    images = [Image.open(io.BytesIO(frame)).convert("RGB") for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def mint_pdf_document(texts: list[str], frames: list[bytes], *, page_of: int = 0) -> dict:
    """A MINT-1T PDF document's json (images as ``page_{p}_image_{xref}`` placeholders) and its tiff."""
    placeholders = [f"page_{page_of}_image_{10 + k}" for k in range(len(frames))]
    text_list, image_list = page(texts, placeholders)
    return {"json": {"bff_contained_ngram_count_before_dedupe": 0,
                     "image_metadata": [{"height": 32, "page": page_of, "sha256": f"{k:064x}", "width": 40,
                                         "xref": 10 + k} for k in range(len(frames))],
                     "images": image_list, "texts": text_list, "url": "http://example.org/paper.pdf",
                     "pdf_name": "paper.pdf", "previous_word_count": 120,
                     "language_id_whole_page_fasttext": {"en": 0.97}},
            "tiff": tiff_frames(frames)}


def write_tar(folder: Path, documents: dict[str, dict]) -> Path:
    """``folder/00000.tar`` of ``key.json`` + ``key.tiff`` per document (values: json object or raw bytes)."""
    shards = TarShards(folder, per_shard=len(documents))
    for key, members in documents.items():
        shards.add(key, {extension: value if isinstance(value, bytes) else json.dumps(value).encode()
                         for extension, value in members.items()})
    shards.close()
    return folder / "00000.tar"


def smoke_model(folder: Path, texts: list[str]) -> tuple[Path, Path]:
    """(tokenizer folder, model config file): a 512-token BPE on ``texts`` and the odd test model."""
    TrainedTokenizer.train(iter(texts), vocab_size=512).save(folder / "tokenizer")
    config = folder / "tiny-model.json"
    tiny_model_config(load_tokenizer(folder / "tokenizer")).to_json(config)
    return folder / "tokenizer", config


def smoke_pretrain(data: Path, source: str, out: Path, tokenizer: Path, config: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(data), "--data-source", source, "--out", str(out), "--model-config", str(config),
            "--tokenizer", str(tokenizer), "--steps", "2", "--batch-size", "2", "--no-progress",
            "--shuffle-window", "1", *extra]
