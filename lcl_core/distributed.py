"""Collectives for losses whose per-rank sizes differ (images per rank, generation targets per rank).

Each rank's loss is its local *sum* divided by the global count and multiplied by the world size:
DDP averages gradients over ranks, so the effective objective is exactly the mean over the global
batch, and the mean of the per-rank losses equals the single-process loss on the concatenated batch.
(The official code takes a per-rank mean, which weights ranks with few images more heavily.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def global_count(n: int | torch.Tensor, device: torch.device) -> int | torch.Tensor:
    """Sum of a per-rank count over all ranks: an int for an int (a size), a tensor for a tensor (a
    mask's sum, kept on the device so the step needs no host sync)."""
    if world()[1] == 1:
        return n
    t = n.detach().reshape(1).long().clone() if torch.is_tensor(n) else torch.tensor([n], dtype=torch.long, device=device)
    dist.all_reduce(t)
    return t[0] if torch.is_tensor(n) else int(t.item())


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x [n_local, D]`` with gradient, whatever ``n_local`` is on each rank.

    Rows are zero-padded to the largest count, gathered, and the padding dropped again (equivalent to
    masking the padded columns to −inf). Returns ``(all_rows [n_global, D], offset of this rank's rows)``.
    """
    rank, size = world()
    if size == 1:
        return x, 0
    counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    counts = [int(c.item()) for c in counts]
    padded = torch.cat([x, x.new_zeros(max(counts) - x.shape[0], *x.shape[1:])])
    gathered = dist_fn.all_gather(padded)
    return torch.cat([g[:c] for g, c in zip(gathered, counts)]), sum(counts[:rank])


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """Average a logged scalar over ranks (no gradient)."""
    if world()[1] == 1:
        return value.detach()
    v = value.detach().clone()
    dist.all_reduce(v)
    return v / world()[1]
