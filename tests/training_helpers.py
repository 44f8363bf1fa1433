"""What the training tests share: one small world built once per session, its tokenizer, a tiny
odd-sized model config, and a way to run ``lcl pretrain`` in a subprocess."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lcl_core.data import EvalSizes, build_world
from lcl_core.objectives import objective_spec
from lcl_core.tokenizer import TrainedTokenizer, load_tokenizer
from lcl_core.training import RunSpec, TrainConfig

from conftest import odd_config

REPO = Path(__file__).resolve().parents[1]
WORLD_DOCS = 48


@functools.cache
def small_world() -> Path:
    """48 documents and 48 pairs, every source in a single shard (so two ranks split records, not
    files, and their union is exactly one rank's batch), plus a 512-token BPE in ``tokenizer/``."""
    folder = Path(tempfile.mkdtemp(prefix="lcl-train-world-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    build_world(folder, docs=WORLD_DOCS, pairs=WORLD_DOCS, seed=0, docs_per_shard=10_000, pairs_per_shard=10_000,
                eval_sizes=EvalSizes(classification_train_per_class=2, classification_val_per_class=1,
                                     captions_train=4, captions_val=4, captions_test=4, nocaps_per_domain=2),
                processes=2)
    with open(folder / "corpus.txt") as lines:
        TrainedTokenizer.train(lines, vocab_size=512).save(folder / "tokenizer")
    return folder


def world_tokenizer():
    return load_tokenizer(small_world() / "tokenizer")


def tiny_model_config(tokenizer, *, context_length: int = 96, objective: str = "lcl"):
    """The odd test model (30 px, patch 10, widths 44/36, 3 layers) with the world's tokenizer and the
    pre-training heads ``objective`` needs."""
    config = odd_config(context_length=context_length).with_tokenizer(tokenizer)
    return dataclasses.replace(config, pretraining_heads=list(objective_spec(objective).heads))


def tiny_model_config_file(folder: Path) -> Path:
    path = folder / "tiny-model.json"
    tiny_model_config(world_tokenizer()).to_json(path)
    return path


def tiny_spec(**train) -> RunSpec:
    """The small world with the odd test model and the world's saved tokenizer."""
    return RunSpec(data=str(small_world()), preset=None, model=tiny_model_config(world_tokenizer()).to_dict(),
                   tokenizer=str(small_world() / "tokenizer"),
                   train=TrainConfig(batch_size=4, lr=2e-3, warmup_steps=1, progress_bar=False, **train))


def pretrain_command(out: Path, *extra: str, launcher: tuple[str, ...] = (), recorded: bool = False) -> list[str]:
    """``lcl pretrain`` on the small world with the tiny model, as a subprocess argv; ``recorded``: through
    ``tests/recorded_pretrain.py``, which writes down every row's data position."""
    world = small_world()
    config = tiny_model_config_file(out.parent)
    entry = [str(REPO / "tests" / "recorded_pretrain.py")] if recorded else ["-m", "lcl_core.cli", "pretrain"]
    return [sys.executable, *launcher, *entry, "--data", str(world), "--out", str(out),
            "--model-config", str(config), "--tokenizer", str(world / "tokenizer"), "--no-progress",
            "--batch-size", "4", "--lr", "2e-3", "--warmup", "2", *extra]


def run_quietly(argv: list[str], **options) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    # the timeout only ends a hung child: CI's machine ran a 100-s smoke grid past 240 s (speed targets live in benchmarks/)
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, **options)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def kill_when(argv: list[str], ready, *, timeout: float = 300, sig: signal.Signals = signal.SIGKILL) -> tuple[int, str]:
    """Start ``argv`` (one thread, as :func:`run_quietly`), send it ``sig`` (SIGKILL unless told) as soon
    as ``ready()`` is true, wait for it to end; returns its exit status and standard error."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, "the process ended before it could be signalled"
            assert time.monotonic() < deadline, "the process made no progress"
            time.sleep(0.01)  # tiny runs take well under a second from one checkpoint to the next
        process.send_signal(sig)
        process.wait(timeout=timeout)
        errors.seek(0)
        return process.returncode, errors.read()


def kill_after_step(argv: list[str], metrics_folder: Path, step: int) -> None:
    """SIGKILL a training command once ``metrics_folder/metrics.jsonl`` logs ``step``."""
    kill_when(argv, lambda: (metrics_folder / "metrics.jsonl").exists() and max(losses(metrics_folder), default=0) >= step)


def same_final_weights(first: Path, second: Path) -> bool:
    a, b = (load_file(str(folder / "final" / "model.safetensors")) for folder in (first, second))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
