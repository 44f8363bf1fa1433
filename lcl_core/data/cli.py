"""``lcl data world`` (build the offline world) and ``lcl data inspect PATH`` (summarise any shard)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from pathlib import Path

from .mmc4 import SIM_THRESHOLD, document_statistics, read_documents


def add_arguments(parser) -> None:
    from .world import EvalSizes, WorldKnobs

    sub = parser.add_subparsers(dest="action", required=True)
    world = sub.add_parser("world", help="generate the offline interleaved world")
    world.add_argument("--out", required=True, help="output folder")
    world.add_argument("--docs", type=int, default=2000)
    world.add_argument("--tier", choices=("basic", "real"), default="basic")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--image-size", type=int, default=32)
    world.add_argument("--pairs", type=int, default=None, help="LAION-style pairs (default: as many as docs)")
    world.add_argument("--processes", type=int, default=None)
    for group, kind in ((WorldKnobs, "world knob"), (EvalSizes, "evaluation set size")):
        for knob in fields(group):
            world.add_argument(f"--{knob.name.replace('_', '-')}", type=type(knob.default), default=knob.default,
                               help=f"{kind} (default {knob.default})")
    inspect = sub.add_parser("inspect", help="summarise a world folder, MMC4 shard, OBELICS parquet or tar")
    inspect.add_argument("path")
    inspect.add_argument("--show", type=int, default=1, help="records to print")


def main(args) -> int:
    return build(args) if args.action == "world" else inspect(Path(args.path), args.show)


def build(args) -> int:
    from .world import EvalSizes, WorldKnobs, build_world

    knobs = WorldKnobs(**{k.name: getattr(args, k.name) for k in fields(WorldKnobs)})
    eval_sizes = EvalSizes(**{k.name: getattr(args, k.name) for k in fields(EvalSizes)})
    manifest = build_world(args.out, docs=args.docs, seed=args.seed, tier=args.tier, image_size=args.image_size,
                           knobs=knobs, pairs=args.pairs, eval_sizes=eval_sizes, processes=args.processes,
                           progress=True)
    print(f"wrote {args.out}:")
    for name, count in manifest["counts"].items():
        print(f"  {name:24s} {count}")
    return 0


def world_flags(knobs, eval_sizes) -> str:
    """The ``lcl data world`` flags that set ``knobs`` and ``eval_sizes`` where they differ from the defaults."""
    from .world import EvalSizes, WorldKnobs

    return " ".join(f"--{f.name.replace('_', '-')} {getattr(given, f.name)}"
                    for given, default in ((knobs, WorldKnobs()), (eval_sizes, EvalSizes()))
                    for f in fields(given) if getattr(given, f.name) != getattr(default, f.name))


def inspect(path: Path, show: int) -> int:
    if path.is_dir() and (path / "world.json").is_file():
        manifest = json.loads((path / "world.json").read_text())
        print(json.dumps({k: manifest[k] for k in ("seed", "tier", "image_size", "counts", "knobs")}, indent=1))
    elif path.name.endswith((".jsonl.zip", ".jsonl")):
        _inspect_mmc4(path, show)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq
        table = pq.read_table(path)
        rows = table.slice(0, show).to_pylist()
        images = sum(sum(x is not None for x in r) for r in table.column("images").to_pylist())
        print(f"{path}: OBELICS parquet, {table.num_rows} documents, {images} images, columns {table.column_names}")
        for row in rows:
            print(json.dumps({k: row[k] for k in ("texts", "images")}, ensure_ascii=False)[:600])
    elif path.suffix == ".tar":
        from .paired import tar_samples
        samples = list(tar_samples(path))
        extensions = Counter(e for s in samples for e in s if e != "__key__")
        print(f"{path}: webdataset tar, {len(samples)} samples, files {dict(extensions)}")
        for sample in samples[:show]:
            print(f"  {sample['__key__']}: {sample.get('txt', b'').decode('utf-8', 'replace')}")
    else:
        print(f"{path}: not a world folder, MMC4 shard, OBELICS parquet or webdataset tar")
        return 1
    return 0


def _inspect_mmc4(path: Path, show: int) -> None:
    docs, broken = read_documents(path)
    stats = document_statistics(docs)
    print(f"{path}: MMC4 shard, {len(docs)} documents ({broken} unreadable lines), {stats['images']} images "
          f"({stats['images_per_document']:.1f} per document), median {stats['median_sentences']} sentences, "
          f"{stats['share_below_threshold']:.0%} of images below {SIM_THRESHOLD}")
    for doc in docs[:show]:
        print(f"  {doc.get('url')}")
        for info in doc.get("image_info", []):
            text = doc["text_list"][info["matched_text_index"]]
            print(f"    {info['image_name']}  sim {info['matched_sim']:.3f}  -> {text[:90]}")
