"""What the notebooks show: plain-text tables, token-by-token layouts, attention maps, training plots.

Everything here only displays what the core computes (masks come from :mod:`lcl_core.sequences`,
metrics from the trainer); the notebooks call these so that no two notebooks carry the same plotting
code. Tables are plain text so that headless runs and nbval can compare them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .diagnostics import metric_series, weighted_share
from .images import denormalize
from .sequences import contrastive_mask, generation_mask
from .tokenizer import Tokenizer


# ---- text ---------------------------------------------------------------------------------------------
def format_value(value: Any, *, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value in (False, None) else "yes"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
                 digits: int = 4) -> str:
    """Rows of dicts as an aligned plain-text table (numbers right-aligned)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    cells = [[format_value(row.get(c), digits=digits) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool)
                   for row in rows if row.get(c) is not None) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, **kwargs) -> None:
    print(format_rows(rows, columns, **kwargs))


def token_rows(tokenizer: Tokenizer, ids: Sequence[int], *, collapse_images: bool = True) -> list[dict]:
    """One row per position of a token sequence with the role each loss gives it.

    ``generation target``: this token is predicted from the output one position earlier;
    ``contrastive read``: the causal output *here* is paired with the next image's latent.
    Runs of ``<img>`` placeholders become one row when ``collapse_images``.
    """
    row_ids = torch.tensor([list(ids)])
    contrastive = contrastive_mask(row_ids, soi_id=tokenizer.soi_id)[0].tolist()
    targets = [False] + generation_mask(row_ids, img_id=tokenizer.img_id, eoi_id=tokenizer.eoi_id,
                                        pad_id=tokenizer.pad_id)[0].tolist()
    rows: list[dict] = []
    for position, token_id in enumerate(int(i) for i in ids):
        if collapse_images and token_id == tokenizer.img_id and rows and rows[-1]["id"] == token_id:
            first = rows[-1]["position"].split("-")[0]
            count = int(rows[-1]["token"].split("×")[1]) + 1
            rows[-1].update(position=f"{first}-{position}", token=f"{tokenizer.id_to_token(token_id)}×{count}")
            continue
        token = tokenizer.id_to_token(token_id)
        if collapse_images and token_id == tokenizer.img_id:
            token = f"{token}×1"
        rows.append({"position": str(position), "id": token_id, "token": token,
                     "generation target": targets[position], "contrastive read": contrastive[position]})
    return rows


def layout_summary(tokenizer: Tokenizer, ids: Sequence[int]) -> dict[str, Any]:
    """What a token row is checked by: its length, first and last tokens, the special tokens it holds and
    how many positions each loss reads (from :func:`token_rows`)."""
    rows = token_rows(tokenizer, ids, collapse_images=False)
    count = lambda token_id: sum(1 for i in ids if i == token_id)  # noqa: E731
    return {"length": len(ids), "first": tokenizer.id_to_token(ids[0]), "last": tokenizer.id_to_token(ids[-1]),
            "soi": count(tokenizer.soi_id), "img": count(tokenizer.img_id), "eoi": count(tokenizer.eoi_id),
            "generation_targets": sum(r["generation target"] for r in rows),
            "contrastive_reads": sum(r["contrastive read"] for r in rows)}


