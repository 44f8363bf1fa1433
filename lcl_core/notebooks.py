"""The narrated notebook sequence: where it lives, its profiles, and the papermill runner.

``lcl notebooks run --profile smoke|full [-p NAME VALUE]... [--out DIR] [--only NAME...]`` executes
the notebooks in order with papermill into one output folder. Every notebook writes
``{out_dir}/{name}.results.json`` beside its executed copy ``{out_dir}/{name}.ipynb``, and later
notebooks reuse what earlier ones left in ``out_dir`` (the world, trained runs).

Profiles are parameter overrides per notebook (``"*"`` applies to every notebook that declares the
parameter). ``full`` is the notebooks' own defaults — what a reader gets in Jupyter — and ``smoke``
shrinks everything so that CI runs the whole sequence in a few minutes on two CPU cores.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

SEQUENCE = (
    "00_quickstart",
    "01_interleaved_data",
    "02_model",
    "03_objective",
    "04_pretrain",
    "05_baselines",
    "06_ablations",
    "07_transfer",
    "08_scale_up",
)

# Parameter overrides by profile, then by notebook ("*": every notebook that declares the name).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"*": {"profile": "full", "interactive": False}},
    "smoke": {
        "*": {"profile": "smoke", "interactive": False, "world_docs": 200, "steps": 30, "batch_size": 8, "lr": 1e-3},
        "03_objective": {"collapse_steps": 25, "collapse_batch_size": 8},
        "00_quickstart": {"steps": 20, "head_epochs": 3},  # unlike 04's run: 04 trains live
        "07_transfer": {"head_epochs": 3, "num_seeds": 1},
        "08_scale_up": {"official_preset": "tiny-fast"},
    },
}

KERNEL = "python3"  # jupyter_client runs the kernel spec's "python" with the current interpreter


def repo_root() -> Path:
    """The checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[1]


def notebook_dir() -> Path:
    folder = repo_root() / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks/ beside {Path(__file__).parent}: the notebooks ship with the "
                                "repository, install the kit from a checkout (pip install -e .)")
    return folder


def notebook_path(name: str) -> Path:
    if name not in SEQUENCE:
        raise KeyError(f"unknown notebook {name!r}; the sequence is {', '.join(SEQUENCE)}")
    return notebook_dir() / f"{name}.ipynb"


def results_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.results.json"


# ---- used inside the notebooks --------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-ready copy: tensors and numpy values become Python numbers/lists, NaN becomes None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(out_dir: str | Path, name: str, results: dict[str, Any]) -> Path:
    """Write a notebook's evidence as ``{out_dir}/{name}.results.json`` and return the path."""
    path = results_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(results), indent=2, allow_nan=False) + "\n")
    return path


def shared_fixture(*parts: str) -> Path:
    """A path under ``../shared/fixtures`` beside the repository (it may be absent: check ``exists()``)."""
    return repo_root().parent.joinpath("shared", "fixtures", *parts)


def ensure_world(out_dir: str | Path, *, docs: int, seed: int, tier: str = "basic", image_size: int = 32,
                 knobs=None, folder: str | Path | None = None) -> Path:
    """The offline world for these settings under ``{out_dir}/worlds/``, built only when absent.

    A world is reused when its ``world.json`` records the same documents, seed, tier, image size and
    knobs, so every notebook of one output folder trains and evaluates on the same pages.
    """
    from dataclasses import asdict

    from .data import WorldKnobs, build_world

    knobs = knobs or WorldKnobs()
    changed = {k: v for k, v in asdict(knobs).items() if v != getattr(WorldKnobs(), k)}
    name = f"{tier}-{docs}docs-{image_size}px-seed{seed}" + "".join(f"-{k}{v}" for k, v in sorted(changed.items()))
    world = Path(folder) if folder is not None else Path(out_dir) / "worlds" / name
    manifest = world / "world.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        wanted = {"seed": seed, "tier": tier, "image_size": image_size, "knobs": asdict(knobs)}
        if {k: found.get(k) for k in wanted} == wanted and found["counts"]["documents"] == docs:
            return world
    build_world(world, docs=docs, seed=seed, tier=tier, image_size=image_size, knobs=knobs)
    return world


def ensure_tokenizer(out_dir: str | Path, world: str | Path, *, vocab_size: int):
    """A BPE trained on the world's ``corpus.txt``, saved under ``{out_dir}/tokenizers/`` and reused."""
    from .tokenizer import TrainedTokenizer, load_tokenizer

    folder = Path(out_dir) / "tokenizers" / f"{Path(world).name}-vocab{vocab_size}"
    if (folder / "lcl_tokenizer.json").is_file():
        return load_tokenizer(folder)
    with open(Path(world) / "corpus.txt", encoding="utf-8") as lines:
        tokenizer = TrainedTokenizer.train(lines, vocab_size=vocab_size)
    tokenizer.save(folder)
    return tokenizer


