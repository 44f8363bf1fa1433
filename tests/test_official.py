"""Official checkpoints: layout of every official preset, bit-exact round trip, clear refusals, and
the kit computing what the official implementation computes with the same weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lcl_core.checkpoint import load_pretrained
from lcl_core.config import ModelConfig, get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.official import config_from_state_dict, export_official, load_official
from lcl_core.tokenizer import ClipTokenizer

from conftest import odd_config, shared_path
from official_reference import OfficialLCL, official_losses
from test_model import mixed_batch

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)

OFFICIAL = ["LCL_ViT-B-16_laion", "LCL_ViT-B-32_laion", "LCL_ViT-B-32_mmc4"]


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_preset_layout_loads_and_round_trips_bit_exactly(name):
    reference = json.loads(shared_path("fixtures", "official-lcl-layout", f"{name}.json").read_text())
    preset = get_preset(name)
    from_json = ModelConfig.from_open_clip(reference, name=name)
    assert (from_json.embed_dim, from_json.vision, from_json.bridge) == (preset.embed_dim, preset.vision, preset.bridge)
    assert from_json.special_ids == preset.special_ids

    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) for k, shape in reference["state_dict_shapes"].items()}
    model = LCLModel(config=preset)
    load_official(model, state)  # strict: raises on any missing or unexpected key
    exported = export_official(model)
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)
    inferred = config_from_state_dict(state)
    assert (inferred.vision, inferred.bridge) == (preset.vision, preset.bridge)


def test_unknown_missing_and_misshaped_keys_are_refused_by_name():
    model = LCLModel(config=odd_config())
    state = export_official(model)
    with pytest.raises(KeyError, match=r"1 missing \['lm_head.1.weight'\]; 1 unexpected \['text.extra'\]"):
        load_official(model, {**{k: v for k, v in state.items() if k != "lm_head.1.weight"},
                              "text.extra": torch.zeros(1)})
    state["text.positional_embedding"] = torch.zeros(5, 36)
    with pytest.raises(ValueError, match=r"text.positional_embedding: shape \(5, 36\)"):
        load_official(model, state)


def test_official_pt_file_loads_with_weights_only(tmp_path):
    model = LCLModel(config=odd_config())
    path = tmp_path / "lcl.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in export_official(model).items()}}, path)
    loaded, tok = load_pretrained(path, config=odd_config())
    assert tok.kind == "clip"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_kit_computes_what_the_official_implementation_computes(clip_tok):
    torch.manual_seed(0)
    cfg = odd_config()
    kit = LCLModel(config=cfg).eval()
    reference = OfficialLCL(cfg, kit.ids).eval()
    reference.load_state_dict(export_official(kit), strict=True)

    ids, images = mixed_batch(clip_tok), torch.randn(4, 3, 30, 30)
    assert not (ids == 0).any()  # the official pad 0 is "!"; this batch has none, so targets agree
    official_ids = ids.masked_fill(ids == clip_tok.pad_id, 0)
    with torch.no_grad():
        img_f, txt_f, logits, labels, scale = reference(images, official_ids)
        out = kit(images, ids)
        losses = PretrainingObjective.named("lcl")(out)
    official_con, official_gen = official_losses(img_f, txt_f, logits, labels, scale)

    targets = out["gen_mask"]
    assert torch.equal(out["gen_labels"][targets], labels)
    assert torch.allclose(out["gen_features"][targets] @ out["lm_head_weight"].t(), logits, atol=1e-5)
    pairs = out["pair_mask"]
    assert torch.allclose(torch.nn.functional.normalize(out["pair_latents"][pairs], dim=-1), img_f, atol=1e-6)
    assert torch.allclose(torch.nn.functional.normalize(out["pair_context"][pairs], dim=-1), txt_f, atol=1e-5)
    assert losses["generation_loss"].item() == pytest.approx(official_gen.item(), abs=1e-5)
    assert 0.1 * losses["contrastive_loss"].item() == pytest.approx(official_con.item(), abs=1e-5)


def test_head_counts_come_from_the_preset_of_those_sizes_or_the_state_dict_is_refused(tmp_path):
    # tiny-fast has 32-wide heads (width 128, 4 heads): the old 64-wide assumption would have read 2
    config = get_preset("tiny-fast").with_tokenizer(ClipTokenizer())
    torch.manual_seed(0)
    model = LCLModel(config=config).eval()
    state = export_official(model)
    inferred = config_from_state_dict(state)
    assert (inferred.vision.heads, inferred.vision.pool_heads, inferred.bridge.heads) == (4, 4, 4)
    images, ids = torch.randn(2, 3, 32, 32), torch.tensor([[49406, 320, 1125, 49409]])
    loaded = LCLModel(config=inferred).eval()
    load_official(loaded, state)
    assert torch.equal(loaded.encode_image(images), model.encode_image(images))
    wrong = dataclasses.replace(config, vision=dataclasses.replace(config.vision, heads=2, pool_heads=2),
                                bridge=dataclasses.replace(config.bridge, heads=2))
    misread = LCLModel(config=wrong).eval()
    load_official(misread, state)  # the shapes fit any head count ...
    assert not torch.allclose(misread.encode_text(ids), model.encode_text(ids), atol=1e-3)  # ... the outputs do not

    odd = LCLModel(config=odd_config()).eval()  # 36 wide, 3 heads of 12: sizes of no preset
    torch.save(export_official(odd), tmp_path / "narrow-heads.pt")
    with pytest.raises(ValueError, match="head counts cannot be read from weights: pass its model config"):
        load_pretrained(tmp_path / "narrow-heads.pt")
    given, _ = load_pretrained(tmp_path / "narrow-heads.pt", config=odd_config())
    odd_images = torch.randn(2, 3, 30, 30)
    assert torch.equal(given.eval().encode_image(odd_images), odd.encode_image(odd_images))
