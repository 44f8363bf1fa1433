"""One way to build a pre-training run, used by ``lcl pretrain``, ``lcl demo``, the notebooks and
``lcl reproduce``: a :class:`RunSpec` says everything that decides the result, :func:`prepare_run`
turns it into a ready trainer in a run folder, :func:`train_run` trains it (or reuses / resumes it),
and :func:`open_run` opens any run folder, whoever made it.

    spec = RunSpec(data="runs/world", train=TrainConfig(objective="lcl", steps=800, batch_size=32, lr=1e-3))
    run = train_run(spec, root="runs/session")   # runs/session/runs/lcl-<identity>/: reused when finished,
                                                 # resumed from its last checkpoint when not
    run = train_run(spec.changed(objective="coca"), root="runs/session")   # one parameter apart
    run = open_run("runs/my-run")                # run.model, run.tokenizer, run.history, run.spec

Run folder (one format)::

    RUN/run.json        {"format": "lcl-run/1", "identity", "label", "spec": RunSpec, "data_fingerprint",
                         "model": the resolved ModelConfig, "created_utc", "resumed_with_steps": [...],
                         "resized": [{"world_size", "batch_size", "grad_accum_steps", "batch_sizes"}, ...]}
    RUN/tokenizer/      the tokenizer the run uses
    RUN/metrics.jsonl   one JSON record per logged step
    RUN/checkpoints/    step_XXXXXXXX/ (see lcl_core.training.checkpointing): exact resume
    RUN/final/          the exported model (lcl_core.checkpoint.load_pretrained reads it); there = finished

A run's **identity** is a SHA-256 over its resolved spec (model config instead of the preset's name,
the objective's own source and weights when none or the same are given) and the **content fingerprint
of its data** (:func:`lcl_core.data.fingerprint.data_fingerprint`), so a world rebuilt with other knobs
never reuses old runs or tokenizers. Fields that cannot change the weights (progress bar, logging and
checkpoint cadence) are left out of it. Trained tokenizers are cached by the SHA-256 of their corpus.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from ..checkpoint import RUN_FINAL_DIR, load_pretrained, save_pretrained
from ..config import JsonConfig, ModelConfig, get_preset
from ..data import OmniCorpusFilters
from ..data.fingerprint import data_fingerprint, file_digest
from ..llava import DialogueModelConfig
from ..model import LCLModel
from ..objectives import objective_spec
from ..tokenizer import ClipTokenizer, Tokenizer, TrainedTokenizer, load_tokenizer
from .checkpointing import list_checkpoints
from .config import TrainConfig
from .data import IMAGES_APART, SOURCES, SYNTHETIC, build_batches, resolve_source_folder, source_names
from .dialogue import DialogueSpec, build_dialogue_model, dialogue_model_config
from .runtime import Runtime, init_runtime
from .trainer import CHECKPOINT_DIR, METRICS_FILE, Trainer

log = logging.getLogger(__name__)
RUN_FORMAT = "lcl-run/1"
RUN_FILE, TOKENIZER_DIR, FINAL_DIR = "run.json", "tokenizer", RUN_FINAL_DIR
# TrainConfig fields that leave weights alone (the parallel strategy, like the number of ranks, only up to
# rounding: checkpoints hold the full state, so a run may change it at a resume)
OUTSIDE_IDENTITY = ("progress_bar", "log_every", "save_every", "keep_checkpoints", "strategy")
ADDED_TRAIN_KNOBS = ("max_bad_steps", "on_bad_steps")  # added after runs existed
# what a resumed run may change: its length, and how its rows per step are laid out over processes
RESUME_CHANGES = ("steps", "batch_size", "grad_accum_steps", "batch_sizes")


@dataclass
class RunSpec(JsonConfig):
    """Everything that decides a pre-training run's result."""

    data: str | None = None  # a world folder (lcl data world) or a folder of shards; None only for synthetic
    source: str | None = None  # mmc4 | obelics | pairs | mmc4_pair | synthetic | a+b (mixed); None: the objective's
    mix: list[int] | None = None  # mixed sources: batches of each per cycle (default one each)
    batch_sizes: list[int] | None = None  # mixed sources: rows per batch of each (default train.batch_size for all)
    images: str | None = None  # MMC4/OBELICS images kept apart from the shards (default: beside them, images/)
    omnicorpus_filters: dict | None = None  # OmniCorpusFilters fields for an omnicorpus source (None: no filter)
    preset: str | None = "tiny-fast"  # a model preset (lcl_core.config.list_presets) ...
    model: dict | None = None  # ... or a ModelConfig as a dict
    tokenizer: str = "trained"  # "trained" (a BPE on DATA/corpus.txt), "clip", or a saved tokenizer folder
    vocab_size: int = 4096  # for tokenizer "trained"
    train: TrainConfig = field(default_factory=TrainConfig)
    dialogue: dict | None = None  # a DialogueSpec: the run is a tiny LLaVA-1.5 stage (lcl_core.training.dialogue)

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if self.data is not None:
            self.data = str(self.data)
        if self.model is not None:
            self.preset = None
        if self.preset is None and self.model is None:
            raise ValueError("a run needs a model: a preset or a model config")
        names = self.sources
        if self.mix is not None and len(self.mix) != len(names):
            raise ValueError(f"mix {self.mix} needs one count per source of {'+'.join(names)}")
        if self.batch_sizes is not None and (len(self.batch_sizes) != len(names) or min(self.batch_sizes) < 1):
            raise ValueError(f"batch_sizes {self.batch_sizes} needs one positive batch size per source of "
                             f"{'+'.join(names)}")
        if self.data is None and names != [SYNTHETIC]:
            raise ValueError(f"source {'+'.join(names)} reads files: give the run a data folder")
        if self.omnicorpus_filters is not None:
            OmniCorpusFilters(**self.omnicorpus_filters)  # names and ranges checked here, not at the first batch
            if "omnicorpus" not in names:
                raise ValueError(f"OmniCorpus filters are for the omnicorpus source, not {'+'.join(names)}")
        if self.dialogue is not None:
            if self.train.objective != "generation":
                raise ValueError("a dialogue stage trains next-token generation on its labels: objective generation")
            if names != [self.dialogue_spec.source]:
                raise ValueError(f"the {self.dialogue_spec.stage} stage reads {self.dialogue_spec.source}, not "
                                 f"{'+'.join(names)}")
        if self.images is not None:
            self.images = str(self.images)
            if not any(n in SOURCES and SOURCES[n].reader in IMAGES_APART for n in names):
                raise ValueError(f"an image folder is for documents with images apart (mmc4, obelics, omnicorpus, "
                                 f"mint); source {'+'.join(names)} carries its images in its tars")

    @property
    def objective(self) -> str:
        return self.train.objective

    @property
    def sources(self) -> list[str]:
        """The sources read, resolved (the stage's or the objective's own when none is given)."""
        return source_names(self.source or (self.dialogue_spec.source if self.dialogue else None), self.train.objective)

    @property
    def dialogue_spec(self) -> DialogueSpec | None:
        return DialogueSpec.from_dict(self.dialogue) if self.dialogue is not None else None

    def changed(self, **changes) -> "RunSpec":
        """A copy with fields of the spec or of its :class:`TrainConfig` changed, e.g.
        ``spec.changed(objective="coca", source="mmc4_pair", contrastive_weight=0.5)``."""
        own = {f.name for f in dataclasses.fields(self)}
        train = {k: v for k, v in changes.items() if k not in own}
        unknown = set(train) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ValueError(f"unknown run settings {sorted(unknown)}")
        updated = {k: v for k, v in changes.items() if k in own}
        if "model" in updated:
            updated.setdefault("preset", None)
        return dataclasses.replace(self, **updated, train=dataclasses.replace(self.train, **train))

    def model_config(self, tokenizer: Tokenizer) -> ModelConfig | DialogueModelConfig:
        """The model this run trains: its preset or config, bound to ``tokenizer``, with the pre-training
        heads its objective needs; for a dialogue stage, the tiny LLaVA-1.5's config."""
        if self.dialogue is not None:
            return dialogue_model_config(self.dialogue_spec, data=self.data, preset=self.preset, model=self.model,
                                         tokenizer=tokenizer, tokenizer_spec=self.tokenizer)
        base = get_preset(self.preset) if self.preset else ModelConfig.from_dict(self.model)
        bound = base.with_tokenizer(tokenizer, spec=self.tokenizer)
        return dataclasses.replace(bound, pretraining_heads=list(objective_spec(self.objective).heads))


