"""Collapse diagnostics for image latents (generation-only training lets latents collapse, and these
numbers show it long before transfer accuracy does), and the values read off the trainer's records."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F


@torch.no_grad()
def latent_variance(latents: torch.Tensor) -> float:
    """Mean per-dimension variance of the L2-normalised latents ``[M, D]`` (0 = all identical)."""
    if latents.shape[0] < 2:
        return float("nan")
    return F.normalize(latents.float(), dim=-1).var(dim=0).mean().item()


@torch.no_grad()
def effective_rank(latents: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of the centred latents ``[M, D]``
    (Roy & Vetterli 2007): 0 when all latents are identical, up to min(M, D) for a spread set; NaN for
    fewer than two latents or non-finite ones (a skipped bad step still logs its record)."""
    if latents.shape[0] < 2 or not bool(torch.isfinite(latents).all()):
        return float("nan")
    x = latents.float() - latents.float().mean(dim=0)
    s = torch.linalg.svdvals(x)
    if s.sum() <= 1e-12:
        return 0.0
    p = s / s.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()


@torch.no_grad()
def latent_diagnostics(model, images: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics of a model's pooled image latents on a fixed image set ``[M, 3, H, W]``."""
    latents = model.eval().encode_image(images, normalize=False)
    return {"latent_variance": latent_variance(latents), "effective_rank": effective_rank(latents)}


def attention_entropy(attention: torch.Tensor) -> float:
    """Mean entropy (nats) of attention distributions ``[..., N]``: ``log N`` when uniform, lower when
    the attentive pooler's query concentrates on few patches."""
    return -(attention * attention.clamp_min(1e-12).log()).sum(-1).mean().item()


# ---- the trainer's logged records ------------------------------------------------------------------
CONTRASTIVE_KEYS = {"contrastive_loss", "contrastive_accuracy", "info_nce_bound"}


def term_gradients(module: torch.nn.Module, losses: Mapping[str, torch.Tensor],
                   terms: Sequence[str]) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """For each loss term (``losses[f"{term}_loss"]``, one graph): its gradient on ``module``'s trainable
    weights, flattened [P] (0 on a weight it never reaches), and the names of the weights it never reaches.
    What each term of an objective asks of, e.g., the vision encoder, before any optimiser step."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    result = {}
    for term in terms:
        grads = torch.autograd.grad(losses[f"{term}_loss"], [p for _, p in named], retain_graph=True,
                                    allow_unused=True)
        flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for (_, p), g in zip(named, grads)])
        result[term] = (flat, [name for (name, _), g in zip(named, grads) if g is None])
    return result


def weighted_share(other: torch.Tensor, weighted: torch.Tensor, weight: float) -> float:
    """‖weight · weighted‖ / (‖other‖ + ‖weight · weighted‖): how much of a gradient ``other + weight · weighted``
    the weighted term gives, by norm (0 at weight 0, towards 1 as the weight grows)."""
    scaled = weight * weighted.norm().item()
    return scaled / (other.norm().item() + scaled)


def metric_value(record: Mapping[str, Any], key: str) -> float | None:
    """A logged trainer record's value of ``key``, or None where the run has no such term (contrastive
    keys of objectives without a contrastive loss, a loss whose weight is zero). ``info_nce_bound`` is
    derived: log N − L_con, the InfoNCE lower bound on I(latent; context)."""
    if key in CONTRASTIVE_KEYS and (record.get("contrastive_accuracy") is None or not record.get("num_pairs")):
        return None
    if key == "info_nce_bound":
        return math.log(record["num_pairs"]) - record["contrastive_loss"]
    value = record.get(key)
    if value is None or (key.endswith("_loss") and value == 0.0):
        return None
    return float(value)


def metric_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` over the records that have it, ready for a line plot."""
    points = [(r["step"], value) for r in records if (value := metric_value(r, key)) is not None]
    return [step for step, _ in points], [value for _, value in points]


def final_value(records: Sequence[Mapping[str, Any]], key: str, *, last: int = 5) -> float | None:
    """Mean of a panel metric over the last ``last`` logged records that have it (single batches are noisy)."""
    values = [v for v in (metric_value(r, key) for r in records) if v is not None][-last:]
    return sum(values) / len(values) if values else None


def run_summary(history: Sequence[Mapping[str, Any]], model, images: torch.Tensor,
                keys: Sequence[str] = ("generation_loss", "contrastive_loss", "contrastive_accuracy",
                                       "info_nce_bound")) -> dict[str, float | None]:
    """One row for comparing runs: the training-side ``keys`` (means over the last logged steps) and the
    collapse diagnostics of the model's latents on held-out ``images``."""
    return {**{key: final_value(history, key) for key in keys}, **latent_diagnostics(model, images)}
