"""What a reproduction writes: ``results.json`` (deterministic), ``timing.json``, ``table1.md`` in the
paper's layout, ``claims.md`` / ``claims.json`` and the figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..transfer.results import TABLE1_COLUMNS
from .claims import RANDOM

HEADERS = [c[0] for c in TABLE1_COLUMNS]


def write_report(results: dict, timing: dict, folder: str | Path) -> Path:
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    (folder / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    (folder / "claims.json").write_text(json.dumps(results["claims"], indent=1) + "\n")
    (folder / "table1.md").write_text(table_markdown(results, timing))
    (folder / "claims.md").write_text(claims_markdown(results))
    plot_columns(results, folder / "figures" / "table1_columns.png")
    plot_collapse(results, folder / "figures" / "latent_collapse.png")
    return folder


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def cell(entry: dict | None) -> str:
    """``mean ± half-width (rank) · paper value (rank)``; the half-width is the 95 % interval over seeds."""
    if entry is None:
        return "—"
    spread = "" if entry["n"] < 2 else f" ± {_number(entry['high'] - entry['mean'])}"
    text = f"{_number(entry['mean'])}{spread}"
    if entry.get("rank"):
        text += f" ({entry['rank']})"
    if entry.get("paper") is not None:
        text += f" · {_number(entry['paper'])} ({entry['paper_rank']})"
    return text


def table_markdown(results: dict, timing: dict) -> str:
    recipe, summary = results["recipe"], results["summary"]
    lines = [
        f"# Table 1, reproduced at small scale: profile `{results['profile']}`", "",
        "Frozen transfer of encoders pre-trained from scratch on the kit's offline world. Each cell: the kit's "
        f"mean over {len(recipe['seeds'])} pre-training seeds {recipe['seeds']} ± the half-width of its 95 % "
        "t-interval, (rank among the paper's seven rows) · the paper's value (its rank). Values in %; CIDEr and "
        "BLEU-4 ×100. Absolute values are not comparable with the paper's (a ~3M-parameter model trained for "
        "minutes against ViT-L/14 on billions of images); the orderings are what is reproduced.", "",
        f"- command: `{results['command']}`",
        f"- commit: `{results['commit']}`; machine: {results['machine']['processor']}, "
        f"{results['machine']['cpus']} threads, torch {results['machine']['torch']}, {results['machine']['device']}",
        f"- wall time: {_minutes(timing.get('total_s'))} in all (world {_minutes(timing.get('world_s'))}; "
        "per run and evaluation in `timing.json`)",
        f"- recipe: `{recipe['preset']}`, {recipe['steps']} steps, {recipe['document_batch']} documents per step "
        f"({recipe['images_per_document_row']:.2f} images per row) or {recipe['pair_batch']} pairs per step, "
        f"lr {recipe['lr']}, world seed {recipe['world_seed']} ({results['world']['counts']['documents']} documents, "
        f"{results['world']['counts']['pairs']} pairs); heads per encoder and task "
        + ", ".join(f"{task} {count}" for task, count in recipe["head_seeds"].items())
        + " (each number their mean); see `docs/results/table1/recipe.md`",
        "- split sizes: " + "; ".join(f"{key}: " + ", ".join(f"{k} {v}" for k, v in sizes.items())
                                     for key, sizes in results["split_sizes"].items()), "",
        "| method (objective) | data | " + " | ".join(HEADERS) + " |",
        "|---|---|" + "---|" * len(HEADERS)]
    for label, row in results["rows"].items():
        data = {"mmc4": "MMC4", "mmc4_pair": "MMC4-Pair", "pairs": "LAION-style pairs", None: "—"}[row["source"]]
        lines.append(f"| {label} | {data} | " + " | ".join(cell(summary[label][h]) for h in HEADERS) + " |")
    lines += ["", "Distinct images seen per run (matched across rows; CoCa encodes each image twice, once per "
              "layout) and tokens:", ""]
    for label, row in results["rows"].items():
        if row["objective"]:
            seen = [s["images_seen"] for s in row["seeds"].values()]
            tokens = [s["tokens_seen"] for s in row["seeds"].values()]
            lines.append(f"- {label}: {min(seen):,}–{max(seen):,} images, {min(tokens):,}–{max(tokens):,} tokens")
    lines += ["", "## Verdicts", ""] + [f"- **{c['verdict']}** — {c['statement']}"
                                       + (f" ({c['reason']})" if c["reason"] else "")
                                       for c in results["claims"]["claims"]]
    return "\n".join(lines) + "\n"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def claims_markdown(results: dict, *, title: str | None = None) -> str:
    lines = [f"# {title or 'Claims of the paper'}, judged on profile `{results['profile']}`", "",
             "Rules fixed in `lcl_core/reproduce/claims.py` before the run: per column, the paired difference "
             "over pre-training seeds (first row − second row, mean and 95 % t-interval); a *greater* claim is "
             "supported where the interval lies above 0, an *equivalent* claim where it lies inside ±margin. "
             "A claim holds when every column supports it, fails when any column contradicts it, and is "
             "inconclusive otherwise (or when a precondition does not hold).", ""]
    for section, heading in (("preconditions", "Is the comparison meaningful?"), ("claims", "The claims")):
        if not results["claims"][section]:
            continue
        lines += [f"## {heading}", ""]
        for claim in results["claims"][section]:
            if claim["kind"] == "all of":
                lines += [f"### {claim['verdict'].upper()}: {claim['statement']}", "",
                          "Holds when every part holds, fails when any part fails: "
                          + ", ".join(f"*{key}*" for key in claim["parts"]), ""]
                continue
            margin = f", margin ±{claim['margin']}" if claim["margin"] else ""
            lines += [f"### {claim['verdict'].upper()}: {claim['statement']}", "",
                      f"{claim['first']} − {claim['second']} ({claim['kind']}{margin})"
                      + (f" — {claim['reason']}" if claim["reason"] else ""), "",
                      "| column | mean difference | 95 % interval | per seed | call |", "|---|---|---|---|---|"]
            for column, entry in claim["columns"].items():
                d = entry.get("difference")
                if d is None:
                    lines.append(f"| {column} | — | — | — | {entry['call']} ({entry['reason']}) |")
                    continue
                per_seed = ", ".join(_number(v) for v in d["per_seed"])
                lines.append(f"| {column} | {_number(d['mean'])} | [{_number(d['low'])}, {_number(d['high'])}] | "
                             f"{per_seed} | {entry['call']} |")
            lines.append("")
    return "\n".join(lines)


def plot_columns(results: dict, path: Path) -> None:
    """One panel per Table 1 column: the kit's rows (mean, 95 % interval) and the paper's values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["rows"])
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, header in zip(axes.flat, HEADERS):
        entries = [results["summary"][label][header] for label in labels]
        means = [e["mean"] if e else 0.0 for e in entries]
        errors = [0.0 if not e or e["n"] < 2 else e["high"] - e["mean"] for e in entries]
        ax.bar(range(len(labels)), means, yerr=errors, capsize=3, color="tab:blue", label="kit (95 % CI)")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(header)
        ax.set_ylabel("kit")
        paper = ax.twinx()
        marked = [(i, e["paper"]) for i, e in enumerate(entries) if e and e.get("paper") is not None]
        paper.plot([i for i, _ in marked], [v for _, v in marked], "o", color="tab:orange", label="paper")
        paper.set_ylabel("paper", color="tab:orange")
    axes.flat[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Table 1 reproduced (profile {results['profile']}, seeds {results['recipe']['seeds']}): "
                 "kit bars, paper dots")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_collapse(results: dict, path: Path) -> None:
    """Latent variance and effective rank of the training batch's image latents over training, per row
    (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key, title in zip(axes, ("latent_variance", "effective_rank"),
                              ("variance of normalised image latents", "effective rank of image latents")):
        for label, row in results["rows"].items():
            if label == RANDOM:
                continue
            curves = [seed["curves"][key] for seed in row["seeds"].values() if seed["curves"].get(key)]
            if not curves:
                continue
            points = [(step, [c[i][1] for c in curves if c[i][1] is not None]) for i, (step, _) in enumerate(curves[0])]
            points = [(step, sum(values) / len(values)) for step, values in points if values]
            ax.plot([step for step, _ in points], [value for _, value in points], label=label)
        ax.set(title=title, xlabel="optimiser step", ylabel=key.replace("_", " "))
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_documents(results: dict, timing: dict, folder: str | Path) -> Path:
    """``results.json``, ``timing.json`` and ``claims.json`` of a report in ``folder`` (and its ``figures/``)."""
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True, ensure_ascii=False) + "\n")
    (folder / "timing.json").write_text(json.dumps(timing, indent=1, ensure_ascii=False) + "\n")
    (folder / "claims.json").write_text(json.dumps(results["claims"], indent=1, ensure_ascii=False) + "\n")
    return folder


def write_ablation_report(results: dict, timing: dict, folder: str | Path) -> Path:
    """One grid of ``lcl reproduce ablations``: results, timing, the table, the claims and the curves."""
    folder = _write_documents(results, timing, folder)
    (folder / f"{results['grid']}.md").write_text(ablation_markdown(results, timing))
    (folder / "claims.md").write_text(claims_markdown(results, title=f"Ablation `{results['grid']}`: claims"))
    plot_curves(results, folder / "figures" / f"{results['grid']}.png")
    return folder


LATENT_COLUMNS = ("latent variance", "effective rank")  # of held-out image latents after pre-training


def ablation_markdown(results: dict, timing: dict) -> str:
    recipe, summary = results["recipe"], results["summary"]
    reused = sum(1 for unit in timing["units"].values() if unit["reused"])
    lines = [f"# Ablation `{results['grid']}`: {results['title']} (profile `{results['profile']}`)", "",
             f"Each cell: the mean over {len(recipe['seeds'])} pre-training seeds {recipe['seeds']} ± the half-width "
             "of its 95 % t-interval. Transfer columns in % (CIDEr and BLEU-4 ×100); latent variance and effective "
             "rank of the pooled latents of the held-out classification images (4 per class) after pre-training. Everything but the grid's "
             "setting is the Table 1 recipe (`docs/results/table1/recipe.md`).", "",
             f"- command: `{results['command']}`",
             f"- commit: `{results['commit']}`; machine: {results['machine']['processor']}, "
             f"{results['machine']['cpus']} threads, torch {results['machine']['torch']}, {results['machine']['device']}",
             f"- wall time of the command: {_minutes(timing['total_s'])} (worlds {_minutes(timing['worlds_s'])}; "
             f"grids run together: {', '.join(timing['grids_in_this_command'])}); {reused} of {len(timing['units'])} "
             "point × seed units reused (a Table 1 row, another grid's point or an earlier sitting)",
             f"- recipe: `{recipe['preset']}`, {recipe['steps']} steps, {recipe['document_batch']} documents per step "
             f"or the pairs that hold as many images, lr {recipe['lr']}, world seed {recipe['world_seed']}",
             "- worlds: " + "; ".join(f"{key}: `{w['folder']}` ({w['pair_batch']} pairs per step)"
                                      for key, w in results["worlds"].items()),
             "- split sizes: " + "; ".join(f"{key}: " + ", ".join(f"{k} {v}" for k, v in sizes.items())
                                          for key, sizes in results["split_sizes"].items())]
    if results["coarsened"]:
        lines.append(f"- coarsened: {results['coarsened']}")
    headers = HEADERS + list(LATENT_COLUMNS)
    lines += ["", f"| point | {results['axis']} | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
    for label, point in results["points"].items():
        x = "—" if point["x"] is None or results["scale"] == "categorical" else f"{point['x']:g}"
        cells = [cell(summary[label][h]) if h not in LATENT_COLUMNS else _latent_cell(summary[label][h])
                 for h in headers]
        lines.append(f"| {label} | {x} | " + " | ".join(cells) + " |")
    if results.get("best"):
        lines += ["", "## Best point per column", "",
                  "| column | best | mean [95 % interval] | best − "
                  + str(next(iter(results["best"].values()))["reference"]) + " [95 % interval] |", "|---|---|---|---|"]
        for column, best in results["best"].items():
            number = _significant if column in LATENT_COLUMNS else _number
            i, d = best["interval"], best["minus_reference"]
            versus = "(it is the reference)" if d is None else \
                f"{number(d['mean'])} [{number(d['low'])}, {number(d['high'])}]"
            lines.append(f"| {column} | {best['label']} | {number(i['mean'])} [{number(i['low'])}, "
                         f"{number(i['high'])}] | {versus} |")
    if results["claims"]["claims"]:
        lines += ["", "## Verdicts", ""] + [f"- **{c['verdict']}** — {c['statement']}"
                                           for c in results["claims"]["claims"]]
    return "\n".join(lines) + "\n"


def _significant(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def _latent_cell(entry: dict | None) -> str:
    if entry is None:
        return "—"
    return f"{entry['mean']:.3g}" + ("" if entry["n"] < 2 else f" ± {entry['high'] - entry['mean']:.2g}")


def plot_curves(results: dict, path: Path) -> None:
    """One panel per transfer column and latent statistic: each series' mean over seeds against the grid's
    setting with its 95 % band; points off the axis (contrastive only) as markers at the right, random init
    as a dashed line with its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, summary, scale = results["points"], results["summary"], results["scale"]
    on_axis = sorted({p["x"] for p in points.values() if p["x"] is not None})
    positive = [x for x in on_axis if x > 0] or [1.0]  # a rerun of λ = 0 alone has no positive x to step from
    zero_at = min(positive) / 3 if scale == "log" else 0.0  # log axes draw x = 0 a step to the left
    apart_at = max(positive) * 3 if scale == "log" else (max(on_axis) + 1 if on_axis else 0.0)

    def position(x: float | None) -> float:
        return apart_at if x is None else zero_at if (scale == "log" and x == 0) else x

    fig, axes = plt.subplots(2, 5, figsize=(22, 8))
    for ax, header in zip(axes.flat, HEADERS + list(LATENT_COLUMNS)):
        series = {}
        for label, point in points.items():
            if point["objective"] is None or summary[label][header] is None:
                continue
            series.setdefault(point["series"] if point["x"] is not None else label, []).append((point, label))
        for name, members in series.items():
            members.sort(key=lambda member: position(member[0]["x"]))
            xs = [position(p["x"]) for p, _ in members]
            entries = [summary[label][header] for _, label in members]
            means = [e["mean"] for e in entries]
            lows = [e["low"] if e["n"] > 1 else e["mean"] for e in entries]
            highs = [e["high"] if e["n"] > 1 else e["mean"] for e in entries]
            style = "o" if members[0][0]["x"] is None or scale == "categorical" else "o-"
            line, = ax.plot(xs, means, style, label=name)
            if len(xs) > 1 and scale != "categorical":
                ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)
            else:
                ax.errorbar(xs, means, yerr=[[m - lo for m, lo in zip(means, lows)],
                                             [h - m for m, h in zip(means, highs)]], fmt="none",
                            color=line.get_color(), capsize=3)
        reference = summary.get(RANDOM, {}).get(header)
        if reference:
            ax.axhline(reference["mean"], color="gray", linestyle="--", label=RANDOM)
            if reference["n"] > 1:
                ax.axhspan(reference["low"], reference["high"], color="gray", alpha=0.12)
        if scale == "log":
            ax.set_xscale("log")
        ticks = [position(x) for x in on_axis] + ([apart_at] if any(p["x"] is None and p["objective"]
                                                                    for p in points.values()) else [])
        names = [f"{x:g}" for x in on_axis] + (["∞ (con. only)"] if len(ticks) > len(on_axis) else [])
        if scale == "categorical":
            by_x = {p["x"]: label for label, p in points.items() if p["x"] is not None}
            names = [by_x[x] for x in on_axis]
        ax.set_xticks(ticks, names, fontsize=7, rotation=30 if scale == "categorical" else 0)
        ax.minorticks_off()
        ax.set_title(header)
        ax.set_xlabel(results["axis"], fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Ablation {results['grid']}: {results['title']} (profile {results['profile']}, seeds "
                 f"{results['recipe']['seeds']}; mean and 95 % band over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def verdict_agreement(first: str | Path, second: str | Path) -> tuple[str, bool]:
    """Do two reproductions (e.g. other seeds and another world) reach the same verdicts? Pairs every
    ``claims.json`` under ``first`` with the one at the same place under ``second``; returns the markdown
    table and whether every claim judged in both got the same verdict."""
    first, second = Path(first), Path(second)
    found = sorted(first.rglob("claims.json"))
    if not found:
        raise FileNotFoundError(f"no claims.json under {first}")
    rows, judged, same, missing = [], 0, 0, []
    for path in found:
        where = path.parent.relative_to(first).as_posix()
        other = second / path.relative_to(first)
        if not other.exists():
            missing.append(where or ".")
            continue
        theirs = {c["key"]: c for c in json.loads(other.read_text())["claims"]}
        for claim in json.loads(path.read_text())["claims"]:
            match = theirs.get(claim["key"])
            if match is None:
                continue
            judged += 1
            agree = claim["verdict"] == match["verdict"]
            same += agree
            columns = [c for c in claim.get("columns", {}) if c in match.get("columns", {})]
            alike = sum(claim["columns"][c]["call"] == match["columns"][c]["call"] for c in columns)
            calls = f"{alike} of {len(columns)}" if columns else "—"
            rows.append(f"| {where or '.'} | {claim['key']} | {claim['verdict']} | {match['verdict']} | "
                        f"{'yes' if agree else '**no**'} | {calls} |")
    lines = [f"# Verdicts of `{first}` against `{second}`", ""]
    if judged:
        lines += [f"{same} of {judged} claims judged in both got the same verdict.", "",
                  "| where | claim | first | second | same verdict | columns called alike |",
                  "|---|---|---|---|---|---|", *rows]
    else:
        lines.append("No claim was judged in both.")
    if missing:
        lines += ["", "Not in the second: " + ", ".join(f"`{m}`" for m in missing) + "."]
    return "\n".join(lines) + "\n", judged > 0 and same == judged


def write_scale_report(results: dict, timing: dict, folder: str | Path) -> Path:
    """``lcl reproduce scale``: results, timing, the table of gaps and slopes, the claims and two figures."""
    folder = _write_documents(results, timing, folder)
    (folder / "scale.md").write_text(scale_markdown(results, timing))
    plot_scale(results, folder / "figures")
    return folder


def _interval_text(entry: dict, digits: int = 1) -> str:
    if entry["n"] < 2:
        return _number(entry["mean"], digits)
    return f"{_number(entry['mean'], digits)} [{_number(entry['low'], digits)}, {_number(entry['high'], digits)}]"


def scale_markdown(results: dict, timing: dict) -> str:
    recipe, budgets = results["recipe"], results["budgets"]
    reused = sum(1 for unit in timing["units"].values() if unit["reused"])
    lines = [f"# Does the LCL − CLIP gap move with budget? (profile `{results['profile']}`)", "",
             f"LCL on the documents and CLIP on MMC4-Pair at {len(budgets)} budgets, pre-training seeds "
             f"{recipe['seeds']}; everything but the steps is the Table 1 recipe. Gaps: LCL − CLIP per seed, mean "
             "[95 % t-interval]; slope: of the gap against log₁₀(images seen), per seed, then over seeds. Transfer "
             "columns in % (CIDEr and BLEU-4 ×100). The rules are in `lcl_core/reproduce/scale.py`.", "",
             f"- command: `{results['command']}`",
             f"- commit: `{results['commit']}`; machine: {results['machine']['processor']}, "
             f"{results['machine']['cpus']} threads, torch {results['machine']['torch']}, {results['machine']['device']}",
             f"- wall time: {_minutes(timing['total_s'])} ({reused} of {len(timing['units'])} units reused)",
             f"- world `{results['world']['folder']}` ({results['world']['documents']:,} documents), "
             f"{recipe['document_batch']} documents or {recipe['pair_batch']} pairs per step, lr {recipe['lr']}", "",
             "| budget | steps | images seen | epochs of the documents |", "|---|---|---|---|"]
    lines += [f"| ×{b['multiplier']:g} | {b['steps']:,} | {b['images_seen']:,.0f} | {b['epochs']:.2f} |" for b in budgets]
    lines += ["", "## LCL − CLIP by budget, and its slope", "",
              "| column | " + " | ".join(f"×{b['multiplier']:g}" for b in budgets)
              + " | slope per decade | call | paper's gap |", "|---|" + "---|" * (len(budgets) + 3)]
    for column, trend in results["trends"].items():
        gaps = " | ".join(_interval_text(g) for g in results["gaps"][column])
        crossing = trend["crossing"]
        call = trend["call"] + ("" if crossing is None else f" (crosses 0 at {crossing['images_seen']:,.0f} images"
                                + (", extrapolated)" if crossing["extrapolated"] else ")"))
        lines.append(f"| {column} | {gaps} | {_interval_text(trend['slope'], 2)} | {call} | "
                     f"{_number(trend['paper_gap'])} |")
    lines += ["", "## Each row against random init (paired difference by budget)", "",
              "| row · column | " + " | ".join(f"×{b['multiplier']:g}" for b in budgets) + " |",
              "|---|" + "---|" * len(budgets)]
    for label in results["rows"]:
        if label == RANDOM:
            continue
        for column, points in results["curves"][label].items():
            lines.append(f"| {label} · {column} | " + " | ".join(_interval_text(p["minus_random"]) for p in points)
                         + " |")
    lines += ["", "## Verdicts", ""] + [
        f"- **{c['verdict']}** — {c['statement']}: " + ", ".join(f"{k} {v['call']}" for k, v in c["columns"].items())
        for c in results["claims"]["claims"]]
    return "\n".join(lines) + "\n"


def plot_scale(results: dict, folder: Path) -> None:
    """``scale_gap.png``: LCL − CLIP against images seen per column (log x), mean and 95 % band over seeds, 0
    and the paper's gap as reference lines; ``scale_rows.png``: each row's curve with random init dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [b["images_seen"] for b in results["budgets"]]

    def band(ax, entries, label, **style):
        means = [e["mean"] for e in entries]
        line, = ax.plot(xs, means, "o-", label=label, **style)
        if all(e["n"] > 1 for e in entries):
            ax.fill_between(xs, [e["low"] for e in entries], [e["high"] for e in entries], color=line.get_color(),
                            alpha=0.2)

    for name, draw in (("scale_gap.png", "gap"), ("scale_rows.png", "rows")):
        fig, axes = plt.subplots(2, 4, figsize=(18, 8))
        for ax, column in zip(axes.flat, HEADERS):
            if draw == "gap":
                band(ax, results["gaps"][column], "LCL − CLIP")
                ax.axhline(0, color="black", linewidth=0.8)
                ax.axhline(results["trends"][column]["paper_gap"], color="gray", linestyle=":", label="paper's gap")
            else:
                for label in results["rows"]:
                    if label != RANDOM:
                        band(ax, [p["values"] for p in results["curves"][label][column]], label)
                random = results["curves"][RANDOM][column]
                ax.axhline(random["mean"], color="gray", linestyle="--", label=RANDOM)
            ax.set_xscale("log")
            ax.set_title(column)
            ax.set_xlabel("images seen", fontsize=8)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{'LCL − CLIP' if draw == 'gap' else 'LCL, CLIP and random init'} by budget (profile "
                     f"{results['profile']}, seeds {results['recipe']['seeds']}; mean and 95 % band over seeds)")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)


# ---- Table 4 ------------------------------------------------------------------------------------------------
def write_table4_report(results: dict, timing: dict, folder: str | Path, *, layout: dict) -> Path:
    """``lcl reproduce table4``: results, timing, the table in the paper's layout, the claims and a figure.
    ``layout``: the table's rows and columns (``lcl_core.reproduce.table4.LAYOUT``, passed in so that this module
    does not import the reproduction that imports it)."""
    folder = _write_documents(results, timing, folder)
    (folder / "table4.md").write_text(table4_markdown(results, timing, layout=layout))
    (folder / "claims.md").write_text(claims_markdown(results, title="Claims of the paper's Table 4"))
    plot_table4(results, folder / "figures" / "table4.png", layout=layout)
    return folder


def table4_markdown(results: dict, timing: dict, *, layout: dict) -> str:
    blind, columns, encoders, paper_rows, settings = (layout[k] for k in ("blind", "columns", "encoders", "paper_rows",
                                                                          "settings"))
    recipe, summary, counts = results["recipe"], results["summary"], results["dialogue"]["counts"]
    headers = [header for header, *_ in columns]
    reused = sum(1 for chain in timing["chains"].values() if chain["reused"])
    lines = [f"# Table 4, reproduced at small scale: profile `{results['profile']}`", "",
             "Each encoder inside a tiny LLaVA-1.5 (penultimate-layer patch tokens → two-layer MLP → a "
             f"{recipe['lm']['num_hidden_layers']}-layer Llama of width {recipe['lm']['hidden_size']}), asked held-out "
             "stand-ins of the benchmarks. Each cell: the mean over pre-training seeds "
             f"{recipe['seeds']} ± the half-width of its 95 % t-interval. Percent, but MME on its own scale (at most "
             "200 per category asked). Absolute values are not comparable with the paper's (Vicuna-7B and ViT-L/14 "
             "there); the orderings are what is tested. The rules are in `lcl_core/reproduce/table4.py`.", "",
             f"- command: `{results['command']}`",
             f"- commit: `{results['commit']}`; machine: {results['machine']['processor']}, "
             f"{results['machine']['cpus']} threads, torch {results['machine']['torch']}, {results['machine']['device']}",
             f"- wall time: {_minutes(timing['total_s'])} in all (pre-training and world {_minutes(timing['world_s'])},"
             f" language model {_minutes(timing['language_model_s'])}; {reused} of {len(timing['chains'])} chains "
             "reused; per chain in `timing.json`)",
             f"- world `{results['world']['folder']}`; encoders of the Table 1 profile `{recipe['upstream']}`; "
             f"dialogue data: {counts['train_images']} training images ({counts['captions']} captions, "
             f"{counts['instruct']} conversations, {counts['text']} text rows for the language model), "
             f"{counts['test_images']} held-out images, questions: " + ", ".join(
                 f"{b} {counts[f'questions_{b}']}" for b in ("vqav2", "gqa", "pope", "mme", "mmbench", "blind")),
             f"- stages: text {recipe['text_steps']} steps (lr {recipe['text_lr']}), stage 1 "
             f"{recipe['projector_steps']} (lr {recipe['projector_lr']}), stage 2 {recipe['instruct_steps']} (lr "
             f"{recipe['instruct_lr']}), {recipe['batch_size']} rows per step; greedy answers of at most "
             f"{recipe['max_new_tokens']} tokens", "",
             "| setting | encoder | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
    for setting in settings:
        for row in (*encoders, "random init"):
            label = f"{row} · {setting}"
            lines.append(f"| {setting} | {row} | " + " | ".join(cell(summary.get(label, {}).get(h)) for h in headers)
                         + " |")
            paper = paper_rows.get(row)
            if paper:
                values = results["paper"][setting][paper]
                lines.append(f"| {setting} | *paper: {paper}* | " + " | ".join(
                    _number(values.get("SQA" if h.startswith("SQA") else h)) for h in headers) + " |")
    lines.append("| — | blind LM | " + " | ".join(cell(summary.get(blind, {}).get(h)) for h in headers) + " |")
    lines += ["", "## Verdicts", ""] + [f"- **{c['verdict']}** — {c['statement']}"
                                       + (f" ({c['reason']})" if c["reason"] else "")
                                       for c in results["claims"]["claims"]]
    lines += ["", "## Example answers (seed 0, frozen)", ""]
    for name, chain in results["chains"].items():
        if chain["seed"] != 0:
            continue
        scores = chain["scores"].get("frozen") or chain["scores"].get(blind)
        for benchmark, examples in (scores or {}).get("examples", {}).items():
            for example in examples[:1]:
                question = example["prompt"].split("\n")[0]
                lines.append(f"- {chain['row']} · {benchmark}: “{question}” → “{example['answer']}” (truth "
                             f"“{example['truth']}”)")
    return "\n".join(lines) + "\n"


def plot_table4(results: dict, path: Path, *, layout: dict) -> None:
    """One panel per benchmark: every row and setting (mean, 95 % interval over seeds), the blind LM dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blind, columns, encoders, settings = (layout[k] for k in ("blind", "columns", "encoders", "settings"))

    rows = [f"{row} · {setting}" for setting in settings for row in (*encoders, RANDOM)]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 5))
    for ax, (header, *_) in zip(axes, columns):
        entries = [results["summary"].get(label, {}).get(header) for label in rows]
        means = [e["mean"] if e else math.nan for e in entries]
        errors = [(e["high"] - e["mean"]) if e and e["n"] > 1 else 0 for e in entries]
        ax.barh(range(len(rows)), means, xerr=errors, color=["C0" if "frozen" in r else "C1" for r in rows])
        control = results["summary"].get(blind, {}).get(header)
        if control:
            ax.axvline(control["mean"], color="gray", linestyle="--", label=blind)
        ax.set_yticks(range(len(rows)), rows if ax is axes[0] else [""] * len(rows), fontsize=7)
        ax.set_title(header, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Table 4 at small scale (profile {results['profile']}, seeds {results['recipe']['seeds']}; "
                 "mean and 95 % interval; blue frozen, orange full)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