def run_identity(spec: RunSpec) -> str:
    """SHA-256 over what decides the result (see the module docstring)."""
    resolved = spec.to_dict()
    resolved["train"] = {k: v for k, v in resolved["train"].items() if k not in OUTSIDE_IDENTITY}
    # added after runs existed: unset, they leave their identities alone
    for added in ("batch_sizes", "images", "omnicorpus_filters", "dialogue"):
        if resolved[added] is None:
            del resolved[added]
    if spec.dialogue is not None:  # the runs a stage starts from are part of what decides it
        resolved["dialogue"].update({name: read_run_file(folder)["identity"]
                                     for name, folder in spec.dialogue_spec.upstream().items()})
    for knob in ADDED_TRAIN_KNOBS:  # likewise at their defaults (they act only on non-finite steps)
        if resolved["train"][knob] == TrainConfig.__dataclass_fields__[knob].default:
            del resolved["train"][knob]
    if spec.images is not None:  # the images read are part of the data read
        if not Path(spec.images).is_dir():
            raise FileNotFoundError(f"image folder {spec.images} does not exist")
        resolved["images"] = data_fingerprint(spec.images)
    weights = objective_spec(spec.objective).weights
    for term in ("generation", "contrastive", "regression"):  # a weight restating the objective's own changes nothing
        if resolved["train"][f"{term}_weight"] == getattr(weights, term):
            resolved["train"][f"{term}_weight"] = None
    if resolved["train"]["precision"] == "auto":  # what "auto" means here: bf16 autocast on CUDA, fp32 on CPU
        resolved["train"]["precision"] = "bf16" if torch.cuda.is_available() else "fp32"
    resolved.update(data=data_fingerprint(spec.data) if spec.data else None, source="+".join(spec.sources),
                    preset=None, model=(get_preset(spec.preset) if spec.preset else ModelConfig.from_dict(spec.model))
                    .to_dict())
    if spec.tokenizer not in ("trained", "clip"):
        resolved["tokenizer"] = data_fingerprint(spec.tokenizer)
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def run_folder(root: str | Path, spec: RunSpec) -> Path:
    """Where :func:`train_run` keeps a spec's run under ``root``: ``root/runs/<objective>-<identity>``
    (``dialogue-<stage>-<identity>`` for a tiny LLaVA-1.5 stage)."""
    kind = f"dialogue-{spec.dialogue_spec.stage}" if spec.dialogue is not None else spec.objective
    return Path(root) / "runs" / f"{kind}-{run_identity(spec)[:12]}"