# ---- figures ----------------------------------------------------------------------------------------
def new_axes(count: int = 1, *, width: float = 4.0, height: float = 3.2, rows: int = 1):
    """A figure with ``count`` axes in ``rows`` rows; returns (figure, flat list of axes)."""
    import matplotlib.pyplot as plt

    cols = math.ceil(count / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def label(ax, *, title: str | None = None, xlabel: str, ylabel: str) -> None:
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_bars(ax, labels: Sequence[str], values: Sequence[float], *, xlabel: str, ylabel: str,
              title: str | None = None, log: bool = False, annotate: bool = True) -> None:
    """A labelled bar chart (optionally log-scaled), each bar annotated with its value."""
    bars = ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    if log:
        ax.set_yscale("log")
    if annotate:
        for bar, value in zip(bars, values):
            ax.annotate(format_value(float(value), digits=3), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    label(ax, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_attention_maps(images: torch.Tensor, attention: torch.Tensor, *, titles: Sequence[str] | None = None,
                        size: float = 2.2):
    """Pooler attention over patches on top of each image.

    images [M, 3, H, W] (normalised as by :func:`lcl_core.images.image_transform`),
    attention [M, heads, N] from ``AttentivePoolingProjection(..., return_attention=True)``; the
    heads are averaged and the N patches laid out on their square grid.
    """
    import matplotlib.pyplot as plt

    count, grid = images.shape[0], math.isqrt(attention.shape[-1])
    maps = attention.detach().float().mean(dim=1).reshape(count, grid, grid)
    pictures = denormalize(images.detach().float()).permute(0, 2, 3, 1)
    fig, axes = plt.subplots(2, count, figsize=(size * count, 2 * size), squeeze=False)
    height, width = pictures.shape[1:3]
    for i in range(count):
        axes[0, i].imshow(pictures[i])
        axes[0, i].set_title(titles[i] if titles else f"image {i}", fontsize=9)
        shown = axes[1, i].imshow(maps[i], cmap="magma", extent=(0, width, height, 0))
        axes[1, i].set_xlabel("x (pixels)")
        fig.colorbar(shown, ax=axes[1, i], fraction=0.046, label="attention")
    axes[0, 0].set_ylabel("y (pixels)")
    axes[1, 0].set_ylabel("y (pixels)")
    fig.suptitle("attentive pooling: where the single query looks (mean over heads)")
    fig.tight_layout()
    return fig


def plot_image_ranking(images: torch.Tensor, queries: Sequence[str], ranking: torch.Tensor,
                       targets: Sequence[int], *, title: str):
    """One row per query: the ranked images (``ranking`` [Q, k] indices into ``images`` [M, 3, H, W],
    normalised as by :func:`lcl_core.images.image_transform`), ✓ on the query's own image ``targets[q]``."""
    queries_count, k = ranking.shape
    fig, axes = new_axes(queries_count * k, width=1.9, height=2.1, rows=queries_count)
    pictures = denormalize(images.detach().float()).permute(0, 2, 3, 1)
    for q, query in enumerate(queries):
        for r, index in enumerate(ranking[q].tolist()):
            ax = axes[q * k + r]
            ax.imshow(pictures[index])
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(("✓ " if index == targets[q] else "") + f"rank {r + 1}", fontsize=8)
            if r == 0:
                ax.set_ylabel(query[:28], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_captioned_images(images: torch.Tensor, captions: Sequence[tuple[str, str]], *, title: str):
    """Each image (``images`` [M, 3, H, W], normalised as by :func:`lcl_core.images.image_transform`) with its
    generated caption above the reference one."""
    fig, axes = new_axes(len(captions), width=2.6, height=3.0, rows=math.ceil(len(captions) / 3))
    pictures = denormalize(images.detach().float()).permute(0, 2, 3, 1)
    for ax, picture, (generated, reference) in zip(axes, pictures, captions):
        ax.imshow(picture)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(_wrap(f"→ {generated}"), fontsize=7, loc="left")
        ax.set_xlabel(_wrap(f"reference: {reference}"), fontsize=7, color="dimgrey")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 34, lines: int = 3) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:lines])


def plot_series(ax, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str, ylabel: str,
                title: str | None = None, log: bool = False, reference: Mapping[str, float] | None = None,
                colors: Mapping[str, str] | None = None) -> None:
    """Lines ``label -> (x, y)`` on one axis, with optional horizontal reference lines; ``colors`` keeps a
    label's colour when other panels have other series."""
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, color=(colors or {}).get(name))
    for name, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=8, color="grey", va="bottom")
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize=8)
    label(ax, title=title, xlabel=xlabel, ylabel=ylabel)


