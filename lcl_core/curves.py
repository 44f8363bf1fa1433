"""``lcl plot RUN… --out curves.png``: the training curves of one or several run folders side by side —
the loss, each LCL term, contrastive accuracy, the InfoNCE bound and both collapse diagnostics, one line per
run. Reads ``metrics.jsonl``, so a run still training (or killed) plots as far as it got."""

from __future__ import annotations

import sys
from pathlib import Path

from .training.runs import read_history, run_label
from .training.trainer import METRICS_FILE
from .viz import RUN_PANELS, plot_training


def histories(folders: list[Path]) -> dict[str, list[dict]]:
    """``label -> logged records`` for each run folder; a label shared by several runs gets the folder name."""
    for folder in folders:
        if not (folder / METRICS_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {METRICS_FILE}: point `lcl plot` at a run folder "
                                    f"(the --out of `lcl pretrain`, or runs/<name> of a reproduction)")
    labels = [run_label(folder) for folder in folders]
    named = [label if labels.count(label) == 1 else f"{label} ({folder.name})" for label, folder in zip(labels, folders)]
    if len(set(named)) < len(named):
        raise ValueError("the same run folder is named twice")
    return {label: read_history(folder) for label, folder in zip(named, folders)}


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (with metrics.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="the PNG to write (default curves.png)")
    parser.add_argument("--title", help="a title over the panels")


def main(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: `lcl plot` also runs headless
    try:
        runs = histories(args.runs)
    except (FileNotFoundError, ValueError) as error:
        print(f"lcl plot: error: {error}", file=sys.stderr)
        return 2
    empty = [label for label, records in runs.items() if not records]
    if empty:
        print(f"lcl plot: error: nothing logged yet in {', '.join(empty)}", file=sys.stderr)
        return 2
    figure = plot_training(runs, panels=RUN_PANELS, title=args.title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    steps = ", ".join(f"{label}: {records[-1]['step']} steps" for label, records in runs.items())
    drawn = sum(ax.get_visible() for ax in figure.axes)  # panels no run logged are left out
    print(f"{args.out}: {drawn} panels; {steps}")
    return 0
