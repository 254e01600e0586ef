"""Plots of an aggregated table: bar chart of HM / accuracy per dataset and method, line plots of the
paper's figures (ours solid with the std over seeds, the paper's dashed). PNGs are written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from engine.fileio import atomic_write

from .spec import format_value, values_equal


def _save_png(fig: Any, path: os.PathLike) -> Path:
    """Render a matplotlib figure to PNG (120 dpi) through an atomic write, then close it."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(os.fspath(path), lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return Path(path)


def plot_hm_bars(agg: Dict[str, Any], path: os.PathLike) -> Path:
    """Grouped bar chart (PNG) of HM (base-to-novel) or accuracy per dataset and method.

    Paper values, when included, are drawn as black markers on top of the matching bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bnh = agg["metric"] == "bnh"
    rows = list(agg["rows"]) + list(agg["average"])
    if not rows:
        raise ValueError("nothing to plot: the aggregated table has no rows")
    datasets: List[str] = []
    for r in rows:
        if r["dataset"] not in datasets:
            datasets.append(r["dataset"])
    series: List[Tuple[str, str]] = []
    for r in rows:
        key = (r["method"], r["config"])
        if key not in series:
            series.append(key)
    width = 0.8 / len(series)
    paper_labelled = False
    drawn: List[float] = []
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(datasets) * max(1, len(series)) ** 0.5 + 2) + 2.5, 4.5))
    for i, (method, config) in enumerate(series):
        xs, ys, errs, px, py = [], [], [], [], []
        for j, ds in enumerate(datasets):
            match = [r for r in rows if r["dataset"] == ds and r["method"] == method and r["config"] == config]
            if not match:
                continue
            r = match[0]
            value = r["hm"] if bnh else (r["accuracy"]["mean"] if isinstance(r["accuracy"], dict) else r["accuracy"])
            if value is None:
                continue
            x = j - 0.4 + width * (i + 0.5)
            xs.append(x)
            ys.append(value)
            if ds != "Average" and not bnh:
                errs.append(r["accuracy"]["std"])
            elif ds != "Average" and r.get("hm_per_seed"):
                errs.append(r["hm_per_seed"]["std"])
            else:
                errs.append(0.0)
            p = r.get("paper") or {}
            pv = p.get("hm") if bnh else p.get("accuracy")
            if isinstance(pv, (int, float)) and (ds != "Average" or r.get("complete")):
                px.append(x)
                py.append(pv)
        label = method if len({c for _, c in series}) == 1 else f"{method} [{config}]"
        bars = ax.bar(xs, ys, width=width * 0.95, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        spread = [(x, y, e) for x, y, e in zip(xs, ys, errs) if e and e > 0]  # no zero-size error bars
        if spread:
            ax.errorbar([x for x, _, _ in spread], [y for _, y, _ in spread], yerr=[e for _, _, e in spread],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        drawn += [y + e for y, e in zip(ys, errs)] + [y - e for y, e in zip(ys, errs)] + py
        if px:
            ax.scatter(px, py, marker="D", s=18, color="black", zorder=3,
                       label="paper" if not paper_labelled else None)
            paper_labelled = True
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=30, ha="right")
    ax.set_ylabel("HM (%)" if bnh else "accuracy (%)")
    if drawn:  # the axis spans the values, not 0-100: the differences between methods stay visible
        lo, hi = min(drawn), max(drawn)
        pad = max(2.0, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
    ax.set_title(agg["caption"] or agg["table"], fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save_png(fig, path)


def _x_tick(agg: Dict[str, Any], x: Any) -> str:
    """Tick label of a figure's x value (-1 images per class = "all")."""
    if agg.get("x_key") == "DATASET.MAX_IMAGES_PER_CLASS" and values_equal(x, -1):
        return "all"
    return format_value(x)


def _point(ours: Dict[str, Any], metric: str) -> Tuple[Optional[float], float]:
    """(value, std over seeds) of one of our rows for a plotted metric (HM: HM of the means, per-seed std)."""
    if metric == "hm":
        return ours["hm"], (ours.get("hm_per_seed") or {}).get("std", 0.0)
    stat = ours.get(metric) or {}
    return stat.get("mean"), stat.get("std", 0.0)


def plot_layout_lines(agg: Dict[str, Any], path: os.PathLike) -> Path:
    """Line plot in the figure's layout: x = the swept value (or the teacher for Fig. 5), one panel per
    metric the paper plots; ours solid (± std), the paper's dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not agg["datasets"]:
        raise ValueError("nothing to plot: no run matched a row of the figure")
    metrics = agg["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for block in agg["datasets"]:
            rows = block["rows"]
            series = []
            for r in rows:
                if r["series"] not in series:
                    series.append(r["series"])
            xs_all: List[str] = []
            for r in rows:
                if _x_tick(agg, r["x"]) not in xs_all:
                    xs_all.append(_x_tick(agg, r["x"]))
            pos = {x: i for i, x in enumerate(xs_all)}
            for s in series:
                pts = [r for r in rows if r["series"] == s]
                values = [(pos[_x_tick(agg, r["x"])],) + _point(r["ours"], metric) for r in pts if r["ours"]]
                values = [v for v in values if v[1] is not None]
                if values:
                    ax.errorbar([v[0] for v in values], [v[1] for v in values], yerr=[v[2] for v in values],
                                marker="o", capsize=3, label=f"{s or 'ours'} ({block['dataset']})")
                if block is agg["datasets"][0]:
                    pp = [(pos[_x_tick(agg, r["x"])], r["paper"].get(metric)) for r in pts
                          if r["paper"] and isinstance(r["paper"].get(metric), (int, float))]
                    if pp:
                        ax.plot([v[0] for v in pp], [v[1] for v in pp], "--", marker="s", alpha=0.7,
                                label=f"{s or 'PromptKD'} (paper, {agg.get('paper_dataset')})")
            ax.set_xticks(range(len(xs_all)))
            ax.set_xticklabels(xs_all)
        ax.set_xlabel(agg["x_label"] or "")
        ax.set_ylabel(f"{'HM' if metric == 'hm' else metric} accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(agg["caption"], fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)
