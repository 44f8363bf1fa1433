"""One LCL training step of the fast tiny preset on CPU (fp32): CLIP vocabulary vs a trained 4k one.

The step's cost depends on the embedding/lm_head table size, not on the merges: the trained tokenizer
is fitted on a small synthetic corpus and its table is sized to ``--small-vocab`` rows.

    python benchmarks/bench_model_step.py [--batch 32] [--steps 5]

Prints one JSON line per vocabulary. The batch is the KIT budget's: 32 interleaved sequences of
128 tokens with 2 images each (32-px images, 16 patches per image).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time

import torch

from lcl_core.config import get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.sequences import interleaved_sequence, pad_rows
from lcl_core.tokenizer import ClipTokenizer, TrainedTokenizer

WORDS = "a red blue green small large circle square triangle star left right above below of the two three".split()


def synthetic_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def batch(tok, cfg, size: int, rng: random.Random):
    n = cfg.vision.num_patches
    rows = [interleaved_sequence(tok, [synthetic_text(rng, 20), 0, synthetic_text(rng, 20), 1, synthetic_text(rng, 30)],
                                 num_image_tokens=n, context_length=cfg.bridge.context_length).ids
            for _ in range(size)]
    ids = pad_rows(rows, pad_id=tok.pad_id, length=cfg.bridge.context_length)
    num_images = int((ids == tok.soi_id).sum())
    return torch.randn(num_images, 3, cfg.vision.image_size, cfg.vision.image_size), ids


def time_steps(tok, *, batch_size: int, steps: int, table_rows: int) -> dict:
    torch.manual_seed(0)
    cfg = get_preset("tiny-fast").with_tokenizer(tok)
    cfg = dataclasses.replace(cfg, bridge=dataclasses.replace(cfg.bridge, vocab_size=table_rows))
    model = LCLModel(config=cfg)
    objective = PretrainingObjective.named("lcl")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, ids = batch(tok, cfg, batch_size, random.Random(0))
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        start = time.perf_counter()
        loss = objective(model(images, ids))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"vocab": table_rows, "tokenizer": tok.kind, "batch": batch_size, "images": images.shape[0],
            "tokens": int((ids != tok.pad_id).sum()), "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "median_step_s": round(statistics.median(times[1:]), 3), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--small-vocab", type=int, default=4096)
    args = parser.parse_args()
    rng = random.Random(1)
    trained = TrainedTokenizer.train((synthetic_text(rng, 30) for _ in range(5000)), vocab_size=4096, min_frequency=1)
    for tok, rows in ((ClipTokenizer(), None), (trained, args.small_vocab)):
        result = time_steps(tok, batch_size=args.batch, steps=args.steps, table_rows=rows or tok.vocab_size)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
