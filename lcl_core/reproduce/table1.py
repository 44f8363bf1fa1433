"""``lcl reproduce table1``: the paper's Table 1 at small scale, every row with several pre-training
seeds, 95 % intervals and a verdict per claim decided by rules fixed beforehand (:mod:`.claims`).

    lcl reproduce table1 --profile smoke|cpu|gpu [--world calibrated|v1] [--seeds 0 1 2] [--world-seed 0]
        [--out DIR] [--report DIR]

Rows (:data:`ROWS`): every Table 1 objective on the data the paper trains it on — CLIP, CoCa and
BLIP-2-style on MMC4-Pair; BEiT-3-, Flamingo- and Emu-style and LCL on the MMC4 documents — plus the
paired-data setting (CLIP and LCL on the LAION-style pairs) and a random-init encoder. All rows share
the world, the model, the tokenizer, the schedule and the number of images seen: pair rows take as
many pairs per step as a batch of documents holds images (measured on the world before training).
Pre-training seed ``s`` fixes the initial weights and the data order of every row, and the random-init
row is exactly those initial weights, so rows are compared seed by seed.

The work lives in ``--out`` (default ``runs/reproduce/table1-<profile>``, ``…-<profile>-calibrated`` on the
calibrated world): the world, every run (by
run identity: a killed reproduction resumes its unfinished run from the last checkpoint, finished runs
and evaluations are reused) and each evaluation (``evaluations/``). The report goes to ``--report``
(default ``OUT/report``): ``results.json`` (deterministic: every number, per seed, with the config,
command and commit; wall times are in ``timing.json``), ``table1.md``, ``claims.md``/``claims.json``
and ``figures/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch

from ..config import get_preset
from ..data import EvalSizes, WorldKnobs, cached_world
from ..data.fingerprint import data_fingerprint
from ..data.world import DEFAULT_WORLD, MEASURING_EVAL_SIZES, WORLD_PRESETS
from ..data.paired import SAMPLES_PER_PAIR
from ..diagnostics import final_value, latent_diagnostics
from ..model import LCLModel
from ..objectives import OBJECTIVES, objective_spec
from ..provenance import DIRTY, current_commit, machine
from ..training import RunSpec, TrainConfig, train_run
from ..training.data import build_batches
from ..training.runs import build_tokenizer
from ..transfer import TransferSettings, evaluate
from ..transfer.datasets import probe_images
from ..transfer.results import PAPER_TABLE1, TABLE1_COLUMNS, column_value, validate_results
from . import report
from .claims import RANDOM, judge_all
from .stats import binomial_half_width, interval

SCHEMA = "lcl-reproduction/1"
FINAL_LOSSES = ("loss", "generation_loss", "contrastive_loss", "regression_loss", "matching_loss",
                "masked_text_loss", "masked_image_loss", "contrastive_accuracy")


@dataclass(frozen=True)
class Row:
    label: str
    objective: str | None  # None: the random-init encoder (no pre-training)
    source: str | None
    setting: str  # "table1" (the paper's rows, on MMC4), "paired" (LAION-style pairs), "baseline"


ROWS = (*(Row(o.paper_row, name, o.source, "table1") for name, o in OBJECTIVES.items() if o.paper_row),
        Row("CLIP (pairs)", "contrastive", "pairs", "paired"), Row("LCL (pairs)", "lcl", "pairs", "paired"),
        Row(RANDOM, None, None, "baseline"))


@dataclass(frozen=True)
class Profile:
    """The recipe every row shares (docs/results/table1/recipe.md says why each number is what it is)."""

    name: str
    description: str
    world: dict  # lcl_core.data.world_settings arguments but the seed
    preset: str
    vocab_size: int
    steps: int
    document_batch: int  # document rows per step; pair rows get as many pairs as these hold images
    lr: float
    seeds: tuple[int, ...]
    transfer: TransferSettings  # the frozen-transfer heads, the same for every row
    head_seeds: dict  # task (cls, ret, cap) -> heads trained per encoder; the number is their mean
    log_every: int
    save_every: int
    jobs: int = 1  # units (row × seed) trained at once, each in its own process
    measure_batches: int = 20  # document batches read to measure images per document row


PROFILES = {
    "smoke": Profile(
        name="smoke", description="the path, the schema and resume in about a minute (CI); not the claims",
        world=dict(docs=60, pairs=60, eval_sizes=EvalSizes(
            classification_train_per_class=2, classification_val_per_class=1, captions_train=8, captions_val=2,
            captions_test=6, flickr30k_train=8, flickr30k_test=6, nocaps_per_domain=2)),
        preset="tiny-fast", vocab_size=1024, steps=3, document_batch=4, lr=1e-3, seeds=(0, 1),
        transfer=TransferSettings(cls_epochs=1, ret_epochs=1, cap_epochs=1), head_seeds={"cls": 2, "ret": 1, "cap": 1},
        log_every=1, save_every=2, jobs=2, measure_batches=3),
    "cpu": Profile(
        name="cpu", description="the claims on this 2-core CPU machine in at most 90 minutes",
        world=dict(docs=6000, pairs=20000, knobs=WorldKnobs(sentences_median=8.0), eval_sizes=MEASURING_EVAL_SIZES),
        preset="tiny-fast", vocab_size=4096, steps=700, document_batch=32, lr=1e-3, seeds=(0, 1, 2),
        transfer=TransferSettings(cls_epochs=40, ret_epochs=20, cap_epochs=25),
        head_seeds={"cls": 5, "ret": 3, "cap": 1}, log_every=10, save_every=100, jobs=2),
    "gpu": Profile(
        name="gpu", description="a larger configuration of the same table for one GPU (not yet run: no device "
                                "was lent to the session that wrote it)",
        world=dict(docs=20000, pairs=60000, knobs=WorldKnobs(sentences_median=8.0),
                   eval_sizes=EvalSizes(classification_train_per_class=60, classification_val_per_class=100,
                                        captions_train=1000, captions_val=200, captions_test=1000,
                                        flickr30k_train=1000, flickr30k_test=1000, nocaps_per_domain=150)),
        preset="tiny", vocab_size=4096, steps=3000, document_batch=64, lr=1e-3, seeds=(0, 1, 2),
        transfer=TransferSettings(), head_seeds={"cls": 5, "ret": 3, "cap": 1}, log_every=20, save_every=500),
}


WORLDS = tuple(WORLD_PRESETS)  # "v1", "calibrated"


def recipe_on(profile: str, world: str = DEFAULT_WORLD) -> Profile:
    """The profile's recipe on the named world: ``calibrated``, the default (pages as real MMC4 pages are,
    docs/realism.md: the profile's world with :data:`~lcl_core.data.world.CALIBRATED` knobs, named
    ``<profile>-calibrated``), or ``v1`` (the world every result committed before issue 24 ran on, the profile
    as written)."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if world not in WORLDS:
        raise KeyError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}")
    recipe = PROFILES[profile]
    if world == "v1":
        return recipe
    return dataclasses.replace(recipe, name=f"{recipe.name}-{world}",
                               world=dict(recipe.world, knobs=WORLD_PRESETS[world]))


