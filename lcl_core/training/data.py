"""Which data each objective reads, and the resumable stream of batches the trainer consumes.

Sources (``--data-source``) and their folder inside a world built by ``lcl data world --out DIR``:
``mmc4`` (interleaved), ``obelics`` (interleaved), ``pairs`` (LAION-style) and ``mmc4_pair`` (the
matched pairs of MMC4, Table 1's CLIP input). ``--data`` may also point straight at a folder of real
shards. Paired data is laid out per objective: the official sampled wrapper for the generative
objectives, ``[<sot> caption <soi>]`` for CLIP, and both orders of every pair for CoCa.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import ModelConfig
from ..data import MMC4Dataset, ObelicsDataset, PairedDataset, keep_latest, make_loader
from ..tokenizer import Tokenizer
from .config import TrainConfig


@dataclass(frozen=True)
class Source:
    reader: type
    folder: str  # inside a world folder
    description: str


SOURCES = {
    "mmc4": Source(MMC4Dataset, "mmc4", "MMC4 shards (docs_shard_*_v2.jsonl.zip + images/)"),
    "obelics": Source(ObelicsDataset, "obelics", "OBELICS parquet files"),
    "pairs": Source(PairedDataset, "pairs", "paired webdataset tars"),
    "mmc4_pair": Source(PairedDataset, "mmc4_pair", "MMC4-Pair webdataset tars"),
}
DEFAULT_SOURCE = {"lcl": "mmc4", "contrastive": "mmc4_pair", "coca": "mmc4_pair", "generation": "mmc4",
                  "generation_regression": "mmc4"}
PAIR_LAYOUT = {"lcl": "sampled", "contrastive": "contrastive", "coca": "both", "generation": "sampled",
               "generation_regression": "sampled"}


def resolve_source_folder(data: str | Path, source: str) -> Path:
    """``DATA/<source folder>`` for a world, else ``DATA`` itself; a clear error when neither holds data."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose from {', '.join(SOURCES)}")
    data, spec = Path(data), SOURCES[source]
    if not data.exists():
        raise FileNotFoundError(f"data folder {data} does not exist; build the offline world with "
                                f"`lcl data world --out {data}` or point --data at {spec.description}")
    inside_world = data / spec.folder
    if inside_world.is_dir():
        return inside_world
    if any(p.is_file() for pattern in spec.reader.unit_patterns for p in data.glob(pattern)):
        return data
    raise FileNotFoundError(f"no {source} data in {data}: expected {inside_world}/ (a world from "
                            f"`lcl data world`) or {spec.description} directly in {data}")


def build_dataset(*, data: str | Path, source: str, config: TrainConfig, model_config: ModelConfig,
                  tokenizer: Tokenizer, rank: int, world_size: int):
    """An endless (``loop=True``) reader for ``source``, sharded for this rank."""
    spec = SOURCES[source]
    options = dict(image_size=model_config.vision.image_size, num_image_tokens=model_config.vision.num_patches,
                   context_length=model_config.bridge.context_length, seed=config.seed, loop=True,
                   rank=rank, world_size=world_size)
    if spec.reader is PairedDataset:
        options.update(layout=PAIR_LAYOUT[config.objective], img_first_prob=config.img_first_prob)
    elif spec.reader is MMC4Dataset:
        options.update(img_first_prob=config.img_first_prob)
    return spec.reader(resolve_source_folder(data, source), tokenizer, **options)


class StreamBatches:
    """Collated batches from a streaming reader; ``state()`` is the position right after the last batch
    handed out (not the DataLoader's prefetch), which is what a resumed run continues from."""

    def __init__(self, *, dataset, batch_size: int, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.loader = make_loader(dataset, batch_size, num_workers=num_workers)
        self.positions: list[dict] = []

    def __iter__(self):
        for batch in self.loader:
            self.positions = keep_latest(self.positions + batch["positions"])
            yield batch

    def state(self) -> dict:
        return {"positions": self.positions}

    def resume_from(self, state: dict) -> None:
        self.positions = list(state["positions"])
        self.dataset.resume_from(self.positions)


class AlternatingBatches:
    """Batches taken in turn from several streams (e.g. interleaved documents and pairs: the "mixed"
    data of the ablations). The turn is part of the state, so a resumed run continues with the stream
    that was next, exactly as the uninterrupted run would."""

    def __init__(self, streams) -> None:
        self.streams = list(streams)
        self.turn = 0

    def __iter__(self):
        iterators = [iter(s) for s in self.streams]
        while True:
            batch = next(iterators[self.turn])
            self.turn = (self.turn + 1) % len(iterators)
            yield batch

    def state(self) -> dict:
        return {"turn": self.turn, "streams": [s.state() for s in self.streams]}

    def resume_from(self, state: dict) -> None:
        self.turn = state["turn"]
        for stream, saved in zip(self.streams, state["streams"]):
            stream.resume_from(saved)


def build_batches(*, data: str | Path, source: str | None, config: TrainConfig, model_config: ModelConfig,
                  tokenizer: Tokenizer, rank: int, world_size: int) -> StreamBatches:
    dataset = build_dataset(data=data, source=source or DEFAULT_SOURCE[config.objective], config=config,
                            model_config=model_config, tokenizer=tokenizer, rank=rank, world_size=world_size)
    return StreamBatches(dataset=dataset, batch_size=config.batch_size, num_workers=config.num_workers)
