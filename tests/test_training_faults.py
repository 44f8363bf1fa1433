"""Faults a real run meets: preemption signals and non-finite steps."""

from __future__ import annotations

import math
import os
import re
import signal

import pytest
import torch

from lcl_core.model import LCLModel
from lcl_core.training import TrainConfig, Trainer
from lcl_core.training.checkpointing import list_checkpoints, load_latest_checkpoint, step_folder_name
from lcl_core.training.synthetic import SyntheticBatches
from lcl_core.training.trainer import BadStepsError

from conftest import odd_config
from training_helpers import kill_when, losses, pretrain_command, run_quietly, same_final_weights


# ---- preemption -----------------------------------------------------------------------------------

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)
@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_exits_0_and_resumes_to_the_uninterrupted_weights(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    flags = ("--steps", "40", "--save-every", "1000")  # no periodic checkpoint: only the preemption one
    run_quietly(pretrain_command(straight, *flags))
    argv = pretrain_command(stopped, *flags)
    code, errors = kill_when(argv, lambda: (stopped / "metrics.jsonl").exists() and max(losses(stopped), default=0) >= 4,
                             sig=signal.SIGTERM)
    assert code == 0, errors
    step = int(re.search(r"SIGTERM received: stopped after step (\d+) of 40", errors)[1])
    assert 4 <= step < 40
    assert [c.name for c in list_checkpoints(stopped / "checkpoints")] == [step_folder_name(step)]
    assert not (stopped / "final").exists()
    resumed = run_quietly(argv + ["--resume"])
    assert f"resuming {stopped} at step {step} of 40" in resumed.stderr
    assert same_final_weights(straight, stopped)


def _trainer(tmp_path=None, *, data=None, **train) -> Trainer:
    config = odd_config()
    torch.manual_seed(0)
    return Trainer(model=LCLModel(config=config), data=data or SyntheticBatches(model_config=config, batch_size=4),
                   config=TrainConfig(batch_size=4, lr=1e-3, warmup_steps=1, progress_bar=False, **train),
                   run_dir=tmp_path)


def test_sigusr1_stops_after_the_current_step_with_a_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, steps=10, save_every=1000)
    trainer.add_callback("on_step_end", lambda t: t.step == 3 and os.kill(os.getpid(), signal.SIGUSR1))
    trainer.run()
    assert trainer.preempted_by == "SIGUSR1" and trainer.step == 3
    assert load_latest_checkpoint(tmp_path / "checkpoints").step == 3
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handler is gone with the loop


# ---- non-finite steps -----------------------------------------------------------------------------
class PoisonedBatches:
    """Synthetic batches, with NaN pixels in the batches numbered in ``bad`` (0-based), each row named
    ``bad.jsonl:<batch>-<row>`` as a reader's positions name documents."""

    def __init__(self, source: SyntheticBatches, bad: set[int]) -> None:
        self.source, self.bad, self.next = source, bad, 0

    def __iter__(self):
        while True:
            batch = self.source.batch(self.next)
            if self.next in self.bad:
                batch["images"] = torch.full_like(batch["images"], float("nan"))
            batch["positions"] = [{"file": "bad.jsonl", "record": f"{self.next}-{row}"}
                                  for row in range(batch["input_ids"].shape[0])]
            self.next += 1
            yield batch

    def state(self) -> dict:
        return {"next": self.next}

    def resume_from(self, states: list[dict]) -> None:
        self.next = states[0]["next"]


def _snapshots(trainer):
    weights, adam_steps = {}, {}

    def keep(t):
        weights[t.step] = {k: v.clone() for k, v in t.model.state_dict().items()}
        adam_steps[t.step] = [float(s["step"]) for s in t.optimizer.state.values()]
    trainer.add_callback("on_step_end", keep)
    return weights, adam_steps


def test_a_nan_batch_is_skipped_counted_and_named_and_leaves_the_weights_alone():
    config = odd_config()
    trainer = _trainer(data=PoisonedBatches(SyntheticBatches(model_config=config, batch_size=4), {2}), steps=5)
    weights, adam_steps = _snapshots(trainer)
    records = []
    trainer.add_callback("on_log", lambda t: records.append(t.metrics))
    trainer.run()
    assert trainer.bad_steps == 1 and [r["bad_steps"] for r in records] == [0, 0, 1, 1, 1]
    bad = records[2]
    assert bad["skipped_update"] and bad["bad_values"] == ["loss", "grad_norm"]
    assert bad["documents"] == [f"bad.jsonl:2-{row}" for row in range(4)]
    assert all(torch.equal(weights[3][k], weights[2][k]) for k in weights[2]), "step 3 changed the weights"
    assert adam_steps[3] == adam_steps[2]  # nor the optimiser's state
    assert not all(torch.equal(weights[4][k], weights[3][k]) for k in weights[3]), "step 4 must train again"
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_bad_steps_in_a_row_stop_the_run_with_the_documents_named():
    config = odd_config()
    trainer = _trainer(data=PoisonedBatches(SyntheticBatches(model_config=config, batch_size=4), {1, 2, 3}),
                       steps=8, max_bad_steps=3, on_bad_steps="stop")
    with pytest.raises(BadStepsError, match=r"3 steps in a row up to step 4 had a non-finite loss or gradient; "
                                            r"stopping because on_bad_steps is 'stop'.*bad.jsonl:3-0"):
        trainer.run()


