"""``lcl data world`` (build the offline world), ``lcl data fetch-images SOURCE… --out DIR`` (the images real shards
name by URL, docs/real-data.md), ``lcl data inspect PATH`` (read any shard with the real reader) and
``lcl data realism PATH [PATH …]`` (what the text before an image says about it, beside real MMC4)."""

from __future__ import annotations

import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from .mmc4 import SIM_THRESHOLD, document_statistics, read_documents


def add_arguments(parser) -> None:
    from .omnicorpus import add_filter_flags
    from .world import DEFAULT_WORLD, WORLD_PRESETS, EvalSizes, WorldKnobs

    sub = parser.add_subparsers(dest="action", required=True)
    world = sub.add_parser("world", help="generate the offline interleaved world")
    world.add_argument("--out", required=True, help="output folder")
    world.add_argument("--docs", type=int, default=2000)
    world.add_argument("--tier", choices=("basic", "real"), default="basic")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--image-size", type=int, default=32)
    world.add_argument("--pairs", type=int, default=None, help="LAION-style pairs (default: as many as docs)")
    world.add_argument("--processes", type=int, default=None)
    world.add_argument("--preset", choices=tuple(WORLD_PRESETS), default=DEFAULT_WORLD,
                       help=f"the world knobs to start from (default {DEFAULT_WORLD}): calibrated (pages as real MMC4 "
                            "pages are, docs/realism.md) or v1 (one sentence describes each image; the world of the "
                            "results committed before the calibration); the knob flags below change single knobs of it")
    for knob in fields(WorldKnobs):
        world.add_argument(f"--{knob.name.replace('_', '-')}", type=type(knob.default), default=None,
                           help=f"world knob (default: the preset's; {DEFAULT_WORLD}: "
                                f"{getattr(WORLD_PRESETS[DEFAULT_WORLD], knob.name)}, v1: {knob.default})")
    for knob in fields(EvalSizes):
        world.add_argument(f"--{knob.name.replace('_', '-')}", type=type(knob.default), default=knob.default,
                           help=f"evaluation set size (default {knob.default})")
    dialogue = sub.add_parser("dialogue", help="the tiny LLaVA-1.5's data from a world: text for its language model, "
                                               "captions, instruction conversations and held-out benchmark questions")
    dialogue.add_argument("--world", required=True, help="a world folder (lcl data world)")
    dialogue.add_argument("--out", required=True, help="output folder")
    dialogue.add_argument("--train-images", type=int, default=2000, help="images of the caption and instruction "
                                                                       "data (default 2000)")
    dialogue.add_argument("--test-images", type=int, default=300, help="held-out images the benchmarks ask about "
                                                                      "(default 300)")
    dialogue.add_argument("--seed", type=int, default=0)
    fetch = sub.add_parser("fetch-images", help="fetch the images MMC4 shards and OBELICS / OmniCorpus / MINT-1T HTML "
                                                "parquet name by URL (img2dataset, in an environment of its own)")
    fetch.add_argument("sources", nargs="+", help="MMC4 .jsonl / .jsonl.zip shards, parquet files, folders or globs")
    fetch.add_argument("--out", required=True, help="the image folder (give it to lcl pretrain / inspect as --images)")
    fetch.add_argument("--img2dataset-env", type=Path, help="img2dataset's virtual environment, made on first use "
                                                            "(default ~/.cache/lcl/img2dataset-1.47.0)")
    fetch.add_argument("--retry-failed", action="store_true", help="try again the URLs that failed before")
    from .fetch import FetchOptions

    for option in fields(FetchOptions):
        fetch.add_argument(f"--{option.name.replace('_', '-')}", type=type(option.default), default=option.default,
                           help=f"img2dataset's {option.name} (default {option.default})")
    inspect = sub.add_parser("inspect", help="read a world, MMC4 shards, OBELICS parquet or tars with the training "
                                             "readers: records read, rows and images kept, skips by reason")
    inspect.add_argument("path", help="a world folder, a shard / parquet / tar, or a folder of one format")
    inspect.add_argument("--images", help="documents' images kept apart from the shards, e.g. lcl data fetch-images' "
                                          "--out (as lcl pretrain --images)")
    inspect.add_argument("--tokenizer", help="'clip' or a saved tokenizer folder (default: the world's, else clip)")
    inspect.add_argument("--limit", type=int, default=1000, help="stop after this many records per source (default "
                                                                 "1000; 0: read everything)")
    inspect.add_argument("--show", type=int, default=2, help="rows to print laid out, images as [image k]")
    inspect.add_argument("--context-length", type=int, default=2048, help="tokens per row, as the model's (default "
                                                                          "2048: the official LCL context)")
    add_filter_flags(inspect)
    realism = sub.add_parser("realism", help="what the text before each image says about it, from the pages' "
                                             "similarity matrices, side by side and beside the real MMC4 sample")
    realism.add_argument("paths", nargs="+", help="MMC4 .jsonl / .jsonl.zip shards, folders of them, or kit worlds")
    realism.add_argument("--limit", type=int, default=0, help="pages read per path (default 0: all)")
    realism.add_argument("--bootstrap", type=int, default=1000, help="page resamples for the standard errors")
    realism.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    realism.add_argument("--json", action="store_true", help="JSON instead of the table")
    realism.add_argument("--window", type=int, default=0, help="also: what share of each page's images and sentences "
                                                             "a window of this many tokens keeps (official: 2048)")
    realism.add_argument("--image-tokens", type=int, default=49, help="tokens per image in that window (official "
                                                                      "ViT-B/32 at 224 px: 49; tiny-fast: 16)")
    realism.add_argument("--tokenizer", default="clip", help="for the window: clip, trained (a BPE trained on the "
                                                             "world's corpus, as the reproduction's) or a folder")
    realism.add_argument("--vocab-size", type=int, default=4096, help="the trained tokenizer's vocabulary")