def build_tokenizer(spec: RunSpec, *, cache: str | Path | None = None) -> Tokenizer:
    """The spec's tokenizer; a trained BPE is cached in ``cache`` under its corpus's SHA-256."""
    if spec.tokenizer == "clip":
        return ClipTokenizer()
    if spec.tokenizer != "trained":
        return load_tokenizer(spec.tokenizer)
    corpus = Path(spec.data or "") / "corpus.txt"
    if not corpus.is_file():
        raise FileNotFoundError(f"tokenizer 'trained' needs {corpus} (written by `lcl data world`); "
                                "use tokenizer 'clip' or a saved tokenizer folder for other data")
    cached = Path(cache) / f"{file_digest(corpus)[:16]}-vocab{spec.vocab_size}" if cache else None
    if cached is not None and (cached / "lcl_tokenizer.json").is_file():
        return load_tokenizer(cached)
    with open(corpus, encoding="utf-8") as lines:
        tokenizer = TrainedTokenizer.train(lines, vocab_size=spec.vocab_size)
    if cached is not None:
        tokenizer.save(cached)
    return tokenizer


def read_run_file(folder: str | Path) -> dict | None:
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a {RUN_FORMAT} run file (format {record.get('format')!r})")
    return record


def is_finished(folder: str | Path) -> bool:
    return (Path(folder) / FINAL_DIR / "model.safetensors").is_file()


def run_label(folder: str | Path) -> str:
    """The label a run was built with (e.g. a Table 1 row), else its folder's name."""
    record = read_run_file(folder) or {}
    return record.get("label") or Path(folder).name


def find_runs(root: str | Path) -> dict[str, Path]:
    """The finished runs under ``root/runs`` (as :func:`train_run` keeps them), ``label -> folder``; a label
    shared by several runs gets the folder's name."""
    folders = sorted(p.parent for p in (Path(root) / "runs").glob("*/run.json") if is_finished(p.parent))
    labels = [run_label(folder) for folder in folders]
    return {label if labels.count(label) == 1 else f"{label} ({folder.name})": folder
            for label, folder in zip(labels, folders)}