def test_bad_steps_in_a_row_restore_the_last_good_checkpoint_once_then_stop(tmp_path):
    config = odd_config()
    # batch k feeds step k + 1: steps 6-8 fail, step 9 trains, steps 10-12 fail again
    data = PoisonedBatches(SyntheticBatches(model_config=config, batch_size=4), {5, 6, 7, 9, 10, 11})
    trainer = _trainer(tmp_path, data=data, steps=20, save_every=4, max_bad_steps=3)
    weights, _ = _snapshots(trainer)
    restored = []
    trainer.add_callback("on_restore", lambda t: restored.append(
        (t.step, {k: v.clone() for k, v in t.model.state_dict().items()})))
    with pytest.raises(BadStepsError, match=r"step_00000004 was restored already and the run failed again"):
        trainer.run()
    # step 8 skipped its checkpoint (a bad step), so the good one of step 4 is what came back
    assert [step for step, _ in restored] == [8]
    assert all(torch.equal(restored[0][1][k], weights[4][k]) for k in weights[4])
    assert not all(torch.equal(weights[5][k], weights[4][k]) for k in weights[4]), "step 5 trained after it"
    assert not all(torch.equal(weights[9][k], weights[8][k]) for k in weights[8]), "step 9 trained on the restored weights"
    assert trainer.bad_steps == 6 and trainer.step == 12
    assert [c.name for c in list_checkpoints(tmp_path / "checkpoints")] == [step_folder_name(4)]


# ---- gradient accumulation with one contrastive batch ----------------------------------------------------
class FixedBatches:
    """The given batches in turn (the trainer's data protocol)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches, self.next = batches, 0

    def __iter__(self):
        while True:
            yield self.batches[self.next % len(self.batches)]
            self.next += 1

    def state(self) -> dict:
        return {"next": self.next}

    def resume_from(self, states: list[dict]) -> None:
        self.next = states[0]["next"]


def _joined(first: dict, second: dict) -> dict:
    return {"images": torch.cat([first["images"], second["images"]]),
            "input_ids": torch.cat([first["input_ids"], second["input_ids"]])}


@pytest.mark.parametrize("objective, layout", [("lcl", "interleaved"), ("lcl", "sampled"), ("contrastive", "contrastive"),
                                               ("coca", "both"), ("generation_regression", "interleaved")])
def test_accumulating_k_micro_batches_equals_one_batch_of_k_b(objective, layout):
    config = odd_config()
    source = SyntheticBatches(model_config=config, layout=layout, batch_size=3, seed=4)
    micro = [source.batch(0), source.batch(1)]
    grads, records, pairs = {}, {}, []
    for name, batches, accum in (("k x b", micro, 2), ("k b", [_joined(*micro)], 1)):
        trainer = _trainer(data=FixedBatches(batches), steps=1, objective=objective, grad_accum_steps=accum,
                           grad_clip_norm=0)
        trainer.optimizer.step = lambda: None  # keep the gradients, compare them before any update
        trainer.optimizer.zero_grad = lambda set_to_none=True: None
        if accum == 1:
            trainer.objective.register_forward_pre_hook(lambda module, args: pairs.append(args[0]))
        trainer.run()
        grads[name] = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        records[name] = trainer.metrics
    assert grads["k x b"].keys() == grads["k b"].keys() and len(grads["k b"]) > 10
    for n, want in grads["k b"].items():  # per tensor, relative to its norm (+ 1e-7 for gradients that are 0 in exact arithmetic)
        assert float((grads["k x b"][n] - want).norm()) <= 1e-5 * float(want.norm()) + 1e-7, n
    for key in ("loss", "generation_loss", "contrastive_loss", "regression_loss", "num_pairs"):
        a, b = records["k x b"][key], records["k b"][key]
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7, nan_ok=True), key
    # accuracy is an argmax: a row whose two best logits are within float noise may go either way, by the
    # summation order the CPU's kernels pick; every other row must agree
    a, b = records["k x b"]["contrastive_accuracy"], records["k b"]["contrastive_accuracy"]
    undecided, rows = undecided_argmax_rows(pairs[0], margin=1e-5)
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= undecided / rows + 1e-7, (a, b, undecided, rows)


def undecided_argmax_rows(outputs: dict, *, margin: float) -> tuple[int, int]:
    """(rows of both contrastive directions whose best two logits are closer than ``margin``, all rows),
    the logits computed in float64 from the pairs the objective saw."""
    mask = outputs["pair_mask"]
    img = torch.nn.functional.normalize(outputs["pair_latents"].detach().double()[mask], dim=-1)
    txt = torch.nn.functional.normalize(outputs["pair_context"].detach().double()[mask], dim=-1)
    undecided, scale = 0, outputs["logit_scale"].detach().double()
    for logits in (scale * img @ txt.t(), scale * txt @ img.t()):
        if logits.shape[1] > 1:
            best = logits.topk(2, dim=-1).values
            undecided += int((best[:, 0] - best[:, 1] < margin).sum())
    return undecided, 2 * int(mask.sum())
