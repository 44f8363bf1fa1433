"""Feeding the B/16 preset from LAION-format tars: images/s through DataLoader workers.

    python benchmarks/bench_pairs_feed.py [--pairs 3072] [--workers 0 1 2] [--batch-size 128] [--work /tmp/lcl-pairs]

Data: webdataset tars in the real LAION layout (``key.jpg`` + ``key.txt`` + ``key.json``, 512 pairs a
shard, written by the kit's one pair writer), 224 × 224 JPEGs at quality 90 of smooth colour fields
with noise (decode cost is set by pixels, not content), captions of 10–30 words. The reader is the
training one, :class:`lcl_core.data.PairedDataset` at the ``LCL_ViT-B-16_laion`` sizes (224 px,
196 image tokens, context 280, CLIP BPE, the official sampled layout) behind
:func:`lcl_core.data.make_loader`, batches of ``--batch-size`` rows. Each worker count runs in a fresh
process; the first batch is untimed (worker start-up). Compare images/s with what the trainer
consumes (``benchmarks/README.md``, "Training step": the B/16 step on one H200).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("a photo of the red blue green small large dog cat car tree house on in with two three "
         "beach city street mountain river people white black").split()
PAIRS_PER_SHARD = 512


def prepare(folder: Path, pairs: int) -> None:
    import numpy as np
    from PIL import Image

    from lcl_core.data.writers import write_pairs

    if any(folder.glob("*.tar")):
        return
    rng, np_rng = random.Random(0), np.random.default_rng(0)

    def generate():
        for i in range(pairs):
            base = np_rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
            field = np.asarray(Image.fromarray(base).resize((224, 224), Image.BICUBIC), dtype=np.int16)
            pixels = np.clip(field + np_rng.normal(0, 12, size=field.shape), 0, 255).astype(np.uint8)
            jpeg = io.BytesIO()
            Image.fromarray(pixels).save(jpeg, format="JPEG", quality=90)
            caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30)))
            yield f"{i:09d}", jpeg.getvalue(), caption, {"width": 224, "height": 224}

    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(folder, generate(), per_shard=PAIRS_PER_SHARD)


def feed(folder: Path, *, workers: int, batch_size: int) -> dict:
    import resource

    import torch

    from lcl_core.config import get_preset
    from lcl_core.data import PairedDataset, make_loader
    from lcl_core.tokenizer import ClipTokenizer

    config = get_preset("LCL_ViT-B-16_laion")
    data = PairedDataset(folder, ClipTokenizer(), image_size=config.vision.image_size,
                         num_image_tokens=config.vision.num_patches, context_length=config.bridge.context_length)
    batches = iter(make_loader(data, batch_size, num_workers=workers))
    first = next(batches)
    start, images, rows = time.perf_counter(), 0, 0
    for batch in batches:
        images += batch["images"].shape[0]
        rows += batch["input_ids"].shape[0]
    seconds = time.perf_counter() - start
    return {"workers": workers, "batch_size": batch_size, "image_shape": list(first["images"].shape[1:]),
            "images": images, "rows": rows, "seconds": round(seconds, 2),
            "images_per_s": round(images / seconds, 1),
            "images_per_s_per_worker": round(images / seconds / max(workers, 1), 1),
            "main_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3072)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lcl-pairs"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one worker count in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(feed(args.work, workers=args.one, batch_size=args.batch_size)))
        return
    prepare(args.work, args.pairs)
    for workers in args.workers:
        out = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--batch-size", str(args.batch_size),
                              "--one", str(workers)], capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
