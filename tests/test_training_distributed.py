"""DDP through torchrun: two gloo processes with 4 sequences each train exactly like one process with 8.

The world's pairs sit in one shard, so the two ranks split its records (even / odd) and the union of
their batches is the single process's batch; the losses are global means (lcl_core.objectives).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lcl_core.objectives import OBJECTIVES

from training_helpers import losses, pretrain_command, run_quietly

TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
SETTINGS = ("--steps", "3", "--data-source", "pairs", "--save-every", "3")


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process_with_the_same_global_batch(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    run_quietly(pretrain_command(single, *SETTINGS, "--batch-size", "8"))
    run_quietly(pretrain_command(double, *SETTINGS, "--batch-size", "4", launcher=TORCHRUN))

    one, two = losses(single), losses(double)
    assert one.keys() == two.keys() == {1, 2, 3}
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-5), (step, one, two)
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
