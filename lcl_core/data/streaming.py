"""What every reader shares: files split by rank and worker, a deterministic resumable order, counted
skips, image decoding.

Order. Each epoch the sorted list of files ("units") is permuted by ``(seed, epoch)``. With at least
as many units as consumers (ranks × workers), consumer ``c`` reads units ``c, c + C, …`` of that
permutation; with fewer units every consumer reads all of them and keeps the records it reads at places
``i ≡ c (mod C)`` of the read order (below).
A consumer reads its units' records one after the other, so memory does not grow with the corpus: in
file order, or with ``shuffle_window`` W > 1 in runs of W consecutive records, across unit boundaries,
each in an order drawn from ``(seed, epoch, its first record)`` (the trainer's default,
:class:`~lcl_core.training.TrainConfig`: W = 5,000, the official loader's sample buffer, which mixes the
pairs of many shards; a shard keeps a page's pairs side by side).
Randomness (placement, duplicate choice, layout) comes from ``(seed, epoch, file name, record)``, so a
record gives the same sample whether or not the stream was resumed.

Resume. Each sample's ``position`` names its consumer and record. ``resume_from(positions)`` takes
the positions of consumed samples (in consumption order; :func:`keep_latest` keeps the set small),
continues every worker right after its last one (in the read order: the position's ``window`` names
the first record of its run, which is drawn again and read past up to that record), and rotates the
workers so that the DataLoader's round-robin resumes with the worker that was next.

Elastic resume. Positions saved on another number of ranks (the same workers per rank) are handed
over (:func:`hand_over`): what each old consumer had not read of the epochs begun, from its last
position on, becomes a list of *inherited shares* of one new consumer, read before that consumer
starts its own shares in the next epoch nobody had begun. So every record is still read exactly once
per epoch; which rank reads it, and when within the epoch, changes. The result is ``stream.plan``,
saved beside the positions (each inherited sample's position names its share, ``"inherited": i``), so
later resumes, on the same or yet another number of ranks, go on with it.
"""

from __future__ import annotations

import glob
import hashlib
import io
import itertools
import json
import logging
import random
import tarfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ..sequences import LayoutTokenInText
from ..images import image_transform
from ..tokenizer import Tokenizer
from .assets import stable_int

log = logging.getLogger(__name__)
MIN_IMAGE_SIDE = 4
MAX_ASPECT_RATIO = 20.0


@dataclass(frozen=True)
class ReadLimits:
    """What a reader accepts from files it did not write; anything above is a counted skip, found before
    it is decoded or read whole. The defaults are far above real web data and far below a machine's memory.

    * ``max_image_pixels`` — width × height from the image header, checked before decoding (a
      decompression bomb is a small file that decodes to gigapixels): PIL's own default warning limit,
      89,478,485 pixels (≈ 9,459²), reason ``image_too_large``;
    * ``max_record_bytes`` — one MMC4 JSON line, one tar member, the text of one parquet row: 64 MiB,
      reason ``record_too_large`` (a JSON line or tar member over it is skipped in 1 MiB reads, never
      held whole);
    * ``max_list_items`` — sentences or images in one document (MMC4 ``text_list`` / ``image_info``,
      OBELICS ``texts`` / ``images``): 10,000, reason ``document_too_large``.
    """

    max_image_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_record_bytes: int = 64 * 2**20
    max_list_items: int = 10_000

    def __post_init__(self) -> None:
        bad = [name for name in ("max_image_pixels", "max_record_bytes", "max_list_items") if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"read limits must be at least 1: {', '.join(bad)}")


TOO_LARGE = None  # what a bounded reader yields in place of a record over max_record_bytes
SKIP_CHUNK = 2**20


