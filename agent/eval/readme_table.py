"""The README's quality table, from two evaluations' metrics (SAE features and pooled planted seeds).

    python -m agent.eval.readme_table docs/eval/metrics.json docs/eval/planted/metrics.json

Prints markdown: one row per benchmark mode with F1 [95% CI], precision, recall, exact, AUROC, causal F1 (SAE
features only) and the error reduction against the best no-follow-up method; then the floors with their
skill; then the agent against the best no-follow-up method, and the gates on the ruler itself. Every figure is
read from the files, so the README's table is the reports' (regenerate it after a new evaluation).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.eval.report_bench import FLOOR_NAMES, bench_name

ROWS = ("agent", "agent_r1", "agent_images", "oneshot", "rule_majority", "rule_lowest", "rule_calibrate", "topk",
        "hybrid", "filter", "filter_images", "oracle", "truth")


def _pct(d: Any) -> str:
    return "" if not isinstance(d, Mapping) or d.get("mean") is None else f"{100 * d['mean']:.1f}"


def _ci(d: Any) -> str:
    if not isinstance(d, Mapping) or d.get("mean") is None:
        return ""
    lo, hi = d.get("ci") or (None, None)
    return f"{100 * d['mean']:.1f}" + ("" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]")


def _auroc(d: Any) -> str:
    return "" if not isinstance(d, Mapping) or d.get("mean") is None else f"{d['mean']:.2f}"


def _er(x: Any) -> str:
    return "" if x is None else f"{100 * x:+.0f}%"


def _diff(d: Mapping[str, Any] | None) -> str:
    if not d:
        return "n/a"
    f = d["f1"]
    lo, hi = f["ci"]
    return (f"{100 * f['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] vs {bench_name(d['baseline'], short=True)}: "
            f"**{f['verdict']}**")


def table(sae: Mapping[str, Any], planted: Mapping[str, Any]) -> list[str]:
    """The markdown lines of the quality table (SAE features and planted features side by side)."""
    a, p = sae["bench"], planted["bench"]
    head = (f"| mode | SAE features ({a['n']} {a['split']}) F1 | prec. | recall | exact | AUROC | causal F1 | "
            f"err. red. | planted ({p['n']} {p['split']}, seeds {','.join(map(str, planted.get('planted_seeds', [])))})"
            " F1 | prec. | recall | exact | AUROC | err. red. |")
    out = [head, "|" + "---|" * 13]
    for name in ROWS:
        x, y = a["modes"].get(name), p["modes"].get(name)
        if not x and not y:
            continue
        x, y = x or {}, y or {}
        out.append(f"| {bench_name(name, short=True)} | {_ci(x.get('f1'))} | {_pct(x.get('precision'))} | {_pct(x.get('recall'))} | "
                   f"{_pct(x.get('exact'))} | {_auroc(x.get('auroc'))} | {_pct(x.get('causal_f1'))} | "
                   f"{_er(x.get('error_reduction'))} | {_ci(y.get('f1'))} | {_pct(y.get('precision'))} | "
                   f"{_pct(y.get('recall'))} | {_pct(y.get('exact'))} | {_auroc(y.get('auroc'))} | "
                   f"{_er(y.get('error_reduction'))} |")
    out += ["", "| floor | SAE F1 | skill | planted F1 | skill |", "|---|---|---|---|---|"]
    for name in FLOOR_NAMES:
        x, y = a["floors"].get(name), p["floors"].get(name)
        if x or y:
            x, y = x or {}, y or {}
            out.append(f"| {FLOOR_NAMES[name]} | {_pct(x.get('f1'))} | {_er(x.get('skill'))} | {_pct(y.get('f1'))} | "
                       f"{_er(y.get('skill'))} |")
    out += ["", "| comparison (paired, clustered 95% CI, F1 points) | SAE features | planted features |",
            "|---|---|---|"]
    for key, label in (("agent_vs_best_nonadaptive", "agent minus the best no-follow-up method (picked on dev)"),
                       ("agent_vs_hybrid", "agent minus the hybrid"),
                       ("agent_vs_best_baseline", "agent minus the best steering-only baseline (continuity)")):
        da, dp = a["diffs"].get(key), p["diffs"].get(key)
        if key == "agent_vs_hybrid":
            da = da and {"baseline": "hybrid", **da}
            dp = dp and {"baseline": "hybrid", **dp}
        out.append(f"| {label} | {_diff(da)} | {_diff(dp)} |")
    ga, gp = a["gates"].get("truth_auroc", {}), p["gates"].get("truth_auroc", {})
    out.append(f"| the true claims' simulation AUROC (gate >= {ga.get('bar', 0.85):g}) | {_auroc({'mean': ga.get('value')})}"
               f" ({'met' if ga.get('met') else 'not met'}) | {_auroc({'mean': gp.get('value')})} "
               f"({'met' if gp.get('met') else 'not met'}) |")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m agent.eval.readme_table SAE_METRICS_JSON PLANTED_METRICS_JSON", file=sys.stderr)
        return 2
    try:
        sae, planted = (json.loads(Path(a).read_text()) for a in args)
        lines = table(sae, planted)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {exc.__class__.__name__}: {exc}: pass two metrics.json files of steer-agent eval "
              "(SAE features, then --planted-seed 0-4)", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
