"""``lcl demo``: the whole method in a few minutes on a laptop CPU, offline.

1. builds a small offline world (interleaved documents in MMC4 format, held-out evaluation sets);
2. pre-trains the ``tiny-fast`` preset with LCL through ``lcl pretrain`` (which first trains a BPE
   tokenizer on the world's corpus);
3. probes the frozen encoder on held-out object instances (image-text retrieval heads, an attentive
   classifier, zero-shot classification) next to a random-init encoder of the same architecture;
4. prints what changed: losses, collapse diagnostics and the probe numbers.

Every step is one of the kit's commands, printed as it runs, so it can be rerun or scaled up by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..checkpoint import load_pretrained
from ..data import build_world
from ..transfer import evaluate
from ..transfer.results import format_table
from . import cli as pretrain_cli

PROBE_COLUMNS = (("retrieval TR@1", "ret", None, "tr@1"), ("retrieval IR@1", "ret", None, "ir@1"),
                 ("class probe top-1", "cls", None, "top1"), ("class probe top-5", "cls", None, "top5"),
                 ("zero-shot top-1", "zeroshot-cls", None, "top1"))


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder for the world, the run and the report")
    parser.add_argument("--docs", type=int, default=1500, help="documents in the offline world")
    parser.add_argument("--steps", type=int, default=600, help="pre-training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (short run: above the official 5e-4)")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    world, run = out / "world", out / "lcl-tiny-fast"

    print(f"[1/3] offline world: {args.docs} documents -> {world}")
    print(f"      $ lcl data world --out {world} --docs {args.docs} --seed {args.seed}")
    counts = _build_world(world, docs=args.docs, seed=args.seed)
    print(f"      {counts['documents']} documents, {counts['images']} images, "
          f"{counts['classification_classes']} held-out classes ({_elapsed(started)})")

    pretrain = ["--preset", "tiny-fast", "--objective", "lcl", "--data", str(world), "--steps", str(args.steps),
                "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
                "--log-every", "10", "--save-every", str(args.steps), "--out", str(run)]
    print(f"\n[2/3] pre-training tiny-fast with LCL (generation + 0.1 x contrastive), {args.steps} steps")
    print("      $ lcl pretrain " + " ".join(pretrain))
    if _run_pretrain(pretrain, resume=(run / "run.json").is_file()) != 0:
        return 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    print(f"      ({_elapsed(started)})")

    print("\n[3/3] frozen probe on held-out object instances, next to a random-init encoder")
    print(f"      $ lcl evaluate --checkpoint {run / 'final'} --data {world} --tasks ret,cls,zeroshot "
          "--baselines random-init")
    results = _probe(run / "final", world / "eval", seed=args.seed)
    (out / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")

    print("\nwhat pre-training changed")
    print(_training_summary(records[0], records[-1]))
    print()
    print(format_table(results, PROBE_COLUMNS))
    print(f"\nmodel: {run / 'final'}   results: {out / 'demo_results.json'}   total {_elapsed(started)}")
    return 0


def _build_world(folder: Path, *, docs: int, seed: int) -> dict:
    """Reuse a world built earlier with the same settings; otherwise build it."""
    manifest = folder / "world.json"
    if manifest.is_file():
        built = json.loads(manifest.read_text())
        if built["seed"] == seed and built["counts"]["documents"] == docs:
            return built["counts"]
    return build_world(folder, docs=docs, seed=seed)["counts"]


def _run_pretrain(argv: list[str], *, resume: bool) -> int:
    """``lcl pretrain`` in this process; an interrupted demo continues from its last checkpoint."""
    parser = argparse.ArgumentParser(prog="lcl pretrain")
    pretrain_cli.add_arguments(parser)
    return pretrain_cli.main(parser.parse_args(argv + (["--resume"] if resume else [])))


def _probe(model_folder: Path, eval_root: Path, *, seed: int) -> dict:
    model, tokenizer = load_pretrained(model_folder)
    return evaluate(model, tokenizer, eval_root, tasks=("ret", "cls", "zeroshot"), baselines=("random-init",), seed=seed,
                    checkpoint_source=str(model_folder))


def _training_summary(first: dict, last: dict) -> str:
    rows = [("generation loss (next text token)", "generation_loss"),
            ("contrastive loss (context -> image)", "contrastive_loss"),
            ("contrastive accuracy in batch", "contrastive_accuracy"),
            ("effective rank of image latents", "effective_rank"),
            ("latent variance", "latent_variance")]
    lines = [f"  {'':38s} {'step ' + str(first['step']):>10s} {'step ' + str(last['step']):>10s}"]
    for label, key in rows:
        lines.append(f"  {label:38s} {_number(first.get(key)):>10s} {_number(last.get(key)):>10s}")
    return "\n".join(lines)


def _number(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def _elapsed(started: float) -> str:
    seconds = time.perf_counter() - started
    return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s elapsed"
