"""The paper's claims, checked on the proving ground's base-to-novel table.

PromptKD (CVPR 2024), Table 1 and its text, in the form they take on the demo table
(:mod:`proving_ground.pipeline`; rows are found by their ``label``):

1. ``teacher_zs_beats_student_zs``: the large CLIP's zero-shot HM is higher than the small CLIP's
   (ViT-L/14 vs ViT-B/16 zero-shot in the paper: the teacher has something to teach);
2. ``kd_beats_student_zs`` / ``kd_beats_coop`` / ``kd_beats_promptsrc``: the PromptKD student's HM is
   higher than the student backbone's zero-shot CLIP, CoOp and PromptSRC HM;
3. ``kd_recovers_teacher``: the PromptKD student reaches at least 90% of the HM of the PromptSRC teacher
   it was distilled from.

Each claim is checked on the HM of the seed means (the table's HM) with an optional ``margin`` (points
for the orderings; the ratio claim asks ``kd >= ratio * teacher + margin``), and per seed (how many
seeds satisfy it). A claim that does not hold is a finding, not an error: ``main`` exits 0 unless
``--strict``.

    python -m proving_ground.claims output/proving_ground_demo/results_base2novel.json
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from engine.run_record import harmonic_mean

logger = logging.getLogger(__name__)

CLAIMS_FILE = "claims.json"

#: Row labels written by the pipeline into results.json (proving_ground.pipeline.ROWS).
TEACHER_ZS = "teacher zero-shot"
TEACHER = "teacher PromptSRC"
STUDENT_ZS = "student zero-shot"
COOP = "student CoOp"
PROMPTSRC = "student PromptSRC"
PROMPTKD = "student PromptKD"
RECOVERY_RATIO = 0.9


def find_rows(table: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The table's rows keyed by label; an error names a label that appears twice or a row without one."""
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        raise ValueError("expected the aggregated base-to-novel table of tools/results.py (a 'rows' list)")
    if table.get("metric") != "bnh":
        raise ValueError(f"the claims need a base/novel/HM table, got metric {table.get('metric')!r}; "
                         "aggregate with --table base2novel")
    rows: Dict[str, Dict[str, Any]] = {}
    for row in table["rows"]:
        label = row.get("label")
        if not label:
            continue
        if label in rows:
            raise ValueError(f"two rows are labelled {label!r} ({rows[label]['method']} / {rows[label]['config']} and "
                             f"{row['method']} / {row['config']}); aggregate one pipeline output at a time")
        rows[label] = row
    return rows


def per_seed_hm(row: Dict[str, Any]) -> Dict[int, float]:
    """seed -> HM of that seed's base and novel accuracy."""
    seeds = row.get("seeds") or []
    base = (row.get("base") or {}).get("values") or []
    novel = (row.get("novel") or {}).get("values") or []
    if not (len(seeds) == len(base) == len(novel)):
        raise ValueError(f"row {row.get('method')}: {len(seeds)} seeds but {len(base)} base and {len(novel)} novel "
                         "values; the table is inconsistent, re-aggregate it with tools/results.py")
    return {int(s): harmonic_mean(b, n) for s, b, n in zip(seeds, base, novel)}


def _claim(cid: str, text: str, left: Optional[Dict[str, Any]], right: Optional[Dict[str, Any]], factor: float,
           margin: float, missing: List[str]) -> Dict[str, Any]:
    """``left.hm > factor * right.hm + margin`` (strict for orderings, >= for the ratio claim)."""
    out: Dict[str, Any] = {"id": cid, "claim": text, "margin": margin}
    if missing:
        out.update({"holds": None, "status": "MISSING", "detail": f"row(s) not in the table: {', '.join(missing)}"})
        return out
    lhs, rhs = float(left["hm"]), float(right["hm"])
    threshold = factor * rhs + margin
    ratio_claim = factor != 1.0
    holds = lhs >= threshold if ratio_claim else lhs > threshold
    seeds_l, seeds_r = per_seed_hm(left), per_seed_hm(right)
    common = sorted(set(seeds_l) & set(seeds_r))
    per_seed = {s: (seeds_l[s] >= factor * seeds_r[s] + margin) if ratio_claim
                else (seeds_l[s] > factor * seeds_r[s] + margin) for s in common}
    out.update({
        "holds": bool(holds), "status": "PASS" if holds else "FAIL",
        "left": {"label": left["label"], "hm": lhs, "base": left["base"]["mean"], "novel": left["novel"]["mean"]},
        "right": {"label": right["label"], "hm": rhs, "base": right["base"]["mean"], "novel": right["novel"]["mean"]},
        "factor": factor, "threshold": threshold,
        "ratio": lhs / rhs if rhs else math.inf,
        "per_seed": {str(s): bool(v) for s, v in per_seed.items()},
        "seeds_holding": f"{sum(per_seed.values())}/{len(per_seed)}",
    })
    return out