def default_out(recipe: Profile) -> Path:
    """Where a reproduction of ``recipe`` works unless told: one folder per profile and world."""
    return Path("runs") / "reproduce" / f"table1-{recipe.name}"


def source_commit(profile: str, *, allow_dirty: bool = False) -> str:
    """The commit a reproduction runs from, as its results record it. A result is evidence only if it comes
    from committed code, so a tree with uncommitted changes is refused unless ``allow_dirty`` (then the
    commit says so) — except on the ``smoke`` profile, which checks the path and is never a result."""
    commit = current_commit()
    if commit.endswith(DIRTY) and not allow_dirty and profile != "smoke":
        raise ValueError(f"the checkout has uncommitted changes (git status): commit them first, so the result "
                         f"records the code it came from, or pass --allow-dirty and it will say{DIRTY}")
    return commit


class Start(NamedTuple):
    """What a reproduction that builds on a Table 1 profile (the scale curve, Table 4) starts from."""

    recipe: "Profile"
    commit: str
    seeds: tuple[int, ...]
    out: Path
    report_dir: Path
    command: str
    started: float


def start(table: str, *, profile: str, world: str, seeds: Sequence[int] | None, world_seed: int,
          out: str | Path | None, report_dir: str | Path | None, allow_dirty: bool,
          progress: Callable[[str], None]) -> Start:
    """The profile's recipe on ``world``, the commit (refused when dirty, :func:`source_commit`), the seeds, the
    work folder (Table 1's, so its units are reused), the report folder (default ``OUT/report/<table>``) and the
    command line, printed."""
    recipe = recipe_on(profile, world)
    commit = source_commit(profile, allow_dirty=allow_dirty)
    seeds = tuple(seeds if seeds is not None else recipe.seeds)
    out = Path(out or default_out(recipe))
    report_dir = Path(report_dir or out / "report" / table)
    command = (f"lcl reproduce {table} --profile {profile} --world {world} --seeds {' '.join(map(str, seeds))} "
               f"--world-seed {world_seed} --out {out} --report {report_dir}")
    progress(f"$ {command}")
    return Start(recipe, commit, seeds, out, report_dir, command, time.perf_counter())


