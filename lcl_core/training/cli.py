"""``lcl pretrain``: pre-train LCL or a baseline objective on a world or real shards.

    lcl pretrain --preset tiny-fast --objective lcl --data DIR --steps 300 --out runs/NAME
    lcl pretrain ... --out runs/NAME --resume          # continue after a crash or kill
    torchrun --nproc_per_node 2 -m lcl_core.cli pretrain ...   # DDP (docs/distributed.md)

Run folder::

    runs/NAME/run.json        train config, model config, data source (what --resume reads back)
    runs/NAME/tokenizer/      the tokenizer the run uses
    runs/NAME/metrics.jsonl   one JSON record per logged step
    runs/NAME/checkpoints/    step_XXXXXXXX/ (latest two; see lcl_core.training.checkpointing)
    runs/NAME/tensorboard/    when tensorboard is installed
    runs/NAME/final/          the exported model (lcl_core.checkpoint.load_pretrained reads it)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoint import save_pretrained
from ..config import ModelConfig, get_preset
from ..model import LCLModel
from ..objectives import OBJECTIVES
from ..tokenizer import Tokenizer, TrainedTokenizer, load_tokenizer
from .checkpointing import CorruptCheckpointError, list_checkpoints
from .config import PRECISIONS, TrainConfig
from .data import DEFAULT_SOURCE, SOURCES, build_batches, resolve_source_folder
from .runtime import init_runtime, shutdown_runtime
from .trainer import CHECKPOINT_DIR, Trainer

RUN_FILE, TOKENIZER_DIR, FINAL_DIR = "run.json", "tokenizer", "final"
# command-line flag -> TrainConfig field; every flag defaults to None so that "not given" is visible
TRAIN_FLAGS = {
    "objective": "objective", "steps": "steps", "batch_size": "batch_size", "grad_accum": "grad_accum_steps",
    "lr": "lr", "warmup": "warmup_steps", "weight_decay": "weight_decay", "grad_clip": "grad_clip_norm",
    "lambda_": "contrastive_weight", "generation_weight": "generation_weight",
    "regression_weight": "regression_weight", "img_first_prob": "img_first_prob", "precision": "precision",
    "grad_checkpointing": "grad_checkpointing", "compile": "compile", "seed": "seed", "log_every": "log_every",
    "save_every": "save_every", "workers": "num_workers",
}


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="world folder (lcl data world --out DIR) or a folder of shards")
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    parser.add_argument("--preset", default="tiny-fast", help="model preset (default tiny-fast)")
    parser.add_argument("--model-config", help="a model config JSON instead of --preset")
    parser.add_argument("--objective", choices=list(OBJECTIVES), help="default lcl")
    parser.add_argument("--data-source", choices=list(SOURCES),
                        help="default: mmc4 for lcl/generation objectives, mmc4_pair for contrastive/coca")
    parser.add_argument("--tokenizer", default="trained",
                        help="'trained' (a BPE trained on DATA/corpus.txt), 'clip', or a saved tokenizer folder")
    parser.add_argument("--vocab-size", type=int, default=4096, help="for --tokenizer trained")
    parser.add_argument("--steps", type=int, help="optimiser steps (default 1000)")
    parser.add_argument("--batch-size", type=int, help="sequences per process per micro-batch (default 32)")
    parser.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step (default 1)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 5e-4)")
    parser.add_argument("--warmup", type=int, help="warm-up steps (default min(2000, steps/10))")
    parser.add_argument("--weight-decay", type=float, help="default 0.2")
    parser.add_argument("--grad-clip", type=float, help="max gradient norm, 0 for none (default 1.0)")
    parser.add_argument("--lambda", dest="lambda_", type=float, help="contrastive weight λ (lcl default 0.1)")
    parser.add_argument("--generation-weight", type=float)
    parser.add_argument("--regression-weight", type=float)
    parser.add_argument("--img-first-prob", type=float, help="image-first layout probability (default 0.5)")
    parser.add_argument("--precision", choices=PRECISIONS, help="default auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--grad-checkpointing", action="store_const", const=True)
    parser.add_argument("--compile", action="store_const", const=True, help="torch.compile the model")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--workers", type=int, help="DataLoader workers per process (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")


def main(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        try:
            trainer, tokenizer = _prepare(args)
        except (FileNotFoundError, KeyError, ValueError, CorruptCheckpointError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"lcl pretrain: error: {message}", file=sys.stderr)
            return 2
        metrics = trainer.run()
        if trainer.runtime.is_main:
            final = save_pretrained(trainer.run_dir / FINAL_DIR, trainer.model, tokenizer)
            summary = {k: metrics.get(k) for k in ("step", "loss", "generation_loss", "contrastive_loss",
                                                   "effective_rank")}
            print(f"done: {json.dumps(summary)}; model in {final}")
        return 0
    finally:
        shutdown_runtime()


def _prepare(args) -> tuple[Trainer, Tokenizer]:
    """Run folder, tokenizer, model, data and trainer (resumed when asked); bad input raises."""
    out = Path(args.out)
    saved = out / RUN_FILE
    resuming = args.resume and saved.is_file()
    if not args.resume and list_checkpoints(out / CHECKPOINT_DIR):
        raise ValueError(f"{out} already holds checkpoints; pass --resume to continue it or choose another --out")
    given = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    if args.grad_clip == 0:
        given["grad_clip_norm"] = None
    if args.no_progress:
        given["progress_bar"] = False

    config = _train_config(json.loads(saved.read_text()) if resuming else None, given)
    runtime = init_runtime(precision=config.precision)
    if runtime.is_main:
        if resuming:
            run = json.loads(saved.read_text())
        else:
            resolve_source_folder(args.data, args.data_source or DEFAULT_SOURCE[config.objective])  # fail early
            tokenizer = _build_tokenizer(args, out)
            run = {"model": _model_config(args).with_tokenizer(tokenizer).to_dict(), "data": str(args.data),
                   "data_source": args.data_source}
            out.mkdir(parents=True, exist_ok=True)
            tokenizer.save(out / TOKENIZER_DIR)
        run["train"] = config.to_dict()  # includes an extended --steps on resume
        saved.write_text(json.dumps(run, indent=2) + "\n")
    if runtime.distributed:
        dist.barrier()  # rank 0 has written the tokenizer and run.json
    run = json.loads(saved.read_text())
    tokenizer = load_tokenizer(out / TOKENIZER_DIR)
    model_config = ModelConfig.from_dict(run["model"])

    torch.manual_seed(config.seed)  # identical initial weights on every rank and every rerun
    model = LCLModel(config=model_config)
    batches = build_batches(data=run["data"], source=run["data_source"], config=config, model_config=model_config,
                            tokenizer=tokenizer, rank=runtime.rank, world_size=runtime.world_size)
    trainer = Trainer(model=model, config=config, data=batches, run_dir=out, runtime=runtime)
    if args.resume:
        step = trainer.resume()
        if runtime.is_main:
            print(f"resuming {out} at step {step} of {config.steps}" if step else
                  f"no checkpoint in {out} yet: starting from step 0", file=sys.stderr)
    return trainer, tokenizer


def _train_config(run: dict | None, given: dict) -> TrainConfig:
    """A new run: defaults + flags. A resumed run: its saved config; only --steps may change."""
    if run is None:
        return TrainConfig(**given)
    config = TrainConfig.from_dict(run["train"])
    ignored = sorted(k for k, v in given.items() if k not in ("steps", "progress_bar") and getattr(config, k) != v)
    if ignored:
        print(f"--resume keeps the run's saved settings; ignoring {', '.join(ignored)}", file=sys.stderr)
    config.steps = given.get("steps", config.steps)
    config.progress_bar = given.get("progress_bar", config.progress_bar)
    config.validate()
    return config


def _model_config(args) -> ModelConfig:
    return ModelConfig.from_json(args.model_config) if args.model_config else get_preset(args.preset)


def _build_tokenizer(args, out: Path):
    if args.tokenizer != "trained":
        return load_tokenizer(args.tokenizer)
    corpus = Path(args.data) / "corpus.txt"
    if not corpus.is_file():
        raise FileNotFoundError(f"--tokenizer trained needs {corpus} (written by `lcl data world`); "
                                "pass --tokenizer clip or a saved tokenizer folder for other data")
    with open(corpus) as lines:
        return TrainedTokenizer.train(lines, vocab_size=args.vocab_size)
