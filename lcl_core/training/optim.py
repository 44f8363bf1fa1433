"""AdamW with the official parameter groups, and the cosine learning-rate schedule with warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def decays(name: str, param: torch.Tensor) -> bool:
    """The official rule: no weight decay on gains and biases, i.e. on every tensor with fewer than two
    dimensions (biases, LayerNorm weights, the CLS embedding, the 0-d logit scale)."""
    return param.ndim >= 2 and "logit_scale" not in name


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if decays(n, p)], "weight_decay": config.weight_decay},
    ]
    # foreach=False: the same kernels on every run, so resumed and uninterrupted runs agree bit for bit
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, foreach=False)


class CosineWithWarmup:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``
    (open_clip's ``cosine_lr``). Stateless: the learning rate is a function of the step alone, so a
    resumed run needs nothing but the step."""

    def __init__(self, *, optimizer: torch.optim.Optimizer, base_lr: float, warmup_steps: int,
                 total_steps: int) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return 0.5 * (1 + math.cos(math.pi * progress)) * self.base_lr

    def apply(self, step: int) -> float:
        """Set the learning rate for optimiser step ``step`` (0-based) and return it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr
