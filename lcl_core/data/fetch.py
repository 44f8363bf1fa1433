"""``lcl data fetch-images SOURCE… --out DIR``: the images that public MMC4 shards and OBELICS / OmniCorpus-CC /
MINT-1T HTML parquet name by URL, fetched by img2dataset into the layout the readers read.

Layout (pass ``--images DIR`` to ``lcl pretrain`` and ``lcl data inspect``)::

    DIR/<shard stem>/<image_name>   an MMC4 shard's images (shard docs_no_face_shard_3_v3.jsonl: DIR/docs_no_face_shard_3_v3/)
    DIR/<h[:2]>/<h>.jpg             an image named by its URL (h: SHA-256 of the URL; streaming.url_image_name)
    DIR/fetch-failures.jsonl        one line per URL that failed: target, url, reason, img2dataset's message
    DIR/fetch-summary.json          the last run's counts

Why img2dataset runs in an environment of its own: img2dataset 1.47 pins ``webdataset<0.3``, ``pandas<3`` and
``albumentations<2`` and pulls wandb, OpenCV and OpenTelemetry; installed beside the kit it would downgrade the
kit's webdataset 1.x to 0.2. The kit therefore hands it a URL list (parquet) and reads back what it wrote
(``output_format="files"``: ``<key>.jpg`` + ``<key>.json`` per success, a parquet of every row's status per
shard). The environment is made on first use (``python -m venv`` + ``pip install img2dataset==1.47.0``) at
``--img2dataset-env`` (default ``~/.cache/lcl/img2dataset-1.47.0``); docs/real-data.md has the measurements.

Resume: a run first takes in what an interrupted run left (every image whose json was written, every failure
its finished shards recorded), then hands img2dataset only the images neither on disk nor failed before. So
an image is never fetched twice; URLs that failed are tried again only with ``--retry-failed``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .mmc4 import read_documents, shard_stem
from .streaming import UNIT_ERRORS, expand_paths, is_url, url_image_name

IMG2DATASET = "img2dataset==1.47.0"
SOURCE_PATTERNS = ("*.jsonl.zip", "*shard*.jsonl", "*.parquet")
FAILURES = "fetch-failures.jsonl"
SUMMARY = "fetch-summary.json"
STAGING = ".fetch-staging"  # img2dataset's output while it runs; taken in and removed after each run
QUIET = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}  # no calls home

# img2dataset's error messages (urllib's and its resizer's) -> the reasons the summary counts, and what to do
REASONS = (
    (re.compile(r"HTTP Error (\d+)"), None),  # http_<status>
    (re.compile(r"timed out", re.I), "timeout"),
    (re.compile(r"IncompleteRead|Connection (reset|aborted)|RemoteDisconnected", re.I), "truncated"),
    (re.compile(r"Image decoding error|cannot identify image", re.I), "not_an_image"),
    (re.compile(r"image too small"), "too_small"),
    (re.compile(r"image area too large"), "too_large"),
    (re.compile(r"aspect ratio too large"), "odd_aspect_ratio"),
    (re.compile(r"X-Robots-Tag"), "refused_by_site"),
    (re.compile(r"urlopen error|Name or service not known|Connection refused", re.I), "unreachable"),
)
ADVICE = {
    "timeout": "slow or overloaded hosts: raise --timeout, or run again later with --retry-failed",
    "truncated": "the transfer broke off: run again with --retry-failed",
    "unreachable": "host unknown or refusing: usually gone for good",
    "not_an_image": "the URL serves a page or other file, not an image: nothing to do",
    "too_small": "below --min-image-size: lower it to keep them",
    "too_large": "above --max-image-area: raise it to keep them",
    "odd_aspect_ratio": "above --max-aspect-ratio",
    "refused_by_site": "the site's X-Robots-Tag forbids AI use: respected, nothing to do",
    "http_404": "gone from the web (published URLs age): nothing to do",
    "http_403": "the host refuses crawlers: nothing to do",
}


def failure_reason(message: str | None) -> str:
    """The counted reason of one of img2dataset's error messages (``other`` for an unknown one)."""
    for pattern, reason in REASONS:
        found = pattern.search(message or "")
        if found:
            return reason or f"http_{found.group(1)}"
    return "other"


@dataclass(frozen=True)
class FetchOptions:
    """img2dataset's options, under its own names (its defaults, except ``processes_count`` and
    ``thread_count``: one process and 32 threads suit a laptop; a node takes its cores and 128–256)."""

    image_size: int = 256
    resize_mode: str = "border"
    processes_count: int = 1
    thread_count: int = 32
    timeout: int = 10
    retries: int = 0
    min_image_size: int = 0
    max_image_area: float = float("inf")
    max_aspect_ratio: float = float("inf")
    number_sample_per_shard: int = 10_000


