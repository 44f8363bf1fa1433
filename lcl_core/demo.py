"""``lcl demo``: the whole method in a few minutes on a laptop CPU, offline.

1. builds the offline world of the reproduction's ``cpu`` recipe (interleaved documents in MMC4 format,
   held-out evaluation sets; ``docs/results/table1/recipe.md`` says why each setting is what it is), on the
   calibrated world unless ``--world v1`` (pages as real MMC4 pages are: ``docs/realism.md``);
2. pre-trains the ``tiny-fast`` preset with LCL through the run builder ``lcl pretrain`` uses (which
   first trains a BPE tokenizer on the world's corpus);
3. probes the frozen encoder on held-out object instances with ``lcl evaluate``'s own function
   (image-text retrieval heads, an attentive classifier, zero-shot classification) next to a
   random-init encoder of the same architecture;
4. prints what changed: losses, collapse diagnostics and the probe numbers.

Every step is one of the kit's commands, printed as it runs, so it can be rerun or scaled up by hand;
an interrupted demo continues where it stopped (the world and a finished run are reused).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .data import ensure_world
from .data.cli import world_flags
from .data.world import DEFAULT_WORLD
from .reproduce.table1 import PROFILES, WORLDS, recipe_on
from .training import RunSpec, TrainConfig, train_run
from .training.runs import run_folder
from .transfer.cli import evaluate_checkpoint
from .transfer.results import format_table

RECIPE = PROFILES["cpu"]  # one LCL run of the reproduction's recipe, trained longer (it is the only run)

PROBE_COLUMNS = (("retrieval TR@1", "ret", None, "tr@1"), ("retrieval IR@1", "ret", None, "ir@1"),
                 ("class probe top-1", "cls", None, "top1"), ("class probe top-5", "cls", None, "top5"),
                 ("zero-shot top-1", "zeroshot-cls", None, "top1"))


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder for the world, the run and the report")
    parser.add_argument("--world", choices=list(WORLDS), default=DEFAULT_WORLD,
                        help=f"the offline world's pages (default {DEFAULT_WORLD}: as real MMC4 pages are, "
                             "docs/realism.md; v1: one sentence describes each image)")
    parser.add_argument("--docs", type=int, default=RECIPE.world["docs"], help="documents in the offline world")
    parser.add_argument("--steps", type=int, default=1000, help="pre-training steps")
    parser.add_argument("--batch-size", type=int, default=RECIPE.document_batch)
    parser.add_argument("--lr", type=float, default=RECIPE.lr, help="peak learning rate (short run: above the "
                                                                     "official 5e-4)")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    world = out / "world"

    # as many pairs as documents: the demo reads none
    settings = {**recipe_on(RECIPE.name, args.world).world, "docs": args.docs, "pairs": None}
    changed = world_flags(settings["knobs"], settings["eval_sizes"])
    print(f"[1/3] offline world: {args.docs} documents -> {world}")
    print(f"      $ lcl data world --out {world} --docs {args.docs} --seed {args.seed} {changed}")
    counts = json.loads((ensure_world(world, seed=args.seed, **settings) / "world.json").read_text())["counts"]
    print(f"      {counts['documents']} documents, {counts['images']} images, "
          f"{counts['classification_classes']} held-out classes ({_elapsed(started)})")

    spec = RunSpec(data=str(world), preset=RECIPE.preset, vocab_size=RECIPE.vocab_size, train=TrainConfig(
        objective="lcl", steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, log_every=10,
        save_every=100))
    run_dir = run_folder(out, spec)  # one folder per setting: a demo rerun with other flags trains anew
    print(f"\n[2/3] pre-training {RECIPE.preset} with LCL (generation + 0.1 x contrastive), {args.steps} steps")
    print(f"      $ lcl pretrain --preset {RECIPE.preset} --objective lcl --data {world} --steps {args.steps} "
          f"--batch-size {args.batch_size} --lr {args.lr} --seed {args.seed} --log-every 10 --save-every 100 "
          f"--out {run_dir}")
    run = train_run(spec, root=out, progress=lambda message: print(f"      {message}"))
    print(f"      ({_elapsed(started)})")

    print("\n[3/3] frozen probe on held-out object instances, next to a random-init encoder")
    print(f"      $ lcl evaluate --checkpoint {run_dir} --data {world} --tasks ret,cls,zeroshot --baselines random-init "
          f"--seed {args.seed} --no-cache")
    results = evaluate_checkpoint(run_dir, world / "eval", tasks=("ret", "cls", "zeroshot"), baselines=("random-init",),
                                  seed=args.seed)
    (out / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")

    print("\nwhat pre-training changed")
    print(_training_summary(run.history[0], run.history[-1]))
    print()
    print(format_table(results, PROBE_COLUMNS))
    print(f"\nmodel: {run_dir}   results: {out / 'demo_results.json'}   total {_elapsed(started)}")
    return 0


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
