"""Transfer metrics, all returned in percent like the paper's tables.

Caption metrics use pycocoevalcap's own BLEU and CIDEr scorers. Its ``PTBTokenizer`` shells out to
Java, so captions are tokenised here in pure Python the way that tokenizer's output looks after
pycocoevalcap drops punctuation: lower case, clitics split off (``dog's`` -> ``dog 's``, ``don't`` ->
``do n't``), hyphenated words kept whole, other punctuation removed.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

RECALL_KS = (1, 5, 10)
_NEGATION = re.compile(r"(\w)n't\b")
_TOKEN = re.compile(r"n't|'\w+|\w+(?:-\w+)*")  # PTB keeps hyphenated words whole


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, *, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """logits [n, C], labels [n] -> {"top1": %, "top5": %} (k capped at C)."""
    ranked = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = ranked == labels.unsqueeze(1)
    return {f"top{k}": 100.0 * hits[:, :k].any(1).double().mean().item() for k in ks}


def retrieval_recall(similarity: torch.Tensor, caption_owner: torch.Tensor, *,
                     ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Recall@K both ways, the Karpathy-split protocol.

    similarity    [n_images, n_captions]
    caption_owner [n_captions]  index of each caption's image

    TR@K (text retrieval): share of images with at least one of their captions in their top K.
    IR@K (image retrieval): share of captions whose image is in their top K.
    """
    n_images = similarity.shape[0]
    owns = caption_owner.unsqueeze(0) == torch.arange(n_images).unsqueeze(1)  # [n_images, n_captions]
    # rank of the best-ranked own caption per image = captions scoring strictly higher than it
    best_own = similarity.masked_fill(~owns, float("-inf")).max(1).values
    text_rank = (similarity > best_own.unsqueeze(1)).sum(1)
    own_score = similarity[caption_owner, torch.arange(similarity.shape[1])]
    image_rank = (similarity > own_score.unsqueeze(0)).sum(0)
    out = {f"tr@{k}": 100.0 * (text_rank < k).double().mean().item() for k in ks}
    out |= {f"ir@{k}": 100.0 * (image_rank < k).double().mean().item() for k in ks}
    return out


def tokenize_caption(text: str) -> str:
    """Pure-Python stand-in for pycocoevalcap's PTBTokenizer (see the module docstring)."""
    return " ".join(_TOKEN.findall(_NEGATION.sub(r"\1 n't", text.lower())))


def caption_scores(references: Mapping[object, Sequence[str]], predictions: Mapping[object, str]) -> dict[str, float]:
    """Corpus BLEU-4 and CIDEr (percent) of one prediction per image against its references."""
    if set(references) != set(predictions):
        raise ValueError("references and predictions must cover the same images")
    gts = {k: [tokenize_caption(r) for r in refs] for k, refs in references.items()}
    res = {k: [tokenize_caption(predictions[k])] for k in references}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu4": 100.0 * bleu[3], "cider": 100.0 * float(cider)}
