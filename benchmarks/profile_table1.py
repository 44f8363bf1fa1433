"""Where the time of ``lcl reproduce table1`` goes: one unit, phase by phase, and the whole run's split.

    python benchmarks/profile_table1.py [--profile cpu] [--row LCL] [--seed 0] [--threads 1]
        [--work /tmp/lcl-profile] [--timing docs/results/table1/cpu/timing.json] [--torch-profile-steps 20]

One unit is trained and evaluated exactly as a table worker does it (``run_unit``: ``--threads`` compute
threads, the table's workers use one each), in a fresh folder, with light timers around each phase:

* set-up: the world (built or reused from ``--work``), the tokenizer, the model;
* each optimiser step split into the data feed (reading, tokenising, laying out a batch), the model inputs,
  forward + loss, backward, gradient clipping, the optimiser, the logged metrics (collapse diagnostics);
* the frozen transfer: feature extraction, each task's head training, caption decoding, scoring.

Then ``--torch-profile-steps`` steps more of the same run under ``torch.profiler``, grouped by operator.
``--timing`` reads a finished table's ``timing.json`` and says how its wall time splits into world,
training per row, evaluation and idle cores. One JSON document goes to stdout (and ``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.optim.optimizer as optimizer_module

from lcl_core.provenance import machine
from lcl_core.reproduce import table1
from lcl_core.training import trainer as trainer_module
evaluate_module = importlib.import_module("lcl_core.transfer.evaluate")


class Timers:
    """Seconds per phase; a phase nested in another is counted in both (the report subtracts). A phase
    named with ``{stage}`` (backward, clipping, optimiser) is counted under the stage it runs in: the
    evaluation's heads call them too."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stage = "train"

    @contextlib.contextmanager
    def phase(self, name: str):
        name = name.format(stage=self.stage)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1

    def wrap(self, owner, attribute: str, name: str, *, stage: str | None = None) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            outer, self.stage = self.stage, stage or self.stage
            try:
                with self.phase(name):
                    return original(*args, **kwargs)
            finally:
                self.stage = outer
        setattr(owner, attribute, timed)


def instrument(timers: Timers) -> None:
    """Timers around the trainer's and the evaluation's phases (module attributes, looked up at call time)."""
    Trainer = trainer_module.Trainer
    timers.wrap(Trainer, "_optimizer_step", "train: optimiser step (all of it)")
    timed_step = Trainer._optimizer_step

    def feed_timed(self, batches):  # the step draws its batches itself: time each draw
        def draws():
            while True:
                with timers.phase("train: data feed (read, tokenise, lay out)"):
                    batch = next(batches)
                yield batch
        return timed_step(self, draws())
    Trainer._optimizer_step = feed_timed
    timers.wrap(Trainer, "_forward_and_loss", "train: forward + loss")
    timers.wrap(Trainer, "_record", "train: logged metrics")
    timers.wrap(Trainer, "save_checkpoint", "train: checkpoints")
    timers.wrap(Trainer, "run", "train: Trainer.run")
    timers.wrap(torch.Tensor, "backward", "{stage}: backward")
    timers.wrap(torch.nn.utils, "clip_grad_norm_", "{stage}: gradient clipping")
    optimizer_started = {}
    optimizer_module.register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: optimizer_started.__setitem__(id(optimizer), time.perf_counter()))

    def after(optimizer, args, kwargs):
        name = f"{timers.stage}: optimiser"
        timers.seconds[name] += time.perf_counter() - optimizer_started.pop(id(optimizer))
        timers.calls[name] += 1
    optimizer_module.register_optimizer_step_post_hook(after)
    for attribute, name in (("extract", "eval: feature extraction"), ("train_classifier", "eval: classification heads"),
                            ("train_retrieval", "eval: retrieval heads"), ("train_captioner", "eval: captioning heads"),
                            ("caption_scores", "eval: caption scoring (BLEU/CIDEr…)"),
                            ("retrieval_recall", "eval: retrieval recall")):
        timers.wrap(evaluate_module, attribute, name)
    timers.wrap(evaluate_module._Runner, "captions", "eval: caption decoding (beam + greedy)")
    timers.wrap(table1, "evaluate_cached", "eval: all", stage="eval")
    timers.wrap(table1, "train_run", "train: train_run (set-up + steps)")
    timers.wrap(table1, "build_tokenizer", "set-up: tokenizer")


