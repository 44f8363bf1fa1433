"""How documents become token sequences, and which positions the two losses read.

Layouts (LCL-METHOD §3):

* an image is ``<soi> <img>×N <eoi>``; its N placeholders are later replaced by the image's
  projected patch tokens (images in row-major order of their ``<soi>``);
* a pair is image-first ``[<soi> <img>×N <eoi> caption <eot>]`` or text-first
  ``[<sot> caption <soi> <img>×N <eoi>]``; the caption is cut to ``context - N - 4`` tokens;
* an interleaved document is ``<sot> … <eot>``; when truncation cuts through an image block the
  sequence ends at that block's ``<soi>``, which becomes ``<eot>``.

The loss positions:

* contrastive: every ``<soi>`` not at sequence index 0 (the causal output there has seen only the
  preceding context);
* generation: every next token except ``<img>``, ``<eoi>`` and padding, so ``<soi>`` *is* a target and
  the output at ``<eoi>`` predicts the first text token after the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Sequence

import torch

from .tokenizer import Tokenizer


def special_tokens(ids: dict[str, int]) -> SimpleNamespace:
    """The layout functions' view of a tokenizer from a model's special ids alone (``sot_id`` …
    ``pad_id``), for rows made of token ids rather than text."""
    return SimpleNamespace(**{f"{name}_id": value for name, value in ids.items()})


class LayoutTokenInText(ValueError):
    """A text piece that tokenises to an image-layout token (a web page whose text spells ``<start_of_img>``):
    laid out, its row would hold more ``<soi>`` than images. The readers count it as a skip."""


def token_ids(tok: Tokenizer, text: str | Sequence[int]) -> list[int]:
    """A text piece's token ids (refusing image-layout tokens: :class:`LayoutTokenInText`), or ids as given."""
    if not isinstance(text, str):
        return list(text)
    return _text_ids(tok, text, tok.encode(text))


def _text_ids(tok: Tokenizer, text: str, ids: list[int]) -> list[int]:
    if {tok.soi_id, tok.eoi_id, tok.img_id}.intersection(ids):
        raise LayoutTokenInText(f"the text {text[:60]!r} holds an image-layout token")
    return ids


def image_block(tok: Tokenizer, num_image_tokens: int) -> list[int]:
    return [tok.soi_id] + [tok.img_id] * num_image_tokens + [tok.eoi_id]


def paired_sequence(
    tok: Tokenizer, caption: str | Sequence[int], *, num_image_tokens: int, context_length: int,
    image_first: bool,
) -> list[int]:
    """One (image, caption) pair as an image-first (captioning) or text-first (contrastive) row."""
    text = token_ids(tok, caption)[: context_length - num_image_tokens - 4]  # room for <sot>/<eot>, <soi>, <eoi>
    if image_first:
        return image_block(tok, num_image_tokens) + text + [tok.eot_id]
    return [tok.sot_id] + text + image_block(tok, num_image_tokens)


def text_query(tok: Tokenizer, text: str | Sequence[int], *, context_length: int) -> list[int]:
    """``[<sot> text <soi>]``: the text feature LCL uses for zero-shot and retrieval is the causal
    output at that ``<soi>`` (the context that predicts an image)."""
    ids = token_ids(tok, text)[: context_length - 2]
    return [tok.sot_id] + ids + [tok.soi_id]


@dataclass
class InterleavedSequence:
    ids: list[int]
    image_indices: list[int] = field(default_factory=list)  # which input images survived, in order
    truncated: bool = False


def interleaved_sequence(
    tok: Tokenizer, segments: Sequence[str | int | Sequence[int]], *, num_image_tokens: int, context_length: int,
) -> InterleavedSequence:
    """Lay out a document given as text pieces (``str``, or token ids as a list) and image references
    (``int``).

    Text pieces are tokenised separately (in one :meth:`~lcl_core.tokenizer.Tokenizer.encode_many` call). For word-level BPEs that equals tokenising the pieces joined with
    spaces (the official loader's ``" ".join``) except where the CLIP tokenizer's ``ftfy.fix_text`` repairs
    mojibake across a boundary (a sentence ending ``â€`` before one starting ``™``): on the real MMC4 sample
    no page differs (docs/fidelity.md, "Sentences tokenised one by one"). A text piece that tokenises to an image-layout token raises
    :class:`LayoutTokenInText`. Returns the kept images' references.
    """
    texts = [seg for seg in segments if isinstance(seg, str)]
    # one call for the page's sentences, in order (none for rows of ids: a model's special_tokens view has no text)
    encoded = iter(tok.encode_many(texts) if texts else ())
    body: list[int] = []
    order: list[int] = []
    for seg in segments:
        if isinstance(seg, int):
            body += image_block(tok, num_image_tokens)
            order.append(seg)
        else:
            body += _text_ids(tok, seg, next(encoded)) if isinstance(seg, str) else list(seg)
    ids = [tok.sot_id] + body + [tok.eot_id]
    truncated = len(ids) > context_length
    if truncated:
        ids = ids[:context_length]
        ids[-1] = tok.eot_id
        soi_positions = [i for i, t in enumerate(ids) if t == tok.soi_id]
        last = soi_positions[-1] if soi_positions else None
        if last is not None and ids[last: last + num_image_tokens + 2] != image_block(tok, num_image_tokens):
            ids = ids[:last] + [tok.eot_id]  # the cut went through this block: end at its <soi>
    kept = sum(1 for t in ids if t == tok.soi_id)
    return InterleavedSequence(ids=ids, image_indices=order[:kept], truncated=truncated)


