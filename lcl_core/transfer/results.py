"""The results schema every evaluation run writes (plain JSON), and the paper-order table.

::

    {
      "schema": "lcl-transfer-results/1",
      "created_utc": "2025-01-01T00:00:00+00:00",
      "units": "percent",
      "checkpoint": {"source": "runs/tiny/final", "fingerprint": "sha256:…", "config": "tiny-fast",
                     "parameters": 1234567},
      "protocol": {"full_transfer": false, "seeds": [0, 1], "settings": {…TransferSettings…}},
      "data": {"root": "world/eval", "sets": "classification …: 400 train / 200 val, …"},
      "encoders": {
        "checkpoint":  {"description": "…", "fingerprint": "sha256:…", "tasks": {
            "cls/classification": {"task": "cls", "dataset": "classification", "seeds": [0, 1],
                                   "splits": {"train": 400, "val": 200, "classes": 10},
                                   "metrics": {"top1": {"mean": 61.5, "std": 1.5, "per_seed": [60.0, 63.0]},
                                               …}},
            "ret/coco": …, "cap/coco": …, "cap/nocaps": …, "zeroshot-cls/classification": …}},
        "random-init": {…same shape…},
        "raw-pixels":  {…classification only…}
      }
    }

Every metric keeps its per-seed values (the entry's ``seeds`` gives their order; zero-shot entries are
deterministic: no seeds, one value); ``mean``/``std`` are derived. Captioning adds ``bleu4_greedy`` and
``cider_greedy`` (headline numbers use beam search); NoCaps adds ``cider_<domain>`` per domain.
Task keys are ``<task>/<dataset>``; tasks are ``cls``, ``ret``, ``cap``, ``zeroshot-cls`` and
``zeroshot-ret``.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

SCHEMA = "lcl-transfer-results/1"

# The paper's Table 1 columns: (header, task, dataset or None for "any", metric)
TABLE1_COLUMNS = (
    ("IN-1k", "cls", None, "top1"),
    ("COCO TR@1", "ret", "coco", "tr@1"),
    ("COCO IR@1", "ret", "coco", "ir@1"),
    ("F30k TR@1", "ret", "flickr30k", "tr@1"),
    ("F30k IR@1", "ret", "flickr30k", "ir@1"),
    ("COCO B@4", "cap", "coco", "bleu4"),
    ("COCO CIDEr", "cap", "coco", "cider"),
    ("NoCaps CIDEr", "cap", "nocaps", "cider"),
)
# Table 1 of the paper (frozen transfer, ViT-L/14 pre-trained from scratch on MMC4 or pairs extracted from
# it), LCL-METHOD §6: row -> {column header of TABLE1_COLUMNS: value}
PAPER_TABLE1 = {row: dict(zip((c[0] for c in TABLE1_COLUMNS), values)) for row, values in {
    "CLIP": (74.8, 46.4, 32.5, 76.2, 60.0, 23.9, 82.9, 78.4),
    "CoCa": (75.4, 48.6, 34.3, 76.5, 61.9, 23.7, 84.8, 80.5),
    "BLIP2": (74.5, 46.5, 31.3, 74.9, 57.8, 23.7, 82.9, 78.1),
    "BEiT3": (73.3, 45.1, 30.6, 73.2, 57.1, 23.3, 81.4, 76.7),
    "Flamingo-style": (24.0, 10.6, 5.6, 17.7, 10.8, 8.7, 18.1, 18.5),
    "Emu-style": (5.7, 2.3, 1.4, 4.8, 2.7, 0.3, 4.4, 4.6),
    "LCL": (75.2, 48.5, 34.5, 76.3, 60.4, 24.4, 87.5, 82.5),
}.items()}
ZEROSHOT_COLUMNS = (
    ("IN-1k top-1", "zeroshot-cls", None, "top1"),
    ("COCO TR@1", "zeroshot-ret", "coco", "tr@1"),
    ("COCO IR@1", "zeroshot-ret", "coco", "ir@1"),
    ("F30k TR@1", "zeroshot-ret", "flickr30k", "tr@1"),
    ("F30k IR@1", "zeroshot-ret", "flickr30k", "ir@1"),
)
MISSING = "—"


def new_results(*, checkpoint: Mapping[str, Any], protocol: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    return {
        "schema": SCHEMA,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "units": "percent",
        "checkpoint": dict(checkpoint),
        "protocol": dict(protocol),
        "data": dict(data),
        "encoders": {},
    }


def add_encoder(results: dict, name: str, *, description: str, fingerprint: str) -> dict:
    """Register an encoder row; returns its ``tasks`` dict."""
    results["encoders"][name] = {"description": description, "fingerprint": fingerprint, "tasks": {}}
    return results["encoders"][name]["tasks"]


def task_entry(*, task: str, dataset: str, splits: Mapping[str, int], seeds: Sequence[int],
               per_seed: Sequence[Mapping[str, float]]) -> dict:
    """One task's entry from the metric dicts of each seed. ``seeds`` is empty for deterministic tasks
    (zero-shot), which then carry one value."""
    if len(per_seed) != max(1, len(seeds)):
        raise ValueError(f"{len(per_seed)} metric sets for seeds {list(seeds)}")
    names = list(per_seed[0])
    metrics = {}
    for name in names:
        values = [float(m[name]) for m in per_seed]
        metrics[name] = {"mean": statistics.fmean(values),
                         "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "per_seed": values}
    return {"task": task, "dataset": dataset, "seeds": list(seeds), "splits": dict(splits), "metrics": metrics}


def validate_results(results: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first way ``results`` departs from the schema."""
    if results.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document (schema={results.get('schema')!r})")
    for key in ("checkpoint", "protocol", "data", "encoders"):
        if not isinstance(results.get(key), dict):
            raise ValueError(f"missing object {key!r}")
    for enc_name, enc in results["encoders"].items():
        for key, entry in enc.get("tasks", {}).items():
            where = f"encoders.{enc_name}.tasks.{key}"
            if key != f"{entry.get('task')}/{entry.get('dataset')}":
                raise ValueError(f"{where}: key must be '<task>/<dataset>'")
            if not entry.get("splits"):
                raise ValueError(f"{where}: every number needs its split sizes")
            expected = max(1, len(entry.get("seeds", [])))
            for metric, value in entry.get("metrics", {}).items():
                if len(value.get("per_seed", [])) != expected:
                    count = len(value.get("per_seed", []))
                    raise ValueError(f"{where}.{metric}: {count} values for seeds {entry.get('seeds')}")


