"""Where batches come from: the sources, the resumable streams the trainer consumes, and mixing.

Sources (``--data-source``) and their folder inside a world built by ``lcl data world --out DIR``:
``mmc4`` (interleaved), ``obelics`` (interleaved), ``pairs`` (LAION-style) and ``mmc4_pair`` (the
matched pairs of MMC4, Table 1's CLIP input); the tiny LLaVA-1.5's stages read ``dialogue_text``,
``dialogue_captions``, ``dialogue`` and ``dialogue_blind`` from a dialogue folder (``lcl data dialogue``,
:mod:`lcl_core.data.dialogue_world`); ``--data`` may also point straight at a folder of real
shards. ``a+b`` mixes sources batch by batch (the paper's LAION + MMC4 row is ``mmc4+pairs``), in
the ratio ``mix`` (batches of each per cycle, default one each). ``synthetic`` needs no files: the
learnable in-memory batches of :mod:`lcl_core.training.synthetic`.

Each objective reads its own source unless told otherwise, and paired data is laid out the way that
objective needs (both from its entry in :data:`lcl_core.objectives.OBJECTIVES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data import (ConversationDataset, MintHtmlDataset, MintPdfDataset, MMC4Dataset, ObelicsDataset,
                    OmniCorpusDataset, OmniCorpusFilters, PairedDataset, keep_latest, make_loader)
from ..objectives import objective_spec
from ..tokenizer import Tokenizer
from .checkpointing import same_on_every_rank
from .config import TrainConfig
from .synthetic import SyntheticBatches


@dataclass(frozen=True)
class Source:
    reader: type
    folder: str  # inside a world folder (or a dialogue folder: lcl data dialogue)
    description: str
    options: dict = field(default_factory=dict)  # the reader's own options for this source


SOURCES = {
    "mmc4": Source(MMC4Dataset, "mmc4", "MMC4 shards (docs_shard_*_v2.jsonl.zip + images/)"),
    "obelics": Source(ObelicsDataset, "obelics", "OBELICS parquet files"),
    "omnicorpus": Source(OmniCorpusDataset, "omnicorpus", "OmniCorpus-CC parquet files"),
    "mint": Source(MintHtmlDataset, "mint", "MINT-1T HTML parquet files"),
    "mint_pdf": Source(MintPdfDataset, "mint_pdf", "MINT-1T PDF or ArXiv tars (key.json + key.tiff)"),
    "pairs": Source(PairedDataset, "pairs", "paired webdataset tars"),
    "mmc4_pair": Source(PairedDataset, "mmc4_pair", "MMC4-Pair webdataset tars"),
    # the tiny LLaVA-1.5's stages (lcl_core.training.dialogue), read from a dialogue folder
    "dialogue_text": Source(ConversationDataset, "text", "text-only JSON lines (the language model's pre-training)"),
    "dialogue_captions": Source(ConversationDataset, "captions", "LLaVA-format image-caption conversations"),
    "dialogue": Source(ConversationDataset, "instruct", "LLaVA-format instruction conversations"),
    "dialogue_blind": Source(ConversationDataset, "instruct", "the instruction conversations without their images",
                             {"blind": True}),
}
SYNTHETIC = "synthetic"
INTERLEAVED_READERS = (MMC4Dataset, ObelicsDataset, OmniCorpusDataset, MintHtmlDataset, MintPdfDataset)
IMAGES_APART = (MMC4Dataset, ObelicsDataset, OmniCorpusDataset, MintHtmlDataset)  # --images applies to these


def source_names(source: str | None, objective: str) -> list[str]:
    """``"mmc4+pairs"`` -> ``["mmc4", "pairs"]``; None -> the objective's own source. Unknown names raise."""
    names = (source or objective_spec(objective).source).split("+")
    unknown = [n for n in names if n not in SOURCES and n != SYNTHETIC]
    if unknown or (SYNTHETIC in names and len(names) > 1):
        raise ValueError(f"unknown data source {source!r}; choose from {', '.join([*SOURCES, SYNTHETIC])}, "
                         "or join sources with '+' to mix them (e.g. mmc4+pairs)")
    return names


def synthetic_layout(objective: str) -> str:
    """How :class:`SyntheticBatches` lays rows out for an objective: as documents when the objective reads
    documents, else in the objective's pair layout."""
    spec = objective_spec(objective)
    return "interleaved" if SOURCES[spec.source].reader in INTERLEAVED_READERS else spec.pair_layout


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


