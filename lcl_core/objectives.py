"""Pre-training objectives over :class:`lcl_core.model.LCLModel` outputs, returning named losses.

LCL maximises the mutual information between the causal model's inputs and outputs; the bound splits
into two terms (LCL-METHOD §1):

* **contrastive** — symmetric InfoNCE between each image latent and the causal output at the ``<soi>``
  just before it (the context predicts the image); without it the latents collapse;
* **generation** — next-token cross-entropy on text, which follows images and is conditioned on them.

``loss = generation_weight · L_gen + contrastive_weight · L_con (+ the baselines' terms)``, with the
official ``generation_weight = 1`` and ``contrastive_weight = λ = 0.1``. The paper's Table 1 rows are
the same module with other weights (:data:`OBJECTIVES`), so every objective shares data, model and
loop. Each entry of :data:`OBJECTIVES` is the objective's one home: its weights, the data the paper
trains it on, how paired data is laid out for it, the model heads it needs and its Table 1 row.

Two rows need more than the causal forward, and are simplified on purpose (``docs/reproduction.md``):

* **BLIP-2-style** (``blip2``): image–text contrastive + captioning + image–text matching. The model's
  ``matching`` forward reads image-first pairs, encodes each caption alone for the contrastive pair
  and scores the true pair and two in-batch hard negatives (a caption for each image and an image for
  each caption, sampled ∝ the detached contrastive similarity) with a binary head at the row's end.
  BLIP-2's Q-Former is replaced by the causal bridge; hard negatives come from the local batch.
* **BEiT-3-style** (``beit3``): masked modelling on interleaved documents with bidirectional attention
  over image and text tokens: 50 % of text tokens (BEiT-3's rate for text beside images) replaced by a
  learned mask embedding and predicted, and 40 % of image patches replaced by a learned mask token at
  the ViT input, their pixels (per-patch normalised, as MAE) regressed from the bridge output. BEiT-3's
  multiway experts become the kit's ViT + bridge, its VQ-KD visual tokens become pixel targets (no
  visual tokenizer exists offline), and block-wise masking becomes random masking (a 4 × 4 grid has no
  blocks to speak of).

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
from .linear_cross_entropy import linear_cross_entropy

LOSS_TERMS = ("generation", "contrastive", "regression", "matching", "masked_text", "masked_image")


@dataclass(frozen=True)
class ObjectiveWeights:
    generation: float = 1.0
    contrastive: float = 0.1
    regression: float = 0.0  # Emu-style regression of the next image latent
    matching: float = 0.0  # BLIP-2-style image-text matching (needs the model's matching forward)
    masked_text: float = 0.0  # BEiT-3-style masked tokens (needs the model's masked forward)
    masked_image: float = 0.0  # BEiT-3-style masked patches
    # CoCa-style: captioning loss only on image-first rows (a unimodal text side does no LM)
    generation_on_image_first_rows_only: bool = False


@dataclass(frozen=True)
class Masking:
    """What the masked-modelling forward hides: shares of ordinary text tokens and of image patches."""

    text_rate: float = 0.5
    patch_rate: float = 0.4


@dataclass(frozen=True)
class ObjectiveSpec:
    weights: ObjectiveWeights
    source: str  # the data the paper trains it on: "mmc4" (documents) or "mmc4_pair" (matched pairs)
    pair_layout: str  # how an (image, caption) pair becomes rows for it (lcl_core.data.paired.LAYOUTS)
    paper_row: str | None  # its row label in the paper's Table 1
    heads: tuple[str, ...] = ()  # pre-training heads the model must carry (config.PRETRAINING_HEADS)
    masking: Masking | None = None  # set for the masked-modelling forward


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "lcl": ObjectiveSpec(ObjectiveWeights(), "mmc4", "sampled", "LCL"),
    "contrastive": ObjectiveSpec(ObjectiveWeights(generation=0.0, contrastive=1.0), "mmc4_pair", "contrastive",
                                 "CLIP"),
    # open_clip's CoCa defaults: caption weight 2, contrastive weight 1
    "coca": ObjectiveSpec(ObjectiveWeights(generation=2.0, contrastive=1.0, generation_on_image_first_rows_only=True),
                          "mmc4_pair", "both", "CoCa"),
    "blip2": ObjectiveSpec(ObjectiveWeights(generation=1.0, contrastive=1.0, matching=1.0), "mmc4_pair",
                           "image_first", "BLIP2", heads=("matching",)),
    "beit3": ObjectiveSpec(ObjectiveWeights(generation=0.0, contrastive=0.0, masked_text=1.0, masked_image=1.0),
                           "mmc4", "sampled", "BEiT3", heads=("masked",), masking=Masking()),
    "generation": ObjectiveSpec(ObjectiveWeights(generation=1.0, contrastive=0.0), "mmc4", "sampled",
                                "Flamingo-style"),
    "generation_regression": ObjectiveSpec(ObjectiveWeights(generation=1.0, contrastive=0.0, regression=1.0),
                                           "mmc4", "sampled", "Emu-style"),
}


def objective_spec(name: str) -> ObjectiveSpec:
    if name not in OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def _connected_zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero that keeps every tensor in the graph (DDP needs a gradient for each parameter)."""
    return sum(t.sum() for t in tensors) * 0.0


