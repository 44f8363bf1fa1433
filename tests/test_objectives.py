"""Objectives: both losses against a hand computation, gradients into the ViT, a tiny model that learns."""

from __future__ import annotations

import math

import pytest
import torch

from lcl_core.model import LCLModel
from lcl_core.objectives import OBJECTIVES, PretrainingObjective

from conftest import odd_config
from test_model import mixed_batch


def hand_losses(model, images, ids, ids_map):
    """Loop over positions the way the method text reads, independent of the model's masking code."""
    _, projected = model.vision(images)
    hidden = model.bridge(model.embed(ids, projected))
    gen_terms = []
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            nxt = int(ids[b, t + 1])
            if nxt in (ids_map["img"], ids_map["eoi"], ids_map["pad"]):
                continue
            logp = torch.log_softmax(model.bridge.lm_head(hidden[b, t]), dim=-1)
            gen_terms.append(-logp[nxt])
    latents = model.encode_image(images, normalize=False)
    pairs_img, pairs_txt, image_index = [], [], 0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if int(ids[b, t]) == ids_map["soi"]:
                if t > 0:
                    pairs_img.append(latents[image_index] / latents[image_index].norm())
                    feat = model.bridge.context_feature(hidden[b, t])
                    pairs_txt.append(feat / feat.norm())
                image_index += 1
    scale = model.logit_scale.exp()
    con_terms = []
    for i in range(len(pairs_img)):
        i2t = torch.stack([scale * pairs_img[i] @ pairs_txt[j] for j in range(len(pairs_txt))])
        t2i = torch.stack([scale * pairs_txt[i] @ pairs_img[j] for j in range(len(pairs_img))])
        con_terms.append(-(torch.log_softmax(i2t, 0)[i] + torch.log_softmax(t2i, 0)[i]) / 2)
    return torch.stack(gen_terms).mean(), torch.stack(con_terms).mean(), len(gen_terms), len(con_terms)


def test_losses_equal_a_hand_computation(clip_tok):
    torch.manual_seed(1)
    model = LCLModel(config=odd_config())
    ids, images = mixed_batch(clip_tok), torch.randn(4, 3, 30, 30)
    losses = PretrainingObjective.named("lcl")(model(images, ids))
    gen, con, num_targets, num_pairs = hand_losses(model, images, ids, model.ids)
    assert num_pairs == losses["num_pairs"] == 3 and num_targets == 19
    assert losses["generation_loss"].item() == pytest.approx(gen.item(), rel=1e-5)
    assert losses["contrastive_loss"].item() == pytest.approx(con.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(gen.item() + 0.1 * con.item(), rel=1e-5)


def test_logit_scale_official_init_and_clamp():
    model = LCLModel(config=odd_config())
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100))


@pytest.mark.parametrize("name", ["generation", "contrastive"])
def test_each_loss_reaches_the_vit(name, clip_tok):
    torch.manual_seed(2)
    model = LCLModel(config=odd_config())
    losses = PretrainingObjective.named(name)(model(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok)))
    losses["loss"].backward()
    assert model.vision.vit.conv1.weight.grad.abs().sum() > 0
    assert model.vision.vit.transformer.resblocks[0].attn.in_proj_weight.grad.abs().sum() > 0


def test_named_objectives_and_overrides():
    assert set(OBJECTIVES) == {"lcl", "contrastive", "coca", "generation", "generation_regression"}
    lcl = PretrainingObjective.named("lcl", contrastive=0.5)
    assert (lcl.weights.generation, lcl.weights.contrastive) == (1.0, 0.5)
    with pytest.raises(KeyError, match="unknown objective"):
        PretrainingObjective.named("clip")


def test_coca_captions_only_image_first_rows(clip_tok):
    torch.manual_seed(3)
    model = LCLModel(config=odd_config())
    out = model(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok))
    coca = PretrainingObjective.named("coca")(out)
    first_row = out["gen_rows"] == 0
    expected = torch.nn.functional.cross_entropy(out["gen_logits"][first_row], out["gen_labels"][first_row])
    assert coca["generation_loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_regression_pulls_context_towards_the_next_latent(clip_tok):
    torch.manual_seed(4)
    model = LCLModel(config=odd_config())
    out = model(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok))
    reg = PretrainingObjective.named("generation_regression")(out)["regression_loss"]
    assert reg.item() == pytest.approx((out["pair_context"] - out["pair_latents"]).pow(2).mean().item(), rel=1e-6)


def test_a_tiny_model_overfits_a_fixed_batch(clip_tok):
    torch.manual_seed(5)
    model = LCLModel(config=odd_config())
    objective = PretrainingObjective.named("lcl")
    ids, images = mixed_batch(clip_tok), torch.randn(4, 3, 30, 30)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(60):
        losses = objective(model(images, ids))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append((losses["generation_loss"].item(), losses["contrastive_loss"].item()))
    (gen0, con0), (gen1, con1) = history[0], history[-1]
    assert gen1 < gen0 / 10, history[::10]
    assert con1 < con0 / 3, history[::10]
