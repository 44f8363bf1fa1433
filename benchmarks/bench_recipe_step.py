"""The reproduction's own training step, on its own world, with one lever changed at a time.

    python benchmarks/bench_recipe_step.py [--row LCL] [--steps 60] [--threads 1] [--work /tmp/lcl-profile]
        [--world calibrated] [--levers eager compile flush-denormal malloc fused-adamw feed]

Each lever trains the ``cpu`` Table 1 profile's run of ``--row`` on ``--world`` (seed 0, the world of
``benchmarks/profile_table1.py``'s ``--work``; a Table 1 work folder serves) for ``--steps`` steps in a fresh process, with ``--threads``
compute threads as a table worker has, and reports the trainer's own step times: the first three (where a
compiler pays its one-off cost) and the median after five. Levers:

* ``eager``: the recipe as it is (the baseline);
* ``compile``: ``TrainConfig.compile`` (forward + loss, and so its backward, through inductor);
* ``flush-denormal``: ``torch.set_flush_denormal(True)`` (denormal floats read as zero);
* ``malloc``: glibc keeps freed memory (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``), so the
  step's large activations do not fault in fresh pages every step;
* ``fused-adamw``: AdamW as one fused kernel per parameter (``fused=True``) instead of the recipe's
  ``foreach=False`` loop of small operations;
* ``feed``: no training: the run's batches alone, as the trainer draws them (read, decode, tokenise, lay
  out), timed per batch — the data feed's share of a step, and the lever to compare between two commits
  (run this script with ``PYTHONPATH`` at each).

One JSON line per lever goes to stdout and to ``--jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LEVERS = ("eager", "compile", "flush-denormal", "malloc", "fused-adamw", "feed")
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def one(args) -> dict:
    import torch

    from lcl_core.provenance import machine
    from lcl_core.reproduce import table1
    from lcl_core.training import RunSpec, train_run

    torch.set_num_threads(args.threads)
    if args.one == "flush-denormal":
        torch.set_flush_denormal(True)
    if args.one == "fused-adamw":  # the bench's own switch: the recipe keeps foreach=False (exact resume)
        adamw = torch.optim.AdamW
        torch.optim.AdamW = lambda *a, **k: adamw(*a, **{**k, "foreach": None, "fused": True})
    recipe = table1.recipe_on("cpu", args.world)
    work = Path(args.work)
    setting = table1.prepare_setting(recipe, work, world_seed=0, progress=lambda message: None)
    row = next(r for r in table1.ROWS if r.label == args.row)
    spec = RunSpec.from_dict(table1.make_unit(setting, row, 0, recipe, work).spec)
    spec = spec.changed(steps=args.steps, log_every=1, compile=args.one == "compile")
    if args.one == "feed":
        return feed(args, spec) | {"machine": machine()}
    started = time.perf_counter()
    run = train_run(spec, folder=work / f"lever-{args.one}-{time.time_ns()}", progress=lambda message: None)
    times = [record["step_time_s"] for record in run.history]
    return {"row": args.row, "lever": args.one, "threads": args.threads, "steps": args.steps,
            "wall_s": round(time.perf_counter() - started, 2), "first_steps_s": [round(t, 3) for t in times[:3]],
            "median_step_s": round(statistics.median(times[5:]), 4), "final_loss": run.history[-1]["loss"],
            "machine": machine()}


def feed(args, spec) -> dict:
    """The run's batches alone, drawn as the trainer draws them: the median seconds per batch after five."""
    from lcl_core.training.data import build_batches
    from lcl_core.training.runs import build_tokenizer

    tokenizer = build_tokenizer(spec, cache=Path(args.work) / "tokenizers")
    stream = build_batches(data=spec.data, source="+".join(spec.sources), config=spec.train, mix=spec.mix,
                           batch_sizes=spec.batch_sizes, model_config=spec.model_config(tokenizer),
                           tokenizer=tokenizer, rank=0, world_size=1)
    batches, times = iter(stream), []
    for _ in range(args.steps):
        started = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - started)
    return {"row": args.row, "lever": "feed", "threads": args.threads, "steps": args.steps,
            "median_batch_s": round(statistics.median(times[5:]), 4), "total_s": round(sum(times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", default="LCL")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/lcl-profile")
    parser.add_argument("--world", default="calibrated", choices=("calibrated", "v1"))
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS)
    parser.add_argument("--jsonl")
    parser.add_argument("--one", choices=LEVERS, help=argparse.SUPPRESS)  # the subprocess of one lever
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    for lever in args.levers:
        env = dict(os.environ, **(MALLOC if lever == "malloc" else {}))
        command = [sys.executable, __file__, "--one", lever, "--row", args.row, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--work", args.work, "--world", args.world]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        line = result.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as stream:
                stream.write(line + "\n")


if __name__ == "__main__":
    main()
