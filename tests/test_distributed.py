"""The contrastive gather with unequal image counts per rank (gloo, two processes on this machine)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lcl_core.objectives import contrastive_loss, cross_entropy_loss

COUNTS = (3, 5)  # pairs on rank 0 and rank 1
D, VOCAB = 7, 11


def make_data():
    g = torch.Generator().manual_seed(0)
    total = sum(COUNTS)
    return (torch.randn(total, D, generator=g), torch.randn(total, D, generator=g),
            torch.randn(13, VOCAB, generator=g), torch.randint(0, VOCAB, (13,), generator=g))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        img, txt, logits, labels = make_data()
        lo, hi = sum(COUNTS[:rank]), sum(COUNTS[: rank + 1])
        img, txt = img[lo:hi].clone().requires_grad_(), txt[lo:hi].clone().requires_grad_()
        con, accuracy, n_global = contrastive_loss(img, txt, torch.tensor(10.0))
        con.backward()
        split = 4 if rank == 0 else 13  # 4 targets on rank 0, 9 on rank 1
        part = slice(0, 4) if rank == 0 else slice(4, split)
        gen = cross_entropy_loss(logits[part], labels[part])
        results[rank] = (con.item(), gen.item(), n_global, img.grad.clone(), txt.grad.clone())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_with_unequal_counts_equal_one_process_on_the_union():
    img, txt, logits, labels = make_data()
    img.requires_grad_()
    txt.requires_grad_()
    single, _, n = contrastive_loss(img, txt, torch.tensor(10.0))
    single.backward()
    single_gen = cross_entropy_loss(logits, labels)

    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_rank_main, args=(_free_port(), results), nprocs=2, join=True)
    (con0, gen0, n0, gi0, gt0), (con1, gen1, n1, gi1, gt1) = results[0], results[1]

    assert n == n0 == n1 == sum(COUNTS)
    # DDP averages over ranks: the mean of the per-rank losses is the single-process loss ...
    assert (con0 + con1) / 2 == pytest.approx(single.item(), abs=1e-6)
    assert (gen0 + gen1) / 2 == pytest.approx(single_gen.item(), abs=1e-6)
    # ... and each rank's feature gradient is world_size × the single-process gradient of its rows
    assert torch.allclose(torch.cat([gi0, gi1]) / 2, img.grad, atol=1e-6)
    assert torch.allclose(torch.cat([gt0, gt1]) / 2, txt.grad, atol=1e-6)