def bounded_lines(stream, limit: int) -> Iterator[bytes | None]:
    """The lines of a binary stream, each at most ``limit`` bytes; a longer line is read past in
    ``SKIP_CHUNK`` pieces and yielded as ``TOO_LARGE`` (its place in the record count is kept)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(SKIP_CHUNK)
        yield TOO_LARGE
# a file that cannot be opened or breaks midway (arrow's errors derive from OSError/ValueError)
UNIT_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, tarfile.TarError, zlib.error)


class Skip(Exception):
    """A record or image that cannot be used; ``reason`` is its key in ``dataset.skips``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_line(line: bytes | None):
    """One JSON-lines record, or :class:`Skip` with the reason it cannot be read (``line`` is a
    :func:`bounded_lines` item)."""
    if line is TOO_LARGE:
        raise Skip("record_too_large")
    if not line.strip():
        raise Skip("empty_line")
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise Skip("non_utf8_line") from None
    except json.JSONDecodeError:
        raise Skip("broken_json_line") from None


class NothingReadable(RuntimeError):
    """Raised when a consumer read none of its files' records into a sample."""


def expand_paths(paths, patterns: Iterable[str]) -> list[Path]:
    """Files, folders (searched for ``patterns``) and glob patterns -> sorted unique files."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.update(p for pattern in patterns for p in path.glob(pattern) if p.is_file())
        elif glob.has_magic(str(item)):
            found.update(Path(p) for p in glob.glob(str(item)))
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"{item} does not exist")
    if not found:
        raise FileNotFoundError(f"no files matching {list(patterns)} in {items}")
    return sorted(found)


def url_image_name(url: str) -> str:
    """Where the image fetched from ``url`` lies under an image folder (``lcl data fetch-images``):
    ``<h[:2]>/<h>.jpg`` with ``h`` the SHA-256 of the URL, so that a page's image entry names its file
    whatever the page, and no folder holds more than 1/256 of the images."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    return f"{digest[:2]}/{digest}.jpg"


def is_url(entry: str) -> bool:
    return "://" in entry


def distributed_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        rank, world_size = rank or 0, world_size or 1
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = 0, 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return rank, world_size


