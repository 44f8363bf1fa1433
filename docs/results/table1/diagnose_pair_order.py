"""Why CLIP on MMC4-Pair does not beat random init on the calibrated world: the order pairs reach a batch.

The kit's pair reader shuffles the order of the tar shards but reads each shard's pairs in file order, and an
MMC4-Pair shard (the world's, as one built page by page from real MMC4 would be) holds a page's pairs side by
side. So a CLIP batch of 72 pairs holds about 18 pages, four pairs each. The official loader (open_clip's
``get_wds_dataset``, which OpenGVLab/LCL trains pairs with) shuffles shards and then samples through a
5,000-pair buffer (1,000 before the first), so a batch's pairs come from as many pages as it has pairs. On v1
pages that hardly matters (a page's images are different scenes); on calibrated pages 92 % of a page's images
show the page's subject again, with its colour, count, size, position and background, and their captions
restate it: a batch then holds groups of near-identical pairs that the contrastive loss must tell apart.

Fixed before it was run (after the calibrated Table 1, before any number below existed):

* measured from data alone, the v1 and calibrated `cpu` worlds: pages per CLIP batch and the share of a
  batch's pairs that share their page with another pair of the batch, as the kit reads them (seeds 0, 1, 2,
  the first 50 batches of 72 pairs) and through the official loader's buffer (shuffled across the whole set);
* the change: the calibrated world's MMC4-Pair shards rewritten with their pairs shuffled across all shards
  (seed 0; each shard keeps its size; nothing else in the world changes), and the Table 1 CLIP row trained on
  it at seeds 0, 1, 2 with the `cpu` recipe as it stands: 72 pairs per step, 700 steps, the same evaluation;
* the rule: the page grouping explains CLIP's collapse if, on IN-1k, CLIP on shuffled pairs minus the
  committed CLIP row (paired over seeds, 95 % t-interval) is above 0 *and* CLIP on shuffled pairs minus random
  init is above 0; it does not if the first interval holds 0 or is below it; anything else is partial.

It is a diagnosis, not a row of the table: the committed Table 1 keeps the reader it ran with. Run from the
checkout, after ``lcl reproduce table1 --profile cpu --world calibrated`` (it reads that reproduction's world
and results, and builds the v1 world of ``--world v1`` if missing)::

    python docs/results/table1/diagnose_pair_order.py

and it writes ``pair-order.json`` and ``pair-order.md`` beside itself.
"""

import json
import random
import shutil
import tarfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

from lcl_core.data.paired import tar_samples
from lcl_core.data.world import cached_world
from lcl_core.reproduce.stats import paired_difference
from lcl_core.reproduce.table1 import ROWS, Row, Unit, current_commit, machine, recipe_on, row_spec, run_units
from lcl_core.training import RunSpec, TrainConfig
from lcl_core.training.data import build_batches
from lcl_core.training.runs import build_tokenizer
from lcl_core.transfer.results import column_value

HERE = Path(__file__).resolve().parent
REPRODUCTION = Path("runs/reproduce/table1-cpu-calibrated")
V1_REPRODUCTION = Path("runs/reproduce/table1-cpu")
OUT = Path("runs/reproduce/diagnosis-pair-order")
SEEDS = (0, 1, 2)
MEASURED_BATCHES = 50
SHUFFLE_SEED = 0
COLUMNS = ("IN-1k", "COCO TR@1", "COCO IR@1", "F30k TR@1", "F30k IR@1", "COCO CIDEr", "NoCaps CIDEr")
LABEL = "CLIP, MMC4-Pair shuffled across shards"


def base_spec(world: Path, recipe) -> RunSpec:
    return RunSpec(data=str(world), preset=recipe.preset, vocab_size=recipe.vocab_size, train=TrainConfig(
        steps=recipe.steps, lr=recipe.lr, log_every=recipe.log_every, save_every=recipe.save_every,
        progress_bar=False))


def pair_pages(world: Path) -> dict[tuple[str, int], str]:
    """(shard name, record index) -> the page the pair comes from, in the reader's record numbering."""
    pages = {}
    for shard in sorted((world / "mmc4_pair").glob("*.tar")):
        for index, sample in enumerate(tar_samples(shard, max_member_bytes=1 << 30)):
            pages[shard.name, index] = json.loads(sample["json"])["url"]
    return pages


