"""The training loop: every objective learns on the world, runs are reproducible, the optimiser and
schedule follow the official recipe, callbacks fire, the config rejects bad values."""

from __future__ import annotations

import pytest
import torch

from lcl_core.model import LCLModel
from lcl_core.objectives import OBJECTIVES
from lcl_core.training import MetricsHistory, TrainConfig, Trainer
from lcl_core.training.data import build_batches
from lcl_core.training.optim import CosineWithWarmup, build_optimizer

from training_helpers import small_world, tiny_model_config, world_tokenizer


def train(objective: str, *, steps: int, seed: int = 0, batch_size: int = 6, lr: float = 3e-3,
          **config) -> MetricsHistory:
    tokenizer = world_tokenizer()
    model_config = tiny_model_config(tokenizer, objective=objective)
    train_config = TrainConfig(objective=objective, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=2, seed=seed,
                               progress_bar=False, **config)
    torch.manual_seed(seed)
    model = LCLModel(config=model_config)
    data = build_batches(data=small_world(), source=None, config=train_config, model_config=model_config,
                         tokenizer=tokenizer, rank=0, world_size=1)
    trainer = Trainer(model=model, config=train_config, data=data)
    history = MetricsHistory().attach(trainer)
    trainer.run()
    return history


# pair objectives see short rows, so larger batches cost little; CLIP from scratch wants a lower lr
LEARNS_WITH = {"contrastive": dict(batch_size=12, lr=1e-3), "coca": dict(batch_size=12)}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_each_objective_loss_falls_on_the_world(objective):
    _, values = train(objective, steps=14, **LEARNS_WITH.get(objective, {})).series("loss")
    assert sum(values[-3:]) < 0.9 * sum(values[:3]), f"{objective}: loss {values}"


def test_diagnostics_are_logged_for_every_step():
    records = train("generation", steps=3).records
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert record["effective_rank"] > 0 and record["latent_variance"] >= 0
        assert record["images"] > 0 and record["tokens_per_s"] > 0 and record["lr"] > 0


def test_same_seed_gives_identical_losses():
    first = train("lcl", steps=4, seed=3).series("loss")
    second = train("lcl", steps=4, seed=3).series("loss")
    assert first == second


def test_gradient_accumulation_counts_micro_batches():
    records = train("lcl", steps=2, grad_accum_steps=2).records
    assert [r["sequences"] for r in records] == [12, 12]


def test_no_weight_decay_on_biases_norms_and_logit_scale():
    model = LCLModel(config=tiny_model_config(world_tokenizer()))
    optimizer = build_optimizer(model, TrainConfig())
    no_decay, decay = ({id(p) for p in g["params"]} for g in optimizer.param_groups)
    names = dict((id(p), n) for n, p in model.named_parameters())
    assert {names[i] for i in no_decay} >= {"logit_scale", "bridge.ln_final.weight", "bridge.ln_final.bias"}
    assert all(model.get_parameter(names[i]).ndim < 2 for i in no_decay)
    assert "bridge.transformer.wte.weight" in {names[i] for i in decay}
    assert optimizer.param_groups[1]["weight_decay"] == 0.2
    assert optimizer.defaults["betas"] == (0.9, 0.98) and optimizer.defaults["eps"] == 1e-6


def test_cosine_schedule_with_warmup():
    schedule = CosineWithWarmup(optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                                base_lr=1.0, warmup_steps=4, total_steps=14)
    assert [schedule.lr_at(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule.lr_at(9) == pytest.approx(0.5)
    assert schedule.lr_at(14) == pytest.approx(0.0)
    assert TrainConfig(steps=100).resolved_warmup_steps == 10
    assert TrainConfig(steps=100_000).resolved_warmup_steps == 2000


def test_config_rejects_bad_values_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="objective 'clip'"):
        TrainConfig(objective="clip")
    with pytest.raises(ValueError, match="steps must be at least 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="shuffle_window must be at least 1"):
        TrainConfig(shuffle_window=0)
    config = TrainConfig(objective="coca", contrastive_weight=0.5, betas=[0.9, 0.95])
    config.to_json(tmp_path / "train.json")
    assert TrainConfig.from_json(tmp_path / "train.json") == config
    assert config.build_objective().weights.contrastive == 0.5


class _CountingStream:
    """A resumable stream of labelled integers (the trainer's data protocol in miniature)."""

    def __init__(self, name: str) -> None:
        self.name, self.consumed = name, 0

    def __iter__(self):
        while True:
            self.consumed += 1
            yield (self.name, self.consumed)

    def state(self) -> dict:
        return {"consumed": self.consumed}

    def resume_from(self, states: list[dict]) -> None:
        self.consumed = states[0]["consumed"]


def test_alternating_batches_resume_with_the_stream_that_was_next():
    from lcl_core.training.data import AlternatingBatches

    full = AlternatingBatches([_CountingStream("docs"), _CountingStream("pairs")])
    stream = iter(full)
    head = [next(stream) for _ in range(3)]  # docs, pairs, docs: pairs is next
    saved = full.state()
    rest = [next(stream) for _ in range(4)]
    assert head == [("docs", 1), ("pairs", 1), ("docs", 2)]

    resumed = AlternatingBatches([_CountingStream("docs"), _CountingStream("pairs")])
    resumed.resume_from([saved])
    again = iter(resumed)
    assert [next(again) for _ in range(4)] == rest == [("pairs", 2), ("docs", 3), ("pairs", 3), ("docs", 4)]


@pytest.mark.parametrize("batch_size, accum, message", [
    (8, 1, None), (4, 2, None), (2, 4, None),  # 2 ranks × 1 × 4 = 8 rows per step on one process
    (4, 1, "on 1 processes × 1 micro-batches use --batch-size 8"),
    (3, 1, "on 1 processes × 1 micro-batches use --batch-size 8"),
    (3, 3, "1 processes × 3 micro-batches do not divide them"),
])
def test_a_resume_on_other_ranks_must_keep_the_rows_per_step(batch_size, accum, message):
    """Hand cases of the rule processes × micro-batches × batch size = the saved run's rows per step."""
    from types import SimpleNamespace

    tokenizer = world_tokenizer()
    config = TrainConfig(batch_size=batch_size, grad_accum_steps=accum, progress_bar=False)
    trainer = Trainer(model=LCLModel(config=tiny_model_config(tokenizer)), config=config, data=None)
    saved = SimpleNamespace(path="RUN/checkpoints/step_00000003", state={
        "data": [{}, {}], "batch_sizes": [4], "train_config": TrainConfig(batch_size=4).to_dict()})
    if message is None:
        trainer._check_rows_per_step(saved)
        del saved.state["batch_sizes"]  # a checkpoint from before batch_sizes was saved: the config's
        trainer._check_rows_per_step(saved)
    else:
        with pytest.raises(ValueError, match=r"\[8\] rows per optimiser step .*" + message):
            trainer._check_rows_per_step(saved)
