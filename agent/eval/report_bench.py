"""The benchmark's section of the report: claim metrics per mode on one split, floors, the agent against the
best no-follow-up method, paired differences with clustered CIs, and the world's gates.

The tables are built as rows of strings first (``mode_table``, ``floor_table``, ...) so that the markdown report
and the TUI's evaluation screen (tui.eval_tables) show the same figures under the same names. Every key past
``bench.modes``/``floors``/``diffs`` is optional: older metrics files and pooled planted seeds lack some."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BENCH_NAMES = {
    "agent": "agent loop, offline judge (max_rounds as run)",
    "agent_r1": "agent loop, offline judge, max_rounds=1",
    "agent_llm": "agent loop, your LLM judge (the run's judge flags)",
    "agent_images": "agent loop, offline judge, also reading the top-k and hybrid descriptions (--evidence all)",
    "oneshot": "one-shot steering at the dev-chosen strength",
    "rule_majority": "rule: claims named at most strengths (no follow-up)",
    "rule_lowest": "rule: lowest strength that changes the text (no follow-up)",
    "rule_calibrate": "rule: strength nearest a first-token KL target chosen on dev (--calibrate, no follow-up)",
    "oracle": "per-feature oracle over the sweep (ceiling, uses the truth)",
    "topk": "top-k (masked top images)",
    "hybrid": "hybrid (top-k + steering), dev-chosen strength",
    "filter": "claim filter fitted on dev (steering signals)",
    "filter_images": "claim filter fitted on dev (+ top-k and hybrid descriptions)",
    "truth": "the true claims themselves (reference: F1 100 by construction; what the truth's AUROC is)",
}
SHORT_NAMES = {
    "agent": "agent loop, offline judge", "agent_r1": "agent loop, 1 round", "agent_llm": "agent loop, LLM judge",
    "agent_images": "agent loop + images", "oneshot": "one-shot, dev strength", "rule_majority": "rule: most strengths",
    "rule_lowest": "rule: lowest strength", "rule_calibrate": "rule: KL-calibrated", "oracle": "oracle over the sweep",
    "topk": "top-k images", "hybrid": "hybrid, dev strength", "filter": "claim filter (steering)",
    "filter_images": "claim filter (+ images)", "truth": "true claims (reference)",
}
"""Benchmark mode names short enough for an 80-column table (the TUI)."""
FLOOR_NAMES = {"constant": "constant explanation chosen on dev", "permuted": "agent's explanations, permuted features",
               "random": "agent loop on norm-matched random directions", "caption": "the unsteered caption"}
GATE_NAMES = {
    "best_global_strength_hit": "named at the best single global strength",
    "oracle_hit": "named at some strength of the sweep",
    "onset_spread": "onset spread (90th / 10th percentile strength)",
    "degenerate_at_4x_onset": "degenerate or off-truth at 4x the onset",
    "polysemantic_oneshot_both": "polysemantic: one-shot names both meanings",
    "truth_auroc": "the true claims' simulation AUROC (the ruler itself)",
}
CHOSEN_NAMES = {"oneshot_strength": "one-shot strength", "hybrid_strength": "hybrid strength",
                "calibrate_kl_target": "calibrate's KL target", "constant": "constant explanation",
                "best_baseline": "best steering-only baseline",
                "best_baseline_with_images": "best baseline with images",
                "best_nonadaptive": "best no-follow-up method"}
VERDICTS = {"loses": "loses", "wins": "wins", "no clear difference": "no clear difference"}
EXCLUDED_SHOWN = 20
"""Excluded feature ids listed before the rest is given as a count."""
Table = tuple[list[str], list[list[str]]]


def bench_name(mode: str, short: bool = False) -> str:
    """A benchmark mode's readable name (the id only for a mode this version does not know)."""
    return (SHORT_NAMES if short else BENCH_NAMES).get(mode, mode)


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _ci(d: Any, pct: bool = True, signed: bool = False) -> str:
    """A mean with its CI: F1-like figures in % (``signed``: a difference, with its sign), AUROC as is."""
    d = _d(d)
    if d.get("mean") is None:
        return "n/a"
    k = 100 if pct else 1
    sign = "+" if signed else ""
    fmt = (lambda x: f"{k * x:{sign}.1f}") if pct else (lambda x: f"{x:.3f}")
    lo, hi = (d.get("ci") or [None, None])[:2]
    return fmt(d["mean"]) if lo is None or hi is None else f"{fmt(d['mean'])} [{fmt(lo)}, {fmt(hi)}]"


