"""Objectives: both losses against a hand computation, gradients into the ViT, a tiny model that learns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lcl_core import linear_cross_entropy as linear_cross_entropy_module
from lcl_core.model import LCLModel
from lcl_core.objectives import OBJECTIVES, PretrainingObjective
from lcl_core.sequences import interleaved_sequence, pad_rows

from conftest import odd_config
from test_model import N, mixed_batch

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)


def logits(features, outputs):
    """The vocabulary logits the fused loss never forms: the LM head's output layer on its features."""
    return features @ outputs["lm_head_weight"].t()


def targets(outputs):
    """(logits, labels, rows) at the generation targets the model's masks select."""
    mask = outputs["gen_mask"]
    return logits(outputs["gen_features"][mask], outputs), outputs["gen_labels"][mask], outputs["gen_rows"][mask]


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
    assert set(OBJECTIVES) == {"lcl", "contrastive", "coca", "blip2", "beit3", "generation", "generation_regression"}
    assert {o.paper_row for o in OBJECTIVES.values()} == {"LCL", "CLIP", "CoCa", "BLIP2", "BEiT3", "Flamingo-style",
                                                          "Emu-style"}
    lcl = PretrainingObjective.named("lcl", contrastive=0.5)
    assert (lcl.weights.generation, lcl.weights.contrastive) == (1.0, 0.5)
    with pytest.raises(KeyError, match="unknown objective"):
        PretrainingObjective.named("clip")


def test_coca_captions_only_image_first_rows(clip_tok):
    torch.manual_seed(3)
    model = LCLModel(config=odd_config())
    out = model(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok))
    coca = PretrainingObjective.named("coca")(out)
    target_logits, labels, rows = targets(out)
    expected = torch.nn.functional.cross_entropy(target_logits[rows == 0], labels[rows == 0])
    assert coca["generation_loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_regression_pulls_context_towards_the_next_latent(clip_tok):
    torch.manual_seed(4)
    model = LCLModel(config=odd_config())
    out = model(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok))
    reg = PretrainingObjective.named("generation_regression")(out)["regression_loss"]
    pairs = out["pair_mask"]
    assert pairs.tolist() == [False, True, True, True]
    expected = (out["pair_context"][pairs] - out["pair_latents"][pairs]).pow(2).mean()
    assert reg.item() == pytest.approx(expected.item(), rel=1e-6)


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


# ---- BLIP-2-style: contrastive + captioning + image-text matching ------------------------------------------
def _with_heads(*heads, **changes):
    return dataclasses.replace(odd_config(**changes), pretraining_heads=list(heads))


def test_blip2_pair_tasks_against_a_hand_computation(clip_tok):
    torch.manual_seed(6)
    model = LCLModel(config=_with_heads("matching")).eval()
    captions = ["a red square", "two cats sit", "a red square", "one dog"]  # rows 0 and 2: the same caption
    caption_ids = [clip_tok.encode(c) for c in captions]
    rows = [[clip_tok.soi_id] + [clip_tok.img_id] * N + [clip_tok.eoi_id] + ids + [clip_tok.eot_id] for ids in caption_ids]
    ids, images = pad_rows(rows, pad_id=clip_tok.pad_id), torch.randn(4, 3, 30, 30)
    with torch.no_grad():
        out = model(images, ids, matching=True)
        losses = PretrainingObjective.named("blip2")(out)
        # contrastive: each image latent against its caption alone, read at the <soi> of [<sot> caption <soi>]
        alone = pad_rows([[clip_tok.sot_id] + c + [clip_tok.soi_id] for c in caption_ids], pad_id=clip_tok.pad_id)
        assert torch.allclose(out["pair_context"], model.encode_text(alone, normalize=False), atol=1e-6)
        assert torch.allclose(out["pair_latents"], model.encode_image(images, normalize=False), atol=1e-6)
        # matching: every scored (image, caption) laid out by hand and read at its <eot>
        pairs = out["matching_pairs"].tolist()
        assert pairs[:4] == [[0, 0], [1, 1], [2, 2], [3, 3]] and out["matching_labels"].tolist() == [1] * 4 + [0] * 8
        _, projected = model.vision(images)
        for k, (image, caption) in enumerate(pairs):
            row = torch.tensor([rows[caption]])
            hidden = model.bridge(model.embed(row, projected[image:image + 1]))[0, -1]
            expected = model.heads.matching(model.bridge.ln_final(hidden))
            assert torch.allclose(out["matching_logits"][k], expected, atol=1e-5), (k, image, caption)
    negatives = pairs[4:]
    assert all(captions[caption] != captions[image] for image, caption in negatives), "a duplicate was drawn"
    assert sorted(image for image, _ in negatives[:4]) == [0, 1, 2, 3]  # a wrong caption for each image
    assert sorted(caption for _, caption in negatives[4:]) == [0, 1, 2, 3]  # a wrong image for each caption
    match = torch.nn.functional.cross_entropy(out["matching_logits"], out["matching_labels"])
    generation = torch.nn.functional.cross_entropy(*targets(out)[:2])
    assert losses["matching_loss"].item() == pytest.approx(match.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(generation.item() + losses["contrastive_loss"].item()
                                                  + match.item(), rel=1e-5)


def test_blip2_needs_its_head_and_image_first_pairs(clip_tok):
    with pytest.raises(ValueError, match="'matching' pre-training head"):
        LCLModel(config=odd_config())(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok), matching=True)
    with pytest.raises(ValueError, match="image-first pair rows"):
        LCLModel(config=_with_heads("matching"))(torch.randn(4, 3, 30, 30), mixed_batch(clip_tok), matching=True)