@dataclass
class Wanted:
    """What the sources name: each image once (``targets``: path under the output folder -> URL), and each
    document's targets, to count the documents whose images arrived."""

    targets: dict[str, str] = field(default_factory=dict)
    documents: list[list[str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # source records that name no usable image, by reason


def wanted_images(paths) -> Wanted:
    """The images named by MMC4 shards (``image_info[].raw_url`` -> ``<shard stem>/<image_name>``) and by
    parquet ``images`` columns (URL -> :func:`url_image_name`), from files, folders or globs."""
    wanted = Wanted()
    for path in expand_paths(paths, SOURCE_PATTERNS):
        if path.suffix == ".parquet":
            documents = _parquet_documents(path, wanted.skipped)
        elif path.name.endswith((".jsonl", ".jsonl.zip")):
            documents = _mmc4_documents(path, wanted.skipped)
        else:
            raise ValueError(f"{path}: neither an MMC4 shard (.jsonl, .jsonl.zip) nor parquet"
                             + ("; MINT-1T PDF/ArXiv tars carry their images" if path.suffix == ".tar" else ""))
        for document in documents:
            for target, url in document:
                wanted.targets.setdefault(target, url)
            wanted.documents.append([target for target, _ in document])
    return wanted


def _mmc4_documents(path: Path, skipped: Counter) -> list[list[tuple[str, str]]]:
    try:
        records, unreadable = read_documents(path)
    except UNIT_ERRORS:
        skipped["unreadable_file"] += 1
        return []
    if unreadable:
        skipped["broken_json_line"] += unreadable
    documents = []
    for record in records:
        try:
            document = [(f"{shard_stem(path)}/{info['image_name']}", info["raw_url"]) for info in record["image_info"]]
        except (KeyError, TypeError):
            skipped["malformed_document"] += 1
            continue
        if not all(isinstance(url, str) and is_url(url) for _, url in document):
            skipped["malformed_document"] += 1
            continue
        documents.append(document)
    return documents


def _parquet_documents(path: Path, skipped: Counter) -> list[list[tuple[str, str]]]:
    documents = []
    try:
        parquet = pq.ParquetFile(path)
        if "images" not in parquet.schema_arrow.names:
            skipped["missing_column_images"] += 1
            return []
        for batch in parquet.iter_batches(columns=["images"]):
            for entries in batch.column("images").to_pylist():
                if not isinstance(entries, list):
                    skipped["malformed_document"] += 1
                    continue
                urls = [entry for entry in entries if entry is not None]
                if not all(isinstance(url, str) and is_url(url) for url in urls):
                    skipped["image_entry_not_a_url"] += 1
                    continue
                documents.append([(url_image_name(url), url) for url in urls])
    except UNIT_ERRORS:
        skipped["unreadable_file"] += 1
    return documents


def default_environment() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lcl" / IMG2DATASET.replace("==", "-")


class EnvironmentUnavailable(RuntimeError):
    """img2dataset's environment could not be made (no registry, no venv module, a failed install)."""


def ensure_environment(env: Path, *, say=print) -> Path:
    """The Python of ``env`` with img2dataset importable, making the environment first when it is not."""
    python = env / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import img2dataset"], capture_output=True,
                                          env={**os.environ, **QUIET}).returncode == 0:
        return python
    say(f"making img2dataset's environment in {env} (once: {IMG2DATASET}, about 800 MB)")
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], capture_output=True, text=True)
    if made.returncode == 0:
        made = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", IMG2DATASET],
                              capture_output=True, text=True)
    if made.returncode != 0:
        raise EnvironmentUnavailable(f"cannot install {IMG2DATASET} into {env}: "
                                     f"{(made.stderr or made.stdout).strip().splitlines()[-1:]}")
    return python


def take_in(staging: Path, out: Path) -> tuple[int, list[dict]]:
    """Move the images an img2dataset run wrote (finished or not) to their targets under ``out`` and read the
    failures its finished shards recorded -> (images moved, failures ``{target, url, reason, error}``)."""
    moved, failures = 0, []
    for meta_file in sorted(staging.glob("out/*/*.json")):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # cut short by a kill: its image is fetched again
        image = meta_file.with_suffix(".jpg")
        if meta.get("status") == "success" and image.is_file():
            target = out / meta["target"]
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(image, target)
            moved += 1
    for shard in sorted(staging.glob("out/*.parquet")):
        try:
            rows = pq.read_table(shard, columns=["target", "url", "status", "error_message"]).to_pylist()
        except UNIT_ERRORS:
            continue  # a shard cut short: its failed URLs are tried again
        failures += [{"target": row["target"], "url": row["url"], "reason": failure_reason(row["error_message"]),
                      "error": row["error_message"]} for row in rows if row["status"] != "success"]
    return moved, failures