def _mean(d: Any, pct: bool = True) -> str:
    x = _d(d).get("mean")
    return "n/a" if x is None else f"{100 * x:.1f}" if pct else f"{x:.3f}"


def share(x: Any) -> str:
    """An error reduction or a skill (a share of the error removed) as a signed percentage."""
    return f"{100 * x:+.1f}%" if isinstance(x, (int, float)) else "n/a"


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _seeds(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def best_nonadaptive(b: Mapping[str, Any]) -> str | None:
    """The no-follow-up method picked on dev that the agent is compared with (its id), if any."""
    return _d(_d(b.get("diffs")).get("agent_vs_best_nonadaptive")).get("baseline") \
        or _d(b.get("chosen_on_dev")).get("best_nonadaptive")


# ----------------------------------------------------------------------------- view model: rows of strings


def has_causal(b: Mapping[str, Any]) -> bool:
    return any("causal_f1" in _d(d) for d in _d(b.get("modes")).values())


def mode_table(b: Mapping[str, Any], short: bool = False) -> Table:
    """Per mode: F1 [CI], precision, recall, exact, AUROC, causal F1 (only when measured), error reduction."""
    causal = has_causal(b)
    cols = ["mode", "F1 [95% CI]", "precision", "recall", "exact", "AUROC"] \
        + (["causal F1 [95% CI]"] if causal else []) + ["error reduction"]
    rows = []
    for name, d in _d(b.get("modes")).items():
        d = _d(d)
        if not d.get("applicable", True):
            rows.append([bench_name(name, short), "not applicable: the model does not answer this prompt"]
                        + [""] * (len(cols) - 2))
            continue
        rows.append([bench_name(name, short), _ci(d.get("f1")), _mean(d.get("precision")), _mean(d.get("recall")),
                     _mean(d.get("exact")), _mean(d.get("auroc"), pct=False)]
                    + ([_ci(d.get("causal_f1")) if "causal_f1" in d else "n/a"] if causal else [])
                    + [share(d.get("error_reduction"))])
    return cols, rows


def floor_table(b: Mapping[str, Any]) -> Table:
    """Each floor's F1 [CI] and its skill over the constant explanation."""
    rows = [[FLOOR_NAMES.get(n, n), _ci(_d(d).get("f1")), share(_d(d).get("skill"))]
            for n, d in _d(b.get("floors")).items()]
    return ["floor", "F1 [95% CI]", "skill"], rows


def family_table(b: Mapping[str, Any], short: bool = False) -> Table | None:
    """Recall by family per mode (the share of the true claims of each family the mode names)."""
    modes = {n: _d(_d(d).get("recall_by_family")) for n, d in _d(b.get("modes")).items()
             if n != "truth" and _d(d).get("applicable", True)}
    fams = sorted({f for by in modes.values() for f in by})
    if not fams:
        return None
    n_of = {f: max((_d(by.get(f)).get("n") or 0) for by in modes.values()) for f in fams}
    rows = []
    for name, by in modes.items():
        if by:
            rows.append([bench_name(name, short)]
                        + [f"{100 * r:.0f}%" if isinstance(r := _d(by.get(f)).get("recall"), (int, float)) else "n/a"
                           for f in fams])
    return ["mode", *(f"{f} (n={n_of[f]})" for f in fams)], rows


def _diff_label(name: str, d: Mapping[str, Any], short: bool) -> str:
    base = bench_name(str(d.get("baseline")), short) if d.get("baseline") else "?"
    if name == "agent_vs_best_nonadaptive":
        return f"best no-follow-up method, picked on dev ({base})"
    if name == "agent_vs_best_baseline":
        return f"best baseline ({base})"
    return {"agent_llm_vs_agent": "LLM judge's agent minus the offline judge's",
            "agent_llm_vs_best_baseline": f"LLM judge's agent minus the best baseline ({base})",
            "agent_images_vs_agent": "agent reading images minus the agent without them",
            "agent_images_vs_best_baseline": "agent reading images minus the best baseline, image modes included "
                                             f"({base})",
            }.get(name) or bench_name(name.removeprefix("agent_vs_"), short)


def diffs_table(b: Mapping[str, Any], short: bool = False, only: Sequence[str] | None = None) -> Table:
    """Paired F1 differences, agent minus each (``only``: those diffs, in that order)."""
    ds = _d(b.get("diffs"))
    names = [n for n in only if n in ds] if only is not None else list(ds)
    er = any("error_reduction" in _d(ds[n]) for n in names)
    rows = []
    for name in names:
        d = _d(ds[name])
        f = _d(d.get("f1"))
        rows.append([_diff_label(name, d, short), _ci(f, signed=True)]
                    + ([share(d.get("error_reduction")) if "error_reduction" in d else ""] if er else [])
                    + [f"{f.get('wins', '?')} / {f.get('losses', '?')}", str(f.get("verdict", "?"))])
    return ["against", "F1 difference [95% CI]"] + (["error reduction"] if er else []) \
        + ["agent better / worse", "verdict"], rows


def standing(b: Mapping[str, Any], md: bool = True) -> str | None:
    """One plain sentence: the agent against the best no-follow-up method picked on dev (None: not compared)."""
    d = _d(_d(b.get("diffs")).get("agent_vs_best_nonadaptive"))
    f = _d(d.get("f1"))
    if not d or f.get("mean") is None:
        return None
    verdict = VERDICTS.get(str(f.get("verdict")), str(f.get("verdict")))
    lo, hi = (f.get("ci") or [None, None])[:2]
    ci = "" if lo is None or hi is None else f", 95% CI [{_pts(lo)}, {_pts(hi)}]"
    bold = "**" if md else ""
    counts = (f" (agent better on {f['wins']}, worse on {f['losses']} of {b.get('n', '?')} features)"
              if "wins" in f and "losses" in f else "")
    return (f"The agent against the best no-follow-up method (picked on dev: {bench_name(str(d.get('baseline')))}): "
            f"{bold}{verdict}{bold}. F1 difference {_pts(f['mean'])} points{ci}; error reduction "
            f"{share(d.get('error_reduction'))}{counts}.")


def split_reminder(b: Mapping[str, Any]) -> str | None:
    if b.get("split") != "test":
        return None
    return ("Test split: these figures are for the closing note; anything tunable reads dev "
            "(`--split dev`, the default for tuning).")


def truth_gate(m: Mapping[str, Any]) -> str | None:
    """The ruler's own gate: the true claims' mean simulation AUROC over the scored features against its bar."""
    g = _d(_d(_d(m.get("bench")).get("gates")).get("truth_auroc")) or _d(_d(m.get("gates")).get("truth_auroc"))
    if not g:
        return None
    v, bar, ok = g.get("value"), g.get("bar"), g.get("met")
    met = "not measured" if ok is None else "met" if ok else "NOT met"
    return (f"Truth-AUROC gate (the true claims' mean simulation AUROC over the scored features): "
            f"{'n/a' if v is None else f'{v:.3f}'}, bar >= {bar if bar is not None else '?'}: {met}.")


def scored_line(m: Mapping[str, Any], limit: int | None = EXCLUDED_SHOWN) -> str | None:
    """How many features the truth scores, and which it leaves out and why (the first ``limit``; None: all)."""
    w = _d(m.get("world"))
    if "scored" not in w and "excluded" not in w:
        return None
    from steering.toy.claims import MIN_SUPPORT

    excluded = list(w.get("excluded") or [])
    why = _d(w.get("excluded_why"))
    listed = excluded if limit is None else excluded[:limit]
    shown = ", ".join(f"{f} ({why[str(f)]})" if str(f) in why else str(f) for f in listed)
    more = f" (and {len(excluded) - len(listed)} more)" if len(excluded) > len(listed) else ""
    if m.get("planted_seeds") is not None or m.get("planted_seed") is not None:
        out = f"Scored: {w.get('scored', '?')} planted features (true by construction: no support needed); "
    else:
        out = (f"Scored: {w.get('scored', '?')} features with a true claim beyond the scene kind, active on at "
               f"least {MIN_SUPPORT} eval scenes; ")
    reasons = "" if not why else " (support: too few active scenes; kind only: the truth names only field or object)"
    out += (f"{len(excluded)} left out{reasons}: {shown}{more}." if excluded else "none left out.")
    if isinstance(w.get("truth_auroc"), (int, float)):
        out += f" The true claims' simulation AUROC over the scored features: {w['truth_auroc']:.3f}."
    return out


def _seed_key(s: Any) -> tuple[int, int, str]:
    try:
        return (0, int(s), "")
    except (TypeError, ValueError):
        return (1, 0, str(s))


def seed_table(m: Mapping[str, Any], short: bool = False) -> Table | None:
    """Pooled planted seeds: per seed, its test features and the agent against its best no-follow-up method."""
    per = _d(m.get("per_seed"))
    if not per:
        return None
    rows = []
    for seed in sorted(per, key=_seed_key):
        p = _d(per[seed])
        d = _d(p.get("agent_vs_best_nonadaptive"))
        f = _d(d.get("f1")) or d
        rows.append([str(seed), str(p.get("n_test", "?")), bench_name(str(d["baseline"]), short) if d.get("baseline")
                     else "n/a", _ci(f, signed=True) if f else "n/a", share(d.get("error_reduction")), str(f.get("verdict", "n/a"))])
    return ["seed", "test features", "best no-follow-up (dev)", "agent minus it [95% CI]", "error reduction",
            "verdict"], rows


def pooled_line(m: Mapping[str, Any]) -> str | None:
    seeds = m.get("planted_seeds")
    if not seeds:
        return None
    b = _d(m.get("bench"))
    per = _d(m.get("per_seed"))
    n = b.get("n") if b.get("n") is not None else sum(int(_d(p).get("n_test") or 0) for p in per.values())
    return (f"Planted seeds {_seeds(seeds)} pooled ({len(seeds)} seeds): {n} {b.get('split', 'test')} features; "
            "CIs are clustered by seed and true value, and everything tunable was chosen again on the pooled dev "
            "split. Each seed's own report is in seed-N/ beside this one.")


def _clusters(m: Mapping[str, Any]) -> str:
    return "seed and true value" if len(m.get("planted_seeds") or []) > 1 else "true value"


# ----------------------------------------------------------------------------- markdown


def md_table(table: Table) -> list[str]:
    cols, rows = table
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(map(esc, cols)) + " |", "|" + "---|" * len(cols)]
            + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def headline(b: dict[str, Any], clusters: str = "true value") -> str:
    """One plain sentence on the agent against the best steering-only baseline (kept for continuity)."""
    d = b.get("diffs", {}).get("agent_vs_best_baseline")
    if not d:
        return "The agent was not run: no comparison."
    f = d["f1"]
    name = bench_name(d["baseline"])
    pts = 100 * f["mean"]
    lo, hi = (100 * x for x in f["ci"])
    verdict = {"loses": f"**The agent loses** to {name}", "wins": f"The agent beats {name}",
               "no clear difference": f"The agent is not distinguishable from {name}"}.get(f["verdict"], f["verdict"])
    return (f"{verdict} on the {b['split']} split: F1 difference {pts:+.1f} points, 95% CI [{lo:+.1f}, {hi:+.1f}] "
            f"(paired bootstrap clustered by {clusters}; agent better on {f.get('wins', '?')}, worse on "
            f"{f.get('losses', '?')} of {b.get('n', '?')} features).")


