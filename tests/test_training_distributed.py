"""DDP through torchrun: two gloo processes with 4 sequences each train exactly like one process with 8.

The world's pairs sit in one shard, so the two ranks split its records (even / odd) and the union of
their batches is the single process's batch; the losses are global means (lcl_core.objectives).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from lcl_core.config import ModelConfig
from lcl_core.model import LCLModel
from lcl_core.objectives import OBJECTIVES
from lcl_core.training import TrainConfig, Trainer
from lcl_core.training.checkpointing import read_checkpoint, step_folder_name
from lcl_core.training.sharding import load_full_state

from training_helpers import REPO, losses, pretrain_command, run_quietly

TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
SETTINGS = ("--steps", "3", "--data-source", "pairs", "--save-every", "3")


def train_one_and_two_processes(single, double, settings, *two_process_flags) -> None:
    """``settings`` with 8 rows in one process and on two gloo processes with ``two_process_flags``
    (their batch size); the losses of every step agree within 1e-5."""
    run_quietly(pretrain_command(single, *settings, "--batch-size", "8"))
    run_quietly(pretrain_command(double, *settings, *two_process_flags, launcher=TORCHRUN))
    one, two = losses(single), losses(double)
    assert one.keys() == two.keys() == {1, 2, 3}
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-5), (step, one, two)


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process_with_the_same_global_batch(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    train_one_and_two_processes(single, double, SETTINGS, "--batch-size", "4")
    weights_one = load_file(str(single / "final" / "model.safetensors"))
    weights_two = load_file(str(double / "final" / "model.safetensors"))
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("objective", [name for name in OBJECTIVES if name != "lcl"])
def test_every_objective_trains_under_ddp(tmp_path, objective):
    """Every parameter of every objective's forward gets a gradient (DDP refuses otherwise), the
    masked and matching forwards included; two steps on two gloo processes."""
    run = tmp_path / objective
    run_quietly(pretrain_command(run, "--steps", "2", "--objective", objective, "--batch-size", "4",
                                 "--save-every", "2", launcher=TORCHRUN))
    assert set(losses(run)) == {1, 2} and (run / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_fsdp2_on_two_gloo_processes_matches_one_process_and_resumes_in_one(tmp_path):
    """FSDP2 (--strategy fsdp): the same losses as one process with the union batch; its checkpoints are
    full state, so the sharded run's step-2 checkpoint resumes in one process to the 1-process weights."""
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    settings = ("--steps", "3", "--data-source", "pairs", "--save-every", "2")
    train_one_and_two_processes(single, sharded, settings, "--batch-size", "4", "--strategy", "fsdp")
    final_one = load_file(str(single / "final" / "model.safetensors"))
    final_two = load_file(str(sharded / "final" / "model.safetensors"))
    assert final_one.keys() == final_two.keys()
    for name, tensor in final_one.items():
        torch.testing.assert_close(final_two[name], tensor, atol=1e-5, rtol=1e-4, msg=name)

    # full, rank-independent state: the sharded run's step-2 checkpoint loads into one process and holds
    # what the single process's holds, weights and AdamW moments alike
    saved = {name: read_checkpoint(run / "checkpoints" / step_folder_name(2)) for name, run in
             (("single", single), ("sharded", sharded))}
    loaded = {}
    for name, checkpoint in saved.items():
        trainer = Trainer(model=LCLModel(config=ModelConfig.from_dict(checkpoint.state["model_config"])),
                          config=TrainConfig.from_dict(checkpoint.state["train_config"]), data=None)
        load_full_state(trainer.model, trainer.optimizer, checkpoint.weights, checkpoint.state["optimizer"])
        loaded[name] = trainer
    weights = {name: t.model.state_dict() for name, t in loaded.items()}
    for key, tensor in weights["single"].items():
        torch.testing.assert_close(weights["sharded"][key], tensor, atol=1e-5, rtol=1e-4, msg=key)
    moments = {name: {key: t.optimizer.state[p] for key, p in t.model.named_parameters()} for name, t in loaded.items()}
    assert moments["single"].keys() == moments["sharded"].keys()
    for key, state in moments["single"].items():
        assert float(moments["sharded"][key]["step"]) == float(state["step"]) == 2.0
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(moments["sharded"][key][moment], state[moment], atol=1e-6, rtol=1e-3,
                                       msg=f"{key} {moment}")

    # the sharded run resumed under DDP for a fourth step: the same as the one-process run resumed
    run_quietly(pretrain_command(single, *settings, "--batch-size", "8", "--steps", "4", "--resume"))
    run_quietly(pretrain_command(sharded, *settings, "--batch-size", "4", "--steps", "4", "--strategy", "ddp",
                                 "--resume", launcher=TORCHRUN))
    assert losses(sharded)[4] == pytest.approx(losses(single)[4], abs=1e-5)


