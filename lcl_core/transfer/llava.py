"""A tiny LLaVA-1.5 (the paper's Table 4 pipeline): vision encoder → two-layer MLP projector → causal LM.

As LLaVA-1.5 does, the LM reads the vision encoder's *penultimate* layer's patch tokens (CLS dropped, before
the last block and ``ln_post``) through ``mlp2x_gelu`` (Linear → GELU → Linear), spliced where the prompt's
``<image>`` stands; the LM is a ``transformers`` Llama built from config. Conversations are laid out in
LLaVA-1.5's ``vicuna_v1`` style, shortened for a 4k-vocabulary world::

    <sot> USER: <img>×N\\n{prompt} ASSISTANT: {answer}<eot> USER: {prompt} ASSISTANT: {answer}<eot> …

and the loss is on the answer tokens and their closing ``<eot>`` only (LLaVA masks everything the human says
and the system prompt). ``<img>`` is the kit's image placeholder id, so a row holds N of them per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..tokenizer import Tokenizer
from .heads import IGNORE_INDEX

IMAGE_MARK = "<image>"  # LLaVA's placeholder in conversation text


@dataclass(frozen=True)
class DialogueRow:
    ids: list[int]  # the conversation's tokens, N <img> placeholders where the image goes
    labels: list[int]  # ids at answer tokens (and their <eot>), IGNORE_INDEX elsewhere


def dialogue_row(tokenizer: Tokenizer, conversation: Sequence[dict], *, image_tokens: int,
                 max_tokens: int) -> DialogueRow:
    """One LLaVA-format conversation (``[{"from": "human"|"gpt", "value"}, …]``) as ids and answer-only
    labels, cut at ``max_tokens`` — never inside the image block (a row whose image does not fit is refused)."""
    ids, labels = [tokenizer.sot_id], [IGNORE_INDEX]
    for turn in conversation:
        if turn["from"] == "human":
            before, mark, after = turn["value"].partition(IMAGE_MARK)
            human = tokenizer.encode(f" USER: {before}".rstrip())
            if mark:
                human += [tokenizer.img_id] * image_tokens
            human += tokenizer.encode(f"{after} ASSISTANT:")
            ids += human
            labels += [IGNORE_INDEX] * len(human)
        elif turn["from"] == "gpt":
            answer = tokenizer.encode(" " + turn["value"].strip()) + [tokenizer.eot_id]
            ids += answer
            labels += answer
        else:
            raise ValueError(f"a conversation turn is from 'human' or 'gpt', not {turn['from']!r}")
    if tokenizer.img_id in ids[max_tokens:]:
        raise ValueError(f"the image block ends after token {max_tokens}: raise max_tokens")
    return DialogueRow(ids[:max_tokens], labels[:max_tokens])


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
    """Projector + causal LM over given vision tokens: the encoder stays outside (frozen transfer feeds cached
    tokens, full transfer an encoder trained alongside), as in :mod:`.heads`."""

    def __init__(self, *, token_width: int, lm: nn.Module, image_id: int) -> None:
        super().__init__()
        width = lm.get_input_embeddings().embedding_dim
        self.projector = nn.Sequential(nn.Linear(token_width, width), nn.GELU(), nn.Linear(width, width))
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

    def loss(self, ids: torch.Tensor, labels: torch.Tensor, image_tokens: torch.Tensor | None,
             attention: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy at the labelled (answer) positions: ids, labels, attention [B, L]."""
        return self.lm(inputs_embeds=self.embed(ids, image_tokens), attention_mask=attention, labels=labels).loss

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
