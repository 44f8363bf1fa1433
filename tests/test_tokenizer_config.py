"""Tokenizers built offline and model configs: presets, JSON round trip, validation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lcl_core.config import CLIP_SPECIAL_IDS, ModelConfig, get_preset, list_presets
from lcl_core.tokenizer import TrainedTokenizer, load_tokenizer

from conftest import odd_config

CORPUS = ["a red circle left of a blue square.", "two green triangles above a yellow star!",
          "the digit seven on a wooden texture."] * 20


def test_trained_tokenizer_round_trips_through_hugging_face_format(tmp_path):
    tok = TrainedTokenizer.train(CORPUS, vocab_size=300)
    ids = tok.encode("A red circle left of two triangles.")
    assert tok.decode(ids) == "a red circle left of two triangles."
    specials = {tok.sot_id, tok.eot_id, tok.img_id, tok.soi_id, tok.eoi_id, tok.pad_id}
    assert len(specials) == 6 and not specials & set(ids)
    tok.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    again = load_tokenizer(tmp_path / "tok")
    assert again.encode("A red circle left of two triangles.") == ids
    assert again.special_ids == tok.special_ids and again.vocab_size == tok.vocab_size


def test_trained_tokenizer_is_the_same_in_every_process(tmp_path):
    script = ("from lcl_core.tokenizer import TrainedTokenizer; import sys; "
              f"t = TrainedTokenizer.train({CORPUS!r}, vocab_size=300); "
              "print(t.encode('a blue star left of seven wooden triangles'))")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(runs) == 1, runs


def test_clip_tokenizer_saves_as_a_marker(tmp_path, clip_tok):
    clip_tok.save(tmp_path / "clip")
    assert load_tokenizer(tmp_path / "clip").encode("two cats.") == clip_tok.encode("two cats.")
    with pytest.raises(FileNotFoundError, match="no saved LCL tokenizer"):
        load_tokenizer(tmp_path)


def test_presets_and_official_sizes():
    assert {"LCL_ViT-B-16_laion", "LCL_ViT-B-32_laion", "LCL_ViT-B-32_mmc4", "tiny-fast"} <= set(list_presets())
    b16, b32, mmc4 = (get_preset(n) for n in ("LCL_ViT-B-16_laion", "LCL_ViT-B-32_laion", "LCL_ViT-B-32_mmc4"))
    assert (b16.vision.num_patches, b16.bridge.context_length, b16.embed_dim) == (196, 280, 768)
    assert (b32.vision.num_patches, b32.bridge.context_length, b32.embed_dim, b32.bridge.heads) == (49, 128, 512, 8)
    assert mmc4.bridge.context_length == 2048 and mmc4.vision == b32.vision
    fast = get_preset("tiny-fast")
    assert (fast.vision.image_size, fast.vision.patch_size, fast.vision.width, fast.vision.layers,
            fast.bridge.layers, fast.bridge.context_length) == (32, 8, 128, 4, 4, 128)
    with pytest.raises(KeyError, match="unknown preset 'nope'"):
        get_preset("nope")


def test_config_json_round_trip_and_tokenizer_binding(tmp_path):
    tok = TrainedTokenizer.train(CORPUS, vocab_size=300)
    cfg = get_preset("tiny-fast").with_tokenizer(tok, spec="runs/x/tokenizer")
    assert cfg.bridge.vocab_size == tok.vocab_size and cfg.special_ids["pad"] == tok.pad_id
    cfg.to_json(tmp_path / "c.json")
    assert ModelConfig.from_json(tmp_path / "c.json") == cfg
    assert odd_config().special_ids == CLIP_SPECIAL_IDS


def test_invalid_configs_are_explained():
    with pytest.raises(ValueError, match="must equal embed_dim"):
        ModelConfig(embed_dim=64, bridge={"width": 36, "heads": 3})
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        ModelConfig(vision={"image_size": 30, "patch_size": 8})
    with pytest.raises(ValueError, match="do not fit a vocabulary of 4096"):
        ModelConfig(embed_dim=36, bridge={"width": 36, "heads": 3, "vocab_size": 4096})  # CLIP ids, 4k table
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({"embed_dims": 3})