def read_failures(out: Path) -> dict[str, dict]:
    """target -> its last recorded failure."""
    failures = {}
    if (out / FAILURES).is_file():
        for line in (out / FAILURES).read_text().splitlines():
            try:
                failure = json.loads(line)
                failures[failure["target"]] = failure
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill
    return failures


def fetch_images(sources, out, *, options: FetchOptions = FetchOptions(), env: Path | None = None,
                 retry_failed: bool = False, say=print) -> dict:
    """Fetch what ``sources`` name into ``out`` (see the module); returns the summary also written to
    ``out/fetch-summary.json``: images wanted / on disk before / fetched now / failed (by reason, all runs),
    documents with all / some / none of their images, and the source records that named none."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = wanted_images(sources)
    staging = out / STAGING
    recovered = _record(out, *take_in(staging, out)) if staging.is_dir() else 0
    shutil.rmtree(staging, ignore_errors=True)
    failed = {} if retry_failed else read_failures(out)
    before = sum((out / target).is_file() for target in wanted.targets)
    todo = {target: url for target, url in wanted.targets.items()
            if not (out / target).is_file() and target not in failed}
    returncode = 0
    if todo:
        python = ensure_environment(env or default_environment(), say=say)
        staging.mkdir()
        pq.write_table(pa.table({"url": list(todo.values()), "target": list(todo)}), staging / "urls.parquet")
        config = {**asdict(options), "url_list": str(staging / "urls.parquet"), "input_format": "parquet",
                  "url_col": "url", "save_additional_columns": ["target"], "output_folder": str(staging / "out"),
                  "output_format": "files", "encode_format": "jpg", "enable_wandb": False,
                  "incremental_mode": "incremental"}  # the staging folder is new each run
        (staging / "config.json").write_text(json.dumps(config))
        say(f"fetching {len(todo)} images with img2dataset ({len(wanted.targets) - len(todo)} of "
            f"{len(wanted.targets)} on disk or failed before); its log: {staging / 'img2dataset.log'}")
        run = "import json, sys; from img2dataset import download; download(**json.load(open(sys.argv[1])))"
        with open(staging / "img2dataset.log", "w") as log:
            returncode = subprocess.run([python, "-c", run, str(staging / "config.json")], stdout=log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **QUIET}).returncode
        moved = _record(out, *take_in(staging, out))
        if returncode == 0:
            shutil.rmtree(staging)
    else:
        moved = 0
    failures = read_failures(out)
    on_disk = {target for target in wanted.targets if (out / target).is_file()}
    arrived = [sum(target in on_disk for target in document) for document in wanted.documents]
    summary = {
        "images_wanted": len(wanted.targets), "on_disk_before": before, "taken_in_from_interrupted_run": recovered,
        "fetched_now": moved, "on_disk": len(on_disk),
        "failed": dict(Counter(f["reason"] for target, f in failures.items() if target not in on_disk
                               and target in wanted.targets).most_common()),
        "documents": len(wanted.documents),
        "documents_with_all_images": sum(n == len(d) and n > 0 for n, d in zip(arrived, wanted.documents)),
        "documents_with_some_images": sum(0 < n < len(d) for n, d in zip(arrived, wanted.documents)),
        "documents_with_no_image": sum(n == 0 for n in arrived),
        "source_records_skipped": dict(wanted.skipped), "img2dataset_exit_code": returncode,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


def _record(out: Path, moved: int, failures: list[dict]) -> int:
    if failures:
        with open(out / FAILURES, "a") as ledger:
            ledger.writelines(json.dumps(failure) + "\n" for failure in failures)
    return moved


def summary_lines(summary: dict, out: Path) -> list[str]:
    """The summary as a person reads it: what arrived, what failed and why, what to do about each reason."""
    lines = [f"{out}: {summary['on_disk']} of {summary['images_wanted']} images on disk "
             f"({summary['fetched_now']} fetched now, {summary['on_disk_before']} already there"
             + (f", {summary['taken_in_from_interrupted_run']} taken in from an interrupted run"
                if summary["taken_in_from_interrupted_run"] else "") + ")",
             f"  documents: {summary['documents_with_all_images']} with every image, "
             f"{summary['documents_with_some_images']} with some, {summary['documents_with_no_image']} with none "
             f"(of {summary['documents']}; the readers keep a document with at least one image)"]
    for reason, count in summary["failed"].items():
        lines.append(f"  failed {reason:18s} {count:6d}  {ADVICE.get(reason, 'see ' + FAILURES)}")
    if summary["source_records_skipped"]:
        lines.append(f"  source records naming no usable image: {summary['source_records_skipped']}")
    if summary["img2dataset_exit_code"]:
        lines.append(f"  img2dataset stopped with exit code {summary['img2dataset_exit_code']}: see "
                     f"{out / STAGING / 'img2dataset.log'}; run the same command again to continue")
    lines.append(f"  next: lcl data inspect SHARDS --images {out}")
    return lines
