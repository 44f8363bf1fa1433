"""``lcl pretrain`` and ``lcl demo``: clear messages for bad input, the run folder, the demo end to end."""

from __future__ import annotations

import json

import pytest

from lcl_core.checkpoint import load_pretrained
from lcl_core.cli import main as lcl

from training_helpers import small_world, tiny_model_config_file


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    assert lcl(["pretrain", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "data folder" in error and "does not exist" in error and "lcl data world" in error


def test_folder_without_the_source_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text("a small corpus\n")
    assert lcl(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--tokenizer", "clip"]) == 2
    assert f"no mmc4 data in {tmp_path}" in capsys.readouterr().err


def test_unknown_preset_lists_the_known_ones(tmp_path, capsys):
    assert lcl(["pretrain", "--data", str(small_world()), "--out", str(tmp_path / "run"),
                "--preset", "tiny-slow", "--tokenizer", str(small_world() / "tokenizer")]) == 2
    error = capsys.readouterr().err
    assert "unknown preset 'tiny-slow'" in error and "tiny-fast" in error


def test_bad_training_value_is_a_clear_error(tmp_path, capsys):
    assert lcl(["pretrain", "--data", str(small_world()), "--out", str(tmp_path / "run"),
                "--img-first-prob", "1.5"]) == 2
    assert "img_first_prob must lie in [0, 1]" in capsys.readouterr().err


def test_pretrain_writes_the_run_folder_and_refuses_to_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["pretrain", "--data", str(small_world()), "--out", str(run), "--model-config",
            str(tiny_model_config_file(tmp_path)), "--tokenizer", str(small_world() / "tokenizer"),
            "--objective", "coca", "--steps", "2", "--batch-size", "4", "--no-progress"]
    assert lcl(argv) == 0
    assert {p.name for p in run.iterdir()} >= {"run.json", "tokenizer", "metrics.jsonl", "checkpoints", "final"}
    saved = json.loads((run / "run.json").read_text())
    assert saved["format"] == "lcl-run/1" and saved["spec"]["train"]["objective"] == "coca"
    assert saved["spec"]["source"] is None and saved["data_fingerprint"].startswith("world:")
    model, tokenizer = load_pretrained(run / "final")
    assert model.config.bridge.vocab_size == tokenizer.vocab_size
    assert "done:" in capsys.readouterr().out

    assert lcl(argv) == 2
    assert "already holds checkpoints; pass --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end_at_smoke_size(tmp_path, capsys):
    assert lcl(["demo", "--out", str(tmp_path / "demo"), "--docs", "40", "--steps", "3", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "what pre-training changed" in out and "random-init" in out
    assert "retrieval TR@1" in out and "class probe top-1" in out
    assert len(list((tmp_path / "demo" / "runs").glob("lcl-*/final/model.safetensors"))) == 1