def matched_pair_batch(spec: RunSpec, tokenizer, *, document_batch: int, batches: int) -> tuple[int, float]:
    """Pairs per step that match a batch of ``document_batch`` documents in images: -> (pairs, mean
    images per document row over the first ``batches`` document batches of seed 0)."""
    train = dataclasses.replace(spec.train, objective="lcl", batch_size=document_batch, seed=0)
    stream = build_batches(data=spec.data, source="mmc4", config=train, model_config=spec.model_config(tokenizer),
                           tokenizer=tokenizer, rank=0, world_size=1)
    counts = [(len(b["images"]), b["input_ids"].shape[0]) for _, b in zip(range(batches), stream)]
    per_row = sum(images for images, _ in counts) / sum(rows for _, rows in counts)
    return max(1, round(per_row * document_batch)), per_row


def image_copies(row: Row) -> int:
    """Rows per image the row's data layout makes (CoCa's pairs give an image-first and a text-first row,
    each with its own copy of the image): batches and images seen are counted in distinct images."""
    reads_pairs = row.source in ("pairs", "mmc4_pair")
    return SAMPLES_PER_PAIR.get(objective_spec(row.objective).pair_layout, 1) if reads_pairs else 1


def row_spec(base: RunSpec, row: Row, seed: int, pair_batch: int, document_batch: int) -> RunSpec:
    """The row's run at ``seed``, its batches matched in images: ``document_batch`` documents, or as many pairs
    as those hold images; a mix of sources (``mmc4+pairs``) gets the matching batch size for each source."""
    def batch(source: str | None) -> int:
        if source in ("pairs", "mmc4_pair"):
            return pair_batch * image_copies(dataclasses.replace(row, source=source))
        return document_batch

    spec = base.changed(objective=row.objective, source=row.source, seed=seed, batch_size=batch(row.source))
    if row.source and "+" in row.source:
        spec = spec.changed(batch_size=document_batch, batch_sizes=[batch(name) for name in spec.sources])
    return spec


@dataclass(frozen=True)
class Setting:
    """A world and what every run on it shares: the base run spec and the pair batch that matches a batch of
    documents in images."""

    world: Path
    base: RunSpec
    pair_batch: int
    images_per_row: float


def prepare_setting(recipe: "Profile", out: Path, *, world_seed: int, knobs: dict | None = None,
                    progress: Callable[[str], None] = print) -> Setting:
    """The profile's world (with ``knobs``, :class:`~lcl_core.data.WorldKnobs` fields, changed) in
    ``out/worlds/``, its tokenizer and the measured pair batch."""
    world_args = dict(recipe.world)
    if knobs:
        world_args["knobs"] = dataclasses.replace(world_args.get("knobs", WorldKnobs()), **knobs)
    image_size = get_preset(recipe.preset).vision.image_size
    world = cached_world(out, seed=world_seed, image_size=image_size, **world_args)
    base = RunSpec(data=str(world), preset=recipe.preset, vocab_size=recipe.vocab_size, train=TrainConfig(
        steps=recipe.steps, lr=recipe.lr, log_every=recipe.log_every, save_every=recipe.save_every,
        progress_bar=False))
    tokenizer = build_tokenizer(base, cache=out / "tokenizers")
    pair_batch, images_per_row = matched_pair_batch(base, tokenizer, document_batch=recipe.document_batch,
                                                    batches=recipe.measure_batches)
    progress(f"world {world.name}: {json.loads((world / 'world.json').read_text())['counts']['documents']} documents; "
             f"{images_per_row:.2f} images per document row -> {pair_batch} pairs per step for the pair rows")
    return Setting(world=world, base=base, pair_batch=pair_batch, images_per_row=images_per_row)


