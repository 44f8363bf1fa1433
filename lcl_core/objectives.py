"""Pre-training objectives over :class:`lcl_core.model.LCLModel` outputs, returning named losses.

LCL maximises the mutual information between the causal model's inputs and outputs; the bound splits
into two terms (LCL-METHOD §1):

* **contrastive** — symmetric InfoNCE between each image latent and the causal output at the ``<soi>``
  just before it (the context predicts the image); without it the latents collapse;
* **generation** — next-token cross-entropy on text, which follows images and is conditioned on them.

``loss = generation_weight · L_gen + contrastive_weight · L_con (+ regression_weight · L_reg)``, with
the official ``generation_weight = 1`` and ``contrastive_weight = λ = 0.1``. The paper's baselines are
the same module with other weights (:data:`OBJECTIVES`), so every objective shares data, model and loop.

All reductions are global means over ranks (see :mod:`lcl_core.distributed`). The returned
``*_loss`` values are unweighted; ``loss`` is the weighted total that is back-propagated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_rows, global_count, world


@dataclass(frozen=True)
class ObjectiveWeights:
    generation: float = 1.0
    contrastive: float = 0.1
    regression: float = 0.0
    # CoCa-style: captioning loss only on image-first rows (a unimodal text side does no LM)
    generation_on_image_first_rows_only: bool = False


OBJECTIVES: dict[str, ObjectiveWeights] = {
    "lcl": ObjectiveWeights(),
    "contrastive": ObjectiveWeights(generation=0.0, contrastive=1.0),  # CLIP
    # open_clip's CoCa defaults: caption weight 2, contrastive weight 1
    "coca": ObjectiveWeights(generation=2.0, contrastive=1.0, generation_on_image_first_rows_only=True),
    "generation": ObjectiveWeights(generation=1.0, contrastive=0.0),  # Flamingo-style
    "generation_regression": ObjectiveWeights(generation=1.0, contrastive=0.0, regression=1.0),  # Emu-style
}


def _connected_zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero that keeps every tensor in the graph (DDP needs a gradient for each parameter)."""
    return sum(t.sum() for t in tensors) * 0.0


def contrastive_loss(image_latents: torch.Tensor, context_features: torch.Tensor, logit_scale: torch.Tensor):
    """Symmetric InfoNCE over the global batch of pairs.

    image_latents [P, D], context_features [P, D] (raw; normalised here), logit_scale [] ->
    (loss, accuracy, number of pairs in the global batch)
    """
    img = F.normalize(image_latents.float(), dim=-1)
    txt = F.normalize(context_features.float(), dim=-1)
    all_img, offset = gather_rows(img)
    all_txt, _ = gather_rows(txt)
    n_global = all_img.shape[0]
    if n_global == 0:
        return _connected_zero(image_latents, context_features, logit_scale), float("nan"), 0
    labels = torch.arange(img.shape[0], device=img.device) + offset
    logits_i2t = logit_scale * img @ all_txt.t()  # [P_local, P_global]
    logits_t2i = logit_scale * txt @ all_img.t()
    summed = (F.cross_entropy(logits_i2t, labels, reduction="sum")
              + F.cross_entropy(logits_t2i, labels, reduction="sum")) / 2
    loss = summed / n_global * world()[1]
    with torch.no_grad():
        correct = (logits_i2t.argmax(-1) == labels).float().sum() + (logits_t2i.argmax(-1) == labels).float().sum()
        accuracy = (correct / (2 * img.shape[0])).item() if img.shape[0] else float("nan")
    return loss, accuracy, n_global


def generation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits [T, V], labels [T] -> cross-entropy averaged over the global number of targets."""
    n_global = global_count(labels.shape[0], labels.device)
    if n_global == 0:
        return _connected_zero(logits)
    return F.cross_entropy(logits.float(), labels, reduction="sum") / n_global * world()[1]


def regression_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Emu-style regression of the next image latent: squared error averaged over global elements."""
    n_global = global_count(predicted.numel(), predicted.device)
    if n_global == 0:
        return _connected_zero(predicted, target)
    return (predicted.float() - target.float()).pow(2).sum() / n_global * world()[1]


class PretrainingObjective(nn.Module):
    """Weighted sum of the LCL terms; ``forward(outputs)`` -> dict of named losses and diagnostics."""

    def __init__(self, *, weights: ObjectiveWeights = ObjectiveWeights()) -> None:
        super().__init__()
        self.weights = weights

    @classmethod
    def named(cls, name: str, **overrides) -> "PretrainingObjective":
        """One of :data:`OBJECTIVES`, optionally with weights overridden (e.g. ``contrastive=0.5``)."""
        if name not in OBJECTIVES:
            raise KeyError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
        return cls(weights=dataclasses.replace(OBJECTIVES[name], **overrides))

    def forward(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        w = self.weights
        logits, labels = outputs["gen_logits"], outputs["gen_labels"]
        if w.generation_on_image_first_rows_only:
            keep = outputs["image_first_rows"][outputs["gen_rows"]]
            logits, labels = logits[keep], labels[keep]
        zero = _connected_zero(outputs["pair_latents"], outputs["pair_context"], logits)
        gen = generation_loss(logits, labels) if w.generation else zero
        if w.contrastive:
            con, accuracy, num_pairs = contrastive_loss(outputs["pair_latents"], outputs["pair_context"],
                                                        outputs["logit_scale"])
        else:
            con, accuracy, num_pairs = zero, float("nan"), global_count(outputs["pair_latents"].shape[0],
                                                                        labels.device)
        reg = regression_loss(outputs["pair_context"], outputs["pair_latents"]) if w.regression else zero
        total = w.generation * gen + w.contrastive * con + w.regression * reg
        return {
            "loss": total,
            "generation_loss": gen,
            "contrastive_loss": con,
            "regression_loss": reg,
            "contrastive_accuracy": accuracy,
            "num_pairs": num_pairs,
            "logit_scale": outputs["logit_scale"].detach(),
        }
