"""Exact token layouts and the positions each loss reads (LCL-METHOD §3)."""

from __future__ import annotations

import json

import pytest
import torch

from lcl_core.sequences import (
    LayoutTokenInText, contrastive_mask, generation_mask, image_token_sources, interleaved_sequence, pad_rows,
    soi_positions, paired_sequence, text_query,
)
from conftest import shared_path

SOT, EOT, IMG, SOI, EOI, PAD = 49406, 49407, 49408, 49409, 49410, 49411
A_RED_SQUARE = [320, 736, 3999]
TWO_CATS = [1237, 3989, 269]
HELLO_WORLD = [3306, 1002, 269]


def test_official_special_ids(clip_tok):
    assert (clip_tok.sot_id, clip_tok.eot_id, clip_tok.img_id, clip_tok.soi_id, clip_tok.eoi_id) == (
        SOT, EOT, IMG, SOI, EOI)
    assert clip_tok.vocab_size == 49411
    assert clip_tok.pad_id == PAD and clip_tok.pad_id >= clip_tok.vocab_size  # no real token
    assert clip_tok.encode("Wow!") == [2781, 256]  # "!" (the official pad id 0's twin "!</w>") stays text


def test_paired_layouts(clip_tok):
    image_first = paired_sequence(clip_tok, "a red square", num_image_tokens=3, context_length=20, image_first=True)
    text_first = paired_sequence(clip_tok, "a red square", num_image_tokens=3, context_length=20, image_first=False)
    assert image_first == [SOI, IMG, IMG, IMG, EOI, *A_RED_SQUARE, EOT]
    assert text_first == [SOT, *A_RED_SQUARE, SOI, IMG, IMG, IMG, EOI]


def test_paired_caption_truncated_to_context_minus_image_minus_four(clip_tok):
    row = paired_sequence(clip_tok, "a red square two cats.", num_image_tokens=3, context_length=9,
                          image_first=False)
    assert row == [SOT, 320, 736, SOI, IMG, IMG, IMG, EOI]  # 9 - 3 - 4 = 2 caption tokens


def test_interleaved_layout(clip_tok):
    seq = interleaved_sequence(clip_tok, [7, "hello world.", "two cats.", 3], num_image_tokens=2, context_length=64)
    assert seq.ids == [SOT, SOI, IMG, IMG, EOI, *HELLO_WORLD, *TWO_CATS, SOI, IMG, IMG, EOI, EOT]
    assert seq.image_indices == [7, 3] and not seq.truncated


def test_truncation_through_an_image_block_ends_at_its_soi(clip_tok):
    segments = ["hello world.", 0, "two cats.", 1]
    full = interleaved_sequence(clip_tok, segments, num_image_tokens=2, context_length=64).ids
    assert len(full) == 16
    # cut inside the second block: [..., 1237, 3989, 269, SOI, IMG | IMG, EOI, EOT]
    cut = interleaved_sequence(clip_tok, segments, num_image_tokens=2, context_length=13)
    assert cut.ids == [SOT, *HELLO_WORLD, SOI, IMG, IMG, EOI, *TWO_CATS, EOT]
    assert cut.image_indices == [0] and cut.truncated
    # a cut that only loses the final <eoi> also drops the block (it is incomplete)
    cut = interleaved_sequence(clip_tok, segments, num_image_tokens=2, context_length=15)
    assert cut.ids == [SOT, *HELLO_WORLD, SOI, IMG, IMG, EOI, *TWO_CATS, EOT]


def test_truncation_in_text_keeps_images_and_ends_with_eot(clip_tok):
    seq = interleaved_sequence(clip_tok, [0, "hello world.", "two cats."], num_image_tokens=2, context_length=8)
    assert seq.ids == [SOT, SOI, IMG, IMG, EOI, 3306, 1002, EOT]
    assert seq.image_indices == [0]


def test_text_query(clip_tok):
    assert text_query(clip_tok, "two cats.", context_length=10) == [SOT, *TWO_CATS, SOI]