def make_unit(setting: Setting, row: Row, seed: int, recipe: "Profile", out: Path, *,
              changes: dict | None = None) -> "Unit":
    """``row`` at ``seed`` on ``setting``, with ``changes`` (:meth:`RunSpec.changed` arguments) applied."""
    spec = None
    if row.objective is not None:
        spec = row_spec(setting.base, row, seed, setting.pair_batch, recipe.document_batch).changed(**(changes or {}))
    return Unit(row=row, seed=seed, spec=None if spec is None else spec.to_dict(), base=setting.base.to_dict(),
                out=str(out), settings=recipe.transfer.to_dict(), head_seeds=recipe.head_seeds)


@dataclass
class Progress:
    """One line per finished unit (a run and its evaluation) with elapsed time and an ETA from the units
    done so far (reused units count as free; ``jobs`` units run at once)."""

    total: int
    write: Callable[[str], None]
    jobs: int = 1
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    timed: list[float] = field(default_factory=list)

    def report(self, what: str, seconds: float, reused: bool) -> None:
        self.done += 1
        if not reused:
            self.timed.append(seconds)
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = (sum(self.timed) / len(self.timed)) * left / self.jobs if self.timed else 0.0
        status = "reused" if reused else f"{seconds:.0f} s"
        self.write(f"[{self.done}/{self.total}] {what}: {status} · elapsed {_clock(elapsed)} · ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def evaluate_cached(out: Path, key: str, model, tokenizer, eval_root: Path, *, seed: int,
                    settings: TransferSettings, head_seeds: dict[str, int]) -> tuple[dict, bool]:
    """The frozen-transfer results of one encoder, computed once per (encoder, evaluation) and kept in
    ``out/evaluations/``: -> (results without their creation time, reused). Each task's heads are
    trained with ``head_seeds[task]`` seeds from ``seed`` on, and each metric is their mean."""
    digest = hashlib.sha256(json.dumps([key, seed, settings.to_dict(), head_seeds]).encode()).hexdigest()[:20]
    path = out / "evaluations" / f"{digest}.json"
    if path.is_file():
        return json.loads(path.read_text()), True
    results = None
    for task, count in head_seeds.items():
        one = evaluate(model, tokenizer, eval_root, tasks=(task,), baselines=(), seed=seed, num_seeds=count,
                       settings=settings, checkpoint_source=key)
        if results is None:
            results = dict(one, protocol=dict(one["protocol"], tasks=list(head_seeds), seeds=None,
                                              seeds_per_task={}))
        else:
            results["encoders"]["checkpoint"]["tasks"].update(one["encoders"]["checkpoint"]["tasks"])
        results["protocol"]["seeds_per_task"][task] = one["protocol"]["seeds"]
    results.pop("created_utc")  # the report is a function of the runs alone
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(results, indent=1) + "\n")
    temporary.replace(path)
    return results, False