def save_results(results: Mapping[str, Any], path: str | Path) -> None:
    validate_results(results)
    Path(path).write_text(json.dumps(results, indent=2) + "\n")


def load_results(path: str | Path) -> dict:
    results = json.loads(Path(path).read_text())
    validate_results(results)
    return results


# ---- tables ---------------------------------------------------------------------------------------
def _lookup(tasks: Mapping[str, Any], task: str, dataset: str | None, metric: str):
    for entry in tasks.values():
        if entry["task"] == task and (dataset is None or entry["dataset"] == dataset) and metric in entry["metrics"]:
            return entry["metrics"][metric]
    return None


def column_value(results: Mapping[str, Any], encoder: str, header: str,
                 columns: Sequence[tuple] = TABLE1_COLUMNS) -> dict | None:
    """The ``{"mean", "std", "per_seed"}`` entry of one encoder under a column header, or None."""
    (_, task, dataset, metric), = [c for c in columns if c[0] == header]
    return _lookup(results["encoders"][encoder]["tasks"], task, dataset, metric)


def merge_results(evaluations: Mapping[str, Mapping[str, Any]]) -> dict:
    """One results document from several evaluations: each one's ``checkpoint`` encoder under its label,
    the calibration baselines (random-init, raw pixels) once, from the first evaluation that has them."""
    merged = dict(next(iter(evaluations.values())), encoders={})
    for label, evaluation in evaluations.items():
        for encoder, entry in evaluation["encoders"].items():
            merged["encoders"].setdefault(label if encoder == "checkpoint" else encoder, entry)
    validate_results(merged)
    return merged


def _cell(value) -> str:
    if value is None:
        return MISSING
    spread = f"±{value['std']:.1f}" if len(value["per_seed"]) > 1 else ""
    return f"{value['mean']:.1f}{spread}"


def format_table(results: Mapping[str, Any], columns: Sequence[tuple] = TABLE1_COLUMNS) -> str:
    """A Markdown table: one row per encoder that has any of ``columns``, paper column order."""
    header = ["encoder"] + [c[0] for c in columns]
    rows = []
    for name, enc in results["encoders"].items():
        cells = [_cell(_lookup(enc["tasks"], task, ds, metric)) for _, task, ds, metric in columns]
        if any(c != MISSING for c in cells):
            rows.append([name] + cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def format_report(results: Mapping[str, Any]) -> str:
    """Table 1 order, then zero-shot, then every task's split sizes and NoCaps per-domain CIDEr."""
    seeds = results["protocol"].get("seeds", [])
    mode = "full transfer" if results["protocol"].get("full_transfer") else "frozen transfer"
    parts = [f"{mode}, {len(seeds)} seed(s) {seeds}, values in % (mean±std over seeds)", "",
             format_table(results, TABLE1_COLUMNS)]
    zeroshot = format_table(results, ZEROSHOT_COLUMNS)
    if zeroshot.count("\n") > 1:
        parts += ["", "zero-shot (LCL's <soi> text feature vs its pooled image latent)", "", zeroshot]
    parts += ["", "split sizes:"]
    first = next(iter(results["encoders"].values()), {"tasks": {}})
    for key, entry in first["tasks"].items():
        sizes = ", ".join(f"{k} {v}" for k, v in entry["splits"].items())
        parts.append(f"  {key}: {sizes}")
    for name, enc in results["encoders"].items():
        nocaps = enc["tasks"].get("cap/nocaps")
        if nocaps:
            domains = ", ".join(f"{m.removeprefix('cider_')} {v['mean']:.1f}"
                                for m, v in nocaps["metrics"].items() if m.startswith("cider_"))
            parts.append(f"  NoCaps CIDEr by domain ({name}): {domains}")
    return "\n".join(parts)
