"""The model: shapes at odd sizes, image-token splicing, causality of the contrastive context."""

from __future__ import annotations

import pytest
import torch

from lcl_core.model import LCLModel
from lcl_core.sequences import interleaved_sequence, pad_rows, paired_sequence, text_query

from conftest import odd_config

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)

N = 9  # 30-px images, patch 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LCLModel(config=odd_config()).eval()


def mixed_batch(tok):
    rows = [
        paired_sequence(tok, "a red square", num_image_tokens=N, context_length=48, image_first=True),
        interleaved_sequence(tok, ["hello world.", 0, "two cats.", 1, "the end"], num_image_tokens=N,
                             context_length=48).ids,
        paired_sequence(tok, "two cats.", num_image_tokens=N, context_length=48, image_first=False),
    ]
    return pad_rows(rows, pad_id=tok.pad_id)


def pair_context(outputs):
    """The context features of the images that have a contrastive pair."""
    return outputs["pair_context"][outputs["pair_mask"]]


def test_shapes_at_odd_sizes(model, clip_tok):
    ids = mixed_batch(clip_tok)
    images = torch.randn(4, 3, 30, 30)
    assert model.patch_features(images).shape == (4, N, 44)
    pooled, projected = model.vision(images)
    assert pooled.shape == (4, 36) and projected.shape == (4, N, 36)
    out = model(images, ids)
    assert out["image_latents"].shape == (4, 36)
    assert out["pair_latents"].shape == out["pair_context"].shape == (4, 36)  # one row per image, and
    assert out["pair_mask"].tolist() == [False, True, True, True]  # the image-first one is no pair
    rows, length = ids.shape
    assert out["gen_features"].shape == (rows * (length - 1), 36) and out["gen_labels"].shape == (rows * (length - 1),)
    assert out["gen_rows"].tolist() == [r for r in range(rows) for _ in range(length - 1)]
    assert out["lm_head_weight"].shape == (49411, 36)
    assert out["image_first_rows"].tolist() == [True, False, False]
    assert model.encode_image(images).norm(dim=-1).allclose(torch.ones(4))


def test_image_tokens_are_spliced_in_soi_order(model, clip_tok):
    ids = mixed_batch(clip_tok)
    images = torch.randn(4, 3, 30, 30)
    _, projected = model.vision(images)
    embeds = model.embed(ids, projected)
    img_rows, img_cols = torch.nonzero(ids == clip_tok.img_id, as_tuple=True)
    assert torch.equal(embeds[img_rows, img_cols].view(4, N, 36), projected)
    text = ids[0, N + 2]  # the first caption token of row 0
    assert torch.equal(embeds[0, N + 2], model.bridge.token_embedding.weight[text])
    pad_positions = ids == clip_tok.pad_id
    assert pad_positions.any() and embeds[pad_positions].abs().sum() == 0


def test_pooled_and_projected_share_the_value_path(model):
    patches = torch.randn(2, N, 44)
    pool = model.vision.pool
    pooled, projected, attention = pool(patches, return_attention=True)
    assert attention.shape == (2, 3, N) and attention.sum(-1).allclose(torch.ones(2, 3))
    expected = pool.out_proj(pool.v_proj(pool.norm_v(patches)))
    assert torch.allclose(projected, expected)
    # the pooled latent is out_proj of the per-head attention-weighted values: the same v_proj/out_proj
    values = pool.v_proj(pool.norm_v(patches)).view(2, N, 3, 12)
    weighted = torch.einsum("bhn,bnhd->bhd", attention, values).flatten(1)
    assert torch.allclose(pooled, pool.out_proj(weighted), atol=1e-6)


def test_context_at_soi_has_not_seen_its_image(model, clip_tok):
    ids = mixed_batch(clip_tok)
    images = torch.randn(4, 3, 30, 30)
    before = pair_context(model(images, ids))
    changed = images.clone()
    changed[2] = torch.randn(3, 30, 30)  # the second image of row 1
    after = pair_context(model(changed, ids))
    # pairs: row 1 image 0, row 1 image 1, row 2 image 0
    assert torch.allclose(before[0], after[0]) and torch.allclose(before[1], after[1])
    assert torch.allclose(before[2], after[2])
    changed[1] = torch.randn(3, 30, 30)  # the first image of row 1 precedes the second <soi>
    after = pair_context(model(changed, ids))
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])


def test_encode_text_reads_the_soi_output(model, clip_tok):
    q = pad_rows([text_query(clip_tok, "two cats.", context_length=48), text_query(clip_tok, "a", context_length=48)],
                 pad_id=clip_tok.pad_id)
    feats = model.encode_text(q, normalize=False)
    row0 = torch.tensor([[clip_tok.sot_id, 1237, 3989, 269, clip_tok.soi_id, clip_tok.eoi_id]])
    direct = model.bridge.context_feature(model.bridge(model.embed(row0, None))[0, 4])
    assert torch.allclose(feats[0], direct, atol=1e-6)
    with pytest.raises(ValueError, match="needs a <soi>"):
        model.encode_text(torch.tensor([[clip_tok.sot_id, 320]]))


def test_image_count_mismatch_is_a_clear_error(model, clip_tok):
    ids = mixed_batch(clip_tok)
    with pytest.raises(ValueError, match="3 images for 4 <soi>"):
        model(torch.randn(3, 3, 30, 30), ids)


def test_contrastive_only_layout_uses_latents_without_splicing(model, clip_tok):
    rows = [text_query(clip_tok, "two cats.", context_length=48), text_query(clip_tok, "a red square", context_length=48)]
    out = model(torch.randn(2, 3, 30, 30), pad_rows(rows, pad_id=clip_tok.pad_id))
    assert out["pair_latents"].shape == (2, 36) and out["pair_context"].shape == (2, 36)


def test_gradient_checkpointing_gives_the_same_gradients(clip_tok):
    from lcl_core.objectives import PretrainingObjective

    torch.manual_seed(6)
    model = LCLModel(config=odd_config())
    ids, images = mixed_batch(clip_tok), torch.randn(4, 3, 30, 30)
    objective = PretrainingObjective.named("lcl")

    def grads():
        model.zero_grad()
        objective(model(images, ids))["loss"].backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.set_grad_checkpointing(True)
    checkpointed = grads()
    model.set_grad_checkpointing(False)
    assert len(plain) == len(checkpointed)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))