def build_dataset(*, data: str | Path, source: str, config: TrainConfig, model_config,
                  tokenizer: Tokenizer, rank: int, world_size: int, images: str | Path | None = None,
                  omnicorpus_filters: dict | None = None):
    """An endless (``loop=True``) reader for ``source``, sharded for this rank (``model_config``: a model config
    whose ``stream_sizes()`` give the image size, placeholders per image and row length); ``images``: the image folder
    of an interleaved source kept apart from its shards (pairs carry their images in the tar); ``omnicorpus_filters``:
    :class:`~lcl_core.data.OmniCorpusFilters` fields for an omnicorpus source."""
    spec = SOURCES[source]
    options = dict(**model_config.stream_sizes(), seed=config.seed, loop=True, shuffle_window=config.shuffle_window,
                   rank=rank, world_size=world_size, **spec.options)
    if spec.reader is PairedDataset:
        options.update(layout=objective_spec(config.objective).pair_layout, img_first_prob=config.img_first_prob)
    elif spec.reader is MMC4Dataset:
        options.update(img_first_prob=config.img_first_prob)
    if images is not None and spec.reader in IMAGES_APART:
        options.update(image_root=images)
    if omnicorpus_filters and spec.reader is OmniCorpusDataset:
        options.update(filters=OmniCorpusFilters(**omnicorpus_filters))
    return spec.reader(resolve_source_folder(data, source), tokenizer, **options)


class StreamBatches:
    """Collated batches from a streaming reader; ``state()`` is the position right after the last batch
    handed out (not the DataLoader's prefetch), which is what a resumed run continues from, and the
    reader's handover plan after an elastic resume."""

    def __init__(self, *, dataset, batch_size: int, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.loader = make_loader(dataset, batch_size, num_workers=num_workers)
        self.positions: list[dict] = []

    @property
    def batch_sizes(self) -> list[int]:
        return [self.batch_size]

    def __iter__(self):
        for batch in self.loader:
            self.positions = keep_latest(self.positions + batch["positions"])
            yield batch

    def state(self) -> dict:
        return {"positions": self.positions, "plan": self.dataset.plan}

    def resume_from(self, states: list[dict]) -> None:
        """Continue after the saved states of every rank of the run (on another number of ranks the
        reader hands the unread records over: :meth:`lcl_core.data.streaming.ShardedStream.resume_from`)."""
        positions = [position for state in states for position in state["positions"]]
        self.positions = self.dataset.resume_from(positions, plan=states[0].get("plan"))


class AlternatingBatches:
    """Batches taken in turn from several streams (e.g. interleaved documents and pairs), ``mix[i]``
    batches of stream ``i`` per cycle. The position in the cycle is part of the state, so a resumed
    run continues with the stream that was next, exactly as the uninterrupted run would."""

    def __init__(self, streams, *, mix: list[int] | None = None) -> None:
        self.streams = list(streams)
        mix = list(mix or [1] * len(self.streams))
        if len(mix) != len(self.streams) or min(mix) < 1:
            raise ValueError(f"mix {mix} must give a positive number of batches for each of the {len(self.streams)} "
                             "streams")
        self.cycle = [i for i, count in enumerate(mix) for _ in range(count)]
        self.turn = 0

    def __iter__(self):
        iterators = [iter(s) for s in self.streams]
        while True:
            batch = next(iterators[self.cycle[self.turn]])
            self.turn = (self.turn + 1) % len(self.cycle)
            yield batch

    @property
    def batch_sizes(self) -> list[int]:
        return [size for stream in self.streams for size in stream.batch_sizes]

    def state(self) -> dict:
        return {"turn": self.turn, "streams": [s.state() for s in self.streams]}

    def resume_from(self, states: list[dict]) -> None:
        self.turn = same_on_every_rank(states, "turn")
        for index, stream in enumerate(self.streams):
            stream.resume_from([state["streams"][index] for state in states])


def build_batches(*, data: str | Path | None, source: str | None, config: TrainConfig, model_config,
                  tokenizer: Tokenizer, rank: int, world_size: int, mix: list[int] | None = None,
                  batch_sizes: list[int] | None = None, images: str | Path | None = None,
                  omnicorpus_filters: dict | None = None):
    """The trainer's data: one stream, a mix of streams, or synthetic batches (see the module docstring).
    ``batch_sizes``: rows per batch of each mixed source (default ``config.batch_size`` for all), so that a
    mix can match images per step across sources (a batch of 32 documents holds about 82 images).
    ``images``: where the documents' images are when not beside the shards, ``omnicorpus_filters``: the
    :class:`~lcl_core.data.OmniCorpusFilters` of an omnicorpus source (see :func:`build_dataset`)."""
    names = source_names(source, config.objective)
    if names == [SYNTHETIC]:
        return SyntheticBatches(model_config=model_config, layout=synthetic_layout(config.objective),
                                batch_size=config.batch_size, seed=config.seed, rank=rank, world_size=world_size)
    streams = [StreamBatches(dataset=build_dataset(data=data, source=name, config=config, model_config=model_config,
                                                   tokenizer=tokenizer, rank=rank, world_size=world_size,
                                                   images=images, omnicorpus_filters=omnicorpus_filters),
                             batch_size=size, num_workers=config.num_workers)
               for name, size in zip(names, batch_sizes or [config.batch_size] * len(names))]
    return streams[0] if len(streams) == 1 else AlternatingBatches(streams, mix=mix)
