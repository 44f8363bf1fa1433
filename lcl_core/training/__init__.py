"""Pre-training: one loop for LCL and the paper's baselines, one run builder, resumable checkpoints."""

from .callbacks import MetricsHistory
from .config import TrainConfig
from .runs import Run, RunSpec, find_runs, open_run, prepare_run, read_history, train_run
from .trainer import Trainer

__all__ = ["MetricsHistory", "Run", "RunSpec", "TrainConfig", "Trainer", "find_runs", "open_run", "prepare_run",
           "read_history", "train_run"]
