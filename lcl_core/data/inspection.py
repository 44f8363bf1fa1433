"""``lcl data inspect``: what the real readers make of a user's files — records read, rows and images kept,
every skip by reason — and a few rows laid out as the model will see them. It runs the same reader as
training (same rules, same skips), so its counts are what ``lcl pretrain`` will get."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from ..sequences import laid_out
from ..tokenizer import Tokenizer
from .mint import MintHtmlDataset, MintPdfDataset
from .mmc4 import MMC4Dataset
from .obelics import ObelicsDataset
from .omnicorpus import OmniCorpusDataset, OmniCorpusFilters
from .paired import PairedDataset, tar_samples
from .streaming import UNIT_ERRORS, NothingReadable

KINDS = {MMC4Dataset: "MMC4 shards", ObelicsDataset: "OBELICS parquet", OmniCorpusDataset: "OmniCorpus-CC parquet",
         MintHtmlDataset: "MINT-1T HTML parquet", PairedDataset: "webdataset pairs",
         MintPdfDataset: "MINT-1T PDF/ArXiv tars"}
WORLD_SOURCES = ("mmc4", "obelics", "pairs", "mmc4_pair")  # the folders of a world, each read on its own


@dataclass
class Inspection:
    path: Path
    kind: str
    files: int
    records: int  # documents (or pairs) the reader tried
    rows: int  # token rows it yielded
    images: int  # images in those rows
    skipped: dict[str, int]  # records dropped, by reason
    counted: dict[str, int]  # the rest: images dropped, files unreadable, repairs (e.g. converted_image_mode)
    examples: list[str] = field(default_factory=list)
    stopped_at_limit: bool = False

    def lines(self) -> list[str]:
        def reasons(counts: dict[str, int]) -> str:
            return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

        limit = " (stopped at --limit)" if self.stopped_at_limit else ""
        lines = [f"{self.path}: {self.kind}, {self.files} file{'s' * (self.files != 1)}",
                 f"  records read        {self.records}{limit}",
                 f"  rows kept           {self.rows} with {self.images} images",
                 f"  records skipped     {sum(self.skipped.values())}" + (f": {reasons(self.skipped)}" if self.skipped else "")]
        if self.counted:
            lines.append(f"  also counted        {reasons(self.counted)}")
        lines += [f"  row {i}: {text}" for i, text in enumerate(self.examples, 1)]
        return lines


def reader_for(path: Path) -> type:
    """The reader of a file, or of the one format found in a folder: by name (``*.jsonl.zip``, ``*.parquet``,
    ``*.tar``), then, for parquet and tars, by what the folder's first such file holds (:func:`format_of`)."""
    def matches(reader, name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in reader.unit_patterns)

    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    else:
        raise FileNotFoundError(f"{path} does not exist")
    first_of_each_suffix = {}  # what the files hold is looked at in the first of each kind of name only
    for file in files:
        if any(matches(reader, file.name) for reader in KINDS):
            first_of_each_suffix.setdefault(file.suffix, file)
    found = {format_of(file) for file in first_of_each_suffix.values()}
    if len(found) != 1:
        what = (" and ".join(KINDS[r] for r in KINDS if r in found) if found
                else "no MMC4 shard, parquet or webdataset tar")
        raise ValueError(f"{path}: {what} ({', '.join(sorted({p for r in KINDS for p in r.unit_patterns}))}); "
                         "point at one file or a folder of one format")
    return found.pop()


def format_of(path: Path) -> type:
    """The reader of one file. Parquet: an OmniCorpus-CC ``general_metadata`` is a struct (OBELICS keeps it as a
    JSON string), MINT-1T HTML has a ``cc_dump`` column, else OBELICS. Tar: MINT-1T PDF/ArXiv documents carry a
    ``tiff``, pairs an image and a caption. A file that cannot be opened goes to the reader its name says, which
    counts it as unreadable."""
    if fnmatch.fnmatch(path.name, "*.parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except UNIT_ERRORS:
            return ObelicsDataset
        if "general_metadata" in schema.names and pa.types.is_struct(schema.field("general_metadata").type):
            return OmniCorpusDataset
        return MintHtmlDataset if "cc_dump" in schema.names else ObelicsDataset
    if fnmatch.fnmatch(path.name, "*.tar"):
        try:
            first = next(tar_samples(path, max_member_bytes=0), {})
        except UNIT_ERRORS:
            return PairedDataset
        return MintPdfDataset if "tiff" in first else PairedDataset
    return MMC4Dataset


def inspect_files(path: str | Path, tokenizer: Tokenizer, *, images: str | Path | None = None,
                  limit: int | None = None, show: int = 2, image_size: int = 64, num_image_tokens: int = 4,
                  context_length: int = 2048, omnicorpus_filters: dict | None = None) -> Inspection:
    """Read ``path`` (a shard, parquet or tar, or a folder of them) with the reader training uses, in file
    order, stopping once ``limit`` records are read. ``images``: the image folder of documents kept apart
    from their shards (as ``lcl pretrain --images``); ``omnicorpus_filters``: :class:`OmniCorpusFilters` fields
    (an error for another format). Few image tokens keep the laid-out rows short; the
    counts do not depend on them unless ``context_length`` cuts documents."""
    path = Path(path)
    reader = reader_for(path)
    options = dict(image_size=image_size, num_image_tokens=num_image_tokens, context_length=context_length,
                   shuffle=False, max_records=limit)
    if images is not None:
        if reader in (PairedDataset, MintPdfDataset):
            raise ValueError(f"{path}: {KINDS[reader]} carry their images in the tars; --images is for documents "
                             "with images apart (MMC4, OBELICS, OmniCorpus, MINT-1T HTML)")
        options["image_root"] = Path(images)
    if omnicorpus_filters:
        if reader is not OmniCorpusDataset:
            raise ValueError(f"{path}: {KINDS[reader]} have no OmniCorpus scores to filter on")
        options["filters"] = OmniCorpusFilters(**omnicorpus_filters)
    dataset = reader(path, tokenizer, **options)
    rows = kept = 0
    examples: list[str] = []
    try:
        for sample in dataset:
            rows, kept = rows + 1, kept + len(sample["images"])
            if len(examples) < show:
                examples.append(laid_out(tokenizer, sample["ids"]))
    except NothingReadable:
        pass  # nothing usable: the counts say why
    skipped = dict(dataset.records_skipped)
    counted = {reason: n - skipped.get(reason, 0) for reason, n in dataset.skips.items() if n > skipped.get(reason, 0)}
    return Inspection(path=path, kind=KINDS[reader], files=len(dataset.units), records=dataset.records_read, rows=rows,
                      images=kept, skipped=skipped, counted=counted, examples=examples,
                      stopped_at_limit=limit is not None and dataset.records_read >= limit)


def inspect_world(world: str | Path, tokenizer: Tokenizer, **options) -> list[Inspection]:
    """Each source folder of a world (``lcl data world``), read as :func:`inspect_files` reads files."""
    world = Path(world)
    return [inspect_files(world / source, tokenizer, **options) for source in WORLD_SOURCES
            if (world / source).is_dir()]