def main(args) -> int:
    if args.action == "realism":
        from .realism import main as realism_main

        return realism_main(args)
    if args.action == "fetch-images":
        return fetch_images(args)
    if args.action == "dialogue":
        return dialogue(args)
    return build(args) if args.action == "world" else inspect(args)


def fetch_images(args) -> int:
    from .fetch import EnvironmentUnavailable, FetchOptions, fetch_images as fetch, summary_lines

    options = FetchOptions(**{option.name: getattr(args, option.name) for option in fields(FetchOptions)})
    try:
        summary = fetch(args.sources, args.out, options=options, env=args.img2dataset_env,
                        retry_failed=args.retry_failed)
    except (FileNotFoundError, ValueError, EnvironmentUnavailable) as error:
        print(f"lcl data fetch-images: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(summary, Path(args.out))))
    return 0 if summary["img2dataset_exit_code"] == 0 else 1


def dialogue(args) -> int:
    from .dialogue_world import build_dialogue

    if not (Path(args.world) / "world.json").is_file():
        print(f"lcl data dialogue: error: {args.world} is not a world folder (no world.json); build one with "
              "`lcl data world --out DIR`", file=sys.stderr)
        return 2
    manifest = build_dialogue(args.world, args.out, train_images=args.train_images, test_images=args.test_images,
                              seed=args.seed)
    print(f"wrote {args.out}:")
    for name, count in manifest["counts"].items():
        print(f"  {name:24s} {count}")
    return 0


def build(args) -> int:
    from .world import WORLD_PRESETS, EvalSizes, WorldKnobs, build_world

    given = {k.name: getattr(args, k.name) for k in fields(WorldKnobs) if getattr(args, k.name) is not None}
    knobs = replace(WORLD_PRESETS[args.preset], **given)
    eval_sizes = EvalSizes(**{k.name: getattr(args, k.name) for k in fields(EvalSizes)})
    manifest = build_world(args.out, docs=args.docs, seed=args.seed, tier=args.tier, image_size=args.image_size,
                           knobs=knobs, pairs=args.pairs, eval_sizes=eval_sizes, processes=args.processes,
                           progress=True)
    print(f"wrote {args.out}:")
    for name, count in manifest["counts"].items():
        print(f"  {name:24s} {count}")
    return 0


def world_flags(knobs, eval_sizes) -> str:
    """The ``lcl data world`` flags that set ``knobs`` and ``eval_sizes``: ``--preset`` of the preset the knobs
    are closest to (fewest knobs changed), then the knobs and sizes that differ from it and the defaults."""
    from .world import WORLD_PRESETS, EvalSizes

    def changed(given, default) -> list[str]:
        return [f"--{f.name.replace('_', '-')} {getattr(given, f.name)}" for f in fields(given)
                if getattr(given, f.name) != getattr(default, f.name)]

    preset = min(WORLD_PRESETS, key=lambda name: len(changed(knobs, WORLD_PRESETS[name])))
    return " ".join([f"--preset {preset}", *changed(knobs, WORLD_PRESETS[preset]), *changed(eval_sizes, EvalSizes())])


def inspect(args) -> int:
    from ..tokenizer import load_tokenizer
    from .inspection import inspect_files, inspect_world
    from .omnicorpus import filters_from_arguments

    path = Path(args.path)
    world = path.is_dir() and (path / "world.json").is_file()
    tokenizer = load_tokenizer(args.tokenizer or (path / "tokenizer" if world and (path / "tokenizer").is_dir()
                                                  else "clip"))
    options = dict(images=args.images, limit=args.limit or None, show=args.show, context_length=args.context_length,
                   omnicorpus_filters=filters_from_arguments(args))
    try:
        if world:
            manifest = json.loads((path / "world.json").read_text())
            print(json.dumps({k: manifest[k] for k in ("seed", "tier", "image_size", "counts", "knobs")}, indent=1))
            inspections = inspect_world(path, tokenizer, **options)
        else:
            inspections = [inspect_files(path, tokenizer, **options)]
    except (FileNotFoundError, ValueError) as error:
        print(f"lcl data inspect: error: {error}", file=sys.stderr)
        return 2
    if path.is_file() and inspections[0].kind == "MMC4 shards":
        _text_statistics(path)
    for inspection in inspections:
        print("\n".join(inspection.lines()))
    return 0 if all(i.rows for i in inspections) else 1  # 1: a source with nothing usable


def _text_statistics(path: Path) -> None:
    docs, broken = read_documents(path)
    stats = document_statistics(docs)
    print(f"{path}: {len(docs)} documents ({broken} unreadable lines), {stats['images']} images "
          f"({stats['images_per_document']:.1f} per document), median {stats['median_sentences']} sentences, "
          f"{stats['share_below_threshold']:.0%} of images below {SIM_THRESHOLD}")
