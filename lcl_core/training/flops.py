"""Training FLOPs of the LCL model: one accounting for the benchmarks' MFU and the cost of the paper's scale.

    FLOPs = 6 · P_vision · images · (patches + 1)      ViT + pooling, per patch token (CLS included)
          + 6 · P_blocks · tokens                      causal bridge blocks, per non-pad position

``P_blocks`` counts the bridge's transformer blocks only: the embedding tables are lookups, and the
LM head runs at generation targets only; attention's own FLOPs (∝ sequence length²) are left out too,
so the estimate is slightly low (and an MFU computed from it slightly pessimistic).
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..model import LCLModel


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Parameters of the vision side (ViT + pooling) and of the bridge's blocks, counted on the meta
    device (no memory is allocated, so the official presets are free to count)."""
    with torch.device("meta"):
        model = LCLModel(config=config)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {"vision": count(model.vision), "bridge_blocks": count(model.bridge.transformer.h),
            "total": count(model)}


def training_flops(config: ModelConfig, *, images: float, tokens: float) -> float:
    """Forward + backward matmul FLOPs for ``images`` images and ``tokens`` bridge positions."""
    counts = parameter_counts(config)
    return 6 * counts["vision"] * images * (config.vision.num_patches + 1) + 6 * counts["bridge_blocks"] * tokens


def pretraining_cost(config: ModelConfig, *, images_seen: float, tokens_per_image: float,
                     sustained_tflops: float) -> dict[str, float | str]:
    """What pre-training on ``images_seen`` images costs, each with ``tokens_per_image`` bridge positions
    (e.g. the context length when one image fills a sequence), at ``sustained_tflops`` per GPU."""
    total = training_flops(config, images=images_seen, tokens=images_seen * tokens_per_image)
    return {"preset": config.name, "parameters": parameter_counts(config)["total"],
            "GFLOPs per image": total / images_seen / 1e9, "total EFLOPs": total / 1e18,
            "GPU-days at sustained": total / (sustained_tflops * 1e12) / 86400}
