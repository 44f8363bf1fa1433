"""Reading MMC4-format shards: documents per second and peak RSS at 1k, 10k and 100k documents.

Data: one offline world of 1,000 documents (8 shards of 125) is built once; larger corpora are the same
shards linked under further ``docs_shard_{i}_v2.jsonl.zip`` names (identical bytes, distinct files),
all sharing one ``images/`` folder. Each size is read in a fresh process (one reader, no DataLoader
workers, 32 px images, 16 image tokens, context 512, a 4k tokenizer trained on the corpus), so the
peak RSS printed is that size's own.

    python benchmarks/bench_data_read.py [--sizes 1000 10000 100000] [--work /tmp/lcl-bench]

With ``--official PATH`` (a clone of OpenGVLab/LCL; nothing of it is committed) it instead reads the
same documents with the kit's reader and with the official ``MMC4InterleavedDataset``
(``src/training/interleaved.py``, indexed 0…n−1 in order), each size and side in a fresh process,
both with the CLIP BPE tokenizer (the official loader's) and the same image transform. The official
loader opens shards by their own member name, so its copies are re-zipped under ``official-{size}/data``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
import zipfile
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


def prepare_official(work: Path, sizes: list[int]) -> None:
    """The official loader's layout: ``data/docs_shard_{i}_v2.jsonl.zip`` holding ``docs_shard_{i}_v2.jsonl``."""
    base_shards = sorted((work / "base" / "mmc4").glob("docs_shard_*_v2.jsonl.zip"))
    for size in sizes:
        folder = work / f"official-{size}"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        if not (folder / "images").exists():
            (folder / "images").symlink_to(work / "base" / "mmc4" / "images")
        for i in range(size // DOCS_PER_SHARD):
            target = folder / "data" / f"docs_shard_{i}_v2.jsonl.zip"
            if target.exists():
                continue
            with zipfile.ZipFile(base_shards[i % len(base_shards)]) as source:
                lines = source.read(source.namelist()[0])
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
                out.writestr(f"docs_shard_{i}_v2.jsonl", lines)


def _measure(count_documents) -> dict:
    start = time.perf_counter()
    documents, images = count_documents()
    seconds = time.perf_counter() - start
    return {"documents": documents, "images": images, "seconds": round(seconds, 1),
            "docs_per_s": round(documents / seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def read(folder: Path, tokenizer: str | Path) -> dict:
    from lcl_core.data import MMC4Dataset
    from lcl_core.tokenizer import load_tokenizer

    data = MMC4Dataset(folder, load_tokenizer(tokenizer), image_size=32, num_image_tokens=16, context_length=512)

    def count():
        documents = images = 0
        for sample in data:
            documents, images = documents + 1, images + len(sample["images"])
        return documents, images

    return {**_measure(count), "skips": sum(data.skips.values())}


def read_official(folder: Path, official: Path) -> dict:
    """The official loader, from loading its annotations (it holds every document in memory) to the last item."""
    from lcl_core.images import image_transform

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    tokenizer_module = load("lcl_official_tokenizer", official / "src" / "open_clip" / "tokenizer.py")
    interleaved = load("lcl_official_interleaved", official / "src" / "training" / "interleaved.py")
    tokenizer = tokenizer_module.SimpleTokenizer(
        additional_special_tokens=["<img_placehold>", "<start_of_img>", "<end_of_img>"], context_length=512)
    shards = len(list((folder / "data").glob("*.zip")))

    def count():
        data = interleaved.MMC4InterleavedDataset(
            str(folder / "data"), str(folder / "images"), image_transform(32), tokenizer, ann_file_cnt=shards,
            context_length=512, num_img_token=16, global_distributed=False)
        images = sum(data[i][0].shape[0] for i in range(len(data)))
        return len(data), images

    return _measure(count)


def _one(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lcl-bench"))
    parser.add_argument("--official", type=Path, help="a clone of OpenGVLab/LCL: compare with its MMC4 loader")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: read one folder in this process
    parser.add_argument("--side", choices=("kit", "kit-clip", "official"), default="kit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        if args.side == "official":
            print(json.dumps(read_official(args.one, args.official)))
        else:
            print(json.dumps(read(args.one, "clip" if args.side == "kit-clip" else args.work / "tokenizer")))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work, args.sizes)
    if args.official:
        prepare_official(args.work, args.sizes)
        print("| documents | loader | docs/s | seconds | peak RSS (MiB) |\n|---:|---|---:|---:|---:|")
        for size in args.sizes:
            for side, folder in (("kit-clip", f"mmc4-{size}"), ("official", f"official-{size}")):
                r = _one(["--work", str(args.work), "--official", str(args.official.resolve()), "--side", side,
                          "--one", str(args.work / folder)])
                print(f"| {r['documents']:,} | {side} | {r['docs_per_s']} | {r['seconds']} | {r['peak_rss_mib']} |",
                      flush=True)
        return
    print("| documents | images | seconds | docs/s | peak RSS (MiB) |\n|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = _one(["--work", str(args.work), "--one", str(args.work / f"mmc4-{size}")])
        print(f"| {r['documents']:,} | {r['images']:,} | {r['seconds']} | {r['docs_per_s']} | {r['peak_rss_mib']} |",
              flush=True)


if __name__ == "__main__":
    main()
