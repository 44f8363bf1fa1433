"""``lcl pretrain``: pre-train LCL or a baseline objective on a world or real shards.

    lcl pretrain --preset tiny-fast --objective lcl --data DIR --steps 300 --out runs/NAME
    lcl pretrain ... --data-source mmc4+pairs --mix 1:1     # interleaved documents and pairs, batch by batch
    lcl pretrain ... --out runs/NAME --resume          # continue after a crash, kill or SIGTERM (or start)
    torchrun --nproc_per_node 2 -m lcl_core.cli pretrain ...   # DDP (docs/distributed.md)

The run folder is the one format of :mod:`lcl_core.training.runs` (``run.json``, ``tokenizer/``,
``metrics.jsonl``, ``checkpoints/``, ``final/``); ``lcl evaluate --checkpoint RUN`` and the notebooks'
``open_run`` read it. Every training flag is a :class:`~lcl_core.training.TrainConfig` field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing

from ..config import ModelConfig
from ..data import NothingReadable
from ..data.omnicorpus import add_filter_flags, filters_from_arguments
from .checkpointing import CorruptCheckpointError
from .config import TrainConfig
from .data import SOURCES, SYNTHETIC
from .runs import RunSpec, prepare_run, read_run_file
from .runtime import shutdown_runtime
from .trainer import BadStepsError

# what --resume may change about a saved run: its length, the progress bar, and how it runs on the
# processes it has now (the batch size and micro-batches only as the trainer allows: the same rows per step)
RESUMABLE_CHANGES = ("steps", "progress_bar", "strategy", "batch_size", "grad_accum_steps")


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="world folder (lcl data world --out DIR) or a folder of shards")
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    parser.add_argument("--preset", default="tiny-fast", help="model preset (default tiny-fast)")
    parser.add_argument("--model-config", help="a model config JSON (kit or official LCL_*.json) instead of --preset")
    parser.add_argument("--data-source", help=f"one of {', '.join([*SOURCES, SYNTHETIC])}, or several joined with "
                                              "'+' to mix them (e.g. mmc4+pairs); default: the objective's own")
    parser.add_argument("--images", help="the documents' image folder when it is not beside the shards (real MMC4: "
                                         "IMAGES/NAME or IMAGES/<shard stem>/NAME); mmc4 and obelics sources")
    parser.add_argument("--mix", type=_ratio, help="batches of each mixed source per cycle, e.g. 2:1 (default 1:1)")
    parser.add_argument("--tokenizer", default="trained",
                        help="'trained' (a BPE trained on DATA/corpus.txt), 'clip', or a saved tokenizer folder")
    parser.add_argument("--vocab-size", type=int, default=4096, help="for --tokenizer trained")
    parser.add_argument("--resume", nargs="?", const="auto", choices=("auto",),
                        help="continue the run in --out from its latest checkpoint, or start it when --out holds "
                             "none yet ('--resume auto' says the same): one command for the first launch and "
                             "every requeue")
    add_filter_flags(parser)
    add_config_flags(parser, TrainConfig)


def add_config_flags(parser, config_class) -> None:
    """One ``--field-name`` flag per dataclass field, help and choices from the field's metadata; every
    flag defaults to None so that "not given" stays visible."""
    hints = typing.get_type_hints(config_class)
    group = parser.add_argument_group(f"{config_class.__name__} (defaults in brackets)")
    for f in dataclasses.fields(config_class):
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", ())]
        help_text = f"{f.metadata.get('help', '')} [{f.default}]"
        kind = _base_type(hints[f.name])
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind is tuple:
            group.add_argument(*flags, dest=f.name, type=float, nargs=2, default=None, help=help_text)
        else:
            group.add_argument(*flags, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"),
                               help=help_text)


def _base_type(hint):
    """``int | None`` -> int, ``tuple[float, float]`` -> tuple."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _ratio(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mix takes counts joined by ':', e.g. 2:1, not {text!r}") from None


def main(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        try:
            prepared = prepare_run(spec_from_arguments(args), args.out, resume=bool(args.resume))
        except (FileNotFoundError, KeyError, ValueError, CorruptCheckpointError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"lcl pretrain: error: {message}", file=sys.stderr)
            return 2
        trainer = prepared.trainer
        if args.resume and trainer.runtime.is_main:
            print(f"resuming {args.out} at step {prepared.resumed_at} of {trainer.config.steps}" if prepared.resumed_at
                  else f"no checkpoint in {args.out} yet: starting from step 0", file=sys.stderr)
        try:
            metrics = trainer.run()
        except NothingReadable as error:  # bad data found at the first batch: say why, no traceback
            hint = "; are the images elsewhere? give --images DIR" if "missing_image" in str(error) else ""
            print(f"lcl pretrain: error: {error}{hint}", file=sys.stderr)
            return 2
        except BadStepsError as error:
            print(f"lcl pretrain: error: {error}; checkpoints stay in {args.out}", file=sys.stderr)
            return 2
        if trainer.preempted_by:  # finished the step, checkpointed; the scheduler may requeue the same command
            if trainer.runtime.is_main:
                print(f"lcl pretrain: {trainer.preempted_by} received: stopped after step {trainer.step} of "
                      f"{trainer.config.steps}, checkpoint {trainer.last_checkpoint}; continue with the same "
                      "command and --resume", file=sys.stderr)
            return 0
        final = prepared.finish()
        if trainer.runtime.is_main:
            summary = {k: metrics.get(k) for k in ("step", "loss", "generation_loss", "contrastive_loss",
                                                   "effective_rank")}
            print(f"done: {json.dumps(summary)}; model in {final}")
        return 0
    finally:
        shutdown_runtime()


def spec_from_arguments(args) -> RunSpec:
    """A new run: the flags. ``--resume`` of a saved run: its spec; only --steps, the progress bar,
    --strategy, --batch-size and --grad-accum-steps may change (the others are reported as ignored)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    saved = read_run_file(args.out) if args.resume else None
    if saved is None:
        model = ModelConfig.from_json(args.model_config).to_dict() if args.model_config else None
        return RunSpec(data=args.data, source=args.data_source, mix=args.mix, images=args.images,
                       omnicorpus_filters=filters_from_arguments(args),
                       preset=None if model else args.preset,
                       model=model, tokenizer=args.tokenizer, vocab_size=args.vocab_size, train=TrainConfig(**given))
    spec = RunSpec.from_dict(saved["spec"])
    ignored = sorted(k for k, v in given.items() if k not in RESUMABLE_CHANGES and getattr(spec.train, k) != v)
    if ignored:
        print(f"--resume keeps the run's saved settings; ignoring {', '.join(ignored)}", file=sys.stderr)
    return spec.changed(**{k: v for k, v in given.items() if k in RESUMABLE_CHANGES})
