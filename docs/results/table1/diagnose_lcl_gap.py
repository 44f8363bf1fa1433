"""Why interleaved LCL trails CLIP on MMC4-Pair at matched images: two one-parameter changes of the LCL row.

Fixed before it was run (after the `cpu` table, before seeing any of these numbers):

* the changes: ``img_first_prob 0`` (every image follows its own sentence, so the context before each image
  holds its description whenever the world aligned one; the paper's rows use 0.5) and
  ``contrastive_weight 1`` (λ as CLIP's, instead of LCL's 0.1);
* pre-training seeds 0 and 1, the `cpu` profile's world, tokenizer, schedule, batches and evaluation,
  so each change is paired, seed by seed, with the table's LCL and CLIP runs of the same seed.

It is a diagnosis, not a row of the table: the LCL row keeps the paper's settings. Run from the checkout,
after ``lcl reproduce table1 --profile cpu`` (it reads that reproduction's world and results)::

    python docs/results/table1/diagnose_lcl_gap.py

and it writes ``diagnosis.json`` and ``diagnosis.md`` beside itself.
"""

import json
import time
from pathlib import Path

from lcl_core.reproduce.table1 import PROFILES, ROWS, Row, Unit, run_units, row_spec
from lcl_core.training import RunSpec, TrainConfig
from lcl_core.transfer.results import column_value

HERE = Path(__file__).resolve().parent
REPRODUCTION = Path("runs/reproduce/table1-cpu")
OUT = Path("runs/reproduce/diagnosis")
SEEDS = (0, 1)
CHANGES = {"LCL, images after their sentence (img_first_prob 0)": {"img_first_prob": 0.0},
           "LCL, λ = 1 (contrastive weight as CLIP's)": {"contrastive_weight": 1.0}}
COLUMNS = ("IN-1k", "COCO TR@1", "COCO IR@1", "F30k TR@1", "COCO CIDEr", "NoCaps CIDEr")


def main() -> None:
    started = time.perf_counter()
    recipe = PROFILES["cpu"]
    table = json.loads((HERE / "cpu" / "results.json").read_text())
    world = REPRODUCTION / "worlds" / table["world"]["folder"]
    base = RunSpec(data=str(world), preset=recipe.preset, vocab_size=recipe.vocab_size, train=TrainConfig(
        steps=recipe.steps, lr=recipe.lr, log_every=recipe.log_every, save_every=recipe.save_every,
        progress_bar=False))
    lcl = next(row for row in ROWS if row.label == "LCL")
    units = [Unit(row=Row(label, lcl.objective, lcl.source, "diagnosis"), seed=seed,
                  spec=row_spec(base, lcl, seed, table["recipe"]["pair_batch"], recipe.document_batch)
                  .changed(**change).to_dict(), base=base.to_dict(), out=str(OUT),
                  settings=recipe.transfer.to_dict(), head_seeds=recipe.head_seeds)
             for label, change in CHANGES.items() for seed in SEEDS]
    rows = {label: {} for label in ("LCL", "CLIP", *CHANGES)}
    for label in ("LCL", "CLIP"):
        for seed in SEEDS:
            rows[label][seed] = {h: column_value(table["transfer"], f"{label} · seed {seed}", h)["mean"]
                                 for h in COLUMNS}
    for unit, done in run_units(units, jobs=recipe.jobs):
        entry = done["evaluation"]["encoders"]["checkpoint"]
        rows[unit.row.label][unit.seed] = {h: column_value({"encoders": {"x": entry}}, "x", h)["mean"]
                                           for h in COLUMNS}
        print(f"{unit.name}: {done['seconds']:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    (HERE / "diagnosis.json").write_text(json.dumps({"seeds": list(SEEDS), "changes": CHANGES, "rows": rows,
                                                     "wall_s": round(seconds)}, indent=1, ensure_ascii=False) + "\n")
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, per_seed in rows.items():
        cells = [" / ".join(f"{per_seed[s][h]:.1f}" for s in SEEDS) for h in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (HERE / "diagnosis.md").write_text(f"Seeds {' / '.join(map(str, SEEDS))} (each cell: seed 0 / seed 1); "
                                       f"{seconds / 60:.0f} min wall.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