def decode_image(source: Path | bytes, count, *, max_pixels: int = ReadLimits.max_image_pixels,
                 frame: int = 0) -> Image.Image:
    """Fully decode an image file or bytes to RGB (``frame``: that frame of a multi-frame file, e.g. a
    MINT-1T TIFF). Raises :class:`Skip`; ``count`` records repairs. The pixel count is read from the
    header and refused above ``max_pixels`` before anything is decoded."""
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as opened:
            if frame:
                try:
                    opened.seek(frame)
                except EOFError:
                    raise Skip("missing_frame") from None
            if opened.size[0] * opened.size[1] > max_pixels:
                raise Skip("image_too_large")
            opened.load()
            image = opened.copy()
    except FileNotFoundError:
        raise Skip("missing_image") from None
    except Image.DecompressionBombError:  # PIL's own refusal, at twice its limit, while reading the header
        raise Skip("image_too_large") from None
    except (OSError, SyntaxError, ValueError):
        raise Skip("corrupt_image") from None
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise Skip("odd_image_size")
    if image.mode in ("RGB", "L"):
        return image.convert("RGB")
    count("converted_image_mode")  # a repair, not a skip: the image is used
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I"):  # 16/32-bit integer greyscale: rescale to 8 bits
        import numpy as np
        values = np.asarray(image, dtype=np.float64)
        span = max(values.max() - values.min(), 1.0)
        return Image.fromarray(((values - values.min()) / span * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def saved_layout(positions: list[dict], plan: dict | None) -> tuple[int, int] | None:
    """(ranks, workers per rank) of the stream the positions and plan were saved from; None if neither."""
    layouts = {(p["world_size"], p["num_workers"]) for p in positions} | ({tuple(plan["layout"])} if plan else set())
    if len(layouts) > 1:
        raise ValueError(f"positions and plan come from several layouts (ranks, workers): {sorted(layouts)}")
    return layouts.pop() if layouts else None


def hand_over(positions: list[dict], plan: dict | None, *, layout: tuple[int, int], ranks: int,
              start_epoch: int) -> dict:
    """The plan that continues on ``ranks`` ranks a stream saved on ``layout`` (ranks, workers per rank),
    after its consumed ``positions`` (every rank's) and the ``plan`` it was itself reading (None: none).

    Old consumer ``k`` leaves: the rest of the share it is in (an inherited one or its own), the
    inherited shares after it, and its own shares of every epoch up to the last one any consumer had
    begun; a consumer with no position leaves all of that from the first epoch (``start_epoch`` when
    there was no plan). New consumer ``j`` inherits what the old consumers ``k ≡ j (mod new
    consumers)`` left, epoch by epoch, and reads its own shares from the next epoch on. A share is
    ``{"epoch", "consumer", "consumers"}`` (the records that consumer of that many read in that
    epoch), plus ``"unit"``, ``"record"``, ``"part"``, ``"window"`` of the last sample already read, if any.

    Returns ``{"layout": [ranks, workers], "epoch": the epoch of the first handover (a stream that does
    not loop stays in it), "start_epoch": the first epoch of the new consumers' own shares,
    "inherited": [the shares of new consumer j, for each j]}``.
    """
    old_ranks, workers = layout
    old_consumers, new_consumers = old_ranks * workers, ranks * workers
    cursors = {p["rank"] + old_ranks * p["worker"]: p for p in keep_latest(positions)}
    queues = plan["inherited"] if plan else [[] for _ in range(old_consumers)]
    start = plan["start_epoch"] if plan else start_epoch
    begun = [p["epoch"] for p in cursors.values() if "inherited" not in p]  # epochs of own shares begun
    new_start = max([start, *(epoch + 1 for epoch in begun)])
    left: list[list[dict]] = []
    for consumer in range(old_consumers):
        cursor, queue, own_from = cursors.get(consumer), queues[consumer], start
        if cursor is None:
            shares = list(queue)
        elif "inherited" in cursor:
            index = cursor["inherited"]
            shares = [{**queue[index], **_read_up_to(cursor)}, *queue[index + 1:]]
        else:
            shares = [{"epoch": cursor["epoch"], "consumer": consumer, "consumers": old_consumers,
                       **_read_up_to(cursor)}]
            own_from = cursor["epoch"] + 1
        shares += [{"epoch": epoch, "consumer": consumer, "consumers": old_consumers}
                   for epoch in range(own_from, new_start)]
        left.append(shares)
    inherited = [sorted((share for k in range(j, old_consumers, new_consumers) for share in left[k]),
                        key=lambda share: share["epoch"])  # stable: old consumers in order within an epoch
                 for j in range(new_consumers)]
    return {"layout": [ranks, workers], "epoch": plan["epoch"] if plan else start_epoch, "start_epoch": new_start,
            "inherited": inherited}


def _read_up_to(position: dict) -> dict:
    return {key: position[key] for key in ("unit", "record", "part", "window") if key in position}


def keep_latest(positions: Iterable[dict]) -> list[dict]:
    """The last position of each (rank, worker), in consumption order: all :meth:`resume_from` needs."""
    latest: dict[tuple[int, int], dict] = {}
    for position in positions:
        key = (position["rank"], position["worker"])
        latest.pop(key, None)
        latest[key] = position
    return list(latest.values())


class ShardedStream(IterableDataset):
    """Base of the readers. Subclasses set ``unit_patterns`` and implement ``_records`` / ``_samples``."""

    unit_patterns: tuple[str, ...] = ()

    def __init__(self, paths, tokenizer: Tokenizer, *, image_size: int, num_image_tokens: int,
                 context_length: int, seed: int = 0, loop: bool = False, shuffle: bool = True,
                 shuffle_window: int = 1, rank: int | None = None, world_size: int | None = None,
                 max_records: int | None = None, limits: ReadLimits = ReadLimits()) -> None:
        super().__init__()
        self.units = expand_paths(paths, self.unit_patterns)
        self.tokenizer = tokenizer
        self.image_size, self.num_image_tokens, self.context_length = image_size, num_image_tokens, context_length
        self.seed, self.loop, self.shuffle = seed, loop, shuffle
        if shuffle_window < 1:
            raise ValueError(f"shuffle_window must be at least 1 record, got {shuffle_window}")
        self.shuffle_window = shuffle_window
        self.max_records = max_records  # a quick look (lcl data inspect): stop once this many records are read
        self.limits = limits
        self.rank, self.world_size = distributed_rank(rank, world_size)
        self.transform = image_transform(image_size)
        self.epoch = 0
        self.skips: Counter = Counter()  # cumulative, this process (see make_loader for workers)
        self.records_read = 0  # cumulative: the records (documents, pairs) tried, kept or not
        self.records_skipped: Counter = Counter()  # the part of ``skips`` that dropped a whole record
        self.last_epoch_summary: dict[str, Any] = {}
        self._epoch_skips: Counter = Counter()
        self._pending: Counter = Counter()  # skips not yet reported in a sample's position
        self.plan: dict | None = None  # the handover of an elastic resume (see hand_over), else None
        self._cursors: dict[int, dict] = {}  # worker -> last consumed position
        self._resume_workers = 1
        self._worker_offset = 0

    # ---- subclass hooks -------------------------------------------------------------------------
    def _records(self, path: Path) -> Iterator[tuple[int, Any]]:
        """(record index, raw record) in file order; raise Skip / I/O errors for an unreadable file."""
        raise NotImplementedError

    def _samples(self, raw: Any, rng: random.Random) -> list[dict]:
        """``[{"images": FloatTensor[k,3,H,W], "ids": list[int]}]`` for one record, or raise Skip."""
        raise NotImplementedError

    # ---- shared helpers -------------------------------------------------------------------------
    def count(self, reason: str) -> None:
        self.skips[reason] += 1
        self._pending[reason] += 1
        self._epoch_skips[reason] += 1

    def load_image(self, source: Path | bytes, *, frame: int = 0) -> torch.Tensor | None:
        """The transformed image, or None after counting why it cannot be used."""
        try:
            return self.transform(decode_image(source, self.count, max_pixels=self.limits.max_image_pixels,
                                               frame=frame))
        except Skip as skip:
            self.count(skip.reason)
            return None

    # ---- epochs and resume ----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a new epoch starts afresh, handed-over shares included
            self._cursors, self._worker_offset, self.plan = {}, 0, None
        self.epoch = epoch

    def resume_from(self, positions: Iterable[dict], *, plan: dict | None = None) -> list[dict]:
        """Continue after the consumed samples' ``positions`` (in consumption order; other ranks' are
        ignored) and the ``plan`` the stream was reading when they were saved (its ``plan``; None when it
        was never resized). Positions of every rank saved on another number of ranks are handed over
        (:func:`hand_over`; the workers per rank must stay). Returns the positions this stream now
        continues from: this rank's, or none after a handover (its state is the plan then)."""
        positions = list(positions)
        layout = saved_layout(positions, plan)
        if layout is None:
            return []
        self._resume_workers = layout[1]
        if layout[0] != self.world_size:
            own = [p["epoch"] for p in positions if "inherited" not in p]
            start = (min(own) if self.loop else own[-1]) if own else self.epoch
            self.plan = hand_over(positions, plan, layout=layout, ranks=self.world_size, start_epoch=start)
            self._cursors, self._worker_offset, self.epoch = {}, 0, self.plan["epoch"]
            return []
        self.plan = plan
        mine = [p for p in positions if p["rank"] == self.rank]
        self._cursors = {p["worker"]: p for p in keep_latest(mine)}
        if plan:
            self.epoch = plan["epoch"]
        if mine:
            self._worker_offset = (mine[-1]["worker"] + 1) % layout[1]
            if not plan:
                self.epoch = min(p["epoch"] for p in self._cursors.values()) if self.loop else mine[-1]["epoch"]
        return mine

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        physical, num_workers = (info.id, info.num_workers) if info else (0, 1)
        if (self._cursors or self.plan) and num_workers != self._resume_workers:
            raise ValueError(f"positions come from {self._resume_workers} workers per rank, this loader has "
                             f"{num_workers}: the stream can only resume with as many workers")
        worker = (physical + self._worker_offset) % num_workers
        cursor = self._cursors.get(worker)
        inherited = self.plan["inherited"][self.rank + self.world_size * worker] if self.plan else []
        first = cursor.get("inherited", len(inherited)) if cursor else 0
        for index in range(first, len(inherited)):
            share = inherited[index]
            after = cursor if cursor and index == first else share if "unit" in share else None
            yield from self._share(share["epoch"], share["consumer"], share["consumers"], after,
                                   worker=worker, num_workers=num_workers, inherited=index)
        own = cursor if cursor and "inherited" not in cursor else None
        own_start = self.plan["start_epoch"] if self.plan else self.epoch
        epoch = own["epoch"] if own and (self.loop or own["epoch"] == self.epoch) else own_start
        if not self.loop and epoch > self.epoch:
            return  # the handed-over shares finished this epoch
        while True:
            resumed = own if own and own["epoch"] == epoch else None
            produced = yield from self._share(epoch, self.rank + self.world_size * worker,
                                              self.world_size * num_workers, resumed,
                                              worker=worker, num_workers=num_workers)
            if not self.loop or not (produced or resumed):
                return  # an epoch that yields nothing would loop forever
            epoch += 1

    def _share(self, epoch: int, consumer: int, consumers: int, cursor: dict | None, *, worker: int,
               num_workers: int, inherited: int | None = None):
        """The samples of ``consumer``'s share of ``epoch`` among ``consumers``, after ``cursor`` (the last
        one read: ``unit``, ``record``, ``part``, ``window``) when given; ``inherited``: the index of a
        handed-over share of this worker, recorded in the positions. Returns the number of samples yielded."""
        order = list(range(len(self.units)))
        if self.shuffle:
            random.Random(stable_int("units", self.seed, epoch)).shuffle(order)
        by_unit = len(self.units) >= consumers
        mine = order[consumer::consumers] if by_unit else order
        start = None
        if cursor is not None:
            if "window" not in cursor:
                raise ValueError(f"{type(self).__name__}: the saved position (unit {cursor['unit']}, record "
                                 f"{cursor['record']}) has no 'window': it was saved by a reader that shuffled each shard on its own, and "
                                 "this one cannot continue that order exactly")
            start = cursor["window"]
            mine = mine[mine.index(start[0]):]
        self._epoch_skips = Counter()
        produced, attempted = 0, 0
        before_cursor = cursor is not None  # read past the cursor's window up to the cursor's record
        for window, place, unit, index, raw in self._in_read_order(mine, epoch, start):
            if self._read_enough():
                break
            # split by place in the read order, not record index: then C consumers' rows of one step are the
            # rows one process reads in that step, shuffled window or not
            if not by_unit and place % consumers != consumer:
                continue
            if before_cursor:
                if (unit, index) != (cursor["unit"], cursor["record"]):
                    continue
                before_cursor = False
            attempted += 1
            self.records_read += 1
            path = self.units[unit]
            try:
                samples = self._samples(raw, random.Random(stable_int(self.seed, epoch, path.name, index)))
            except (Skip, LayoutTokenInText) as skip:
                reason = skip.reason if isinstance(skip, Skip) else "image_token_in_text"
                self.count(reason)
                self.records_skipped[reason] += 1
                continue
            for part, sample in enumerate(samples):
                if cursor is not None and (unit, index) == (cursor["unit"], cursor["record"]) \
                        and part <= cursor["part"]:
                    continue
                sample["position"] = self._position(epoch, worker, num_workers, unit, index, part, inherited,
                                                    window)
                produced += 1
                yield sample
        self._finish_epoch(epoch, worker, produced, attempted or sum(self._epoch_skips.values()), cursor,
                           [self.units[u] for u in mine])
        return produced

    def _read_enough(self) -> bool:
        return self.max_records is not None and self.records_read >= self.max_records

    def _in_read_order(self, units: list[int], epoch: int, start: list[int] | None = None):
        """``(window, place, unit, record index, raw record)`` of ``units`` (in that order) as ``epoch``
        reads them, from ``start`` (a ``window``) on. The units' records are taken in file order, one unit
        after the other, in runs of ``shuffle_window`` (1 without ``shuffle``), each read in an order drawn
        from (seed, epoch, its first record). So a run draws from as many shards as it spans, as the
        official loader's 5,000-sample buffer does: an MMC4-Pair shard holds each page's pairs side by side,
        and runs that stopped at a shard's end would put page-mates in one batch (a 500-pair shard: 40 %
        of a batch of 72). ``window`` is ``[unit, record index, place]`` of the run's first record in file
        order: a resumed stream starts there, draws the run again and reads past up to its cursor, reading
        no other records again. ``place`` counts the records of the read order from the share's start."""
        size = self.shuffle_window if self.shuffle else 1
        records = ((unit, index, raw) for unit in units for index, raw in self._guarded_records(self.units[unit])
                   if start is None or unit != start[0] or index >= start[1])
        place = start[2] if start else 0
        while window := list(itertools.islice(records, size)):
            first_unit, first_index, _ = window[0]
            mark = [first_unit, first_index, place]
            if size > 1:
                rng = random.Random(stable_int("records", self.seed, epoch, self.units[first_unit].name, first_index))
                rng.shuffle(window)
            for offset, (unit, index, raw) in enumerate(window):
                yield mark, place + offset, unit, index, raw
            place += len(window)

    def _guarded_records(self, path: Path) -> Iterator[tuple[int, Any]]:
        """A file's records; a file that breaks (at open or midway) is counted, not raised."""
        try:
            yield from self._records(path)
        except Skip as skip:
            self.count(skip.reason)
        except UNIT_ERRORS as error:
            self.count("unreadable_file")
            log.warning("%s: cannot read %s (%s: %s)", type(self).__name__, path, type(error).__name__, error)

    def _position(self, epoch, worker, num_workers, unit, index, part, inherited, window) -> dict:
        position = {"epoch": epoch, "rank": self.rank, "world_size": self.world_size, "worker": worker,
                    "num_workers": num_workers, "unit": unit, "file": self.units[unit].name,
                    "record": index, "part": part, "window": window}
        if inherited is not None:
            position["inherited"] = inherited
        if self._pending:  # carried to the main process, where collate() sums them into batch["skips"]
            position["skipped"] = dict(self._pending)
            self._pending.clear()
        return position

    def _finish_epoch(self, epoch, worker, produced, attempted, cursor, files) -> None:
        self.last_epoch_summary = {"epoch": epoch, "rank": self.rank, "worker": worker, "samples": produced,
                                   "skips": dict(self._epoch_skips)}
        log.info("%s epoch %d rank %d worker %d: %d samples, skipped %s", type(self).__name__, epoch,
                 self.rank, worker, produced, dict(self._epoch_skips) or "nothing")
        if produced == 0 and attempted and cursor is None:
            names = ", ".join(str(f) for f in files[:5]) + (" …" if len(files) > 5 else "")
            raise NothingReadable(f"{type(self).__name__}: no usable sample in {names} "
                                  f"(skipped: {dict(self._epoch_skips)})")
