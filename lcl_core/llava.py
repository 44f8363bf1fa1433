"""A tiny LLaVA-1.5 (the paper's Table 4 pipeline): vision encoder → two-layer MLP projector → causal LM.

As LLaVA-1.5 does, the LM reads the vision encoder's *penultimate* layer's patch tokens (CLS dropped, before
the last block and ``ln_post``) through ``mlp2x_gelu`` (Linear → GELU → Linear), spliced where the prompt's
``<image>`` stands; the LM is a ``transformers`` Llama built from config. Conversations are laid out in
LLaVA-1.5's ``vicuna_v1`` style, shortened for a 4k-vocabulary world::

    <sot> USER: <img>×N\\n{prompt} ASSISTANT: {answer}<eot> USER: {prompt} ASSISTANT: {answer}<eot> …

and the loss is on the answer tokens and their closing ``<eot>`` only (LLaVA masks everything the human says
and the system prompt). ``<img>`` is the kit's image placeholder id, so a row holds N of them per image.

:class:`DialogueModel` is that pipeline as the trainer sees a model (``forward(images, input_ids, labels=…)``
returns what :class:`~lcl_core.objectives.PretrainingObjective` reads), so every stage — the language model on
text alone, the projector on captions, the conversation fine-tune — trains in the one loop, resumes from its
checkpoints and is built by the one run builder (:mod:`lcl_core.training.dialogue`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from .config import JsonConfig, ModelConfig
from .model import VisionEncoder
from .sequences import IGNORE_INDEX

PARTS = ("vision", "projector", "lm")  # what a stage may train (DialogueModel.set_trainable)


def penultimate_patch_tokens(vision: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """images [M, 3, H, W] -> the patch tokens [M, N, Wv] leaving the ViT's second-to-last block (CLS dropped),
    what LLaVA-1.5 feeds its projector (``mm_vision_select_layer = -2``)."""
    blocks = vision.vit.transformer.resblocks
    if len(blocks) < 2:
        raise ValueError("the penultimate layer needs a ViT of at least two blocks")
    caught = {}
    handle = blocks[-2].register_forward_hook(lambda module, inputs, output: caught.update(tokens=output))
    try:
        vision.vit(images)
    finally:
        handle.remove()
    tokens = caught["tokens"]
    if not vision.vit.transformer.batch_first:
        tokens = tokens.transpose(0, 1)
    return tokens[:, 1:]


class TinyLLaVA(nn.Module):
    """Projector + causal LM over given vision tokens (the encoder stays outside: :class:`DialogueModel` holds it).
    ``token_width`` None: a language model alone, with no projector (the text stage, the blind control)."""

    def __init__(self, *, token_width: int | None, lm: nn.Module, image_id: int) -> None:
        super().__init__()
        width = lm.get_input_embeddings().embedding_dim
        self.projector = (nn.Sequential(nn.Linear(token_width, width), nn.GELU(), nn.Linear(width, width))
                          if token_width else None)
        self.lm = lm
        self.image_id = image_id

    def embed(self, ids: torch.Tensor, image_tokens: torch.Tensor | None) -> torch.Tensor:
        """ids [B, L] with N ``<img>`` per row that shows an image, image_tokens [B_img, N, Dv] in row order
        -> LM input embeddings [B, L, W]."""
        embeds = self.lm.get_input_embeddings()(ids.masked_fill(ids == self.image_id, 0))
        slots = ids == self.image_id
        if image_tokens is None:
            if slots.any():
                raise ValueError("the rows hold <img> placeholders but no image tokens were given")
            return embeds
        projected = self.projector(image_tokens).reshape(-1, embeds.shape[-1])
        if int(slots.sum()) != len(projected):
            raise ValueError(f"{int(slots.sum())} <img> placeholders for {len(projected)} image tokens")
        return embeds.masked_scatter(slots.unsqueeze(-1), projected.to(embeds.dtype))

    @torch.no_grad()
    def answer(self, ids: torch.Tensor, image_tokens: torch.Tensor | None, *, eot_id: int,
               max_new_tokens: int) -> list[list[int]]:
        """Greedy answers to prompts ``ids`` [B, L] (left-padded by :func:`left_pad`; its attention [B, L] is
        ``ids != pad``), cut at ``<eot>``."""
        attention = (ids >= 0).long()
        out = self.lm.generate(inputs_embeds=self.embed(ids.clamp(min=0), image_tokens), attention_mask=attention,
                               max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=eot_id,
                               pad_token_id=eot_id)
        return [row[: row.index(eot_id)] if eot_id in row else row for row in out.tolist()]


def left_pad(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Prompts of unequal length -> [B, L] padded on the left with -1 (generation continues every row at its
    end); :meth:`TinyLLaVA.answer` reads the padding as masked."""
    width = max(len(r) for r in rows)
    return torch.tensor([[-1] * (width - len(r)) + list(r) for r in rows])


