"""Checkpoints: atomic writes, pruning, corrupt-latest fallback, and a SIGKILLed run that resumes to
exactly the weights and loss of an uninterrupted one."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file

from lcl_core.model import LCLModel
from lcl_core.training import TrainConfig, Trainer
from lcl_core.training.checkpointing import (CorruptCheckpointError, list_checkpoints, load_latest_checkpoint,
                                             save_checkpoint)
from lcl_core.training.data import build_batches

from training_helpers import (kill_after_step, losses, pretrain_command, run_quietly, same_final_weights, small_world,
                              tiny_model_config, world_tokenizer)


def make_trainer(run_dir, *, steps: int, save_every: int) -> Trainer:
    tokenizer = world_tokenizer()
    model_config = tiny_model_config(tokenizer)
    config = TrainConfig(steps=steps, batch_size=4, lr=2e-3, warmup_steps=1, save_every=save_every,
                         progress_bar=False)
    torch.manual_seed(0)
    data = build_batches(data=small_world(), source=None, config=config, model_config=model_config,
                         tokenizer=tokenizer, rank=0, world_size=1)
    return Trainer(model=LCLModel(config=model_config), config=config, data=data, run_dir=run_dir)


def test_keeps_the_latest_two_and_ignores_partial_folders(tmp_path):
    weights, state = {"w": torch.arange(3.0)}, {"note": "x"}
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step=step, weights=weights, state=state, keep=2)
    (tmp_path / ".partial-step_00000004-123").mkdir()  # what a kill during a save leaves behind
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000002"]
    assert load_latest_checkpoint(tmp_path).step == 3
    save_checkpoint(tmp_path, step=4, weights=weights, state=state, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000003", "step_00000004"]


def test_state_loads_with_weights_only(tmp_path):
    trainer = make_trainer(tmp_path, steps=1, save_every=1)
    trainer.run()
    state = torch.load(trainer.last_checkpoint / "state.pt", weights_only=True)
    assert state["step"] == 1 and state["train_config"]["objective"] == "lcl"
    assert {"python", "numpy", "torch"} <= set(state["rng"][0]) and state["data"][0]["positions"]
    assert set(state["optimizer"]) == {"state", "param_groups"}


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    trainer = make_trainer(tmp_path, steps=4, save_every=2)
    trainer.run()
    latest, previous = list_checkpoints(tmp_path / "checkpoints")
    weights = latest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the tensor data
    weights.write_bytes(bytes(data))

    resumed = make_trainer(tmp_path, steps=4, save_every=2)
    with caplog.at_level(logging.WARNING):
        assert resumed.resume() == 2
    assert "step_00000004 is corrupt (model.safetensors does not match its SHA-256" in caplog.text
    assert "resuming from the older checkpoint" in caplog.text
    assert torch.equal(resumed.model.logit_scale, load_file(str(previous / "model.safetensors"))["logit_scale"])

    (previous / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpointError, match="every checkpoint .* is corrupt"):
        load_latest_checkpoint(tmp_path / "checkpoints")


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    settings = ("--steps", "8", "--save-every", "2")
    straight = tmp_path / "straight"
    run_quietly(pretrain_command(straight, *settings))

    killed = tmp_path / "killed"
    kill_after_step(pretrain_command(killed, *settings), killed, 5)
    assert not (killed / "final").exists()

    result = run_quietly(pretrain_command(killed, *settings, "--resume"))
    assert "resuming" in result.stderr
    assert losses(killed) == losses(straight)  # every step, before and after the kill
    assert same_final_weights(straight, killed)