def show(fig) -> None:
    """Display a figure once (inline backends would otherwise show it again at cell end) and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig.tight_layout()
    display(fig)
    plt.close(fig)


# ---- training curves ------------------------------------------------------------------------------------
# (metric, y label, title) of the training dashboard; "info_nce_bound" is derived: log N − L_con
DASHBOARD_PANELS = (
    ("generation_loss", "generation loss (nats)", "next-token prediction"),
    ("contrastive_loss", "contrastive loss (nats)", "symmetric InfoNCE"),
    ("contrastive_accuracy", "in-batch accuracy", "contrastive accuracy"),
    ("info_nce_bound", "log N - L_con (nats)", "InfoNCE bound on I(latent; context)"),
    ("latent_variance", "variance of normalised latents", "latent spread (collapse diagnostic)"),
)
# `lcl plot`: the dashboard plus the total loss (every objective has one, not only LCL's two terms) and the
# second collapse diagnostic
RUN_PANELS = (("loss", "weighted total (nats)", "training loss"), *DASHBOARD_PANELS,
              ("effective_rank", "exp(entropy of singular values)", "latent effective rank (collapse)"))


def plot_training(runs: Mapping[str, Sequence[Mapping[str, Any]]], *, panels=DASHBOARD_PANELS,
                  title: str | None = None):
    """One panel per metric that some run logged, one line per run (``label -> trainer records``)."""
    panels = [panel for panel in panels if any(metric_series(records, panel[0])[0] for records in runs.values())]
    fig, axes = new_axes(len(panels), width=3.9, height=3.0, rows=1 if len(panels) <= 3 else 2)
    colors = {name: f"C{i % 10}" for i, name in enumerate(runs)}  # a run keeps its colour where others lack a metric
    for ax, (key, ylabel, panel_title) in zip(axes, panels):
        series = {name: metric_series(records, key) for name, records in runs.items()}
        series = {name: points for name, points in series.items() if points[0]}
        plot_series(ax, series, xlabel="optimiser step", ylabel=ylabel, title=panel_title, colors=colors)
        if key == "info_nce_bound" and len(runs) == 1 and series:
            records = next(iter(runs.values()))
            ceiling = [(r["step"], math.log(r["num_pairs"])) for r in records if r.get("num_pairs")]
            ax.plot([x for x, _ in ceiling], [y for _, y in ceiling], "--", color="grey", linewidth=1,
                    label="log N (ceiling)")
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class LiveDashboard:
    """A trainer callback that redraws :func:`plot_training` in the notebook every ``every`` logged
    records and once at the end. ``attach(trainer)`` as the kit's other callbacks."""

    def __init__(self, *, label: str = "run", every: int = 10) -> None:
        self.label, self.every = label, every
        self.records: list[dict] = []

    def attach(self, trainer) -> "LiveDashboard":
        trainer.add_callback("on_log", self._on_log)
        trainer.add_callback("on_train_end", lambda _: self.draw())
        return self

    def _on_log(self, trainer) -> None:
        self.records.append(dict(trainer.metrics))
        if len(self.records) % self.every == 0:
            self.draw()

    def draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        fig = plot_training({self.label: self.records}, title=f"{self.label}: step {self.records[-1]['step']}")
        clear_output(wait=True)
        display(fig)
        plt.close(fig)


# ---- documents ------------------------------------------------------------------------------------------
def plot_document_statistics(corpora: Mapping[str, Sequence[dict]], *, sim_threshold: float):
    """Histograms of matched similarities and images per document, one colour per corpus of MMC4 records."""
    fig, axes = new_axes(2, width=5)
    for name, documents in corpora.items():
        sims = [i["matched_sim"] for d in documents for i in d["image_info"]]
        axes[0].hist(sims, bins=30, alpha=0.6, density=True, label=name)
        axes[1].hist([len(d["image_info"]) for d in documents], bins=range(0, 14), alpha=0.6, density=True, label=name)
    axes[0].axvline(sim_threshold, color="black", linestyle="--", linewidth=1)
    label(axes[0], title="similarity of each image to its matched sentence", xlabel="matched_sim", ylabel="density")
    label(axes[1], title="images per document", xlabel="images", ylabel="share of documents")
    for ax in axes:
        ax.legend()
    return fig


