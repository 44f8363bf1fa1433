"""Collapse diagnostics for image latents: generation-only training lets latents collapse, and these
numbers show it long before transfer accuracy does."""

from __future__ import annotations

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
    (Roy & Vetterli 2007): 0 when all latents are identical, up to min(M, D) for a spread set."""
    if latents.shape[0] < 2:
        return float("nan")
    x = latents.float() - latents.float().mean(dim=0)
    s = torch.linalg.svdvals(x)
    if s.sum() <= 1e-12:
        return 0.0
    p = s / s.sum()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()
