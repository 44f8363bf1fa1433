"""Reading MMC4-format shards: documents per second and peak RSS at 1k, 10k and 100k documents.

Data: one offline world of 1,000 documents (8 shards of 125) is built once; larger corpora are the same
shards linked under further ``docs_shard_{i}_v2.jsonl.zip`` names (identical bytes, distinct files),
all sharing one ``images/`` folder. Each size is read in a fresh process (one reader, no DataLoader
workers, 32 px images, 16 image tokens, context 512, a 4k tokenizer trained on the corpus), so the
peak RSS printed is that size's own.

    python benchmarks/bench_data_read.py [--sizes 1000 10000 100000] [--work /tmp/lcl-bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DOCS_PER_SHARD = 125
BASE_DOCS = 1000


def prepare(work: Path, sizes: list[int]) -> None:
    from lcl_core.data import build_world
    from lcl_core.tokenizer import TrainedTokenizer

    base = work / "base"
    if not (base / "world.json").is_file():
        build_world(base, docs=BASE_DOCS, docs_per_shard=DOCS_PER_SHARD, pairs=0)
    if not (work / "tokenizer").is_dir():
        TrainedTokenizer.train((base / "corpus.txt").read_text().splitlines()).save(work / "tokenizer")
    base_shards = sorted((base / "mmc4").glob("docs_shard_*_v2.jsonl.zip"))
    for size in sizes:
        folder = work / f"mmc4-{size}"
        (folder).mkdir(exist_ok=True)
        if not (folder / "images").exists():
            (folder / "images").symlink_to(base / "mmc4" / "images")
        for i in range(size // DOCS_PER_SHARD):
            link = folder / f"docs_shard_{i}_v2.jsonl.zip"
            if not link.exists():
                link.symlink_to(base_shards[i % len(base_shards)])


def read(folder: Path, tokenizer: Path) -> dict:
    from lcl_core.data import MMC4Dataset
    from lcl_core.tokenizer import load_tokenizer

    data = MMC4Dataset(folder, load_tokenizer(tokenizer), image_size=32, num_image_tokens=16, context_length=512)
    start, documents, images = time.perf_counter(), 0, 0
    for sample in data:
        documents += 1
        images += len(sample["images"])
    seconds = time.perf_counter() - start
    return {"documents": documents, "images": images, "seconds": round(seconds, 1),
            "docs_per_s": round(documents / seconds, 1), "skips": sum(data.skips.values()),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lcl-bench"))
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: read one folder in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(read(args.one, args.work / "tokenizer")))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work, args.sizes)
    print("| documents | images | seconds | docs/s | peak RSS (MiB) |\n|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--one",
                              str(args.work / f"mmc4-{size}")], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['documents']:,} | {r['images']:,} | {r['seconds']} | {r['docs_per_s']} | {r['peak_rss_mib']} |",
              flush=True)


if __name__ == "__main__":
    main()
