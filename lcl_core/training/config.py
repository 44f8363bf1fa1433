"""Training configuration: every knob of a pre-training run in one JSON-able dataclass.

Defaults follow the official LCL scripts (LCL-METHOD §4) where they exist; the kit's own choices are
marked. ``batch_size`` counts sequences per rank per micro-batch (open_clip's ``--batch-size``), so
the global batch of one optimiser step is ``batch_size × grad_accum_steps × world_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import JsonConfig
from ..objectives import OBJECTIVES, PretrainingObjective

PRECISIONS = ("auto", "bf16", "fp32")
OFFICIAL_WARMUP_STEPS = 2000


@dataclass
class TrainConfig(JsonConfig):
    objective: str = "lcl"  # one of lcl_core.objectives.OBJECTIVES: the paper's Table 1 rows
    steps: int = 1000  # optimiser steps
    batch_size: int = 32  # sequences per rank per micro-batch
    grad_accum_steps: int = 1
    lr: float = 5e-4  # official: 5e-4 on LAION, 3e-4 on MMC4
    # None: the official 2000 steps, but at most a tenth of the run (short CPU runs still decay)
    warmup_steps: int | None = None
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip_norm: float | None = 1.0  # kit default; the official scripts do not clip (use None)
    # loss weights; None keeps the objective's own (lcl: generation 1, contrastive λ = 0.1)
    generation_weight: float | None = None
    contrastive_weight: float | None = None
    regression_weight: float | None = None
    img_first_prob: float = 0.5  # paired data: chance of the image-first (captioning) layout
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    grad_checkpointing: bool = False
    compile: bool = False  # torch.compile the model
    seed: int = 0
    log_every: int = 1  # steps between metric records (collapse diagnostics included)
    save_every: int = 200  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2  # the latest and the one before it, the fallback for a corrupt latest
    num_workers: int = 0  # DataLoader worker processes per rank
    progress_bar: bool = True

    @classmethod
    def get_default_config(cls) -> "TrainConfig":
        return cls()

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        for name in ("steps", "batch_size", "grad_accum_steps", "log_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 0.0 <= self.img_first_prob <= 1.0:
            problems.append(f"img_first_prob must lie in [0, 1], got {self.img_first_prob}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    @property
    def resolved_warmup_steps(self) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(OFFICIAL_WARMUP_STEPS, self.steps // 10)

    def build_objective(self) -> PretrainingObjective:
        overrides = {name: value for name, value in (("generation", self.generation_weight),
                                                     ("contrastive", self.contrastive_weight),
                                                     ("regression", self.regression_weight))
                     if value is not None}
        return PretrainingObjective.named(self.objective, **overrides)