def describe_document(record: dict, *, max_chars: int = 110) -> str:
    """An MMC4 record as text: each sentence, with its matched images (name and similarity) under it."""
    by_sentence: dict[int, list[dict]] = {}
    for info in record["image_info"]:
        by_sentence.setdefault(info["matched_text_index"], []).append(info)
    lines = [record["url"]]
    for index, sentence in enumerate(record["text_list"]):
        short = sentence if len(sentence) <= max_chars else sentence[: max_chars - 1] + "…"
        lines.append(f"  [{index:2d}] {short}")
        for info in by_sentence.get(index, []):
            lines.append(f"         ^ image {info['image_name']}  matched_sim {info['matched_sim']:.3f}")
    return "\n".join(lines)


def plot_document_images(record: dict, image_folder: str | Path, *, size: float = 1.6):
    """The images of one MMC4 record in page order, titled with their matched sentence index."""
    from PIL import Image

    infos = record["image_info"]
    fig, axes = new_axes(len(infos), width=size, height=size + 0.4)
    for ax, info in zip(axes, infos):
        with Image.open(Path(image_folder) / info["image_name"]) as picture:
            ax.imshow(picture.convert("RGB"))
        ax.set_title(f"sentence {info['matched_text_index']}\nsim {info['matched_sim']:.2f}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def _widgets(interactive: bool):
    """ipywidgets when the notebook is interactive and has them, else None (headless runs show static output)."""
    if not interactive:
        return None
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def explore(redraw: Callable[..., None], *, interactive: bool, start: Mapping[str, Any] | None = None,
            **controls) -> None:
    """``redraw(**values)`` under one control per keyword, redrawn at once when one changes: ``range(n)``
    gives an integer slider, a sequence of numbers a slider over them, any other sequence (run labels) a
    drop-down, a string a text box that starts with it. Each starts at its ``start`` value, else its first. With
    ``interactive=False`` (headless runs) or without ipywidgets, ``redraw`` is called once with those values, as
    static output.

        explore(show_document, interactive=True, index=range(len(documents)))
        explore(show_losses, interactive=True, lam=[0.0, 0.01, 0.1, 1.0], start={"lam": 0.1})
    """
    if not controls:
        raise ValueError("explore needs at least one control")
    for name, options in controls.items():
        if len(options) == 0:
            raise ValueError(f"control {name!r} has no values")
    texts = {name for name, options in controls.items() if isinstance(options, str)}
    first = {name: options if name in texts else options[0] for name, options in controls.items()} | dict(start or {})
    for name, value in first.items():
        if name not in controls or (name not in texts and value not in controls[name]):
            raise ValueError(f"start value {name}={value!r} is not one of that control's values")
    widgets = _widgets(interactive)
    if widgets is None:
        redraw(**first)
        return
    from IPython.display import display

    def control(name, options):
        label = {"description": name, "style": {"description_width": "initial"}}  # the whole name, not "subject_fo…"
        if name in texts:
            return widgets.Text(value=first[name], continuous_update=False, **label)
        if isinstance(options, range):
            return widgets.IntSlider(value=first[name], min=options[0], max=options[-1], step=options.step,
                                     continuous_update=False, **label)
        if all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options):
            return widgets.SelectionSlider(options=list(options), value=first[name], continuous_update=False, **label)
        return widgets.Dropdown(options=list(options), value=first[name], **label)

    shown = {name: control(name, options) for name, options in controls.items()}
    display(widgets.HBox(list(shown.values())), widgets.interactive_output(redraw, shown))


