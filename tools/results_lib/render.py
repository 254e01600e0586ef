"""Rendering an aggregated table: Markdown (what the scripts print) and CSV (unrounded numbers).

The Markdown is written line by line rather than with ``DataFrame.to_markdown``: its cells are unpadded and
several numbers share a cell ("85.84 / 71.37 / 77.94"), the form scripts, tests and the claims checker read.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Dict, List, Optional


def _f(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


def _pm(stat: Optional[Dict[str, Any]]) -> str:
    return "-" if not stat else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _signed(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:+.2f}"


def _seeds(row: Dict[str, Any]) -> str:
    return ",".join("?" if s is None else str(s) for s in row["seeds"])


def render_markdown(agg: Dict[str, Any]) -> str:
    """Markdown table (+ Average rows, paper column and deltas when the paper numbers were included)."""
    bnh = agg["metric"] == "bnh"
    show_paper = agg.get("paper_included", False)
    lines = [f"### {agg['caption'] or agg['table']}", ""]
    if bnh:
        header = ["Dataset", "Method", "Config", "Seeds", "Base", "Novel", "HM", "HM (per-seed mean)"]
        if show_paper:
            header += ["Paper B / N / HM", "Δ B / N / HM"]
    else:
        header = ["Dataset", "Method", "Config", "Seeds", "Accuracy"]
        if show_paper:
            header += ["Paper", "Δ"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")

    def paper_cells(row: Dict[str, Any]) -> List[str]:
        p, d = row.get("paper"), row.get("delta")
        if bnh:
            pc = "-" if not p else " / ".join(_f(p.get(k)) for k in ("base", "novel", "hm"))
            dc = "-" if not d else " / ".join(_signed(d.get(k)) for k in ("base", "novel", "hm"))
        else:
            pc = "-" if not p else _f(p.get("accuracy"))
            dc = "-" if not d else _signed(d.get("accuracy"))
        return [pc, dc]

    for row in agg["rows"]:
        cells = [row["dataset"], row["method"], row["config"] or "-", _seeds(row)]
        if bnh:
            cells += [_pm(row["base"]), _pm(row["novel"]), _f(row["hm"]), _pm(row["hm_per_seed"])]
        else:
            cells += [_pm(row["accuracy"])]
        if show_paper:
            cells += paper_cells(row)
        lines.append("| " + " | ".join(cells) + " |")
    for avg in agg["average"]:
        name = f"**Average** ({avg['n']} datasets)"
        cells = [name, avg["method"], avg["config"] or "-", ""]
        if bnh:
            cells += [_f(avg["base"]), _f(avg["novel"]), _f(avg["hm"]), ""]
        else:
            cells += [_f(avg["accuracy"])]
        if show_paper:
            pc = paper_cells(avg)
            if avg.get("paper") and not avg.get("complete"):
                pc[1] = "n/a (dataset set differs from the paper's)"
            cells += pc
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if bnh:
        lines.append("Mean ± std over seeds (population std). HM is the harmonic mean of the mean base and "
                     "mean novel accuracy (as in the paper); the per-seed HM mean is given for reference.")
    else:
        lines.append("Mean ± std over seeds (population std).")
    if show_paper:
        lines.append("Δ = ours - paper.")
    for note in agg.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def render_csv(agg: Dict[str, Any]) -> str:
    """CSV with one line per (dataset, method, config) and per Average row; numbers unrounded."""
    bnh = agg["metric"] == "bnh"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if bnh:
        cols = ["dataset", "method", "config", "n_seeds", "seeds", "base_mean", "base_std", "novel_mean",
                "novel_std", "hm", "hm_seed_mean", "hm_seed_std", "paper_base", "paper_novel", "paper_hm",
                "delta_base", "delta_novel", "delta_hm"]
    else:
        cols = ["dataset", "method", "config", "n_seeds", "seeds", "acc_mean", "acc_std", "paper_acc", "delta_acc"]
    w.writerow(cols)

    def num(x: Any) -> str:
        return "" if x is None else repr(float(x))

    def stat(s: Optional[Dict[str, Any]], k: str) -> str:
        return "" if not s else num(s[k])

    for row in agg["rows"]:
        p, d = row.get("paper") or {}, row.get("delta") or {}
        line = [row["dataset"], row["method"], row["config"], row["n"], _seeds(row)]
        if bnh:
            line += [stat(row["base"], "mean"), stat(row["base"], "std"), stat(row["novel"], "mean"),
                     stat(row["novel"], "std"), num(row["hm"]), stat(row["hm_per_seed"], "mean"),
                     stat(row["hm_per_seed"], "std"), num(p.get("base")), num(p.get("novel")), num(p.get("hm")),
                     num(d.get("base")), num(d.get("novel")), num(d.get("hm"))]
        else:
            line += [stat(row["accuracy"], "mean"), stat(row["accuracy"], "std"), num(p.get("accuracy")),
                     num(d.get("accuracy"))]
        w.writerow(line)
    for avg in agg["average"]:
        p, d = avg.get("paper") or {}, avg.get("delta") or {}
        line = ["Average", avg["method"], avg["config"], avg["n"], ""]
        if bnh:
            line += [num(avg["base"]), "", num(avg["novel"]), "", num(avg["hm"]), "", "",
                     num(p.get("base")), num(p.get("novel")), num(p.get("hm")),
                     num(d.get("base")), num(d.get("novel")), num(d.get("hm"))]
        else:
            line += [num(avg["accuracy"]), "", num(p.get("accuracy")), num(d.get("accuracy"))]
        w.writerow(line)
    return buf.getvalue()


def render_layout_markdown(agg: Dict[str, Any]) -> str:
    """The paper's table layout: its rows in its order, our Base / Novel / HM (mean ± std over seeds) beside
    the paper's numbers; published rows this harness does not run are marked "paper only"."""
    show_paper = agg.get("paper_included", False)
    metrics = agg["metrics"]
    lines: List[str] = []
    for block in agg["datasets"]:
        ds = block["dataset"]
        where = f"ours: {ds}"
        if show_paper and agg.get("paper_dataset"):
            where += f"; paper: {agg['paper_dataset']}"
        lines += [f"### {agg['caption']} ({where})", ""]
        header = ["Method", "Base", "Novel", "HM", "Seeds"]
        if show_paper:
            header += ["Paper " + " / ".join(m.capitalize() if m != "hm" else "HM" for m in metrics), "Δ HM"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in block["rows"]:
            o = row["ours"]
            if o:
                cells = [row["row"], _pm(o["base"]), _pm(o["novel"]), _f(o["hm"]), _seeds(o)]
            elif row["reference_only"]:
                cells = [row["row"] + " (paper only)", "", "", "", ""]
            else:
                cells = [row["row"], "-", "-", "-", ""]
            if show_paper:
                p, d = row["paper"], row["delta"]
                cells.append("-" if not p else " / ".join(_f(p.get(m)) for m in metrics))
                cells.append("-" if not d or "hm" not in d else _signed(d["hm"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Mean ± std over seeds (population std); HM of the mean base and novel accuracy.")
    if show_paper:
        lines.append("Paper numbers from tools/paper_numbers.json; Δ = ours - paper, only when our dataset is the "
                     "paper's.")
    if agg.get("aliases"):
        lines.append("Model names matched as: " + ", ".join(f"{k} = {v}" for k, v in agg["aliases"].items()))
    for note in agg.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def render_layout_csv(agg: Dict[str, Any]) -> str:
    """One CSV line per (dataset, row): ours (mean, std) and the paper's numbers, unrounded."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "row", "series", "x", "n_seeds", "seeds", "base_mean", "base_std", "novel_mean",
                "novel_std", "hm", "paper_dataset", "paper_base", "paper_novel", "paper_hm", "delta_hm"])

    def num(x: Any) -> str:
        return "" if x is None else repr(float(x))

    for block in agg["datasets"]:
        for row in block["rows"]:
            o, p, d = row["ours"] or {}, row["paper"] or {}, row["delta"] or {}
            w.writerow([block["dataset"], row["row"], row["series"], "" if row["x"] is None else row["x"],
                        o.get("n", 0), ",".join(str(s) for s in o.get("seeds", [])),
                        num((o.get("base") or {}).get("mean")), num((o.get("base") or {}).get("std")),
                        num((o.get("novel") or {}).get("mean")), num((o.get("novel") or {}).get("std")),
                        num(o.get("hm")), agg.get("paper_dataset") or "", num(p.get("base")), num(p.get("novel")),
                        num(p.get("hm")), num(d.get("hm"))])
    return buf.getvalue()