@dataclass
class DialogueModelConfig(JsonConfig):
    """The tiny LLaVA-1.5's architecture. ``encoder`` None: the language model alone (the text stage and the blind
    control); else the pre-trained model's :class:`~lcl_core.config.ModelConfig`, whose vision tower is used."""

    lm: dict  # transformers LlamaConfig fields: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads
    vocab_size: int
    special_ids: dict[str, int]
    context_length: int  # the conversation rows' length, and the Llama's max_position_embeddings
    image_size: int
    encoder: dict | None = None
    kind: str = "dialogue"  # what lcl_core.checkpoint.load_pretrained builds from a config.json
    pretraining_heads: list[str] = field(default_factory=list)  # none: the trainer checks the objective needs none

    def __post_init__(self) -> None:
        if self.kind != "dialogue":
            raise ValueError(f"a dialogue model config has kind 'dialogue', not {self.kind!r}")
        if self.pretraining_heads:
            raise ValueError("a dialogue model has no pre-training heads")

    @property
    def encoder_config(self) -> ModelConfig | None:
        return ModelConfig.from_dict(self.encoder) if self.encoder is not None else None

    def stream_sizes(self) -> dict[str, int]:
        """What a reader needs: image size, ``<img>`` placeholders per image and row length."""
        encoder = self.encoder_config
        return {"image_size": self.image_size, "num_image_tokens": encoder.vision.num_patches if encoder else 0,
                "context_length": self.context_length}


class DialogueModel(nn.Module):
    """Vision encoder (penultimate-layer patch tokens) → projector → Llama, as the trainer drives a model:
    ``forward`` returns the generation objective's inputs with the labels' answer-only mask, and no pairs (no
    contrastive term). What trains is set by :meth:`set_trainable`; a frozen encoder runs without a graph."""

    def __init__(self, *, config: DialogueModelConfig) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, LlamaConfig

        self.config = config
        self.ids = dict(config.special_ids)
        encoder = config.encoder_config
        self.vision = VisionEncoder(config=encoder) if encoder is not None else None
        lm = AutoModelForCausalLM.from_config(LlamaConfig(
            vocab_size=config.vocab_size, max_position_embeddings=config.context_length, tie_word_embeddings=False,
            num_key_value_heads=config.lm["num_attention_heads"], **config.lm), attn_implementation="sdpa")
        self.llava = TinyLLaVA(token_width=encoder.vision.width if encoder else None, lm=lm, image_id=self.ids["img"])
        # the trainer logs a logit scale; this model has none to learn
        self.register_buffer("logit_scale", torch.zeros(()), persistent=False)

    def set_trainable(self, parts: Sequence[str]) -> None:
        """Train exactly ``parts`` (of :data:`PARTS`); the rest is frozen."""
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; a dialogue model has {', '.join(PARTS)}")
        modules = {"vision": self.vision, "projector": self.llava.projector, "lm": self.llava.lm}
        missing = [p for p in parts if modules[p] is None]
        if missing:
            raise ValueError(f"this model has no {' and no '.join(missing)} to train")
        for name, module in modules.items():
            if module is not None:
                module.requires_grad_(name in parts)
        if "vision" in parts:  # what lies past the penultimate block never reaches the LM: it gets no gradient, and
            for unused in (self.vision.pool, self.vision.vit.ln_post, self.vision.vit.transformer.resblocks[-1]):
                unused.requires_grad_(False)  # parameters without one would have no optimiser state to resume

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor | None:
        """images [M, 3, H, W] -> penultimate-layer patch tokens [M, N, Wv]; None without images or encoder."""
        if self.vision is None or images.shape[0] == 0:
            return None
        trains = any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            return penultimate_patch_tokens(self.vision, images)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, *, labels: torch.Tensor) -> dict:
        """images [M, 3, H, W], input_ids [B, L] (right-padded with the pad id), labels [B, L] (IGNORE_INDEX where
        no loss) -> gen_features [B·(L-1), W] (the output at each position, predicting the next token),
        gen_labels / gen_mask [B·(L-1)], lm_head_weight [V, W], image_latents [M, Dv] (mean patch token: the
        trainer's collapse diagnostics), empty pair tensors and a zero logit scale."""
        pad = self.ids["pad"]
        tokens = self.image_tokens(images)
        embeds = self.llava.embed(input_ids.masked_fill(input_ids == pad, 0), tokens)
        hidden = self.llava.lm.model(inputs_embeds=embeds, attention_mask=(input_ids != pad).long()).last_hidden_state
        width, targets = hidden.shape[-1], labels[:, 1:]
        empty = hidden.new_zeros(0, width)
        return {"gen_features": hidden[:, :-1].reshape(-1, width), "gen_labels": targets.clamp(min=0).reshape(-1),
                "gen_mask": (targets != IGNORE_INDEX).reshape(-1), "lm_head_weight": self.llava.lm.lm_head.weight,
                "image_latents": tokens.detach().mean(1) if tokens is not None else empty,
                "pair_latents": empty, "pair_context": empty,
                "pair_mask": torch.zeros(0, dtype=torch.bool, device=hidden.device), "logit_scale": self.logit_scale}

    @torch.no_grad()
    def answer(self, prompts: Sequence[Sequence[int]], images: torch.Tensor | None, *,
               max_new_tokens: int) -> list[list[int]]:
        """Greedy answers (token ids, ``<eot>`` cut) to prompts that end in ``ASSISTANT:``; images [M, 3, H, W] in
        the order of the prompts' ``<img>`` blocks, or None."""
        tokens = self.image_tokens(images) if images is not None else None
        return self.llava.answer(left_pad(prompts), tokens, eot_id=self.ids["eot"], max_new_tokens=max_new_tokens)

    def clamp_logit_scale_(self) -> None:
        """Nothing to clamp (the trainer calls it after every step)."""

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if self.vision is not None:
            self.vision.vit.set_grad_checkpointing(enable)
        if enable:
            self.llava.lm.gradient_checkpointing_enable({"use_reentrant": False})
        else:
            self.llava.lm.gradient_checkpointing_disable()
