"""The LM head and its cross-entropy fused and chunked: ``sum_t CE(hidden_t @ weightᵀ, label_t)``.

A plain ``F.cross_entropy(hidden @ weight.t(), labels)`` materialises the ``[T, V]`` logits, their
log-softmax and both gradients; with CLIP's 49,411-entry vocabulary that is ~0.5 GB each way for a
CPU batch of 2,600 targets, and ``log_softmax`` alone took a quarter of the kit's CPU step. Here the
targets are processed ``chunk_rows`` at a time and the gradients of a chunk are formed in the forward
pass, while its logits are still in cache (as Liger-Kernel's fused linear cross-entropy does), so no
more than ``[chunk_rows, V]`` logits ever exist. Backward only scales the stored gradients by the
incoming one (a scalar), which is why it costs nothing.

Exactness: each chunk computes the same ``logsumexp`` and ``softmax − one_hot`` as the plain loss; only
the summation order over targets differs (fp32: within 1e-6 relative, ``tests/test_linear_cross_entropy.py``).
Under autocast the two matmuls run in the autocast dtype, the softmax and every accumulation in fp32.
Pure PyTorch, so it runs wherever the model does.
"""

from __future__ import annotations

import torch

# the logits of one chunk: on a CPU 2**22 fp32 values (16 MiB) keep a chunk's softmax in cache; it is the
# fastest size for the reproduction's 4k vocabulary and within 6 % of the fastest (2**23) for CLIP's
# (benchmarks/bench_lm_head_loss.py). A GPU wants fewer, larger matmuls and a compiled graph fewer
# unrolled chunks: 2**26 (256 MiB) there is a choice not yet measured on one.
CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**26}


def default_chunk_rows(vocab_size: int, device: torch.device | str = "cpu") -> int:
    elements = CHUNK_ELEMENTS.get(torch.device(device).type, CHUNK_ELEMENTS["cuda"])
    return max(1, elements // vocab_size)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                row_weights: torch.Tensor | None, chunk_rows: int):
        needs_hidden, needs_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if needs_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        autocast = torch.is_autocast_enabled(hidden.device.type)
        for start in range(0, hidden.shape[0], chunk_rows):
            h = hidden[start:start + chunk_rows]
            y = labels[start:start + chunk_rows]
            w = None if row_weights is None else row_weights[start:start + chunk_rows]
            logits = (h @ weight.t()).float()  # [c, V]; the autocast dtype's matmul when autocast is on
            target_logits = logits.gather(1, y.unsqueeze(1)).squeeze(1)
            # one exp pass serves both the log-sum-exp and the softmax: logits become exp(logits − max)
            peak = logits.amax(dim=-1, keepdim=True)
            sums = logits.sub_(peak).exp_().sum(dim=-1)
            per_row = peak.squeeze(1) + sums.log() - target_logits
            total += (per_row if w is None else per_row * w).sum()
            if needs_hidden or needs_weight:
                # d(sum CE)/d logits = softmax − one_hot, written over the exponentials (not needed again)
                grad_logits = logits.div_(sums.unsqueeze(1))
                grad_logits[torch.arange(len(y), device=y.device), y] -= 1.0
                if w is not None:
                    grad_logits.mul_(w.unsqueeze(1))
                if needs_hidden:  # under autocast these matmuls run in its dtype, as the logits' did
                    grad_hidden[start:start + chunk_rows] = grad_logits @ weight
                if needs_weight:
                    if autocast:
                        grad_weight += (grad_logits.t() @ h).float()
                    else:
                        grad_weight.addmm_(grad_logits.t(), h)
        ctx.save_for_backward(grad_hidden if needs_hidden else None,
                              grad_weight.to(weight.dtype) if needs_weight else None)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (None if grad_hidden is None else grad_hidden * grad_total.to(grad_hidden.dtype),
                None if grad_weight is None else grad_weight * grad_total.to(grad_weight.dtype), None, None, None)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                         mask: torch.Tensor | None = None, chunk_rows: int | None = None) -> torch.Tensor:
    """
    hidden [T, D], weight [V, D] (a bias-free head), labels [T] (valid ids), mask [T] (bool, None: every
    row is a target) -> the summed cross-entropy [] in fp32 over the masked-in rows, equal to
    ``F.cross_entropy(hidden[mask] @ weight.t(), labels[mask], reduction="sum")`` in value and
    gradients, without the ``[T, V]`` logits.

    Eager, masked-out rows are dropped before the head (a CPU step pays only for its targets); under
    ``torch.compile`` every row is evaluated and weighted 0 or 1, so shapes stay static.
    """
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1] or labels.shape != hidden.shape[:1]:
        raise ValueError(f"hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)} and labels "
                         f"{tuple(labels.shape)} do not fit [T, D], [V, D], [T]")
    row_weights = None
    if mask is not None:
        if torch.compiler.is_compiling():
            row_weights = mask.float()
        else:
            hidden, labels = hidden[mask], labels[mask]
    rows = chunk_rows or default_chunk_rows(weight.shape[0], hidden.device)
    return _LinearCrossEntropy.apply(hidden, weight, labels, row_weights, rows)