def reproduce_table1(*, profile: str = "cpu", world: str = DEFAULT_WORLD, seeds: Sequence[int] | None = None,
                     world_seed: int = 0, out: str | Path | None = None, report_dir: str | Path | None = None,
                     allow_dirty: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Train, evaluate and judge every row; returns the results document (also written to the report).
    Refused from a checkout with uncommitted changes unless ``allow_dirty`` (:func:`source_commit`)."""
    recipe = recipe_on(profile, world)
    commit = source_commit(profile, allow_dirty=allow_dirty)  # the code as it was when the reproduction started
    seeds = tuple(seeds if seeds is not None else recipe.seeds)
    out = Path(out or default_out(recipe))
    report_dir = Path(report_dir or out / "report")
    command = (f"lcl reproduce table1 --profile {profile} --world {world}"
               + f" --seeds {' '.join(map(str, seeds))} --world-seed {world_seed} --out {out}"
               + (f" --report {report_dir}" if report_dir != out / "report" else ""))
    started = time.perf_counter()
    progress(f"$ {command}")
    setting = prepare_setting(recipe, out, world_seed=world_seed, progress=progress)
    world, pair_batch, images_per_row = setting.world, setting.pair_batch, setting.images_per_row
    timing = {"world_s": time.perf_counter() - started, "runs": {}, "evaluations": {}}
    rows: dict[str, dict] = {row.label: {"objective": row.objective, "source": row.source, "setting": row.setting,
                                         "paper_row": row.label if row.label in PAPER_TABLE1 else None,
                                         "seeds": {}} for row in ROWS}
    # seed-major: a reproduction stopped early still has whole seeds
    units = [make_unit(setting, row, seed, recipe, out) for seed in seeds for row in ROWS]
    evaluations: dict[str, dict] = {}
    tracker = Progress(total=len(units), write=progress, jobs=recipe.jobs)
    for unit, done in run_units(units, jobs=recipe.jobs):
        rows[unit.row.label]["seeds"][str(unit.seed)] = done["record"]
        evaluations[unit.name] = done["evaluation"]
        timing["runs"][unit.name], timing["evaluations"][unit.name] = done["train_s"], done["evaluate_s"]
        tracker.report(unit.name, done["seconds"], done["reused"])
    results = _assemble(recipe, seeds, world_seed, world, command, commit, pair_batch, images_per_row, rows,
                        evaluations)
    timing["total_s"] = time.perf_counter() - started
    report.write_report(results, timing, report_dir)
    progress(f"report in {report_dir} ({_clock(timing['total_s'])} in all)")
    return results


@dataclass(frozen=True)
class Unit:
    """One row at one seed: train it (unless random init), evaluate it, describe its latents."""

    row: Row
    seed: int
    spec: dict | None  # the run's RunSpec; None for the random-init row
    base: dict  # the shared RunSpec (tokenizer and model of the random-init row)
    out: str
    settings: dict  # TransferSettings
    head_seeds: dict  # Profile.head_seeds

    @property
    def name(self) -> str:
        return f"{self.row.label} · seed {self.seed}"


def run_unit(unit: Unit) -> dict:
    """Train (or reuse) and evaluate (or reuse) one unit; JSON-able, so worker processes can return it."""
    started = time.perf_counter()
    base, out = RunSpec.from_dict(unit.base), Path(unit.out)
    tokenizer = build_tokenizer(base, cache=out / "tokenizers")
    if unit.spec is None:
        model, key, record, reused_run, train_s = *_random_init(base, tokenizer, unit.seed), True, None
    else:
        run = train_run(RunSpec.from_dict(unit.spec), root=out, label=unit.name, progress=lambda message: None)
        model, key, reused_run, train_s = run.model, run.identity, run.reused, run.wall_time_s
        record = _run_record(run, copies=image_copies(unit.row))
    eval_root = Path(base.data) / "eval"
    probe, _, _ = probe_images(eval_root, image_size=model.config.vision.image_size, per_class=4)
    record["held_out_latents"] = latent_diagnostics(model, probe)
    evaluation_started = time.perf_counter()
    evaluation, reused_eval = evaluate_cached(out, key, model, tokenizer, eval_root, seed=unit.seed,
                                              settings=TransferSettings(**unit.settings), head_seeds=unit.head_seeds)
    return {"record": record, "evaluation": evaluation, "train_s": train_s,
            "evaluate_s": None if reused_eval else time.perf_counter() - evaluation_started,
            "seconds": time.perf_counter() - started, "reused": reused_run and reused_eval}


def run_units(units: list, *, jobs: int, work: Callable | None = None):
    """(unit, ``work(unit)``) in the units' order (``work`` default :func:`run_unit`; the Table 4 chains pass
    theirs); with ``jobs`` > 1 the units run in that many worker processes of
    ``cores // jobs`` threads each (small models use two single-threaded processes better than one with
    two threads), started in order, so that seed 0 finishes first."""
    work = work or run_unit
    if jobs <= 1:
        for unit in units:
            yield unit, work(unit)
        return
    threads = max(1, (os.cpu_count() or jobs) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(work, unit) for unit in units]
        for unit, future in zip(units, futures):
            yield unit, future.result()


def _worker_start(threads: int) -> None:
    """A worker dies with its parent (a killed reproduction must not leave a run training behind) and
    computes with ``threads`` threads."""
    torch.set_num_threads(threads)
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass  # elsewhere the run folders' locks still keep two processes off one run


def _random_init(base: RunSpec, tokenizer, seed: int):
    """The initial weights every row of seed ``seed`` starts from (the run builder seeds them the same way)."""
    config = base.changed(seed=seed).model_config(tokenizer)
    torch.manual_seed(seed)
    model = LCLModel(config=config).eval()
    # the world is part of the key: its tokenizer and evaluation sets decide the numbers as much as the weights
    key = "random-init:" + hashlib.sha256(json.dumps([config.to_dict(), data_fingerprint(base.data)],
                                                     sort_keys=True).encode()).hexdigest()[:16]
    return model, f"{key}:seed{seed}", {"run": None, "images_seen": 0, "tokens_seen": 0, "steps": 0, "final": {},
                                        "curves": {}}


def _run_record(run, *, copies: int) -> dict:
    last = run.history[-1]
    return {"run": run.folder.name, "identity": run.identity, "steps": last["step"],
            "batch_size": run.spec.train.batch_size, "images_seen": last["images_seen"] // copies,
            "encoder_passes": last["images_seen"], "tokens_seen": last["tokens_seen"],
            "final": {key: final_value(run.history, key) for key in FINAL_LOSSES},
            "curves": {key: [[r["step"], r.get(key)] for r in run.history] for key in ("latent_variance",
                                                                                      "effective_rank")}}


def _assemble(recipe: Profile, seeds, world_seed: int, world: Path, command: str, commit: str, pair_batch: int,
              images_per_row: float, rows: dict, evaluations: dict) -> dict:
    manifest = json.loads((world / "world.json").read_text())
    transfer = {**next(iter(evaluations.values())), "checkpoint": {"source": "one encoder per row and seed"},
                "encoders": {name: evaluation["encoders"]["checkpoint"] for name, evaluation in evaluations.items()}}
    validate_results(transfer)

    def per_seed(label: str, header: str) -> dict[int, float] | None:
        values = {}
        for seed in seeds:
            value = column_value(transfer, f"{label} · seed {seed}", header)
            if value is not None:
                values[seed] = value["mean"]
        return values or None

    summary = {label: {} for label in rows}
    for header, *_ in TABLE1_COLUMNS:
        for label in rows:
            values = per_seed(label, header)
            summary[label][header] = None if values is None else {
                **interval(list(values.values())).to_dict(),
                "paper": PAPER_TABLE1.get(label, {}).get(header)}
        _rank(summary, header, [row.label for row in ROWS if row.setting == "table1"])
    first = next(iter(transfer["encoders"].values()))["tasks"]
    classification = first.get("cls/classification")
    return {
        "schema": SCHEMA, "table": "table1", "profile": recipe.name, "command": command, "commit": commit,
        "machine": machine(),
        "recipe": dataclasses.asdict(recipe) | {"seeds": list(seeds), "world_seed": world_seed,
                                                "pair_batch": pair_batch, "images_per_document_row": images_per_row},
        "world": {"folder": world.name, "content_sha256": manifest["content_sha256"], "counts": manifest["counts"],
                  "settings": manifest["settings"]},
        "split_sizes": {key: entry["splits"] for key, entry in first.items()},
        "classification_resolution": None if classification is None else {
            "val_images": classification["splits"]["val"],
            "half_width_at_30_percent": binomial_half_width(30.0, classification["splits"]["val"])},
        "rows": rows, "summary": summary, "claims": judge_all(per_seed), "transfer": transfer,
    }


def _rank(summary: dict, header: str, labels: list[str]) -> None:
    """Rank 1 = best among the paper's rows, for the kit's means and for the paper's values."""
    for source, key in (("mean", "rank"), ("paper", "paper_rank")):
        scored = [(summary[label][header][source], label) for label in labels
                  if summary[label][header] is not None and summary[label][header][source] is not None]
        for position, (_, label) in enumerate(sorted(scored, reverse=True), start=1):
            summary[label][header][key] = position


def from_command_line(reproduce: Callable, **arguments):
    """``reproduce(**arguments)`` for ``lcl reproduce``: progress lines on stdout as they come, bad input (an
    unknown profile, grid or unit, a dirty checkout, a missing file) one line on stderr -> its result, or None."""
    try:
        return reproduce(**arguments, progress=lambda message: print(message, flush=True))
    except (KeyError, ValueError, FileNotFoundError) as error:
        print(f"lcl reproduce: error: {error.args[0] if error.args else error}", file=sys.stderr)
        return None


def main_claims(reproduce: Callable, args) -> int:
    """``lcl reproduce table1|scale``: ``reproduce`` with the command line's arguments, then each claim's
    verdict on one line; 2 on bad input."""
    results = from_command_line(reproduce, profile=args.profile, world=args.world, seeds=args.seeds,
                                world_seed=args.world_seed, out=args.out, report_dir=args.report,
                                allow_dirty=args.allow_dirty)
    if results is None:
        return 2
    for claim in results["claims"]["claims"]:
        print(f"  {claim['verdict']:>12}  {claim['key']}")
    return 0