def batch_pages(world: Path, spec: RunSpec, tokenizer, seed: int, batch: int, pages: dict, *,
                shuffled: bool) -> list[list[str]]:
    """The pages of each of the first batches the CLIP row reads at ``seed`` (``shuffled``: the same pairs
    through a shuffle of the whole stream, the limit of the official buffer)."""
    train = spec.changed(objective="contrastive", source="mmc4_pair", seed=seed, batch_size=batch).train
    stream = build_batches(data=world, source="mmc4_pair", config=train, model_config=spec.model_config(tokenizer),
                           tokenizer=tokenizer, rank=0, world_size=1)
    order = [pages[p["file"], p["record"]] for _, b in zip(range(MEASURED_BATCHES), stream) for p in b["positions"]]
    if shuffled:
        everything = list(pages.values())
        order = random.Random(seed).sample(everything, len(order))
    return [order[i:i + batch] for i in range(0, len(order), batch)]


def grouping(batches: list[list[str]]) -> dict[str, float]:
    per_batch = [len(set(b)) for b in batches]
    shared = [sum(n for n in Counter(b).values() if n > 1) / len(b) for b in batches]
    return {"pages_per_batch": sum(per_batch) / len(per_batch), "share_with_a_page_mate": sum(shared) / len(shared)}


def shuffled_world(world: Path, target: Path) -> Path:
    """``world`` with its MMC4-Pair shards' pairs shuffled across the shards (each keeps its size); every other
    part is a link to the original. Its manifest's content hash is changed, so no cache mistakes it for it."""
    if (target / "world.json").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for entry in world.iterdir():
        if entry.name not in ("mmc4_pair", "world.json"):
            (partial / entry.name).symlink_to(entry.resolve())
    shards = sorted((world / "mmc4_pair").glob("*.tar"))
    members = [[(name, data) for name, data in _members(shard)] for shard in shards]
    samples = [sample for shard in members for sample in _grouped(shard)]
    random.Random(SHUFFLE_SEED).shuffle(samples)
    (partial / "mmc4_pair").mkdir()
    start = 0
    for shard, original in zip(shards, members):
        count = len(_grouped(original))
        with tarfile.open(partial / "mmc4_pair" / shard.name, "w") as archive:
            for sample in samples[start:start + count]:
                for name, data in sample:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, BytesIO(data))
        start += count
    manifest = json.loads((world / "world.json").read_text())
    manifest["content_sha256"] += f"+mmc4_pair-shuffled-{SHUFFLE_SEED}"
    (partial / "world.json").write_text(json.dumps(manifest, indent=1) + "\n")
    partial.rename(target)
    return target