@dataclass
class PreparedRun:
    """A run ready to train: ``trainer.run()``, then :meth:`finish` writes ``final/`` (rank 0)."""

    spec: RunSpec
    folder: Path
    identity: str
    trainer: Trainer
    tokenizer: Tokenizer
    resumed_at: int  # the step the trainer resumed from (0 for a new run)

    def finish(self) -> Path:
        final = self.folder / FINAL_DIR
        weights = self.trainer.full_weights()  # collective under FSDP
        if self.trainer.runtime.is_main:
            save_pretrained(final, self.trainer.model, self.tokenizer, weights=weights)
        if self.trainer.runtime.distributed:
            dist.barrier()
        return final


def prepare_run(spec: RunSpec, folder: str | Path, *, resume: bool = False, label: str | None = None,
                runtime: Runtime | None = None, tokenizer_cache: str | Path | None = None) -> PreparedRun:
    """Run folder, tokenizer, model, data and trainer for ``spec`` (resumed when asked); bad input raises.

    A folder holding another run is refused; one holding checkpoints of this run is refused unless
    ``resume``, which continues from its newest checkpoint. Only :data:`RESUME_CHANGES` may differ then:
    ``steps`` extends the run; the batch sizes and micro-batches per step may follow a change in the
    number of processes that keeps the rows per step (the trainer checks; ``run.json`` records each such
    resize). Rank 0 writes, the other ranks wait and read the same files; ``run.json`` is written once the
    trainer has resumed, so a refused resume leaves the folder as it was.
    """
    folder = Path(folder)
    runtime = runtime or init_runtime(precision=spec.train.precision)
    for name in spec.sources:
        if name != SYNTHETIC:
            resolve_source_folder(spec.data, name)  # a clear error before anything is read or written
    identity = run_identity(spec)
    if runtime.is_main:
        record = _claim_folder(folder, spec, identity, resume=resume, label=label, world_size=runtime.world_size)
        if not (folder / TOKENIZER_DIR / "lcl_tokenizer.json").is_file():
            build_tokenizer(spec, cache=tokenizer_cache).save(folder / TOKENIZER_DIR)
    if runtime.distributed:
        dist.barrier()  # rank 0 has written the tokenizer
    tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
    model_config = spec.model_config(tokenizer)
    if spec.dialogue is not None:
        model = build_dialogue_model(spec.dialogue_spec, model_config, seed=spec.train.seed)
    else:
        torch.manual_seed(spec.train.seed)  # identical initial weights on every rank, rerun and objective
        model = LCLModel(config=model_config)
    batches = build_batches(data=spec.data, source="+".join(spec.sources), config=spec.train, model_config=model_config,
                            tokenizer=tokenizer, rank=runtime.rank, world_size=runtime.world_size, mix=spec.mix,
                            batch_sizes=spec.batch_sizes, images=spec.images,
                            omnicorpus_filters=spec.omnicorpus_filters)
    trainer = Trainer(model=model, config=spec.train, data=batches, run_dir=folder, runtime=runtime)
    resumed_at = trainer.resume() if resume else 0
    if runtime.is_main:
        (folder / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return PreparedRun(spec=spec, folder=folder, identity=identity, trainer=trainer, tokenizer=tokenizer,
                       resumed_at=resumed_at)


def _claim_folder(folder: Path, spec: RunSpec, identity: str, *, resume: bool, label: str | None,
                  world_size: int) -> dict:
    """Check that the folder is free or holds this run; returns the ``run.json`` record to write."""
    record = read_run_file(folder)
    if record is None and list_checkpoints(folder / CHECKPOINT_DIR):
        raise ValueError(f"{folder} holds checkpoints but no {RUN_FILE}: choose another folder")
    if record is not None:
        saved = RunSpec.from_dict(record["spec"])
        if not resume and list_checkpoints(folder / CHECKPOINT_DIR):
            raise ValueError(f"{folder} already holds checkpoints; pass --resume to continue it or choose another "
                             "--out")
        if record["identity"] != identity:
            restored = spec.changed(**{name: _setting(saved, name) for name in RESUME_CHANGES})
            if not resume or run_identity(restored) != record["identity"]:
                raise ValueError(f"{folder} holds another run (identity {record['identity'][:12]}, this one "
                                 f"{identity[:12]}); choose another folder")
            if spec.train.steps != saved.train.steps:
                record.setdefault("resumed_with_steps", []).append(spec.train.steps)  # the run is extended
            layout = {name: _setting(spec, name) for name in RESUME_CHANGES if name != "steps"}
            if layout != {name: _setting(saved, name) for name in layout}:
                record.setdefault("resized", []).append({"world_size": world_size, **layout})
        record.update(identity=identity, spec=spec.to_dict(), label=label or record.get("label"))
    else:
        record = {"format": RUN_FORMAT, "identity": identity, "label": label, "spec": spec.to_dict(),
                  "data_fingerprint": data_fingerprint(spec.data) if spec.data else None,
                  "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    folder.mkdir(parents=True, exist_ok=True)
    return record


def _setting(spec: RunSpec, name: str):
    return getattr(spec, name) if name == "batch_sizes" else getattr(spec.train, name)


@dataclass
class Run:
    """A finished run, opened: its spec, the trained model (eval mode) and the logged records."""

    folder: Path
    spec: RunSpec
    identity: str
    label: str | None
    model: Any  # LCLModel
    tokenizer: Tokenizer
    history: list[dict] = field(default_factory=list)
    reused: bool = True  # False when this call trained it

    @property
    def wall_time_s(self) -> float | None:
        """Training wall time from the logged records (summed over sittings of a resumed run)."""
        return _wall_time(self.history)


def open_run(folder: str | Path) -> Run:
    """Open a finished run folder made by anyone (``lcl pretrain``, ``lcl demo``, notebooks, ``lcl reproduce``)."""
    folder = Path(folder)
    record = read_run_file(folder)
    if record is None:
        raise FileNotFoundError(f"{folder} is not a run folder: it has no {RUN_FILE}")
    if not is_finished(folder):
        raise FileNotFoundError(f"{folder} has not finished training (no {FINAL_DIR}/); resume it with "
                                f"`lcl pretrain --out {folder} --data ... --resume`")
    model, tokenizer = load_pretrained(folder / FINAL_DIR)
    return Run(folder=folder, spec=RunSpec.from_dict(record["spec"]), identity=record["identity"],
               label=record.get("label"), model=model.eval(), tokenizer=tokenizer, history=read_history(folder))


def read_history(folder: str | Path) -> list[dict]:
    path = Path(folder) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _wall_time(history: Sequence[dict]) -> float | None:
    """Sum of the last ``elapsed_s`` of each sitting (elapsed restarts at 0 when a run resumes)."""
    total, previous = 0.0, None
    for record in history:
        elapsed = record.get("elapsed_s")
        if elapsed is None:
            continue
        if previous is not None and elapsed < previous:
            total += previous
        previous = elapsed
    return None if previous is None else total + previous


def train_run(spec: RunSpec, *, root: str | Path | None = None, folder: str | Path | None = None,
              label: str | None = None, callbacks: Sequence = (),
              progress: Callable[[str], None] = lambda message: print(message, file=sys.stderr)) -> Run:
    """Train ``spec`` in ``folder`` (default: :func:`run_folder` under ``root``) unless it is finished
    there already; an unfinished run continues from its last checkpoint. ``callbacks`` are objects with
    ``attach(trainer)`` (e.g. :class:`lcl_core.viz.LiveDashboard`), attached only when training runs."""
    if folder is None and root is None:
        raise ValueError("train_run needs a root (runs are kept by identity) or a folder")
    folder = Path(folder) if folder is not None else run_folder(root, spec)
    name = label or folder.name
    if is_finished(folder) and read_run_file(folder)["identity"] == run_identity(spec):
        progress(f"{name}: reusing {folder}")
        return open_run(folder)
    if is_finished(folder):
        raise ValueError(f"{folder} holds another finished run; choose another folder")
    with _only_trainer(folder):
        prepared = prepare_run(spec, folder, resume=True, label=label,
                               tokenizer_cache=Path(root) / "tokenizers" if root is not None else None)
        for callback in callbacks:
            callback.attach(prepared.trainer)
        started = time.perf_counter()
        if prepared.resumed_at:
            progress(f"{name}: resuming at step {prepared.resumed_at} of {spec.train.steps}")
        prepared.trainer.run()
        prepared.finish()
    progress(f"{name}: trained {spec.train.steps - prepared.resumed_at} steps in {time.perf_counter() - started:.0f} s "
             f"-> {folder}")
    run = open_run(folder)
    run.reused = False
    return run


@contextlib.contextmanager
def _only_trainer(folder: Path):
    """Hold ``folder/.lock`` while training: a second process asked for the same run (two notebooks, an
    orphaned worker) is refused instead of writing the same checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{folder} is being trained by another process; wait for it or stop it") from None
        yield


def remove_run(folder: str | Path) -> None:
    """Delete a run folder (e.g. to retrain from scratch)."""
    if read_run_file(folder) is None:
        raise ValueError(f"{folder} is not a run folder; refusing to delete it")
    shutil.rmtree(folder)