def laid_out(tok: Tokenizer, ids: Sequence[int]) -> str:
    """A token row as text with each image block as ``[image k]``: where a reader put the images among the
    sentences (``<sot>``, ``<eot>`` and padding are left out)."""
    parts, text, images = [], [], 0
    for token in [*ids, None]:
        if token not in (tok.soi_id, tok.img_id, tok.eoi_id, tok.sot_id, tok.eot_id, tok.pad_id, None):
            text.append(token)
            continue
        if text:
            parts.append(tok.decode(text))
            text = []
        if token == tok.soi_id:
            images += 1
            parts.append(f"[image {images}]")
    return " ".join(part for part in parts if part)


def pad_rows(rows: Sequence[Sequence[int]], *, pad_id: int, length: int | None = None) -> torch.Tensor:
    """Right-pad token rows into a ``[B, L]`` long tensor (L = longest row unless given)."""
    length = max(len(r) for r in rows) if length is None else length
    out = torch.full((len(rows), length), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) > length:
            raise ValueError(f"row {i} has {len(r)} tokens, more than the length {length}")
        out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


# ---- loss positions -------------------------------------------------------------------------------
def contrastive_mask(ids: torch.Tensor, *, soi_id: int) -> torch.Tensor:
    """``[B, L]`` bool: the ``<soi>`` positions whose causal output is paired with an image latent."""
    mask = ids == soi_id
    mask[:, 0] = False
    return mask


def generation_mask(ids: torch.Tensor, *, img_id: int, eoi_id: int, pad_id: int) -> torch.Tensor:
    """``[B, L-1]`` bool over the outputs at positions ``0..L-2``: True where the next token is a
    generation target (not ``<img>``, ``<eoi>`` or padding)."""
    nxt = ids[:, 1:]
    return (nxt != img_id) & (nxt != eoi_id) & (nxt != pad_id)


def soi_positions(ids: torch.Tensor, *, soi_id: int, count: int) -> torch.Tensor:
    """``[count]`` long: the flat (row-major) positions of the first ``count`` ``<soi>`` tokens, i.e. of
    every image's ``<soi>`` in image order when ``count`` is the batch's image count. Its size is
    ``count``, never data-dependent (a sort of the positions, not ``nonzero``), so ``torch.compile``
    traces it without a graph break; ``position % L == 0`` marks an image with no contrastive pair."""
    flat = ids.reshape(-1)
    positions = torch.arange(flat.shape[0], device=ids.device)
    return torch.where(flat == soi_id, positions, flat.shape[0]).sort().values[:count]


def image_token_sources(ids: torch.Tensor, *, img_id: int, soi_id: int,
                        num_image_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L]`` long twice: for each ``<img>`` slot, the image it shows (the index of the ``<soi>``
    opening its run, in row-major image order) and which of that image's tokens (its offset after the
    ``<soi>``); clamped to valid indices elsewhere. Static shapes, as :func:`soi_positions`."""
    flat = ids.reshape(-1)
    soi = flat == soi_id
    positions = torch.arange(flat.shape[0], device=ids.device)
    last_soi = torch.where(soi, positions, -1).cummax(dim=0).values
    image = (soi.long().cumsum(0) - 1).clamp(min=0)
    token = (positions - last_soi - 1).clamp(min=0, max=num_image_tokens - 1)
    return image.view_as(ids), token.view_as(ids)


def maskable_text(ids: torch.Tensor, *, special_ids: dict[str, int]) -> torch.Tensor:
    """``[B, L]`` bool: ordinary text tokens (no special token, no padding), the candidates for masking."""
    mask = torch.ones_like(ids, dtype=torch.bool)
    for value in special_ids.values():
        mask &= ids != value
    return mask


def image_first_captions(ids: torch.Tensor, *, eoi_id: int, eot_id: int) -> list[list[int]]:
    """The caption of each image-first pair row ``[<soi> <img>×N <eoi> caption <eot> pad…]``."""
    captions = []
    for row in ids.tolist():
        if eoi_id not in row or eot_id not in row:
            raise ValueError("an image-first pair row needs <eoi> … <eot>; lay pairs out with layout='image_first'")
        start = row.index(eoi_id) + 1
        captions.append(row[start: row.index(eot_id, start)])
    return captions


# ---- conversations (the tiny LLaVA-1.5 of lcl_core.llava) -------------------------------------------------
IGNORE_INDEX = -100  # transformers' label value for "no loss here"
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