def profile_unit(args) -> dict:
    recipe = table1.PROFILES[args.profile]
    work = Path(args.work)
    started = time.perf_counter()
    setting = table1.prepare_setting(recipe, work, world_seed=0, progress=lambda message: None)
    world_s = time.perf_counter() - started
    row = next(r for r in table1.ROWS if r.label == args.row)
    out = work / f"unit-{time.strftime('%Y%m%d-%H%M%S')}"  # fresh: nothing reused
    out.mkdir(parents=True)
    (out / "worlds").symlink_to((work / "worlds").resolve())
    (out / "tokenizers").symlink_to((work / "tokenizers").resolve())
    unit = table1.make_unit(setting, row, args.seed, recipe, out)
    timers = Timers()
    instrument(timers)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = table1.run_unit(unit)
    unit_s = time.perf_counter() - started
    seconds = dict(timers.seconds)
    step = seconds.get("train: optimiser step (all of it)", 0.0)
    inner = sum(seconds.get(k, 0.0) for k in ("train: forward + loss", "train: backward", "train: gradient clipping",
                                               "train: optimiser", "train: data feed (read, tokenise, lay out)"))
    steps = timers.calls.get("train: optimiser step (all of it)", 0)
    loop = seconds.get("train: Trainer.run", 0.0)
    derived = {
        "train: inputs, host reads and bookkeeping inside the step": step - inner,
        "train: the rest of the loop (Trainer.run − steps − metrics)":
            loop - step - seconds.get("train: logged metrics", 0.0),
        "train: set-up outside Trainer.run (model, data readers, run folder)":
            seconds.get("train: train_run (set-up + steps)", 0.0) - loop,
        "unit: outside training and evaluation (tokenizer load, random-init probe, latents)":
            unit_s - seconds.get("train: train_run (set-up + steps)", 0.0) - seconds.get("eval: all", 0.0),
    }
    return {"row": args.row, "seed": args.seed, "threads": args.threads, "world_or_reuse_s": world_s,
            "unit_s": unit_s, "steps": steps, "s_per_step": step / steps if steps else None,
            "phases_s": {k: round(v, 3) for k, v in sorted(seconds.items())},
            "calls": dict(timers.calls), "derived_s": {k: round(v, 3) for k, v in derived.items()},
            "train_s_reported": result["train_s"], "evaluate_s_reported": result["evaluate_s"],
            "folder": str(out)}


COPIES = ("copy", "cat", "contiguous", "clone", "index", "gather", "scatter", "_to", "empty", "zero", "fill")


def operator_group(name: str) -> str:
    """A profiler event's group; the DataLoader's own time (reading, decoding, tokenising) is the data feed."""
    if "DataLoader" in name:
        return "data feed"
    if any(s in name for s in ("mm", "linear", "matmul", "addmm", "bmm", "baddbmm")):
        return "matrix products"
    if "attention" in name:
        return "attention"
    if "Optimizer" in name or "adam" in name.lower() or "foreach" in name:
        return "optimizer"
    if any(s in name for s in COPIES):
        return "copies/layout"
    return "elementwise/norm/other"


def torch_profile(args, folder: str) -> dict:
    """``--torch-profile-steps`` more steps of the unit's run spec, by operator (self CPU time)."""
    from lcl_core.training import RunSpec, train_run
    from lcl_core.training.runs import find_runs

    run_folder = next(iter(find_runs(folder).values()))
    spec = RunSpec.from_dict(json.loads((run_folder / "run.json").read_text())["spec"])
    spec = spec.changed(steps=args.torch_profile_steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_run(spec, folder=Path(folder) / "torch-profile", progress=lambda message: None)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]
    groups = defaultdict(float)
    for e in events:
        groups[operator_group(e.key)] += e.self_cpu_time_total
    return {"steps": args.torch_profile_steps, "self_cpu_total_s": total / 1e6,
            "share_by_group": {k: round(v / total, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
            "top_ops": [[e.key, round(e.self_cpu_time_total / 1e6, 3), e.count] for e in top]}


def whole_run(timing_path: Path, jobs: int) -> dict:
    """Split a finished table's wall time: world, training and evaluation per row, and idle cores."""
    timing = json.loads(timing_path.read_text())
    per_row: dict[str, dict[str, float]] = defaultdict(lambda: {"train_s": 0.0, "evaluate_s": 0.0, "units": 0})
    for name, seconds in timing["runs"].items():
        row = name.rsplit(" · seed", 1)[0]
        per_row[row]["train_s"] += seconds or 0.0
        per_row[row]["evaluate_s"] += timing["evaluations"].get(name) or 0.0
        per_row[row]["units"] += 1
    train = sum(r["train_s"] for r in per_row.values())
    evaluation = sum(r["evaluate_s"] for r in per_row.values())
    busy = train + evaluation
    capacity = (timing["total_s"] - timing["world_s"]) * jobs
    return {"total_s": timing["total_s"], "world_s": timing["world_s"], "jobs": jobs,
            "train_s_summed": train, "evaluate_s_summed": evaluation,
            "worker_s_outside_train_and_eval_or_idle": capacity - busy,
            "idle_share_of_worker_time": (capacity - busy) / capacity,
            "per_row": {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in per_row.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=tuple(table1.PROFILES))
    parser.add_argument("--row", default="LCL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/lcl-profile")
    parser.add_argument("--timing", default="docs/results/table1/cpu/timing.json")
    parser.add_argument("--torch-profile-steps", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    document = {"machine": machine(),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    if args.timing and Path(args.timing).is_file():
        document["whole_run"] = whole_run(Path(args.timing), jobs=table1.PROFILES[args.profile].jobs)
    document["unit"] = profile_unit(args)
    if args.torch_profile_steps:
        document["operators"] = torch_profile(args, document["unit"]["folder"])
    text = json.dumps(document, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
