"""The fused, chunked LM-head cross-entropy against the plain one: value and both gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lcl_core.linear_cross_entropy import default_chunk_rows, linear_cross_entropy

pytestmark = pytest.mark.numerics  # also run under a second CPU kernel path (test_cpu_capabilities.py)


def _inputs(targets: int, width: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(targets, width, generator=g, dtype=torch.float64).float()
    weight = (torch.randn(vocab, width, generator=g, dtype=torch.float64) * width**-0.5).float()
    labels = torch.randint(0, vocab, (targets,), generator=g)
    return hidden, weight, labels


def _loss_and_grads(fn, hidden, weight, labels, scale=1.0):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = fn(h, w, labels)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def plain(h, w, y):
    return F.cross_entropy(h @ w.t(), y, reduction="sum")


@pytest.mark.parametrize("targets, width, vocab, chunk_rows", [
    (37, 36, 1001, 5),  # chunks that do not divide the targets
    (37, 36, 1001, 64),  # one chunk larger than the batch
    (300, 44, 4096, None),  # the default chunk size
    (1, 9, 3, 1),
])
def test_equals_the_plain_loss_and_its_gradients_in_fp32(targets, width, vocab, chunk_rows):
    hidden, weight, labels = _inputs(targets, width, vocab)
    fused = _loss_and_grads(lambda h, w, y: linear_cross_entropy(h, w, y, chunk_rows=chunk_rows),
                            hidden, weight, labels, scale=0.37)
    reference = _loss_and_grads(plain, hidden, weight, labels, scale=0.37)
    # the exact value, in float64 from the definition: -log softmax at the label
    logp = torch.log_softmax(hidden.double() @ weight.double().t(), dim=-1)
    exact = -logp[torch.arange(targets), labels].sum()
    assert abs(float(fused[0]) - float(exact)) / float(exact) < 1e-6
    for got, want in zip(fused, reference):
        assert _relative(got, want) < 1e-6


def test_the_gradients_are_softmax_minus_one_hot_by_hand():
    hidden, weight, labels = _inputs(4, 3, 5)
    _, grad_h, grad_w = _loss_and_grads(lambda h, w, y: linear_cross_entropy(h, w, y, chunk_rows=3),
                                        hidden, weight, labels)
    probabilities = torch.softmax(hidden.double() @ weight.double().t(), dim=-1)
    probabilities[torch.arange(4), labels] -= 1
    assert torch.allclose(grad_h.double(), probabilities @ weight.double(), atol=1e-6)
    assert torch.allclose(grad_w.double(), probabilities.t() @ hidden.double(), atol=1e-6)


def test_only_the_gradients_asked_for_are_formed():
    hidden, weight, labels = _inputs(11, 8, 50)
    w = weight.clone().requires_grad_()
    linear_cross_entropy(hidden, w, labels, chunk_rows=4).backward()  # hidden needs no gradient
    assert torch.allclose(w.grad, _loss_and_grads(plain, hidden, weight, labels)[2], rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        value = linear_cross_entropy(hidden, weight, labels)
    assert float(value) == pytest.approx(float(plain(hidden, weight, labels)), rel=1e-6)


def test_no_targets_give_zero_and_zero_gradients():
    hidden, weight, labels = _inputs(0, 8, 50)
    loss, grad_h, grad_w = _loss_and_grads(linear_cross_entropy, hidden, weight, labels)
    assert float(loss) == 0.0 and grad_h.shape == (0, 8) and not grad_w.any()


def test_under_bf16_autocast_it_tracks_the_plain_bf16_loss():
    hidden, weight, labels = _inputs(64, 32, 777)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = _loss_and_grads(lambda h, w, y: linear_cross_entropy(h, w, y, chunk_rows=10), hidden, weight, labels)
        reference = _loss_and_grads(lambda h, w, y: F.cross_entropy((h @ w.t()).float(), y, reduction="sum"),
                                    hidden, weight, labels)
    exact = _loss_and_grads(plain, hidden, weight, labels)
    assert fused[1].dtype == fused[2].dtype == torch.float32  # gradients come back in the parameters' dtype
    for got, want, fp32 in zip(fused, reference, exact):
        # bf16 keeps 8 bits of mantissa: both bf16 paths sit within 1 % of fp32, and of each other
        assert _relative(got, fp32) < 1e-2 and _relative(want, fp32) < 1e-2 and _relative(got, want) < 1e-2


def test_a_chunk_holds_about_four_million_logits():
    assert default_chunk_rows(49411) == 84 and default_chunk_rows(4096) == 1024 and default_chunk_rows(2**30) == 1


def test_mismatched_shapes_are_refused_by_name():
    hidden, weight, labels = _inputs(5, 8, 50)
    with pytest.raises(ValueError, match=r"hidden \(5, 8\), weight \(50, 7\) and labels \(5,\) do not fit"):
        linear_cross_entropy(hidden, weight[:, :7], labels)
