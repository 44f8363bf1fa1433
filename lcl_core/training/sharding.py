"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for the LCL model, and the full, rank-independent state
every strategy saves and loads.

``--strategy fsdp`` shards each ViT block and each bridge block, then the rest of the model (embeddings,
pooler, heads) at the root; parameters, gradients and optimiser state live in shards, so a model whose
DDP replica would not fit one device trains across several. The learned logit scale is a scalar, which
``fully_shard`` cannot split: it is left out (``ignored_params``), replicated, and its gradient averaged
over ranks by hand; gradient clipping takes the norm over the shards and it together, with torch's
``clip_grad_norm_`` formula, so a sharded step equals the unsharded one.

Checkpoints hold the *full* state whatever the strategy: weights under the model's own names, and the
optimiser state keyed by parameter name (``torch.distributed.checkpoint.state_dict``), gathered to rank
0. So a run saved under FSDP resumes under DDP or in one process, and the other way round. Checkpoints
written before (optimiser state keyed by parameter index) still load in the strategy that wrote them.
FSDP2 runs on CPUs with gloo as on GPUs with NCCL.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

STRATEGIES = ("ddp", "fsdp")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_model(model: nn.Module) -> list[nn.Parameter]:
    """Apply ``fully_shard`` to every transformer block of the ViT and the bridge, then the root; returns
    the parameters left replicated (the scalar logit scale)."""
    from torch.distributed.fsdp import fully_shard

    for block in (*model.vision.vit.transformer.resblocks, *model.bridge.transformer.h):
        fully_shard(block)
    replicated = [p for p in model.parameters() if p.ndim == 0]
    fully_shard(model, ignored_params=set(replicated))
    return replicated


def average_replicated_gradients(parameters: list[nn.Parameter]) -> None:
    """What FSDP does not do for the parameters it ignores: average their gradients over ranks."""
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def clip_gradients(model: nn.Module, max_norm: float, replicated: list[nn.Parameter]) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over sharded and replicated gradients together -> the total norm."""
    sharded = [p for p in model.parameters() if p.grad is not None and all(p is not r for r in replicated)]
    norm = torch.nn.utils.clip_grad_norm_(sharded, float("inf"))  # the norm only: a replicated DTensor
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    squares = norm.float() ** 2 + sum(p.grad.float().pow(2).sum() for p in replicated if p.grad is not None)
    total = squares.sqrt()
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # torch's own formula
    for p in [*sharded, *(r for r in replicated if r.grad is not None)]:
        p.grad.mul_(coefficient.to(p.grad.dtype))
    return total


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(weights, optimiser state), full and keyed by name; collective under FSDP, where ranks other
    than 0 receive empty dicts."""
    return (get_model_state_dict(model, options=_FULL),
            get_optimizer_state_dict(model, optimizer, options=_FULL))


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full weights under the model's names (collective under FSDP; empty on ranks other than 0)."""
    return get_model_state_dict(model, options=_FULL)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optimizer_state: dict) -> None:
    """Load a checkpoint's full state into a model of any strategy (every rank passes the full dicts)."""
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=True))
    if all(isinstance(p, int) for group in optimizer_state["param_groups"] for p in group["params"]):
        optimizer.load_state_dict(optimizer_state)  # written before name keys: the strategy that wrote it
        return
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))
