"""Pre-training: one loop for LCL and the paper's baselines, resumable checkpoints, callbacks."""

from .callbacks import LivePlot, MetricsHistory
from .config import TrainConfig
from .trainer import Trainer

__all__ = ["LivePlot", "MetricsHistory", "TrainConfig", "Trainer"]
