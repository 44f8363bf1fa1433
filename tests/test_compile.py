"""The compiled step: static shapes, one graph with no break, and the same losses and gradients as eager."""

from __future__ import annotations

import pytest
import torch

from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.training import TrainConfig, Trainer
from lcl_core.training.synthetic import SyntheticBatches

from conftest import odd_config
from test_model import mixed_batch

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)

CAUSAL_OBJECTIVES = ["lcl", "contrastive", "coca", "generation", "generation_regression"]


def _model(seed: int = 0) -> LCLModel:
    torch.manual_seed(seed)
    return LCLModel(config=odd_config())


def _step(model, objective):
    def forward_and_loss(images, ids, inputs):
        losses = objective(model(images, ids, **inputs))
        return losses["loss"], losses["contrastive_accuracy"], losses["num_pairs"]
    return forward_and_loss


@pytest.mark.parametrize("name", CAUSAL_OBJECTIVES)
def test_dynamo_captures_forward_and_loss_in_one_graph(name, clip_tok):
    model, objective = _model(), PretrainingObjective.named(name)
    images, ids = torch.randn(4, 3, 30, 30), mixed_batch(clip_tok)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(_step(model, objective))(images, ids, objective.model_inputs(model, images, ids))
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1


def _losses_and_grads(model, objective, images, ids):
    model.zero_grad(set_to_none=True)
    loss, accuracy, pairs = _step(model, objective)(images, ids, objective.model_inputs(model, images, ids))
    loss.backward()
    return [loss.detach(), accuracy, pairs.float()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ["lcl", "coca"])
def test_the_static_path_equals_the_eager_one(name, clip_tok, monkeypatch):
    """What a compiled graph computes (every LM-head row, weighted by its mask), run eagerly."""
    model, objective = _model(1), PretrainingObjective.named(name)
    images, ids = torch.randn(4, 3, 30, 30), mixed_batch(clip_tok)
    eager = _losses_and_grads(model, objective, images, ids)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    static = _losses_and_grads(model, objective, images, ids)
    assert len(static) == len(eager) > 3
    for got, want in zip(static, eager):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_compiled_step_matches_eager_losses_and_gradients(clip_tok):
    """``aot_eager`` traces forward and backward through AOTAutograd as inductor would, without codegen."""
    model, objective = _model(2), PretrainingObjective.named("lcl")
    images, ids = torch.randn(4, 3, 30, 30), mixed_batch(clip_tok)
    eager = _losses_and_grads(model, objective, images, ids)
    torch._dynamo.reset()
    compiled_step = torch.compile(_step(model, objective), backend="aot_eager", fullgraph=True)
    model.zero_grad(set_to_none=True)
    loss, accuracy, pairs = compiled_step(images, ids, objective.model_inputs(model, images, ids))
    loss.backward()
    got = [loss.detach(), accuracy, pairs.float()] + [p.grad for p in model.parameters() if p.grad is not None]
    assert len(got) == len(eager)
    for a, b in zip(got, eager):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_batch_without_pairs_or_targets_still_gives_finite_zero_terms(clip_tok):
    model = _model(3)
    ids = mixed_batch(clip_tok)[:1]  # image-first pair: no contrastive pair
    objective = PretrainingObjective.named("lcl")
    losses = objective(model(torch.randn(1, 3, 30, 30), ids, generation_rows=torch.zeros(1, dtype=torch.bool)))
    assert losses["generation_loss"].item() == losses["contrastive_loss"].item() == 0.0
    assert int(losses["num_pairs"]) == 0 and torch.isnan(losses["contrastive_accuracy"])
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("layout, objective", [("interleaved", "lcl"), ("sampled", "lcl"), ("both", "coca")])
def test_the_unit_the_trainer_compiles_has_no_graph_break(layout, objective):
    """``TrainConfig.compile`` compiles ``Trainer._forward_and_loss``: the DDP-free forward and the loss."""
    config = odd_config()
    trainer = Trainer(model=LCLModel(config=config), data=SyntheticBatches(model_config=config, layout=layout,
                                                                           batch_size=5),
                      config=TrainConfig(objective=objective, steps=1, batch_size=5, progress_bar=False))
    batch = trainer.data.batch(0)
    images, ids = batch["images"], batch["input_ids"]
    torch._dynamo.reset()
    explained = torch._dynamo.explain(trainer._forward_and_loss)(
        images, ids, trainer.objective.model_inputs(trainer.model, images, ids))
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1