def show_pages_statistics(records: Sequence[dict], page: int, *, title: str,
                          statistics: Sequence[str] = ("near_before_share", "z_best_before", "z_previous")) -> dict:
    """One page's similarity matrix (``records[page]``) and, beside the real MMC4 sample's, the statistics
    of :mod:`lcl_core.data.realism` over all ``records``; returns those statistics."""
    from .data.realism import LABELS, REAL_SAMPLE, realism

    fig, axes = new_axes(1, width=6.0)
    plot_similarity_matrix(axes[0], records[page], title=title)
    show(fig)
    values = realism(records, bootstrap=0).values
    print_table([{"statistic": LABELS[name], f"{len(records)} pages": values[name], "real MMC4": REAL_SAMPLE[name][0]}
                 for name in statistics], digits=3)
    return values


def show_weighted_terms(losses: Mapping[str, float], gradients: Mapping[str, torch.Tensor], *, weight: float,
                        weighted: str = "contrastive", other: str = "generation") -> float:
    """Two loss terms, ``other + weight · weighted``: each one's loss and the norm of its gradient on a module
    (``gradients``, flattened, from :func:`lcl_core.diagnostics.term_gradients`) beside their sum. Prints and
    returns the weighted term's share of the gradient, ‖w·g_w‖ / (‖g_o‖ + ‖w·g_w‖)."""
    terms = [other, f"{weight} · {weighted}", "total"]
    fig, axes = new_axes(2, width=4.2)
    plot_bars(axes[0], terms, [losses[other], weight * losses[weighted], losses[other] + weight * losses[weighted]],
              xlabel="term", ylabel="nats", title=f"the loss at weight {weight}")
    g_other, g_weighted = gradients[other], weight * gradients[weighted]
    plot_bars(axes[1], terms, [g_other.norm().item(), g_weighted.norm().item(), (g_other + g_weighted).norm().item()],
              xlabel="term", ylabel="gradient norm", title="its gradient on the module")
    show(fig)
    share = weighted_share(gradients[other], gradients[weighted], weight)
    cosine = torch.cosine_similarity(gradients[other], gradients[weighted], dim=0).item()
    print(f"weight {weight}: the {weighted} term gives {share:.0%} of the gradient (cosine between the two "
          f"terms' gradients {cosine:.2f})")
    return share


def plot_realism(results: Sequence[Any], *, real: Mapping[str, tuple[float, float]],
                 tolerances: Mapping[str, float], labels: Mapping[str, str]):
    """One panel per statistic of :mod:`lcl_core.data.realism`: each source's value (``results``: its
    ``Realism`` objects) as a bar, the real sample's value as a line inside its shaded tolerance band."""
    fig, axes = new_axes(len(tolerances), width=3.0, height=2.8, rows=2)
    for ax, name in zip(axes, tolerances):
        centre = real[name][0]
        ax.axhspan(centre - tolerances[name], centre + tolerances[name], color="tab:green", alpha=0.2)
        ax.axhline(centre, color="tab:green", linewidth=1)
        ax.bar(range(len(results)), [r.values[name] for r in results], color="tab:blue")
        ax.set_xticks(range(len(results)), [r.source for r in results], rotation=30, ha="right", fontsize=8)
        ax.set_title(_wrap(labels[name], width=30, lines=2), fontsize=9)
    fig.tight_layout()
    return fig


def plot_similarity_matrix(ax, record: dict, *, title: str) -> None:
    """An MMC4 page's image × sentence similarities, each image's matched sentence marked with a cross."""
    from matplotlib.ticker import MaxNLocator

    matrix = torch.tensor(record["similarity_matrix"], dtype=torch.float32)
    shown = ax.imshow(matrix.numpy(), aspect="auto", cmap="viridis")
    for row, info in enumerate(record["image_info"]):
        ax.scatter(info["matched_text_index"], row, marker="x", color="red", s=30)
    ax.figure.colorbar(shown, ax=ax, fraction=0.04)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    label(ax, title=title, xlabel="sentence", ylabel="image")