# ---- pre-training runs shared between notebooks ---------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """What every pre-training run of one notebook session shares: model, world, tokenizer, schedule.
    Each notebook builds it from its parameters; runs made with the same recipe are reused."""

    preset: str = "tiny-fast"
    world_docs: int = 2000
    seed: int = 0
    vocab_size: int = 4096
    steps: int = 800
    batch_size: int = 32
    lr: float = 1e-3

    def world(self, out_dir: str | Path) -> Path:
        from .config import get_preset

        return ensure_world(out_dir, docs=self.world_docs, seed=self.seed,
                            image_size=get_preset(self.preset).vision.image_size)

    def tokenizer(self, out_dir: str | Path):
        return ensure_tokenizer(out_dir, self.world(out_dir), vocab_size=self.vocab_size)


# The paper's Table 1 rows that this kit trains: label -> (objective, data source in the world)
TABLE1_RUNS = {
    "CLIP": ("contrastive", "mmc4_pair"),
    "CoCa": ("coca", "mmc4_pair"),
    "Flamingo-style": ("generation", "mmc4"),
    "Emu-style": ("generation_regression", "mmc4"),
    "LCL": ("lcl", "mmc4"),
}
# Table 1 of the paper (frozen transfer, ViT-L/14 pre-trained from scratch on MMC4), LCL-METHOD §6;
# columns in lcl_core.transfer.results.TABLE1_COLUMNS order
PAPER_TABLE1_COLUMNS = ("IN-1k", "COCO TR@1", "COCO IR@1", "F30k TR@1", "F30k IR@1", "COCO B@4", "COCO CIDEr",
                        "NoCaps CIDEr")
PAPER_TABLE1 = {
    "CLIP": (74.8, 46.4, 32.5, 76.2, 60.0, 23.9, 82.9, 78.4),
    "CoCa": (75.4, 48.6, 34.3, 76.5, 61.9, 23.7, 84.8, 80.5),
    "BLIP2": (74.5, 46.5, 31.3, 74.9, 57.8, 23.7, 82.9, 78.1),
    "BEiT3": (73.3, 45.1, 30.6, 73.2, 57.1, 23.3, 81.4, 76.7),
    "Flamingo-style": (24.0, 10.6, 5.6, 17.7, 10.8, 8.7, 18.1, 18.5),
    "Emu-style": (5.7, 2.3, 1.4, 4.8, 2.7, 0.3, 4.4, 4.6),
    "LCL": (75.2, 48.5, 34.5, 76.3, 60.4, 24.4, 87.5, 82.5),
}
MIXED_SOURCE = "mmc4+pairs"  # alternate batches of interleaved documents and LAION-style pairs


@dataclass
class PretrainedRun:
    folder: Path
    label: str
    objective: str
    data_source: str
    overrides: dict
    model: Any  # LCLModel
    tokenizer: Any
    history: list[dict] = field(default_factory=list)  # the trainer's logged records
    reused: bool = False


def pretrain(out_dir: str | Path, recipe: Recipe, label: str, *, objective: str = "lcl",
             data_source: str | None = None, callbacks: Sequence = (), reuse: bool = True,
             progress: Callable[[str], None] = print, **train_overrides) -> PretrainedRun:
    """Pre-train one model of the session, or load it when ``{out_dir}/runs/`` already holds it.

    A run is identified by objective, data source, overrides and recipe (``label`` only names it), so
    two notebooks asking for the same run share one folder, ``runs/<objective>-<digest>/``.

    ``train_overrides`` are :class:`~lcl_core.training.TrainConfig` fields beyond the recipe (e.g.
    ``contrastive_weight=0.5``, ``img_first_prob=1.0``); ``data_source`` is a folder of the world
    (default: the objective's usual one) or :data:`MIXED_SOURCE`. ``callbacks`` are objects with
    ``attach(trainer)`` (e.g. :class:`lcl_core.viz.LiveDashboard`), attached only when training runs.
    The run folder holds ``run.json``, ``metrics.jsonl`` and ``final/`` (a :func:`save_pretrained` model).
    """
    import torch

    from .checkpoint import load_pretrained, save_pretrained
    from .config import get_preset
    from .model import LCLModel
    from .training import TrainConfig, Trainer
    from .training.callbacks import JsonLinesWriter, MetricsHistory
    from .training.data import DEFAULT_SOURCE, AlternatingBatches, build_batches

    source = data_source or DEFAULT_SOURCE[objective]
    train_overrides = _without_defaults(objective, train_overrides)
    spec = {"objective": objective, "data_source": source, "overrides": train_overrides,
            "recipe": dataclasses.asdict(recipe)}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    folder = Path(out_dir) / "runs" / f"{objective}-{digest}"  # the label only names it: equal runs are shared
    final = folder / "final"
    if reuse and (final / "model.safetensors").is_file():
        model, tokenizer = load_pretrained(final)
        progress(f"{label}: reusing {folder}")
        return PretrainedRun(folder=folder, label=label, objective=objective, data_source=source,
                             overrides=train_overrides, model=model.eval(), tokenizer=tokenizer,
                             history=_read_history(folder / "metrics.jsonl"), reused=True)
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or superseded run of the same spec
    folder.mkdir(parents=True)
    world, tokenizer = recipe.world(out_dir), recipe.tokenizer(out_dir)
    train = TrainConfig(objective=objective, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                        seed=recipe.seed, progress_bar=False, log_every=max(1, recipe.steps // 50),
                        **train_overrides)
    model_config = get_preset(recipe.preset).with_tokenizer(tokenizer)
    record = {"label": label, **spec, "model": model_config.to_dict(), "data": str(world), "train": train.to_dict()}
    (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    sources = source.split("+")
    streams = [build_batches(data=world, source=s, config=train, model_config=model_config, tokenizer=tokenizer,
                             rank=0, world_size=1) for s in sources]
    torch.manual_seed(recipe.seed)  # the same initial weights for every objective
    model = LCLModel(config=model_config)
    trainer = Trainer(model=model, config=train, data=streams[0] if len(streams) == 1 else AlternatingBatches(streams))
    history = MetricsHistory().attach(trainer)
    JsonLinesWriter(folder / "metrics.jsonl").attach(trainer)
    for callback in callbacks:
        callback.attach(trainer)
    started = time.perf_counter()
    trainer.run()
    save_pretrained(final, model, tokenizer)
    progress(f"{label}: trained {recipe.steps} steps in {time.perf_counter() - started:.0f} s -> {folder}")
    return PretrainedRun(folder=folder, label=label, objective=objective, data_source=source,
                         overrides=train_overrides, model=model.eval(), tokenizer=tokenizer, history=history.records)


def probe_images(world: str | Path, *, image_size: int, per_class: int = 1, max_classes: int | None = None):
    """Held-out evaluation images (never seen in pre-training), ``per_class`` from each class of the
    world's classification split: (images [M,3,H,W], labels [M], class names)."""
    import torch

    from .transfer.datasets import read_image_folder
    from .transfer.features import ImageSet

    split = read_image_folder(Path(world) / "eval" / "classification" / "val")
    classes = range(len(split.classes))[:max_classes]
    chosen = [i for c in classes for i in [j for j, label in enumerate(split.labels) if label == c][:per_class]]
    images = ImageSet(paths=[split.paths[i] for i in chosen], image_size=image_size).load(range(len(chosen)))
    return images, torch.tensor([split.labels[i] for i in chosen]), [split.class_names[c] for c in classes]


def latent_diagnostics(model, images) -> dict[str, float]:
    """Collapse diagnostics of a model's image latents on a fixed image set."""
    import torch

    from .diagnostics import effective_rank, latent_variance

    with torch.no_grad():
        latents = model.eval().encode_image(images, normalize=False)
    return {"latent_variance": latent_variance(latents), "effective_rank": effective_rank(latents)}


def find_runs(out_dir: str | Path, recipe: Recipe) -> list[Path]:
    """Finished run folders under ``{out_dir}/runs/`` made with ``recipe``, in creation order."""
    found = []
    for run_file in Path(out_dir).glob("runs/*/run.json"):
        spec = json.loads(run_file.read_text())
        finished = (run_file.parent / "final" / "model.safetensors").is_file()
        if finished and spec.get("recipe") == dataclasses.asdict(recipe):
            found.append(run_file.parent)
    return sorted(found, key=lambda folder: (folder / "final").stat().st_mtime)


def load_run(folder: str | Path) -> PretrainedRun:
    from .checkpoint import load_pretrained

    folder = Path(folder)
    spec = json.loads((folder / "run.json").read_text())
    model, tokenizer = load_pretrained(folder / "final")
    return PretrainedRun(folder=folder, label=spec["label"], objective=spec["objective"],
                         data_source=spec["data_source"], overrides=spec["overrides"], model=model.eval(),
                         tokenizer=tokenizer, history=_read_history(folder / "metrics.jsonl"), reused=True)


def _without_defaults(objective: str, overrides: dict) -> dict:
    """Drop overrides that restate a default, so that equal runs get one folder."""
    from .objectives import OBJECTIVES
    from .training import TrainConfig

    weights, defaults = OBJECTIVES[objective], TrainConfig()
    default_of = {"generation_weight": weights.generation, "contrastive_weight": weights.contrastive,
                  "regression_weight": weights.regression}
    return {k: v for k, v in overrides.items() if v != default_of.get(k, getattr(defaults, k, object()))}


def _read_history(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ---- the runner -------------------------------------------------------------------------------------
@dataclass
class NotebookRun:
    name: str
    notebook: Path
    results: Path
    seconds: float


def declared_parameters(name: str) -> dict[str, Any]:
    """The parameters a notebook's ``parameters`` cell declares, with their default values."""
    import papermill

    found = papermill.inspect_notebook(str(notebook_path(name)))
    return {key: _literal(info["default"]) for key, info in found.items()}


def resolve_parameters(name: str, *, profile: str, out_dir: str | Path,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What papermill injects into one notebook: profile values, then ``overrides``, then ``out_dir``;
    names the notebook does not declare are left out."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    declared = declared_parameters(name)
    table = PROFILES[profile]
    merged = {**table.get("*", {}), **table.get(name, {}), **(overrides or {}), "out_dir": str(out_dir)}
    return {key: value for key, value in merged.items() if key in declared}


def run_notebooks(*, profile: str, out_dir: str | Path, only: Iterable[str] | None = None,
                  overrides: dict[str, Any] | None = None, progress: Callable[[str], None] = print,
                  log_output: bool = False) -> list[NotebookRun]:
    """Execute the sequence (or ``only`` those notebooks, kept in sequence order) with papermill."""
    import papermill

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = list(SEQUENCE) if not only else [n for n in SEQUENCE if n in set(only)]
    unknown = set(only or ()) - set(SEQUENCE)
    if unknown:
        raise KeyError(f"unknown notebooks {sorted(unknown)}; the sequence is {', '.join(SEQUENCE)}")
    if overrides:
        declared_somewhere = set().union(*(declared_parameters(n) for n in selected))
        undeclared = sorted(set(overrides) - declared_somewhere)
        if undeclared:
            raise KeyError(f"no selected notebook declares the parameters {undeclared}")
    runs = []
    for name in selected:
        parameters = resolve_parameters(name, profile=profile, out_dir=out_dir, overrides=overrides)
        executed = out_dir / f"{name}.ipynb"
        progress(f"[{name}] running with {json.dumps(parameters)}")
        start = time.perf_counter()
        papermill.execute_notebook(str(notebook_path(name)), str(executed), parameters=parameters,
                                   kernel_name=KERNEL, cwd=str(notebook_dir()), progress_bar=False,
                                   log_output=log_output)
        run = NotebookRun(name=name, notebook=executed, results=results_path(out_dir, name),
                          seconds=time.perf_counter() - start)
        if not run.results.is_file():
            raise RuntimeError(f"{name} ran but wrote no {run.results.name}")
        progress(f"[{name}] {run.seconds:.0f} s  notebook: {run.notebook}  results: {run.results}")
        runs.append(run)
    return runs


def _literal(text: str) -> Any:
    """A parameter value from the command line or a parameters cell: a Python literal, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ---- ``lcl notebooks`` ----------------------------------------------------------------------------
def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="execute the sequence with papermill")
    run.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    run.add_argument("--out", type=Path, default=None,
                     help="output folder for executed notebooks, results and runs (default runs/notebooks/PROFILE)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter in every notebook that declares it (value read as a Python literal)")
    run.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these notebooks")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")
    sub.add_parser("list", help="the sequence, each notebook's parameters and the profiles' overrides")


def main(args) -> int:
    if args.action == "list":
        for name in SEQUENCE:
            print(f"{name}: {json.dumps(declared_parameters(name))}")
        for profile, table in PROFILES.items():
            print(f"profile {profile}: {json.dumps(table)}")
        return 0
    out_dir = args.out or Path("runs") / "notebooks" / args.profile
    overrides = {name: _literal(value) for name, value in args.parameter}
    try:
        runs = run_notebooks(profile=args.profile, out_dir=out_dir, only=args.only, overrides=overrides,
                             log_output=args.log_output)
    except KeyError as error:  # an unknown notebook, profile or parameter
        print(f"lcl notebooks: error: {error.args[0]}", file=sys.stderr)
        return 2
    total = sum(r.seconds for r in runs)
    print(f"{len(runs)} notebooks in {total:.0f} s; executed notebooks and results in {Path(out_dir).resolve()}")
    return 0
