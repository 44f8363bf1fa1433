"""An independent re-statement of the official LCL forward (OpenGVLab/LCL ``lcl_model.py``,
``attentive.py``, ``LCLLoss``) on open_clip's own towers, used as the oracle for the importer.

Its modules carry the official parameter names, so an official-layout state dict loads into it with
``strict=True``; nothing here is shared with the kit's model code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import TextTransformer, VisionTransformer
from torch import nn

OFFICIAL_PAD = 0


class _CrossAttention(nn.Module):
    def __init__(self, dim: int, out_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, out_dim, bias=False) for _ in range(3))
        self.q_bias, self.k_bias, self.v_bias = (nn.Parameter(torch.zeros(out_dim)) for _ in range(3))
        self.proj = nn.Linear(out_dim, out_dim, bias=False)


class _Pooler(nn.Module):
    def __init__(self, dim: int, out_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1_q, self.norm1_k, self.norm1_v = (nn.LayerNorm(dim) for _ in range(3))
        self.cross_attn = _CrossAttention(dim, out_dim, heads)


class _PoolProject(nn.Module):
    def __init__(self, dim: int, out_dim: int, heads: int) -> None:
        super().__init__()
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pooler = _Pooler(dim, out_dim, heads)

    def forward(self, x):
        p, ca = self.pooler, self.pooler.cross_attn
        b, n, _ = x.shape
        q = F.linear(p.norm1_q(self.query_token.expand(b, -1, -1)), ca.q.weight, ca.q_bias)
        k = F.linear(p.norm1_k(x), ca.k.weight, ca.k_bias)
        v_tokens = F.linear(p.norm1_v(x), ca.v.weight, ca.v_bias)
        heads = lambda t: t.reshape(b, t.shape[1], ca.heads, -1).permute(0, 2, 1, 3)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v_tokens)
        attn = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        pooled = ca.proj((attn @ v).transpose(1, 2).reshape(b, 1, -1)).squeeze(1)
        return pooled, ca.proj(v_tokens)


class OfficialLCL(nn.Module):
    def __init__(self, cfg, ids: dict[str, int]) -> None:
        super().__init__()
        v, t = cfg.vision, cfg.bridge
        self.ids = ids
        self.visual = VisionTransformer(image_size=v.image_size, patch_size=v.patch_size, width=v.width,
                                        layers=v.layers, heads=v.heads, mlp_ratio=v.mlp_ratio,
                                        output_dim=cfg.embed_dim, output_tokens=True)
        self.visual.proj = None
        self.text = TextTransformer(context_length=t.context_length, vocab_size=t.vocab_size, width=t.width,
                                    heads=t.heads, layers=t.layers, mlp_ratio=t.mlp_ratio,
                                    output_dim=cfg.embed_dim)
        self.pool_project = _PoolProject(v.width, cfg.embed_dim, v.pool_heads)
        self.lm_head = nn.Sequential(nn.LayerNorm(t.width), nn.Linear(t.width, t.vocab_size, bias=False))
        self.logit_scale = nn.Parameter(torch.zeros([]))

    def forward(self, images, text):
        """text uses the official pad id 0. Returns (image_features, text_features, logits, labels, scale)."""
        _, patches = self.visual(images)
        latent, image_embs = self.pool_project(patches)
        img_mask = text == self.ids["img"]
        x = torch.zeros(*text.shape, self.text.width)
        x[~img_mask] = self.text.token_embedding(text[~img_mask])
        x[img_mask] = image_embs.flatten(0, 1)
        x = x + self.text.positional_embedding[: x.shape[1]]
        causal = torch.full((x.shape[1], x.shape[1]), float("-inf")).triu_(1)
        out = self.text.transformer(x, attn_mask=causal)
        positions = torch.arange(text.shape[1])[None].expand_as(text)
        soi = text == self.ids["soi"]
        b, s = torch.nonzero(soi & (positions > 0), as_tuple=True)
        text_features = F.normalize(self.text.ln_final(out[b, s]) @ self.text.text_projection, dim=-1)
        image_features = F.normalize(latent[~(positions[soi] == 0)], dim=-1)
        nxt = text[:, 1:]
        gen = (nxt != self.ids["img"]) & (nxt != self.ids["eoi"]) & (nxt != OFFICIAL_PAD)
        return image_features, text_features, self.lm_head(out[:, :-1][gen]), nxt[gen], self.logit_scale.exp()


def official_losses(image_features, text_features, logits, labels, scale, *, contrastive_weight=0.1):
    """``LCLLoss`` for one process (local loss): weighted contrastive and generation terms."""
    target = torch.arange(len(image_features))
    contrastive = (F.cross_entropy(scale * image_features @ text_features.t(), target)
                   + F.cross_entropy(scale * text_features @ image_features.t(), target)) / 2
    return contrastive_weight * contrastive, F.cross_entropy(logits, labels, ignore_index=OFFICIAL_PAD)