def check_claims(table: Dict[str, Any], margin: float = 0.0, ratio: float = RECOVERY_RATIO) -> List[Dict[str, Any]]:
    """Check the paper's claims (module docstring) on an aggregated base-to-novel table."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 points, got {margin}")
    rows = find_rows(table)

    def get(*labels: str):
        return [rows.get(label) for label in labels], [label for label in labels if label not in rows]

    specs = [
        ("teacher_zs_beats_student_zs", "the teacher's zero-shot HM beats the student's zero-shot HM",
         TEACHER_ZS, STUDENT_ZS, 1.0),
        ("kd_beats_student_zs", "PromptKD student HM beats the student's zero-shot CLIP HM", PROMPTKD, STUDENT_ZS, 1.0),
        ("kd_beats_coop", "PromptKD student HM beats CoOp (student backbone) HM", PROMPTKD, COOP, 1.0),
        ("kd_beats_promptsrc", "PromptKD student HM beats PromptSRC (student backbone) HM", PROMPTKD, PROMPTSRC, 1.0),
        ("kd_recovers_teacher", f"PromptKD student HM is at least {ratio:.0%} of its PromptSRC teacher's HM",
         PROMPTKD, TEACHER, ratio),
    ]
    out = []
    for cid, text, a, b, factor in specs:
        (left, right), missing = get(a, b)
        out.append(_claim(cid, text, left, right, factor, margin, missing))
    return out


def summary(claims: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """Counts of PASS / FAIL / MISSING."""
    out = {"PASS": 0, "FAIL": 0, "MISSING": 0}
    for c in claims:
        out[c["status"]] += 1
    return out


def render(claims: Sequence[Dict[str, Any]]) -> str:
    """One line per claim: PASS/FAIL, the claim, the numbers."""
    lines = ["Claims of the paper checked on this table (HM of the seed means; per-seed count in brackets):"]
    for c in claims:
        if c["status"] == "MISSING":
            lines.append(f"  MISSING  {c['claim']}: {c['detail']}")
            continue
        left, right = c["left"], c["right"]
        if c["factor"] != 1.0:
            nums = (f"{left['hm']:.2f} vs {c['factor']:g} x {right['hm']:.2f} = {c['factor'] * right['hm']:.2f} "
                    f"(recovers {100 * c['ratio']:.1f}%)")
        else:
            nums = f"{left['hm']:.2f} vs {right['hm']:.2f} ({left['hm'] - right['hm']:+.2f})"
        extra = f", margin {c['margin']:g}" if c["margin"] else ""
        lines.append(f"  {c['status']:<4}  {c['claim']}: {nums} [{c['seeds_holding']} seeds{extra}]")
    s = summary(claims)
    lines.append(f"{s['PASS']} of {len(claims)} claims hold" + (f", {s['FAIL']} do not" if s["FAIL"] else "")
                 + (f", {s['MISSING']} could not be checked" if s["MISSING"] else "") + ".")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proving_ground.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("table", help="results_base2novel.json written by tools/results.py or the pipeline")
    p.add_argument("--margin", type=float, default=0.0, help="points every ordering must hold by (default 0)")
    p.add_argument("--ratio", type=float, default=RECOVERY_RATIO, help="teacher-HM fraction the student must reach")
    p.add_argument("--json", default=None, help=f"write the checks here (default: {CLAIMS_FILE} beside the table)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    args = p.parse_args(argv)
    path = Path(args.table)
    try:
        with open(path, "r", encoding="utf-8") as f:
            table = json.load(f)
        claims = check_claims(table, margin=args.margin, ratio=args.ratio)
    except FileNotFoundError:
        print(f"error: {path}: not found; run python -m proving_ground.pipeline first", file=sys.stderr)
        return 2
    except (json.JSONDecodeError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    print(render(claims))
    from proving_ground.cache import atomic_write_json

    atomic_write_json(args.json or path.parent / CLAIMS_FILE, {"claims": claims, "summary": summary(claims)})
    s = summary(claims)
    return 1 if args.strict and (s["FAIL"] or s["MISSING"]) else 0


if __name__ == "__main__":
    sys.exit(main())