def test_loss_positions_on_a_mixed_batch(clip_tok):
    rows = [
        paired_sequence(clip_tok, "a red square", num_image_tokens=2, context_length=16, image_first=True),
        paired_sequence(clip_tok, "a red square", num_image_tokens=2, context_length=16, image_first=False),
    ]
    ids = pad_rows(rows, pad_id=PAD)
    # row 0: SOI IMG IMG EOI a red square EOT          (8 tokens)
    # row 1: SOT a red square SOI IMG IMG EOI PAD      (8 tokens + 1 pad would not be needed; same length)
    assert ids.tolist() == [[SOI, IMG, IMG, EOI, *A_RED_SQUARE, EOT],
                            [SOT, *A_RED_SQUARE, SOI, IMG, IMG, EOI]]
    con = contrastive_mask(ids, soi_id=SOI)
    assert torch.nonzero(con).tolist() == [[1, 4]]  # the <soi> at index 0 gives no pair
    length = ids.shape[1]
    positions = soi_positions(ids, soi_id=SOI, count=2)
    assert positions.tolist() == [0, length + 4] and (positions % length > 0).tolist() == [False, True]
    image, token = image_token_sources(ids, img_id=IMG, soi_id=SOI, num_image_tokens=2)
    slots = ids == IMG  # row 0 holds image 0's two tokens at 1, 2; row 1 image 1's at 5, 6
    assert image[slots].tolist() == [0, 0, 1, 1] and token[slots].tolist() == [0, 1, 0, 1]
    gen = generation_mask(ids, img_id=IMG, eoi_id=EOI, pad_id=PAD)
    # outputs whose next token is a target: row 0 predicts "a" from <eoi>, then red, square, <eot>;
    # row 1 predicts a, red, square and <soi> (where the image goes); never <img>/<eoi>
    assert torch.nonzero(gen[0]).flatten().tolist() == [3, 4, 5, 6]
    assert torch.nonzero(gen[1]).flatten().tolist() == [0, 1, 2, 3]


def test_padding_is_never_a_target(clip_tok):
    ids = pad_rows([[SOT, 320, 736, EOT], [SOT, 320]], pad_id=PAD)
    assert ids[1].tolist() == [SOT, 320, PAD, PAD]
    gen = generation_mask(ids, img_id=IMG, eoi_id=EOI, pad_id=PAD)
    assert gen.tolist() == [[True, True, True], [True, False, False]]


def test_sentences_tokenised_one_by_one_equal_the_joined_page_except_across_repaired_mojibake(clip_tok):
    """The README's deviation from the official tokenizer, which runs ftfy.fix_text on the joined text: a hand
    case where it differs, and its frequency on the real MMC4 sample (none of 107 pages)."""
    first, second = "The price is 5 â€", "™ great"
    assert clip_tok.encode(first) + clip_tok.encode(second) != clip_tok.encode(f"{first} {second}")
    sample = shared_path("fixtures", "mmc4-sample", "docs_no_face_shard_151_v3.jsonl")
    pages = [json.loads(line)["text_list"] for line in sample.read_text().splitlines()]
    assert len(pages) == 107 and all([i for s in page for i in clip_tok.encode(s)] == clip_tok.encode(" ".join(page))
                                     for page in pages)


def test_text_that_spells_an_image_layout_token_is_refused(clip_tok):
    with pytest.raises(LayoutTokenInText, match="image-layout token"):
        interleaved_sequence(clip_tok, ["see <start_of_img> here", 0], num_image_tokens=3, context_length=64)
    with pytest.raises(LayoutTokenInText):
        paired_sequence(clip_tok, "an <end_of_img> caption", num_image_tokens=3, context_length=64, image_first=True)
    assert interleaved_sequence(clip_tok, ["see start of img here", 0], num_image_tokens=3, context_length=64).ids


def test_a_page_tokenised_in_one_call_equals_its_sentences_one_by_one(clip_tok):
    """The data feed encodes a page's sentences with one ``encode_many`` call (the trained BPE's batch call): the
    same ids as ``encode`` per sentence, on every page of the real MMC4 sample, for both tokenizers."""
    from lcl_core.tokenizer import TrainedTokenizer

    sample = shared_path("fixtures", "mmc4-sample", "docs_no_face_shard_151_v3.jsonl")
    pages = [json.loads(line)["text_list"] for line in sample.read_text().splitlines()]
    bpe = TrainedTokenizer.train([s for page in pages[:60] for s in page], vocab_size=900)
    for tok in (bpe, clip_tok):
        assert all(tok.encode_many(page) == [tok.encode(s) for s in page] for page in pages)
        page = pages[0]
        laid = interleaved_sequence(tok, [page[0], 0, *page[1:4], 1], num_image_tokens=2, context_length=4096)
        block = [tok.soi_id, tok.img_id, tok.img_id, tok.eoi_id]
        assert laid.ids == [tok.sot_id, *tok.encode(page[0]), *block, *[i for s in page[1:4] for i in tok.encode(s)],
                            *block, tok.eot_id]
    assert bpe.encode_many([]) == []
