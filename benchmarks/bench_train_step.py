"""Training-step throughput and peak memory, one JSON line per configuration.

CPU (default): every objective on the ``tiny-fast`` preset with a 4,096-entry vocabulary (the size of
the tokenizer ``lcl demo`` trains), 32 sequences per step, fp32. Each objective runs in a fresh
subprocess so that its peak RSS is its own.

    python benchmarks/bench_train_step.py [--steps 10] [--batch-size 32] [--objectives lcl coca]

CUDA (``--cuda``): the ``LCL_ViT-B-16_laion`` preset (224 px, 196 image tokens, context 280, CLIP
vocabulary) on the official LAION layout (one pair per row, image- or text-first), bf16 autocast,
sdpa attention, with and without ``torch.compile``. Model FLOPs utilisation = FLOPs per step
(:func:`lcl_core.training.flops.training_flops`) / step time / 989e12 (H200 dense bf16 peak).

Both modes drive the real loop (:class:`lcl_core.training.Trainer`: AdamW, clipping, logit-scale
clamp, per-step metrics) on a few in-memory batches (:mod:`lcl_core.training.synthetic`, pinned on
CUDA) that are cycled, so data loading and batch generation are not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import resource
import subprocess
import sys
import time

import torch

from lcl_core.config import get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import OBJECTIVES, objective_spec
from lcl_core.training import MetricsHistory, TrainConfig, Trainer
from lcl_core.training.data import synthetic_layout
from lcl_core.training.flops import parameter_counts, training_flops
from lcl_core.training.synthetic import SyntheticBatches

H200_BF16_PEAK = 989e12


class CycledBatches:
    """The first ``count`` batches of a source, made once and repeated (the trainer's data protocol)."""

    def __init__(self, source: SyntheticBatches, *, count: int = 4, pin: bool = False) -> None:
        self.batches = [source.batch(i) for i in range(count)]
        if pin:
            self.batches = [{k: v.pin_memory() for k, v in b.items()} for b in self.batches]

    def __iter__(self):
        return itertools.cycle(self.batches)

    def state(self) -> dict:
        return {}

    def resume_from(self, states: list[dict]) -> None:
        pass


def timed_run(*, model: LCLModel, config: TrainConfig, data: CycledBatches, warmup: int) -> dict:
    """Train ``config.steps`` steps logging each; sum the trainer's own step timings after ``warmup``
    (every step ends in a host read of the losses, so CUDA work is complete when it is timed)."""
    trainer = Trainer(model=model, config=config, data=data)
    timed = MetricsHistory().attach(trainer).records
    trainer.run()
    timed = timed[warmup:]
    seconds = sum(r["step_time_s"] for r in timed)
    images, tokens = sum(r["images"] for r in timed), sum(r["tokens"] for r in timed)
    return {"steps_per_s": len(timed) / seconds, "images_per_s": images / seconds, "tokens_per_s": tokens / seconds,
            "step_s": seconds / len(timed), "images_per_step": images / len(timed),
            "tokens_per_step": tokens / len(timed), "final_loss": timed[-1]["loss"]}


def cpu_objective(objective: str, *, steps: int, batch_size: int, warmup: int) -> dict:
    config = dataclasses.replace(get_preset("tiny-fast"),  # 4,096 rows and the trained tokenizer's special ids
                                 pretraining_heads=list(objective_spec(objective).heads))
    torch.manual_seed(0)
    model = LCLModel(config=config)
    train = TrainConfig(objective=objective, steps=warmup + steps, batch_size=batch_size, progress_bar=False)
    data = CycledBatches(SyntheticBatches(model_config=config, layout=synthetic_layout(objective), batch_size=batch_size,
                                          caption_tokens=24))
    result = timed_run(model=model, config=train, data=data, warmup=warmup)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": "cpu", "preset": "tiny-fast", "objective": objective, "batch_size": batch_size,
            "threads": torch.get_num_threads(), "precision": "fp32", **result, "peak_rss_mib": peak_rss_mib}


def run_cpu(args) -> None:
    for objective in args.objectives:
        command = [sys.executable, __file__, "--one", objective, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--warmup", str(args.warmup)]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip(), flush=True)


def cuda_config(*, compile: bool, batch_size: int, steps: int, warmup: int) -> dict:
    preset = get_preset("LCL_ViT-B-16_laion")
    torch.manual_seed(0)
    model = LCLModel(config=preset)
    counts = parameter_counts(preset)
    train = TrainConfig(objective="lcl", steps=warmup + steps, batch_size=batch_size, progress_bar=False,
                        compile=compile, precision="bf16")
    data = CycledBatches(SyntheticBatches(model_config=preset, layout="sampled", batch_size=batch_size,
                                          caption_tokens=32), pin=True)
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = timed_run(model=model, config=train, data=data, warmup=warmup)
    flops = training_flops(preset, images=result["images_per_step"], tokens=result["tokens_per_step"])
    return {"mode": "cuda", "preset": preset.name, "device": torch.cuda.get_device_name(), "objective": "lcl",
            "precision": "bf16", "attention": "sdpa", "compile": compile, "batch_size": batch_size, **result,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "tflops_per_s": flops / result["step_s"] / 1e12, "mfu": flops / result["step_s"] / H200_BF16_PEAK,
            "params_vision": counts["vision"], "params_bridge_blocks": counts["bridge_blocks"],
            "wall_s_including_warmup": time.perf_counter() - started}


def run_cuda(args) -> None:
    if not torch.cuda.is_available():
        sys.exit("--cuda needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = True
    for compile in (False, True):
        try:
            line = cuda_config(compile=compile, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup)
        except Exception as error:  # report and go on: one failed configuration must not hide the other
            line = {"mode": "cuda", "compile": compile, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuda", action="store_true", help="ViT-B/16 LAION preset on a CUDA GPU")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 10, CUDA 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (CPU 3, CUDA 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per step (CPU 32, CUDA 128)")
    parser.add_argument("--one", choices=list(OBJECTIVES), help=argparse.SUPPRESS)  # the CPU subprocess
    args = parser.parse_args()
    args.steps = args.steps or 10
    args.warmup = args.warmup or (5 if args.cuda else 3)
    args.batch_size = args.batch_size or (128 if args.cuda else 32)
    if args.one:
        print(json.dumps(cpu_objective(args.one, steps=args.steps, batch_size=args.batch_size, warmup=args.warmup)))
    elif args.cuda:
        run_cuda(args)
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