def _kinds(b: Mapping[str, Any]) -> str:
    kinds = _d(b.get("kinds"))
    return f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if kinds else ""


def bench_section(m: dict[str, Any]) -> list[str]:
    from steering.toy.claims import TRUE_LOWER, TRUE_SHARE

    b = m["bench"]
    split = b.get("split", "?")
    L = [f"## Benchmark: claim-level scores on the {split} split", ""]
    if reminder := split_reminder(b):
        L += [f"> {reminder}", ""]
    sizes = ", ".join(f"{k} {v}" for k, v in _d(b.get("split_sizes")).items())
    L += [f"{b.get('n', '?')} features{_kinds(b)}" + (f"; split sizes: {sizes}" if sizes else "")
          + f". Everything tunable was chosen on dev: {_chosen(_d(b.get('chosen_on_dev')))}.", ""]
    L += [x for line in (pooled_line(m), scored_line(m, limit=None)) if line for x in (line, "")]
    if seeds := seed_table(m):
        L += md_table(seeds) + [""]
    L += [x for line in (standing(b), truth_gate(m)) if line for x in (line, "")]
    L += [headline(b, _clusters(m)), ""]
    best = best_nonadaptive(b)
    L += [("Each explanation is parsed into claims (family, value) over the world's vocabulary; the truth is every "
           f"value whose share of the feature's top scenes has a 95% Wilson lower bound of at least {TRUE_LOWER:g} "
           f"(truth files before version 3: a share of at least {TRUE_SHARE:.0%}; a planted feature's claims by "
           "construction). F1, precision, recall, exact set match: % per feature, mean (F1 with a 95% bootstrap CI "
           f"clustered by {_clusters(m)}; the other CIs are in metrics.json). AUROC: the feature's activation on "
           "scenes satisfying the claims against random scenes."
           + (" Causal F1: the claims against what steering the feature adds beyond norm-matched random directions."
              if has_causal(b) else "")
           + (f" Error reduction: the share of the error (100 - F1) of the best no-follow-up method picked on dev "
              f"({bench_name(best)}) that the mode removes." if best else "")), ""]
    L += md_table(mode_table(b)) + [""]
    L += ["Floors (F1; a good metric keeps them low; skill: the share of the constant explanation's error "
          "(100 - F1) a floor removes):", ""] + md_table(floor_table(b)) + [""]
    if fams := family_table(b):
        L += ["Recall by family (the share of each family's true claims a mode names; n: true claims):", ""]
        L += md_table(fams) + [""]
    if _d(b.get("diffs")):
        L += ["Paired differences, agent minus each (F1 points):", ""] + md_table(diffs_table(b)) + [""]
    L += agent_bar_table(b.get("agent_bar") or {})
    L += gates_table(_d(b.get("gates")))
    return L


