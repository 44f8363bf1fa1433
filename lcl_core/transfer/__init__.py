"""Frozen-transfer evaluation (paper appendix): heads on a frozen encoder, zero-shot, results schema.

``evaluate(model, tokenizer, eval_root)`` is the entry point; ``lcl evaluate`` wraps it.
"""

from .evaluate import ALL_BASELINES, ALL_TASKS, evaluate
from .heads import TransferSettings
from .results import format_report, load_results, save_results

__all__ = ["ALL_BASELINES", "ALL_TASKS", "TransferSettings", "evaluate", "format_report", "load_results",
           "save_results"]