@pytest.mark.slow
def test_accumulation_on_two_processes_matches_one_batch_of_the_whole_step(tmp_path):
    """2 ranks × 2 micro-batches × 2 rows, one contrastive batch of all 8 pairs: one process with 8 rows."""
    train_one_and_two_processes(tmp_path / "single", tmp_path / "accumulated", SETTINGS, "--batch-size", "2",
                                "--grad-accum", "2")


def documents_by_epoch(run) -> dict[int, Counter]:
    """``epoch -> Counter((file, record, part))`` of every row the run's ranks took (recorded_pretrain.py)."""
    counts: dict[int, Counter] = {}
    for path in sorted(run.glob("positions-rank*.jsonl")):
        for position in map(json.loads, path.read_text().splitlines()):
            counts.setdefault(position["epoch"], Counter())[position["file"], position["record"], position["part"]] += 1
    return counts


@pytest.mark.slow
def test_a_two_rank_run_resumed_on_one_rank_reads_each_document_as_often_as_the_uninterrupted_run(tmp_path):
    """Elastic resume: 2 ranks × 4 rows for 3 steps, then one process × 8 rows (the same rows per step)
    to step 15, against 2 ranks × 4 rows for 15 steps. Both read 120 rows, whole epochs of the world's
    usable documents (it breaks some on purpose) and part of one more. In each whole epoch both runs read
    the same documents, each exactly once. A resume that would change the rows per step is refused and
    leaves the run as it was."""
    uninterrupted, resized = tmp_path / "uninterrupted", tmp_path / "resized"
    run_quietly(pretrain_command(uninterrupted, "--steps", "15", "--save-every", "15", launcher=TORCHRUN,
                                 recorded=True))
    run_quietly(pretrain_command(resized, "--steps", "3", "--save-every", "3", launcher=TORCHRUN, recorded=True))

    saved_run = (resized / "run.json").read_text()
    refused = subprocess.run(pretrain_command(resized, "--steps", "15", "--resume"), cwd=REPO, capture_output=True,
                             text=True, timeout=1800)
    assert refused.returncode == 2 and "--batch-size 8" in refused.stderr, refused.stderr
    assert (resized / "run.json").read_text() == saved_run
    run_quietly(pretrain_command(resized, "--steps", "15", "--batch-size", "8", "--resume", recorded=True))

    counts = {name: documents_by_epoch(run) for name, run in (("uninterrupted", uninterrupted), ("resized", resized))}
    assert sum(sum(c.values()) for c in counts["resized"].values()) == 120
    epochs = sorted(counts["resized"])
    assert epochs == sorted(counts["uninterrupted"]) and len(epochs) >= 3
    for epoch in epochs[:-1]:  # the whole epochs (the last one is partial)
        assert counts["resized"][epoch] == counts["uninterrupted"][epoch], epoch
        assert set(counts["resized"][epoch].values()) == {1}, epoch

    one, two = losses(resized), losses(uninterrupted)
    assert set(one) == set(two) == set(range(1, 16))
    assert all(one[step] == pytest.approx(two[step], abs=1e-5) for step in (1, 2, 3))  # the same 2-rank start
    records = [json.loads(line) for line in (resized / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["images_seen"] == sum(r["images"] for r in records)  # the counts seen carried over
    assert json.loads((resized / "run.json").read_text())["resized"] == [
        {"world_size": 1, "batch_size": 8, "grad_accum_steps": 1, "batch_sizes": None}]