# ---- BEiT-3-style: masked text and masked patches, bidirectional ------------------------------------------
def _vit_tokens_by_hand(model, images, patch_mask):
    """open_clip's ViT forward written out, with the mask token put in place of masked patch embeddings."""
    vit = model.vision.vit
    x = vit.conv1(images).flatten(2).transpose(1, 2)  # [M, N, W]
    x = torch.where(patch_mask.unsqueeze(-1), model.heads.patch_mask, x)
    x = torch.cat([vit.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + vit.positional_embedding
    return vit.ln_post(vit.transformer(vit.ln_pre(x)))[:, 1:]


def test_beit3_masked_modelling_against_a_hand_computation(clip_tok):
    torch.manual_seed(7)
    model = LCLModel(config=_with_heads("masked")).eval()
    rows = [interleaved_sequence(clip_tok, ["hello world.", 0, "two cats on a mat.", 1, "the end"], num_image_tokens=N,
                                 context_length=48).ids,
            interleaved_sequence(clip_tok, ["a dog.", 0, "it runs"], num_image_tokens=N, context_length=48).ids]
    ids, images = pad_rows(rows, pad_id=clip_tok.pad_id), torch.randn(3, 3, 30, 30)
    text_mask = torch.zeros_like(ids, dtype=torch.bool)
    text_mask[0, [1, 2, 15]] = True  # "hello", "world", a token after the first image
    text_mask[1, 1] = True
    patch_mask = torch.zeros(3, N, dtype=torch.bool)
    patch_mask[0, [0, 4]] = patch_mask[2, 8] = True
    with torch.no_grad():
        assert torch.allclose(_vit_tokens_by_hand(model, images, torch.zeros_like(patch_mask)),
                              model.patch_features(images), atol=1e-5)  # the hand ViT is open_clip's
        out = model(images, ids, text_mask=text_mask, patch_mask=patch_mask)
        losses = PretrainingObjective.named("beit3")(out)
        _, projected = model.vision.pool(_vit_tokens_by_hand(model, images, patch_mask))
        embeds = model.embed(ids, projected)
        embeds[text_mask] = model.heads.text_mask
        valid = ids != clip_tok.pad_id
        hidden = model.bridge.transformer(inputs_embeds=embeds,
                                          attention_mask=valid[:, None, None, :].expand(-1, 1, ids.shape[1], -1))
        hidden = hidden.last_hidden_state
        assert torch.equal(out["masked_text_labels"], ids[text_mask])
        assert torch.allclose(logits(out["masked_text_features"], out), model.bridge.lm_head(hidden[text_mask]),
                              atol=1e-5)
        # patch k of image m sits at the k-th <img> slot of its block; its target is its own pixels, normalised
        predictions, targets = [], []
        slot_rows, slot_cols = torch.nonzero(ids == clip_tok.img_id, as_tuple=True)
        for m, k in torch.nonzero(patch_mask).tolist():
            slot = m * N + k
            predictions.append(model.heads.pixels(hidden[slot_rows[slot], slot_cols[slot]]))
            r, c = divmod(k, 3)
            pixels = images[m, :, 10 * r:10 * (r + 1), 10 * c:10 * (c + 1)].reshape(-1)
            targets.append((pixels - pixels.mean()) / (pixels.var() + 1e-6).sqrt())
        assert torch.allclose(out["masked_patch_pred"], torch.stack(predictions), atol=1e-5)
        assert torch.allclose(out["masked_patch_target"], torch.stack(targets), atol=1e-5)
    text_term = torch.nn.functional.cross_entropy(logits(out["masked_text_features"], out), out["masked_text_labels"])
    image_term = (out["masked_patch_pred"] - out["masked_patch_target"]).pow(2).mean()
    assert losses["loss"].item() == pytest.approx(text_term.item() + image_term.item(), rel=1e-5)
    assert losses["generation_loss"].item() == losses["contrastive_loss"].item() == 0.0


def test_beit3_attention_is_bidirectional_but_blind_to_padding(clip_tok):
    torch.manual_seed(8)
    model = LCLModel(config=_with_heads("masked")).eval()
    rows = [interleaved_sequence(clip_tok, ["a red square.", 0, "the end of it"], num_image_tokens=N,
                                 context_length=48).ids]
    short = rows[0][:-3] + [clip_tok.eot_id]
    ids = pad_rows(rows + [short], pad_id=clip_tok.pad_id)  # row 1 ends in padding
    images, first = torch.randn(2, 3, 30, 30), torch.zeros_like(ids, dtype=torch.bool)
    first[:, 1] = True  # read the output at position 1 through its masked-token prediction
    with torch.no_grad():
        base = model(images, ids, text_mask=first)["masked_text_features"]
        later = ids.clone()
        later[0, -2] = clip_tok.encode("dog")[0]  # a later token of row 0 changes
        changed = model(images, later, text_mask=first)["masked_text_features"]
        alone = model(images[1:], torch.tensor([short]), text_mask=first[1:, :len(short)])["masked_text_features"]
    assert not torch.allclose(base[0], changed[0], atol=1e-4), "an earlier position must see later tokens"
    assert torch.allclose(base[1], alone[0], atol=1e-5), "padding must not be attended to"


def test_masks_are_drawn_at_their_rates_and_never_on_special_tokens(clip_tok):
    torch.manual_seed(9)
    model = LCLModel(config=_with_heads("masked"))
    ids = mixed_batch(clip_tok).repeat(200, 1)
    text_mask, patch_mask = model.sample_masks(torch.zeros(800, 3, 30, 30), ids, text_rate=0.5, patch_rate=0.4)
    special = torch.isin(ids, torch.tensor(list(model.ids.values())))
    assert not text_mask[special].any()
    assert text_mask[~special].float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert patch_mask.shape == (800, N) and patch_mask.float().mean().item() == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize("name", ["contrastive", "coca", "lcl"])
def test_the_lm_head_runs_only_where_the_loss_reads_it(name, clip_tok):
    torch.manual_seed(10)
    model = LCLModel(config=odd_config()).eval()
    ids, images = mixed_batch(clip_tok), torch.randn(4, 3, 30, 30)
    objective = PretrainingObjective.named(name)
    with torch.no_grad():
        every_row = objective(model(images, ids))
        inputs = objective.model_inputs(model, images, ids)
        read_rows = model(images, ids, **inputs)
        only_read = objective(read_rows)
    expected_targets = {"contrastive": 0, "coca": 4, "lcl": 19}[name]  # row 0, image-first: "a red square <eot>"
    assert int(read_rows["gen_mask"].sum()) == expected_targets
    seen = []  # the rows the LM head's output layer multiplies, eagerly: the targets only
    original = linear_cross_entropy_module._LinearCrossEntropy.apply
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(linear_cross_entropy_module._LinearCrossEntropy, "apply",
                      lambda hidden, *rest: seen.append(hidden.shape[0]) or original(hidden, *rest))
        objective(read_rows)
    assert seen == ([expected_targets] if objective.weights.generation else [])
    for key in ("loss", "generation_loss", "contrastive_loss"):
        assert only_read[key].item() == pytest.approx(every_row[key].item(), rel=1e-6)
