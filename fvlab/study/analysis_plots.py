"""Plots of a study analysis (matplotlib, Agg backend): one PNG per question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write at 120 dpi, close."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _finish(plt, fig, ax, path: Path, ticks, ylabel: str, title: str, **legend) -> Path:
    """An accuracy plot's axes: x ticks ``ticks`` (positions, labels), y in [0, 1], labels,
    title and a legend (keyword arguments of ``ax.legend``, font size 8); then :func:`_save`."""
    ax.set_xticks(*ticks)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, **legend)
    return _save(plt, fig, path)


def plot_accuracy(summary: dict[str, Any], path: Path) -> Path:
    """Mean ± 2 SEM per condition, participants as dots, chance and baselines as lines."""
    plt = _pyplot()
    conditions = [c for c, e in summary["conditions"].items() if e["mean"] is not None]
    fig, ax = plt.subplots(figsize=(1.4 * max(len(conditions), 3) + 1.5, 4))
    rng = np.random.default_rng(0)
    for i, c in enumerate(conditions):
        e = summary["conditions"][c]
        err = 0 if e["sem"] is None else 2 * e["sem"]
        ax.bar(i, e["mean"], color="#8fb3d9", width=0.6)
        ax.errorbar(i, e["mean"], yerr=err, color="black", capsize=5)
        accs = [
            p["accuracy"]
            for p in summary["participant_table"]
            if p["included"] and p["condition"] == c
        ]
        ax.scatter(
            i + rng.uniform(-0.18, 0.18, len(accs)), accs, s=8, color="#333", alpha=0.4, zorder=3
        )
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    # Baselines and the machine observer, scored on the same trials as each condition's people.
    markers = {"center": ("^", "#b5541c"), "variance": ("s", "#7a4fa3")}
    for k, (name, (marker, colour)) in enumerate(markers.items()):
        points = [
            (i, summary["conditions"][c]["baselines"][name]["mean"])
            for i, c in enumerate(conditions)
            if summary["conditions"][c]["baselines"].get(name)
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(
                [x + 0.36 + 0.08 * k for x in xs],
                ys,
                marker=marker,
                color=colour,
                zorder=4,
                label=f"{name} baseline",
            )
    observer = summary.get("observer", {}).get("conditions", {})
    points = [(i, observer[c]["mean"]) for i, c in enumerate(conditions) if c in observer]
    if points:
        xs, ys = zip(*points, strict=True)
        ax.scatter(
            [x - 0.38 for x in xs],
            ys,
            marker="D",
            color="#1b7837",
            zorder=4,
            label="machine observer",
        )
    return _finish(
        plt,
        fig,
        ax,
        path,
        (range(len(conditions)), conditions),
        "accuracy (main trials)",
        "Accuracy per condition: mean ± 2 SEM across participants",
        ncol=4,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
    )


def plot_layers(summary: dict[str, Any], path: Path) -> Path:
    """Grouped bars: accuracy per layer (x) and condition (colour), ± 2 SEM."""
    plt = _pyplot()
    conditions = list(summary["conditions"])
    layers = sorted({layer for e in summary["conditions"].values() for layer in e["by_layer"]})
    fig, ax = plt.subplots(figsize=(1.6 * max(len(layers), 2) + 2, 4))
    width = 0.8 / max(len(conditions), 1)
    for k, c in enumerate(conditions):
        by_layer = summary["conditions"][c]["by_layer"]
        xs = [
            i + (k - (len(conditions) - 1) / 2) * width
            for i, lay in enumerate(layers)
            if lay in by_layer
        ]
        means = [by_layer[lay]["mean"] for lay in layers if lay in by_layer]
        errs = [
            0
            if by_layer[lay]["two_sem"] is None
            else by_layer[lay]["mean"] - by_layer[lay]["two_sem"][0]
            for lay in layers
            if lay in by_layer
        ]
        ax.bar(xs, means, width=width, yerr=errs, capsize=2, label=c)
    ax.axhline(0.5, color="grey", linestyle=":")
    return _finish(
        plt,
        fig,
        ax,
        path,
        (range(len(layers)), layers),
        "accuracy",
        "Accuracy per layer (± 2 SEM)",
        ncol=len(conditions),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
    )


def plot_confidence(summary: dict[str, Any], path: Path) -> Path:
    """Accuracy at each confidence level, one line per condition (marker size = share)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for c, e in summary["conditions"].items():
        levels = [lvl for lvl in ("1", "2", "3") if e["by_confidence"][lvl]["accuracy"] is not None]
        ax.plot(
            [int(lvl) for lvl in levels],
            [e["by_confidence"][lvl]["accuracy"] for lvl in levels],
            marker="o",
            label=c,
        )
    ax.axhline(0.5, color="grey", linestyle=":")
    ax.set_xlabel("confidence")
    ticks = ([1, 2, 3], ["1 (guess)", "2", "3 (sure)"])
    return _finish(plt, fig, ax, path, ticks, "accuracy (pooled trials)", "Accuracy by confidence")


def plot_kappa(summary: dict[str, Any], path: Path) -> Path:
    """Heat map of Cohen's κ between conditions and baselines (blank: undefined)."""
    plt = _pyplot()
    names = summary["kappa"]["raters"]
    matrix = np.full((len(names), len(names)), np.nan)
    for i, x in enumerate(names):
        matrix[i, i] = 1.0
        for j, y in enumerate(names):
            if i != j and summary["kappa"]["pairs"][x][y]["kappa"] is not None:
                matrix[i, j] = summary["kappa"]["pairs"][x][y]["kappa"]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * max(len(names), 2), 0.8 + 0.8 * max(len(names), 2)))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(matrix[i, j]):
                colour = "white" if abs(matrix[i, j]) > 0.6 else "black"
                ax.text(
                    j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour
                )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title("Cohen's κ of per-image-set correctness")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(plt, fig, path)


#: file name → plot function of every plot of an analysis
PLOTS = {
    "accuracy.png": plot_accuracy,
    "layers.png": plot_layers,
    "confidence.png": plot_confidence,
    "kappa.png": plot_kappa,
}


def plot_all(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """All plots of :data:`PLOTS` into ``out_dir``."""
    return [plot(summary, out_dir / name) for name, plot in PLOTS.items()]
