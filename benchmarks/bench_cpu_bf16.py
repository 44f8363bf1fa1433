"""Where CPU bf16 autocast pays: one LCL step in fp32 and under ``torch.autocast("cpu", bfloat16)``.

    python benchmarks/bench_cpu_bf16.py [--widths 128 256 384] [--image-sizes 32 64] [--batch-sizes 32] [--steps 3]

The model is ``tiny-fast`` with its 4,096-entry vocabulary (the reproduction's recipe) and both towers'
width (and embed dim) set to each ``--widths`` value (heads = width / 32), at each image size (patch 8,
so 16 or 64 image tokens) and batch size; rows are the KIT budget's (2 images between 3 captions of
20–30 words), the context raised where two image blocks need it (212 tokens at 64 image tokens).
Step = forward, LCL loss, backward, AdamW, as ``trainer.precision = "bf16"`` runs it (autocast around
forward and loss). Median of ``--steps`` after one warm-up. The CPU needs bf16 matmul units (AMX or
AVX-512 BF16) to gain; this prints ``torch.backends.cpu.get_cpu_capability()`` with each line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import random
import statistics
import time

import torch

from bench_model_step import batch, synthetic_text
from lcl_core.config import get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.tokenizer import TrainedTokenizer


def config_at(tok, *, width: int, image_size: int):
    base = get_preset("tiny-fast").with_tokenizer(tok)
    tokens = (image_size // base.vision.patch_size) ** 2
    vision = dataclasses.replace(base.vision, width=width, heads=width // 32, pool_heads=width // 32,
                                 image_size=image_size)
    bridge = dataclasses.replace(base.bridge, width=width, heads=width // 32, vocab_size=4096,
                                 context_length=max(128, 2 * (tokens + 2) + 3 * 24 + 8))
    return dataclasses.replace(base, embed_dim=width, vision=vision, bridge=bridge)


def step_time(config, tok, *, batch_size: int, precision: str, steps: int) -> float:
    torch.manual_seed(0)
    model = LCLModel(config=config)
    objective = PretrainingObjective.named("lcl")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, ids = batch(tok, config, batch_size, random.Random(0))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext():
            loss = objective(model(images, ids))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(1)
    tok = TrainedTokenizer.train((synthetic_text(rng, 30) for _ in range(5000)), vocab_size=4096, min_frequency=1)
    for width, image_size, batch_size in itertools.product(args.widths, args.image_sizes, args.batch_sizes):
        config = config_at(tok, width=width, image_size=image_size)
        times = {p: step_time(config, tok, batch_size=batch_size, precision=p, steps=args.steps)
                 for p in ("fp32", "bf16")}
        print(json.dumps({"width": width, "image_size": image_size, "image_tokens": config.vision.num_patches,
                          "batch_size": batch_size, "fp32_s": round(times["fp32"], 3), "bf16_s": round(times["bf16"], 3),
                          "bf16_speedup": round(times["fp32"] / times["bf16"], 2), "threads": torch.get_num_threads(),
                          "cpu": torch.backends.cpu.get_cpu_capability()}), flush=True)


if __name__ == "__main__":
    main()
