"""The LCL model in one file: ViT encoder, attentive pooling projection, causal bridge.

Data flow for a batch of interleaved sequences::

    images [M,3,H,W] ──ViT──> patches [M,N,Wv] ──attentive pooling──┬─> pooled    [M,D]  image latents
                                                                     └─> projected [M,N,D] image tokens
    input_ids [B,L] ──token embedding, <img> runs replaced by projected──> causal transformer [B,L,D]
        ├─ at each <soi> not at index 0: ln_final → text_projection  → context feature  (contrastive)
        └─ at each generation target:  lm_head's LayerNorm → features; its Linear and the cross-entropy are
                                       fused in the objective (lcl_core.linear_cross_entropy)

Two baselines of the paper's Table 1 read other forwards of the same parts (see
:mod:`lcl_core.objectives`): ``matching=True`` (BLIP-2-style pair tasks) and ``text_mask``/``patch_mask``
(BEiT-3-style masked modelling with bidirectional attention). Their extra parameters live in
``model.heads``, built only when the config names them (``ModelConfig.pretraining_heads``).

Semantics follow the official code (OpenGVLab/LCL ``lcl_model.py``/``attentive.py``): the CLS token is
dropped after ``ln_post``, the ViT's own projection is unused, and ``lm_head`` reads the transformer
output directly (not after ``ln_final``). The causal model is a Hugging Face GPT-2 built from config
(pre-LN blocks, learned absolute positions, exact GELU) — the same block as open_clip's text tower, so
official weights map onto it one to one (see :mod:`lcl_core.official`).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn
from transformers import AutoModel, GPT2Config

from .config import ModelConfig
from .images import patchify
from .sequences import (generation_mask, image_first_captions, image_token_sources, maskable_text, pad_rows,
                        paired_sequence, soi_positions, special_tokens, text_query)


class AttentivePoolingProjection(nn.Module):
    """One learned query cross-attends over patch tokens (LayerNorms on q/k/v inputs).

    The same weights give the pooled latent and, without the attention, one projected token per
    patch: ``projected = out_proj(v_proj(norm_v(patch)))``.
    """

    def __init__(self, *, input_dim: int, output_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.randn(1, 1, input_dim))
        self.norm_q, self.norm_k, self.norm_v = (nn.LayerNorm(input_dim) for _ in range(3))
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(input_dim, output_dim) for _ in range(3))
        self.out_proj = nn.Linear(output_dim, output_dim, bias=False)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.zeros_(proj.bias)  # the official q/k/v biases start at zero

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, patches: torch.Tensor, *, return_attention: bool = False):
        """
        patches: [M, N, Wv]  ->  pooled [M, D], projected [M, N, D] (, attention [M, heads, N])
        """
        values = self.v_proj(self.norm_v(patches))  # [M, N, D]
        query = self.q_proj(self.norm_q(self.query.expand(patches.shape[0], -1, -1)))  # [M, 1, D]
        keys = self.k_proj(self.norm_k(patches))
        q, k, v = self._split_heads(query), self._split_heads(keys), self._split_heads(values)
        attention = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)  # [M, h, 1, N]
        pooled = self.out_proj((attention @ v).transpose(1, 2).flatten(2)).squeeze(1)
        projected = self.out_proj(values)
        if return_attention:
            return pooled, projected, attention.squeeze(2)
        return pooled, projected


class VisionEncoder(nn.Module):
    """open_clip's ViT (learned positions, CLS token, ln_pre, ln_post); returns patch tokens only."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()
        v = config.vision
        self.vit = VisionTransformer(
            image_size=v.image_size, patch_size=v.patch_size, width=v.width, layers=v.layers,
            heads=v.heads, mlp_ratio=v.mlp_ratio, output_dim=config.embed_dim, output_tokens=True,
        )
        self.vit.proj = None  # as in the official model: the pooling projection replaces it
        self.pool = AttentivePoolingProjection(input_dim=v.width, output_dim=config.embed_dim,
                                               num_heads=v.pool_heads)

    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [M, 3, H, W] -> patch tokens after ln_post, CLS dropped: [M, N, Wv]."""
        _, tokens = self.vit(images)
        return tokens

    @contextlib.contextmanager
    def masked_patch_embeddings(self, patch_mask: torch.Tensor, token: torch.Tensor):
        """Inside the block the ViT's patch embeddings at ``patch_mask`` [M, N] are replaced by
        ``token`` [Wv] before the CLS token and positions are added, as BEiT masks its input (a hook
        on open_clip's patch convolution, so its forward is used unchanged)."""
        def replace(module, inputs, embeddings):  # embeddings [M, Wv, grid, grid]
            where = patch_mask.view(embeddings.shape[0], 1, *embeddings.shape[2:])
            return torch.where(where, token.view(1, -1, 1, 1).to(embeddings.dtype), embeddings)

        handle = self.vit.conv1.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()

    def forward(self, images: torch.Tensor):
        """images [M, 3, H, W] -> pooled [M, D], projected [M, N, D]."""
        return self.pool(self.patch_features(images))


class CausalBridge(nn.Module):
    """A GPT-2 causal transformer from config (random init) fed with ``inputs_embeds``."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()
        b = config.bridge
        gpt2 = GPT2Config(
            vocab_size=b.vocab_size, n_positions=b.context_length, n_embd=b.width, n_layer=b.layers,
            n_head=b.heads, n_inner=int(b.width * b.mlp_ratio), activation_function="gelu",
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, use_cache=False,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,  # the bridge never calls generate
        )
        self.transformer = AutoModel.from_config(gpt2, attn_implementation="sdpa")
        self.transformer.ln_f = nn.Identity()  # ln_final and lm_head both read the raw output
        self.ln_final = nn.LayerNorm(b.width)
        self.text_projection = nn.Parameter(torch.randn(b.width, config.embed_dim) * b.width**-0.5)
        self.lm_head = nn.Sequential(nn.LayerNorm(b.width), nn.Linear(b.width, b.vocab_size, bias=False))

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.transformer.wte

    @property
    def lm_head_weight(self) -> torch.Tensor:
        """[V, D]: the LM head's bias-free output layer, for the fused loss."""
        return self.lm_head[1].weight

    def lm_features(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [T, D] -> the LM head's input to its output layer [T, D]: ``lm_head(x) =
        lm_features(x) @ lm_head_weight.t()``. The objectives never form those logits (see
        :mod:`lcl_core.linear_cross_entropy`)."""
        return self.lm_head[0](outputs)

    def forward(self, embeds: torch.Tensor, *, attention: torch.Tensor | None = None) -> torch.Tensor:
        """embeds [B, L, D] -> outputs [B, L, D] (before ln_final). Causal, unless ``attention``
        [B, 1, L, L] bool (True: may attend) replaces the causal mask (the masked-modelling forward)."""
        return self.transformer(inputs_embeds=embeds, attention_mask=attention).last_hidden_state

    def context_feature(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [P, D] -> contrastive feature [P, embed_dim] (not normalised)."""
        return self.ln_final(outputs) @ self.text_projection


class PretrainingHeads(nn.Module):
    """Parameters only some baselines' pre-training reads; frozen transfer never does. Built for the
    names in ``config.pretraining_heads``:

    * ``matching`` (BLIP-2-style): a binary matched / not-matched classifier on the bridge output;
    * ``masked`` (BEiT-3-style): a learned text mask embedding, a learned ViT patch mask token and a
      linear head from the bridge output to a patch's pixels.
    """

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()
        width = config.bridge.width
        if "matching" in config.pretraining_heads:
            self.matching = nn.Linear(width, 2)
        if "masked" in config.pretraining_heads:
            self.text_mask = nn.Parameter(torch.randn(width) * 0.02)  # BEiT's mask-token init scale
            self.patch_mask = nn.Parameter(torch.randn(config.vision.width) * 0.02)
            self.pixels = nn.Linear(width, 3 * config.vision.patch_size**2)


class LCLModel(nn.Module):
    """Vision encoder + causal bridge + learned logit scale. ``forward`` returns what the objectives
    need as a dict (open_clip style); the objectives live in :mod:`lcl_core.objectives`."""

    def __init__(self, *, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.ids = dict(config.special_ids)
        self.num_image_tokens = config.vision.num_patches
        self.vision = VisionEncoder(config=config)
        self.bridge = CausalBridge(config=config)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        self.heads = PretrainingHeads(config=config)

    # ---- images ---------------------------------------------------------------------------------
    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [M, 3, H, W] -> frozen-transfer features [M, N, Wv]."""
        return self.vision.patch_features(images)

    def encode_image(self, images: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """images [M, 3, H, W] -> image latents [M, D]."""
        pooled, _ = self.vision(images)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    # ---- sequences ------------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, projected: torch.Tensor | None) -> torch.Tensor:
        """input_ids [B, L], projected [M, N, D] -> input embeddings [B, L, D].

        The ``<img>`` run after the k-th ``<soi>`` (row-major) receives the projected tokens of image k;
        ``projected`` holds every image of the batch, the contrastive-only layout's too (its ``<soi>``
        opens no run). Padding (an id outside the table for CLIP) is embedded as zeros; being
        right-padded and causal, it never influences a real position. Shapes never depend on the
        ids' values (a gather, not boolean indexing), so the compiled step has no graph break here.
        """
        img, pad = input_ids == self.ids["img"], input_ids == self.ids["pad"]
        lookup = input_ids.masked_fill(img | pad, 0)
        embeds = self.bridge.token_embedding(lookup).masked_fill(pad.unsqueeze(-1), 0.0)
        if not torch.compiler.is_compiling():  # a clear message in eager runs; the data pipeline makes it hold
            self._check_image_slots(input_ids, projected)
        if projected is None or not projected.shape[0]:
            return embeds
        image, token = image_token_sources(input_ids, img_id=self.ids["img"], soi_id=self.ids["soi"],
                                           num_image_tokens=self.num_image_tokens)
        spliced = projected[image.clamp(max=projected.shape[0] - 1), token].to(embeds.dtype)
        return torch.where(img.unsqueeze(-1), spliced, embeds)

    def _check_image_slots(self, input_ids: torch.Tensor, projected: torch.Tensor | None) -> None:
        num_slots = int((input_ids == self.ids["img"]).sum())
        runs = int(self._spliced_images(input_ids).sum())
        given = 0 if projected is None else projected.shape[0]
        if num_slots != runs * self.num_image_tokens or (num_slots and given < runs):
            raise ValueError(
                f"the batch has {num_slots} <img> placeholders in {runs} image runs but {given} images × "
                f"{self.num_image_tokens} tokens; images must be given in row-major <soi> order, one per "
                "<soi>, each run holding num_image_tokens placeholders"
            )

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, *, generation_rows: torch.Tensor | None = None,
                matching: bool = False, text_mask: torch.Tensor | None = None,
                patch_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """
        images    [M, 3, H, W]  every image of the batch, row-major in order of its <soi>
        input_ids [B, L]        right-padded with the pad id
        generation_rows [B]     bool: rows whose generation targets are scored (None: all); the LM head's
                                output layer, the largest matmul of a CPU step, runs only where a loss reads it
        matching                BLIP-2-style pair tasks on image-first pair rows (see _matching_forward)
        text_mask [B, L], patch_mask [M, N]   BEiT-3-style masked modelling (see _masked_forward)

        returns (sizes from the input shapes only: masks say which rows count)
          image_latents   [M, D]  pooled latents of all images (not normalised)
          pair_latents    [M, D]  the latents again, each image's contrastive side
          pair_context    [M, D]  ln_final(output at its <soi>) @ text_projection (not normalised)
          pair_mask       [M]     bool: the pair counts (its <soi> is not at index 0)
          gen_features    [B·(L-1), D]  the LM head's features at every output position but the last
          gen_labels      [B·(L-1)]     the next token's id there (0 where it is no target)
          gen_mask        [B·(L-1)]     bool: a generation target (of a row in generation_rows)
          gen_rows        [B·(L-1)]     the row each position belongs to
          lm_head_weight  [V, D]  the LM head's output layer: logits = gen_features @ lm_head_weightᵀ
          image_first_rows [B]    rows that open with <soi> (captioning layout, no contrastive pair)
          logit_scale     []      exp of the learned log scale
          (+ matching_logits [R, 2], matching_labels [R] and matching_pairs [R, 2] (image, caption) with
          ``matching``; masked_text_features [S, D],
          masked_text_labels [S], masked_patch_pred / masked_patch_target [Q, 3·p·p] with the masks)
        """
        if text_mask is not None or patch_mask is not None:
            return self._masked_forward(images, input_ids, text_mask, patch_mask)
        if matching:
            return self._matching_forward(images, input_ids)
        outputs, _, _ = self._causal_forward(images, input_ids, generation_rows)
        return outputs

    def _check_images(self, images: torch.Tensor, input_ids: torch.Tensor) -> None:
        num_soi = int((input_ids == self.ids["soi"]).sum())
        if images.shape[0] != num_soi:
            raise ValueError(f"{images.shape[0]} images for {num_soi} <soi> tokens in the batch")

    def _causal_forward(self, images: torch.Tensor, input_ids: torch.Tensor,
                        generation_rows: torch.Tensor | None = None):
        """The LCL forward; also returns the bridge outputs [B, L, D] and the projected image tokens.

        Every output's size follows from ``images.shape`` and ``input_ids.shape`` alone; which rows a
        loss reads is carried by masks (``pair_mask``, ``gen_mask``), so ``torch.compile`` captures the
        whole step. The fused LM-head loss still evaluates the vocabulary only at masked-in targets.
        """
        if not torch.compiler.is_compiling():
            self._check_images(images, input_ids)
        batch, length = input_ids.shape
        if images.shape[0]:
            pooled, projected = self.vision(images)
        else:
            pooled = projected = None
        outputs = self.bridge(self.embed(input_ids, projected))

        soi = soi_positions(input_ids, soi_id=self.ids["soi"], count=images.shape[0])
        gen_mask = generation_mask(input_ids, img_id=self.ids["img"], eoi_id=self.ids["eoi"], pad_id=self.ids["pad"])
        if generation_rows is not None:
            gen_mask = gen_mask & generation_rows.unsqueeze(1)
        width = outputs.shape[-1]
        latents = pooled if pooled is not None else outputs.new_zeros(0, self.config.embed_dim)
        labels = input_ids[:, 1:].reshape(-1)
        return {
            "image_latents": latents,
            "pair_latents": latents,
            "pair_context": self.bridge.context_feature(outputs.reshape(-1, width)[soi]),
            "pair_mask": soi % length > 0,
            "gen_features": self.bridge.lm_features(outputs[:, :-1].reshape(-1, width)),
            "gen_labels": labels.masked_fill(~gen_mask.reshape(-1), 0),  # 0: any valid id where nothing is read
            "gen_mask": gen_mask.reshape(-1),
            "gen_rows": torch.arange(batch, device=input_ids.device).repeat_interleave(length - 1),
            "lm_head_weight": self.bridge.lm_head_weight,
            "image_first_rows": input_ids[:, 0] == self.ids["soi"],
            "logit_scale": self.logit_scale.exp(),
        }, outputs, projected

    def _require_head(self, name: str) -> None:
        if name not in self.config.pretraining_heads:
            raise ValueError(f"this forward needs the {name!r} pre-training head: build the model with "
                             f"pretraining_heads=[{name!r}] (the run builder adds an objective's heads)")

    def _matching_forward(self, images: torch.Tensor, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """BLIP-2-style pair tasks. Rows are image-first pairs ``[<soi> <img>×N <eoi> caption <eot>]``:

        * captioning: the causal forward's generation targets (the caption after its image);
        * contrastive: each image latent against its caption encoded alone, ``[<sot> caption <soi>]``;
        * matching: the bridge output at each row's ``<eot>`` → ln_final → a binary head, for the true
          pair and for two hard negatives per pair, a caption for each image and an image for each
          caption, sampled from the other pairs of the batch ∝ softmax of the (detached) contrastive
          similarity; captions identical to the true one are never drawn.
        """
        self._require_head("matching")
        if images.shape[0] != input_ids.shape[0] or not bool((input_ids[:, 0] == self.ids["soi"]).all()):
            raise ValueError("the matching forward reads image-first pair rows, one image each "
                             "(paired data with layout='image_first')")
        outputs, hidden, projected = self._causal_forward(images, input_ids)
        tok, context = special_tokens(self.ids), self.config.bridge.context_length
        captions = image_first_captions(input_ids, eoi_id=self.ids["eoi"], eot_id=self.ids["eot"])
        queries = pad_rows([text_query(tok, c, context_length=context) for c in captions], pad_id=self.ids["pad"])
        caption_features = self.encode_text(queries.to(input_ids.device), normalize=False)
        latents = outputs["image_latents"]
        outputs["pair_latents"], outputs["pair_context"] = latents, caption_features
        outputs["pair_mask"] = torch.ones(len(captions), dtype=torch.bool, device=latents.device)

        positives = torch.arange(len(captions), device=latents.device)
        kept, other_caption, other_image = self._hard_negatives(latents, caption_features, captions)
        pairs = torch.cat([torch.stack([positives, positives], 1),  # (image, caption): the true pairs,
                           torch.stack([kept, other_caption], 1),  # each image with a wrong caption,
                           torch.stack([other_image, kept], 1)])  # each caption with a wrong image
        negatives = pairs[len(captions):]
        rows = [paired_sequence(tok, captions[c], num_image_tokens=self.num_image_tokens, context_length=context,
                                image_first=True) for c in negatives[:, 1].tolist()]
        ends = [hidden[positives, (input_ids != self.ids["pad"]).sum(1) - 1]]
        if rows:
            negative_ids = pad_rows(rows, pad_id=self.ids["pad"]).to(input_ids.device)
            negative_hidden = self.bridge(self.embed(negative_ids, projected[negatives[:, 0]]))
            rows_at = torch.arange(len(rows), device=latents.device)
            ends.append(negative_hidden[rows_at, (negative_ids != self.ids["pad"]).sum(1) - 1])
        outputs["matching_logits"] = self.heads.matching(self.bridge.ln_final(torch.cat(ends)))
        outputs["matching_labels"] = (torch.arange(pairs.shape[0], device=latents.device) < len(captions)).long()
        outputs["matching_pairs"] = pairs
        return outputs

    @torch.no_grad()
    def _hard_negatives(self, latents: torch.Tensor, captions: torch.Tensor, texts: list[list[int]]):
        """-> (kept pairs [K], a wrong caption for each kept image [K], a wrong image for each kept caption
        [K]), drawn ∝ softmax of the contrastive similarity over the batch's other pairs, never a caption
        identical to the true one; a pair with nothing admissible (a batch of one, or only duplicates) is
        left out."""
        similarity = self.logit_scale.exp() * F.normalize(latents.float(), dim=-1) @ F.normalize(
            captions.float(), dim=-1).t()
        same = torch.tensor([[a == b for b in texts] for a in texts], device=latents.device)
        weights = [scores.softmax(dim=-1).masked_fill(same, 0.0) for scores in (similarity, similarity.t())]
        kept = torch.nonzero((weights[0].sum(-1) > 0) & (weights[1].sum(-1) > 0), as_tuple=True)[0]
        if not len(kept):
            return kept, kept, kept
        return kept, *(torch.multinomial(w[kept], 1).squeeze(1) for w in weights)

    def _masked_forward(self, images: torch.Tensor, input_ids: torch.Tensor, text_mask: torch.Tensor | None,
                        patch_mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """BEiT-3-style masked modelling with bidirectional attention (pad keys masked out).

        Masked text tokens enter the bridge as ``heads.text_mask`` and are predicted by ``lm_head`` at
        their own position; masked patches enter the ViT as ``heads.patch_mask`` and their pixels
        (per-patch normalised, as MAE) are regressed by ``heads.pixels`` from the bridge output at the
        patch's ``<img>`` slot. Only images spliced into the sequence are scored.
        """
        self._require_head("masked")
        self._check_images(images, input_ids)
        num_images, num_patches = images.shape[0], self.num_image_tokens
        text_mask = torch.zeros_like(input_ids, dtype=torch.bool) if text_mask is None else text_mask
        if patch_mask is None:
            patch_mask = torch.zeros(num_images, num_patches, dtype=torch.bool, device=images.device)
        with self.vision.masked_patch_embeddings(patch_mask, self.heads.patch_mask):
            pooled, projected = self.vision(images)
        spliced = self._spliced_images(input_ids)
        embeds = self.embed(input_ids, projected)
        embeds = torch.where(text_mask.unsqueeze(-1), self.heads.text_mask.to(embeds.dtype), embeds)
        keys = (input_ids != self.ids["pad"])[:, None, None, :]
        attention = keys.expand(-1, 1, input_ids.shape[1], -1)
        hidden = self.bridge(embeds, attention=attention)

        slots = torch.nonzero(input_ids == self.ids["img"], as_tuple=True)  # row-major = spliced patch order
        scored = patch_mask[spliced].reshape(-1)
        pixels = patchify(images[spliced], patch_size=self.config.vision.patch_size).reshape(scored.shape[0], -1)
        target = (pixels - pixels.mean(-1, keepdim=True)) / (pixels.var(-1, keepdim=True) + 1e-6).sqrt()
        empty = hidden.new_zeros(0, self.config.embed_dim)
        no_targets = input_ids.new_zeros(0)
        return {
            "image_latents": pooled, "pair_latents": empty, "pair_context": self.bridge.context_feature(empty),
            "pair_mask": no_targets.bool(),
            "gen_features": self.bridge.lm_features(hidden.new_zeros(0, hidden.shape[-1])), "gen_labels": no_targets,
            "gen_mask": no_targets.bool(), "lm_head_weight": self.bridge.lm_head_weight,
            "gen_rows": no_targets, "image_first_rows": input_ids[:, 0] == self.ids["soi"],
            "logit_scale": self.logit_scale.exp(),
            "masked_text_features": self.bridge.lm_features(hidden[text_mask]),
            "masked_text_labels": input_ids[text_mask],
            "masked_patch_pred": self.heads.pixels(hidden[slots[0][scored], slots[1][scored]]),
            "masked_patch_target": target[scored],
        }

    @torch.no_grad()
    def sample_masks(self, images: torch.Tensor, input_ids: torch.Tensor, *, text_rate: float,
                     patch_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Random masks for the masked forward: each ordinary text token with ``text_rate`` and each
        patch with ``patch_rate`` -> (text_mask [B, L], patch_mask [M, N]) bool."""
        candidates = maskable_text(input_ids, special_ids=self.ids)
        text_mask = candidates & (torch.rand(input_ids.shape, device=input_ids.device) < text_rate)
        patch_mask = torch.rand(images.shape[0], self.num_image_tokens, device=images.device) < patch_rate
        return text_mask, patch_mask

    def _spliced_images(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[num_images] bool: True where the <soi> opens an <img> run (False for the contrastive-only
        layout ``[<sot> caption <soi>]`` whose image contributes only its latent)."""
        rows, cols = torch.nonzero(input_ids == self.ids["soi"], as_tuple=True)
        nxt = (cols + 1).clamp(max=input_ids.shape[1] - 1)
        return (input_ids[rows, nxt] == self.ids["img"]) & (cols + 1 < input_ids.shape[1])

    def encode_text(self, input_ids: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """input_ids [B, L] rows ``[<sot> text <soi> pad…]`` -> text features [B, D] read at the first
        ``<soi>`` of each row (the context that predicts an image; used for zero-shot and retrieval)."""
        is_soi = input_ids == self.ids["soi"]
        if not bool(is_soi.any(-1).all()):
            raise ValueError("every row needs a <soi>; build rows with lcl_core.sequences.text_query")
        first = is_soi.int().argmax(-1)
        outputs = self.bridge(self.embed(input_ids, None))
        feats = self.bridge.context_feature(outputs[torch.arange(len(first), device=first.device), first])
        return F.normalize(feats, dim=-1) if normalize else feats

    # ---- training helpers -----------------------------------------------------------------------
    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Official rule, applied after each optimiser step: log scale in [0, ln 100]."""
        self.logit_scale.clamp_(0, self.config.max_logit_scale)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.vision.vit.set_grad_checkpointing(enable)
        if enable:
            self.bridge.transformer.activation_checkpointing_enable({"use_reentrant": False})
        else:
            self.bridge.transformer.activation_checkpointing_disable()

    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"vision": count(self.vision), "bridge": count(self.bridge), "total": count(self)}
