"""The LM head's loss alone: plain ``F.cross_entropy(h @ Wᵀ)`` against the fused, chunked one.

    python benchmarks/bench_lm_head_loss.py [--targets 2600] [--width 128] [--vocab 4096 49411] [--repeats 5]

Forward + backward of the summed cross-entropy over ``targets`` rows (2,600 is the generation-target
count of the KIT budget's CPU batch: 32 interleaved rows of 128 tokens), for each vocabulary, in fp32
and under CPU bf16 autocast, and for the fused loss at several chunk sizes (``2**k`` logits per chunk).
Median of ``repeats`` after one warm-up; peak memory is not measured here (the plain loss holds two
``[T, V]`` fp32 tensors, the fused one ``[chunk, V]``). One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch
import torch.nn.functional as F

from lcl_core.linear_cross_entropy import linear_cross_entropy


def timed(fn, hidden, weight, labels, *, precision: str, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext():
            loss = fn(h, w, labels)
        loss.backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=2600)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--vocab", type=int, nargs="+", default=[4096, 49411])
    parser.add_argument("--chunk-log2", type=int, nargs="+", default=[20, 21, 22, 23, 24])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    for vocab in args.vocab:
        hidden = torch.randn(args.targets, args.width)
        weight = torch.randn(vocab, args.width) * args.width**-0.5
        labels = torch.randint(0, vocab, (args.targets,))
        for precision in ("fp32", "bf16"):
            base = {"targets": args.targets, "width": args.width, "vocab": vocab, "precision": precision,
                    "threads": torch.get_num_threads()}
            plain = timed(lambda h, w, y: F.cross_entropy((h @ w.t()).float(), y, reduction="sum"),
                          hidden, weight, labels, precision=precision, repeats=args.repeats)
            print(json.dumps({**base, "loss": "plain", "s": round(plain, 4)}), flush=True)
            for k in args.chunk_log2:
                rows = max(1, 2**k // vocab)
                fused = timed(lambda h, w, y: linear_cross_entropy(h, w, y, chunk_rows=rows),
                              hidden, weight, labels, precision=precision, repeats=args.repeats)
                print(json.dumps({**base, "loss": "fused", "chunk_log2": k, "chunk_rows": rows, "s": round(fused, 4),
                                  "speedup_vs_plain": round(plain / fused, 2)}), flush=True)


if __name__ == "__main__":
    main()