def _members(shard: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(shard) as archive:
        return [(m.name, archive.extractfile(m).read()) for m in archive if m.isfile()]


def _grouped(members: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    groups: dict[str, list] = {}
    for name, data in members:
        groups.setdefault(name.split(".", 1)[0], []).append((name, data))
    return list(groups.values())


def main() -> None:
    started, commit = time.perf_counter(), current_commit()
    recipe = recipe_on("cpu", "calibrated")
    table = json.loads((HERE / "cpu-calibrated" / "results.json").read_text())
    world = REPRODUCTION / "worlds" / table["world"]["folder"]
    batch = table["recipe"]["pair_batch"]
    base = base_spec(world, recipe)
    tokenizer = build_tokenizer(base, cache=REPRODUCTION / "tokenizers")

    v1_recipe = recipe_on("cpu", "v1")
    v1_world = cached_world(V1_REPRODUCTION, seed=0, image_size=32, **v1_recipe.world)
    v1_base = base_spec(v1_world, v1_recipe)
    v1_tokenizer = build_tokenizer(v1_base, cache=V1_REPRODUCTION / "tokenizers")
    measured = {}
    for name, (w, spec, tok) in {"v1": (v1_world, v1_base, v1_tokenizer),
                                  "calibrated": (world, base, tokenizer)}.items():
        pages = pair_pages(w)
        measured[name] = {how: {seed: grouping(batch_pages(w, spec, tok, seed, batch, pages, shuffled=how != "kit"))
                                for seed in SEEDS} for how in ("kit", "shuffled")}
        print(name, json.dumps(measured[name]), flush=True)
    measure_s = time.perf_counter() - started

    shuffled = shuffled_world(world, OUT / "worlds" / (world.name + "-pairs-shuffled"))
    clip = next(row for row in ROWS if row.label == "CLIP")
    units = [Unit(row=Row(LABEL, clip.objective, clip.source, "diagnosis"), seed=seed,
                  spec=row_spec(base_spec(shuffled, recipe), clip, seed, batch, recipe.document_batch).to_dict(),
                  base=base_spec(shuffled, recipe).to_dict(), out=str(OUT), settings=recipe.transfer.to_dict(),
                  head_seeds=recipe.head_seeds) for seed in SEEDS]
    rows = {label: {seed: {h: column_value(table["transfer"], f"{label} · seed {seed}", h)["mean"] for h in COLUMNS}
                    for seed in SEEDS} for label in ("CLIP", "random init")}
    rows[LABEL] = {}
    unit_s = {}
    for unit, done in run_units(units, jobs=recipe.jobs):
        entry = done["evaluation"]["encoders"]["checkpoint"]
        rows[LABEL][unit.seed] = {h: column_value({"encoders": {"x": entry}}, "x", h)["mean"] for h in COLUMNS}
        unit_s[unit.seed] = round(done["seconds"])
        print(f"{unit.name}: {done['seconds']:.0f} s", flush=True)
    differences = {against: {h: paired_difference({s: rows[LABEL][s][h] for s in SEEDS},
                                                  {s: rows[against][s][h] for s in SEEDS}) for h in COLUMNS}
                   for against in ("CLIP", "random init")}
    vs_clip, vs_random = differences["CLIP"]["IN-1k"], differences["random init"]["IN-1k"]
    if vs_clip.low > 0 and vs_random.low > 0:
        verdict = "explains"
    elif vs_clip.high <= 0 or vs_clip.low <= 0 <= vs_clip.high:
        verdict = "does not explain"
    else:
        verdict = "partial"
    seconds = time.perf_counter() - started
    (HERE / "pair-order.json").write_text(json.dumps(
        {"commit": commit, "machine": machine(), "seeds": list(SEEDS), "pair_batch": batch, "measured_batches": MEASURED_BATCHES, "grouping": measured,
         "rows": rows, "differences": {a: {h: d.to_dict() for h, d in by.items()} for a, by in differences.items()},
         "verdict": verdict, "unit_s": unit_s, "measure_s": round(measure_s), "wall_s": round(seconds)},
        indent=1, ensure_ascii=False) + "\n")
    lines = [f"Pages per CLIP batch of {batch} pairs (first {MEASURED_BATCHES} batches, mean over seeds "
             f"{', '.join(map(str, SEEDS))}) and the share of a batch's pairs with another pair of their page in "
             "the batch:", "", "| world | read as the kit reads | shuffled (the official buffer's limit) |",
             "|---|---|---|"]
    for name, by in measured.items():
        cells = [f"{_mean(by[how], 'pages_per_batch'):.1f} pages, {_mean(by[how], 'share_with_a_page_mate'):.0%}"
                 for how in ("kit", "shuffled")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Seeds {' / '.join(map(str, SEEDS))} (each cell one seed), calibrated `cpu` world:", "",
              "| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, per_seed in rows.items():
        lines.append(f"| {label} | " + " | ".join(" / ".join(f"{per_seed[s][h]:.1f}" for s in SEEDS)
                                                   for h in COLUMNS) + " |")
    for against, by in differences.items():
        lines.append(f"| shuffled − {against} (95 % t) | " + " | ".join(
            f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" for d in by.values()) + " |")
    lines += ["", f"Verdict (rule in the script's docstring): the page grouping **{verdict}** CLIP's IN-1k "
              f"result. {seconds / 60:.0f} min wall ({measure_s / 60:.1f} min measuring; units "
              + ", ".join(f"seed {s} {t} s" for s, t in unit_s.items()) + f"; two at a time); commit {commit}."]
    (HERE / "pair-order.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _mean(by_seed: dict, key: str) -> float:
    return sum(v[key] for v in by_seed.values()) / len(by_seed)


if __name__ == "__main__":
    main()
