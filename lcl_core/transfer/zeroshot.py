"""Zero-shot transfer with LCL's own two towers, no head trained.

LCL's text feature is the causal output at the ``<soi>`` that closes ``[<sot> text <soi>]`` — the
context that predicts an image — projected into the latent space (``model.encode_text``); the image
side is the pooled latent (``model.encode_image``). Both are unit vectors, so cosine similarity
ranks classes and captions.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..sequences import pad_rows, text_query
from ..tokenizer import Tokenizer
from .metrics import retrieval_recall, topk_accuracy

@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], *,
                 batch_size: int = 256) -> torch.Tensor:
    """texts -> unit text features [len(texts), D] from ``[<sot> text <soi>]`` rows."""
    context = model.config.bridge.context_length
    chunks = []
    for start in range(0, len(texts), batch_size):
        rows = [text_query(tokenizer, t, context_length=context) for t in texts[start:start + batch_size]]
        chunks.append(model.encode_text(pad_rows(rows, pad_id=tokenizer.pad_id), normalize=True).float())
    return torch.cat(chunks)


def class_embeddings(model: nn.Module, tokenizer: Tokenizer, class_names: Sequence[str], *,
                     templates: Sequence[str]) -> torch.Tensor:
    """-> [C, D]: each class's prompts averaged over templates, re-normalised (CLIP's prompt ensembling)."""
    prompts = [t.format(name) for name in class_names for t in templates]
    feats = encode_texts(model, tokenizer, prompts).view(len(class_names), len(templates), -1).mean(1)
    return nn.functional.normalize(feats, dim=-1)


def zeroshot_classification(image_latents: torch.Tensor, labels: torch.Tensor,
                            class_features: torch.Tensor) -> dict[str, float]:
    """image_latents [n, D] (unit), labels [n], class_features [C, D] -> top-1/top-5 (%)."""
    return topk_accuracy(image_latents @ class_features.T, labels)


def zeroshot_retrieval(image_latents: torch.Tensor, caption_features: torch.Tensor,
                       caption_owner: torch.Tensor) -> dict[str, float]:
    """image_latents [n_images, D], caption_features [n_captions, D] (unit) -> TR/IR@1/5/10 (%)."""
    return retrieval_recall(image_latents @ caption_features.T, caption_owner)


@torch.no_grad()
@torch.no_grad()
def _similarity(model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], images: torch.Tensor) -> torch.Tensor:
    """Cosine similarity [len(texts), M] of each text's ``<soi>`` feature and each image's latent."""
    return encode_texts(model, tokenizer, texts) @ model.encode_image(images, normalize=True).float().T


def rank_images(model: nn.Module, tokenizer: Tokenizer, queries: Sequence[str], images: torch.Tensor, *,
                k: int = 3) -> torch.Tensor:
    """Zero-shot text-to-image search: for each query, the indices [len(queries), k] of the ``images``
    [M, 3, H, W] whose latents lie closest to the query's ``<soi>`` feature."""
    return _similarity(model, tokenizer, queries, images).topk(k, dim=1).indices


def rank_captions(model: nn.Module, tokenizer: Tokenizer, images: torch.Tensor, captions: Sequence[str], *,
                  k: int = 3) -> torch.Tensor:
    """Zero-shot image-to-text search (the TR direction): for each of the ``images`` [M, 3, H, W], the indices
    [M, k] of the ``captions`` whose ``<soi>`` features lie closest to its latent."""
    return _similarity(model, tokenizer, captions, images).T.topk(k, dim=1).indices
