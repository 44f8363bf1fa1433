"""Training configuration: every knob of a pre-training run in one JSON-able dataclass.

Defaults follow the official LCL scripts (LCL-METHOD §4) where they exist; the kit's own choices are
marked. ``batch_size`` counts sequences per rank per micro-batch (open_clip's ``--batch-size``), so
the global batch of one optimiser step is ``batch_size × grad_accum_steps × world_size``. Each field's
``help`` is also its ``lcl pretrain`` flag's help (``--field-name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import JsonConfig
from ..objectives import OBJECTIVES, PretrainingObjective
from .sharding import STRATEGIES

PRECISIONS = ("auto", "bf16", "fp32")
BAD_STEP_ACTIONS = ("restore", "stop")
OFFICIAL_WARMUP_STEPS = 2000


def _knob(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig(JsonConfig):
    objective: str = _knob("lcl", "the pre-training objective: lcl or a Table 1 baseline", choices=tuple(OBJECTIVES))
    steps: int = _knob(1000, "optimiser steps")
    batch_size: int = _knob(32, "sequences per process per micro-batch")
    grad_accum_steps: int = _knob(1, "micro-batches per optimiser step", aliases=("--grad-accum",))
    lr: float = _knob(5e-4, "peak learning rate (official: 5e-4 on LAION, 3e-4 on MMC4)")
    warmup_steps: int | None = _knob(None, "warm-up steps (default: the official 2000, at most a tenth of the run)",
                                     aliases=("--warmup",))
    weight_decay: float = _knob(0.2, "AdamW weight decay (none on biases, norms and the logit scale)")
    betas: tuple[float, float] = _knob((0.9, 0.98), "AdamW betas")
    eps: float = _knob(1e-6, "AdamW epsilon")
    grad_clip_norm: float | None = _knob(1.0, "max gradient norm, 0 for none (kit default; the official scripts "
                                              "do not clip)", aliases=("--grad-clip",))
    generation_weight: float | None = _knob(None, "weight of the generation loss (default: the objective's)")
    contrastive_weight: float | None = _knob(None, "contrastive weight λ (default: the objective's; lcl 0.1)",
                                             aliases=("--lambda",))
    regression_weight: float | None = _knob(None, "weight of the Emu-style regression loss (default: the objective's)")
    img_first_prob: float = _knob(0.5, "chance an image goes before its sentence (MMC4) or a pair is image-first")
    shuffle_window: int = _knob(5000, "records are read in a shuffled order within runs of this many, across "
                                      "shard boundaries (1: file order): the official loader's 5,000-sample "
                                      "buffer, which mixes the pairs of many shards; a shard keeps a page's "
                                      "pairs side by side")
    precision: str = _knob("auto", "auto: bf16 autocast on CUDA, fp32 on CPU", choices=PRECISIONS)
    grad_checkpointing: bool = _knob(False, "activation checkpointing in the ViT and the bridge")
    compile: bool = _knob(False, "torch.compile the forward and loss as one graph")
    strategy: str = _knob("ddp", "with several processes: ddp (a full replica per rank) or fsdp (FSDP2: "
                                 "parameters, gradients and optimiser state sharded per transformer block)",
                          choices=STRATEGIES)
    seed: int = _knob(0, "initial weights, data order and every random draw of the run")
    log_every: int = _knob(1, "steps between metric records (collapse diagnostics included)")
    save_every: int = _knob(200, "steps between checkpoints (one is always written at the end)")
    keep_checkpoints: int = _knob(2, "checkpoints kept: the latest and the fallback for a corrupt latest")
    num_workers: int = _knob(0, "DataLoader worker processes per rank", aliases=("--workers",))
    progress_bar: bool = _knob(True, "a tqdm bar over optimiser steps", aliases=("--progress",))
    max_bad_steps: int = _knob(3, "consecutive steps with a non-finite loss or gradient norm (each skipped, "
                                  "the weights untouched) before the run acts (see --on-bad-steps)")
    on_bad_steps: str = _knob("restore", "after max_bad_steps in a row: restore the last checkpoint's weights "
                                         "and optimiser and go on with the next batches, or stop",
                              choices=BAD_STEP_ACTIONS)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.grad_clip_norm == 0:
            self.grad_clip_norm = None
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        for name in ("steps", "batch_size", "grad_accum_steps", "log_every", "save_every", "keep_checkpoints",
                     "max_bad_steps", "shuffle_window"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 0.0 <= self.img_first_prob <= 1.0:
            problems.append(f"img_first_prob must lie in [0, 1], got {self.img_first_prob}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.on_bad_steps not in BAD_STEP_ACTIONS:
            problems.append(f"on_bad_steps {self.on_bad_steps!r} is not one of {', '.join(BAD_STEP_ACTIONS)}")
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