def contrastive_loss(image_latents: torch.Tensor, context_features: torch.Tensor, logit_scale: torch.Tensor,
                     pair_mask: torch.Tensor | None = None):
    """Symmetric InfoNCE over the global batch of pairs.

    image_latents [P, D], context_features [P, D] (raw; normalised here), logit_scale [], pair_mask [P]
    (bool, None: all pairs count; a masked-out pair is neither a row nor a negative) ->
    (loss, accuracy (nan without pairs), number of pairs in the global batch), all tensors: nothing here
    reads a value back to the host, so the compiled step has no graph break.
    """
    if pair_mask is None:
        pair_mask = torch.ones(image_latents.shape[0], dtype=torch.bool, device=image_latents.device)
    img = F.normalize(image_latents.float(), dim=-1)
    txt = F.normalize(context_features.float(), dim=-1)
    all_img, offset = gather_rows(img)
    all_txt, _ = gather_rows(txt)
    if all_img.shape[0] == 0:  # a size, not a value: static under compile, and the same on every rank
        nan = torch.tensor(float("nan"), device=img.device)
        return _connected_zero(image_latents, context_features, logit_scale), nan, pair_mask.sum()
    all_mask = gather_rows(pair_mask.float().unsqueeze(1))[0] > 0.5
    n_global = all_mask.sum()
    labels = torch.arange(img.shape[0], device=img.device) + offset

    def masked(logits):  # [P_local, P_global]: masked columns out of the softmax, masked rows made harmless
        return logits.masked_fill(~all_mask.t(), float("-inf")).masked_fill(~pair_mask.unsqueeze(1), 0.0)

    logits_i2t = masked(logit_scale * img @ all_txt.t())
    logits_t2i = masked(logit_scale * txt @ all_img.t())
    per_pair = (F.cross_entropy(logits_i2t, labels, reduction="none")
                + F.cross_entropy(logits_t2i, labels, reduction="none")) / 2
    loss = torch.where(pair_mask, per_pair, 0.0).sum() / n_global.clamp(min=1) * world()[1]
    with torch.no_grad():
        correct = ((logits_i2t.argmax(-1) == labels) & pair_mask).sum() + ((logits_t2i.argmax(-1) == labels)
                                                                            & pair_mask).sum()
        local = pair_mask.sum()
        accuracy = torch.where(local > 0, correct / (2 * local).clamp(min=1), float("nan"))
    return loss, accuracy, n_global


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits [T, C], labels [T] -> cross-entropy averaged over the global number of rows (image-text
    matching; the LM head's terms use :func:`lm_head_loss`)."""
    n_global = global_count(labels.shape[0], labels.device)
    if n_global == 0:
        return _connected_zero(logits)
    return F.cross_entropy(logits.float(), labels, reduction="sum") / n_global * world()[1]


def lm_head_loss(features: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor,
                 mask: torch.Tensor | None = None, n_global: int | torch.Tensor | None = None) -> torch.Tensor:
    """features [T, D], head_weight [V, D], labels [T], mask [T] (bool, None: all are targets) -> the LM
    head's cross-entropy averaged over the global number of targets (next-token generation, masked
    tokens), the ``[T, V]`` logits never formed and masked-out rows never multiplied by the head.
    ``n_global`` overrides that number (accumulation divides by the whole step's targets)."""
    if n_global is None:
        n_global = global_count(labels.shape[0] if mask is None else mask.sum(), labels.device)
    summed = linear_cross_entropy(features, head_weight, labels, mask=mask)
    return summed / (n_global.clamp(min=1) if torch.is_tensor(n_global) else max(n_global, 1)) * world()[1]


def regression_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error averaged over global elements (Emu's next-latent regression, masked pixels); rows
    where ``mask`` [N] is False are left out."""
    squared = (predicted.float() - target.float()).pow(2)
    if mask is None:
        n_global = global_count(predicted.numel(), predicted.device)
        if n_global == 0:
            return _connected_zero(predicted, target)
        return squared.sum() / n_global * world()[1]
    n_global = global_count(mask.sum() * predicted.shape[-1], predicted.device)
    return torch.where(mask.unsqueeze(1), squared, 0.0).sum() / n_global.clamp(min=1) * world()[1]


class PretrainingObjective(nn.Module):
    """Weighted sum of the loss terms; ``forward(outputs)`` -> dict of named losses and diagnostics.

    :meth:`model_inputs` says which forward of the model the objective reads (the causal one unless
    it matches pairs or masks inputs), so the trainer calls ``model(images, ids, **model_inputs)``.
    """

    def __init__(self, *, weights: ObjectiveWeights = ObjectiveWeights(), masking: Masking | None = None) -> None:
        super().__init__()
        self.weights = weights
        self.masking = masking

    @classmethod
    def named(cls, name: str, **overrides) -> "PretrainingObjective":
        """One of :data:`OBJECTIVES`, optionally with weights overridden (e.g. ``contrastive=0.5``)."""
        spec = objective_spec(name)
        return cls(weights=dataclasses.replace(spec.weights, **overrides), masking=spec.masking)

    def model_inputs(self, model, images: torch.Tensor, input_ids: torch.Tensor) -> dict:
        """Keyword arguments of the model's forward for this objective: which forward it reads, and which
        rows' generation targets (so the LM head runs only where the loss reads it). Masks are drawn here,
        from the global generators that checkpoints restore, so a resumed run draws the same masks."""
        if self.masking is not None:
            text_mask, patch_mask = model.sample_masks(images, input_ids, text_rate=self.masking.text_rate,
                                                       patch_rate=self.masking.patch_rate)
            return {"text_mask": text_mask, "patch_mask": patch_mask}
        if self.weights.matching:
            return {"matching": True}
        if not self.weights.generation:
            return {"generation_rows": torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)}
        if self.weights.generation_on_image_first_rows_only:
            return {"generation_rows": input_ids[:, 0] == model.ids["soi"]}
        return {}

    @property
    def shares_contrastive_batch(self) -> bool:
        """Whether gradient accumulation gives this objective one contrastive batch over all micro-batches
        (its causal forward's pairs can be cached); BLIP-2's hard negatives and the masked forward stay
        per micro-batch."""
        return bool(self.weights.contrastive) and not self.weights.matching and self.masking is None

    def generation_mask(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """[T] bool: the generation targets this objective scores (CoCa: those of image-first rows only)."""
        if self.weights.generation_on_image_first_rows_only:
            return outputs["gen_mask"] & outputs["image_first_rows"][outputs["gen_rows"]]
        return outputs["gen_mask"]

    def forward(self, outputs: dict[str, torch.Tensor], *,
                step_targets: torch.Tensor | None = None) -> dict[str, torch.Tensor | float]:
        """``step_targets`` (gradient accumulation with a shared contrastive batch): the generation targets
        of the whole step over all ranks, so the micro-batches' generation terms sum to the step's mean.
        The pair terms need nothing: the trainer splices the step's cached pairs into ``outputs``, so they
        span the step already, and summing the micro-batches' gradients gives the step's gradient."""
        w = self.weights
        features, labels, head = outputs["gen_features"], outputs["gen_labels"], outputs["lm_head_weight"]
        gen_mask, pair_mask = self.generation_mask(outputs), outputs["pair_mask"]
        # every output in the graph: DDP needs a gradient for each parameter, the ones a term leaves unused too
        zero = _connected_zero(outputs["image_latents"], outputs["pair_latents"], outputs["pair_context"], features,
                               head, outputs["logit_scale"])
        terms = dict.fromkeys(LOSS_TERMS, zero)
        if w.generation:
            terms["generation"] = lm_head_loss(features, head, labels, gen_mask, step_targets)
        accuracy = torch.tensor(float("nan"), device=labels.device)
        num_pairs = global_count(pair_mask.sum(), labels.device)
        if w.contrastive:
            terms["contrastive"], accuracy, num_pairs = contrastive_loss(
                outputs["pair_latents"], outputs["pair_context"], outputs["logit_scale"], pair_mask)
        if w.regression:
            terms["regression"] = regression_loss(outputs["pair_context"], outputs["pair_latents"], pair_mask)
        if w.matching:
            terms["matching"] = cross_entropy_loss(outputs["matching_logits"], outputs["matching_labels"])
        if w.masked_text:
            terms["masked_text"] = lm_head_loss(outputs["masked_text_features"], head, outputs["masked_text_labels"])
        if w.masked_image:
            terms["masked_image"] = regression_loss(outputs["masked_patch_pred"], outputs["masked_patch_target"])
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return {
            "loss": total,
            **{f"{name}_loss": value for name, value in terms.items()},
            "contrastive_accuracy": accuracy,  # tensors: the trainer reads them after the (compiled) step
            "num_pairs": num_pairs,
            "logit_scale": outputs["logit_scale"].detach(),
        }
