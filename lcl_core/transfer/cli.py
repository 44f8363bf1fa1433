"""``lcl evaluate``: frozen-transfer evaluation of a checkpoint, printed in the paper's Table 1 order.

    lcl evaluate --checkpoint runs/tiny --data world/eval --tasks cls,ret,cap,zeroshot --out results.json

``--checkpoint`` is a run folder, a kit model folder (``save_pretrained``) or an official
open_clip-layout ``.pt`` file. :func:`evaluate_checkpoint` is the command as a function (``lcl demo``
calls it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .evaluate import ALL_BASELINES, ALL_TASKS


def _default_cache_dir() -> Path:
    return Path(os.environ.get("LCL_CACHE", Path.home() / ".cache" / "lcl")) / "features"


def _csv(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        unknown = set(items) - set(allowed)
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {sorted(unknown)}; choose from {','.join(allowed)}")
        return items
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run folder, kit model folder or official .pt file")
    parser.add_argument("--model-config", type=Path, help="the architecture of an official .pt file whose sizes match "
                                                          "no preset (head counts cannot be read from weights)")
    parser.add_argument("--data", required=True, help="evaluation root (the world's DIR or DIR/eval)")
    parser.add_argument("--tasks", type=_csv(ALL_TASKS), default=list(ALL_TASKS),
                        help=f"comma-separated subset of {','.join(ALL_TASKS)} (default: all)")
    parser.add_argument("--baselines", type=_csv(ALL_BASELINES), default=list(ALL_BASELINES),
                        help="comma-separated calibration baselines (default: all; '' for none)")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--num-seeds", type=int, default=1, help="seeds per head (default 1)")
    parser.add_argument("--full-transfer", action="store_true", help="fine-tune the encoder with each head")
    parser.add_argument("--cache-dir", type=Path, default=_default_cache_dir(),
                        help="feature cache (default $LCL_CACHE/features or ~/.cache/lcl/features)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--epochs", type=int, help="override the epochs of every head")


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, *, tasks=ALL_TASKS, baselines=ALL_BASELINES,
                        full_transfer: bool = False, seed: int = 0, num_seeds: int = 1, epochs: int | None = None,
                        cache_dir: str | Path | None = None, model_config: str | Path | None = None) -> dict:
    """``lcl evaluate`` without the printing: load any checkpoint, evaluate it, return the results dict."""
    from ..checkpoint import load_pretrained
    from ..config import ModelConfig
    from .evaluate import evaluate
    from .heads import TransferSettings

    settings = TransferSettings()
    if epochs is not None:
        settings = TransferSettings(cls_epochs=epochs, ret_epochs=epochs, cap_epochs=epochs)
    model, tokenizer = load_pretrained(checkpoint, config=ModelConfig.from_json(model_config) if model_config else None)
    return evaluate(model, tokenizer, data, tasks=tasks, baselines=baselines, full_transfer=full_transfer, seed=seed,
                    num_seeds=num_seeds, settings=settings, cache_dir=cache_dir, checkpoint_source=str(checkpoint),
                    log=lambda message: print(message, file=sys.stderr))


def main(args: argparse.Namespace) -> int:
    from .results import format_report, save_results

    try:
        results = evaluate_checkpoint(args.checkpoint, args.data, tasks=args.tasks, baselines=args.baselines,
                                      full_transfer=args.full_transfer, seed=args.seed, num_seeds=args.num_seeds,
                                      epochs=args.epochs, cache_dir=None if args.no_cache else args.cache_dir,
                                      model_config=args.model_config)
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"lcl evaluate: error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    print(format_report(results))
    if args.out is not None:
        save_results(results, args.out)
        print(f"\nresults written to {args.out}")
    return 0