def agent_bar_table(bar: dict[str, Any]) -> list[str]:
    """Issue 16's criteria: measured value, bar, met, and a reference figure where one exists."""
    if not bar:
        return []
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    L = ["The agent's bar on this split (issue 16). Reference: what the per-feature oracle over the sweep (the best "
         "single strength per feature, chosen with the truth) and the true claims themselves score on the same figure.",
         "", "| criterion | measured | bar | reference | met |", "|---|---|---|---|---|"]
    if "margin" in bar:
        m = bar["margin"]
        lo, hi = m["ci"]
        L.append(f"| agent minus the best no-follow-up baseline ({bench_name(m['baseline'])}), F1 points | "
                 f"{_pts(m['value'])} [{_pts(lo)}, {_pts(hi)}] | >= {100 * m['bar']:+.0f}, CI above 0 | "
                 f"{_pts(m.get('oracle_margin'))} (oracle) | {yes(m['met'])} |")
    if "round1_margin" in bar:
        r = bar["round1_margin"]
        lo, hi = r["ci"]
        L.append(f"| ... max_rounds=1 minus the same baseline (the gain must need follow-ups) | {_pts(r['value'])} "
                 f"[{_pts(lo)}, {_pts(hi)}] | below the bar | | {yes(r['met'])} |")
    if "floors" in bar:
        f = bar["floors"]
        L.append(f"| highest floor F1 ({FLOOR_NAMES.get(f['worst'], f['worst'])}) | {100 * f['value']:.1f} | "
                 f"<= {100 * f['bar']:.0f} | | {yes(f['met'])} |")
    if "auroc" in bar:
        a = bar["auroc"]
        truth = "n/a" if a.get("truth") is None else f"{a['truth']:.3f} (true claims)"
        L.append(f"| agent's simulation AUROC | {a['value']:.3f} | >= {a['bar']:g} | {truth} | {yes(a['met'])} |")
    return L + ["", f"Bar met on this split: {yes(bar.get('met'))}. How far any rule that filters one-shot's claims "
                "by the steering evidence can get on this world (fitted to the truth): `python -m agent.cli.ceiling` "
                "(`--planted-seed N` for planted features).", ""]


def _chosen(c: Mapping[str, Any]) -> str:
    def value(k: str, v: Any) -> str:
        if k.startswith("best_") and isinstance(v, str):
            return bench_name(v)
        if isinstance(v, list):
            return " + ".join(map(str, v))
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{CHOSEN_NAMES.get(k, k)} = {value(k, v)}" for k, v in c.items()) or "nothing"


def gates_table(g: dict[str, Any]) -> list[str]:
    from steering.toy.gates import GATES

    L = [f"World gates (over the {g.get('n', 0)} features of this split; a feature is named when a description "
         "names one of its true claims):", "", "| gate | value | bar | met |", "|---|---|---|---|"]
    rows = [(name, g.get(name), g.get("met", {}).get(name), f"{op} {bar:g}") for name, (op, bar) in GATES.items()]
    t = _d(g.get("truth_auroc"))
    if t:
        rows.append(("truth_auroc", t.get("value"), t.get("met"), f">= {t.get('bar')}"))
    for name, v, ok, bar in rows:
        L.append(f"| {GATE_NAMES.get(name, name)} | {'n/a' if v is None else f'{v:.3f}'} | {bar} | "
                 f"{'n/a' if ok is None else 'yes' if ok else '**no**'} |")
    return L + [""]
