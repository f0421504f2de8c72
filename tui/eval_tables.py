"""An evaluation's metrics as titled tables of strings (no textual), in the markdown report's order:
warnings, the benchmark, the bar, accuracy by mode, controls, by family, against strength, forced choice,
CLIP, cost.

The benchmark's tables are agent.eval.report_bench's own rows (the same figures and names as report.md, with
the short mode names). Every key is optional (older metrics files lack the newer ones, pooled planted seeds
have no word-level figures); a table whose data is absent is left out, a rate that cannot be read shows ``?``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.eval import report_bench as rb
from agent.eval.metrics import rate_from
from tui.evaluation import ordered

SHORT_NAMES = {
    "offline": "loop + offline judge",
    "offline-images": "loop + offline, + images",
    "llm": "loop + LLM judge",
    "oneshot-best": "one-shot, best strength",
    "topk": "top-k images",
    "hybrid-best": "hybrid, best strength",
    "random-offline": "random dir. + loop",
    "oneshot-random-max": "random dir., one-shot max",
}
"""Mode names short enough for an 80-column table (the markdown report spells them out)."""

SERIES = {"oneshot": "one-shot steering", "oneshot-random": "one-shot, random direction", "hybrid": "hybrid"}


@dataclass
class Section:
    """One titled table of the evaluation screen, with the lines that explain it (no columns: lines only)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def mode_name(key: str) -> str:
    """A mode's short readable name: the word-level modes' own, else the benchmark's."""
    return SHORT_NAMES.get(key) or rb.bench_name(key, short=True)


def rate_text(d: Any) -> str:
    """A stored rate as ``86% [81-90] (175/203)``; ``n/a`` when absent or empty, ``?`` when malformed."""
    if not isinstance(d, dict) or not d.get("n"):
        return "n/a"
    try:
        return rate_from(d).fmt()
    except (KeyError, TypeError, ValueError):
        return "?"


def pct(x: Any) -> str:
    return f"{100 * x:.0f}%" if isinstance(x, (int, float)) else "n/a"


def num(x: Any, spec: str = "g") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else ""


def met(ok: Any) -> str:
    return "—" if ok is None else ("yes" if ok else "NO")


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _word_rate(d: dict[str, Any]) -> Any:
    return _d(d.get("word")).get("rate")


# ----------------------------------------------------------------------------- sections


def warnings(m: dict[str, Any]) -> Section | None:
    lines = [str(w) for w in m.get("warnings") or []]
    return Section("warnings", "Warnings", [], notes=lines) if lines else None


def bar(m: dict[str, Any]) -> Section | None:
    b = _d(m.get("bar"))
    if not b:
        return None
    t, modes, controls = _d(b.get("thresholds")), _d(m.get("modes")), _d(m.get("controls"))
    s = Section("bar", "The bar", ["criterion", "needed", "measured", "met"])
    if "pipeline_rate" in b:
        word = _d(modes.get("offline")).get("word")
        s.rows.append(["loop + offline judge, by words", f">= {pct(t.get('pipeline_min'))}",
                       rate_text(word) if word else pct(b["pipeline_rate"]), met(b.get("pipeline_ok"))])
    margin = b.get("margin_over_oneshot")
    if isinstance(margin, (int, float)):
        need = t.get("margin_over_oneshot")
        s.rows.append([f"margin over one-shot best ({pct(_word_rate(_d(modes.get('oneshot-best'))))})",
                       f">= +{100 * need:.0f} pts" if isinstance(need, (int, float)) else "?",
                       f"{100 * margin:+.0f} pts", met(b.get("margin_ok"))])
    cmax = t.get("controls_max")
    for name, v in _d(b.get("controls")).items():
        if name == "random-offline":
            d, label = _d(controls.get("random-offline")), "random directions"
        else:
            d, label = _d(_d(controls.get("permuted")).get("offline")), "permuted (offline)"
        ok = None if not isinstance(cmax, (int, float)) else (v is not None and v <= cmax)
        s.rows.append([f"control: {label}", f"<= {pct(cmax)}", rate_text(d.get("word")) if d else pct(v), met(ok)])
    s.notes.append(f"Bar met: {'yes' if b.get('met') else 'no'}.")
    best = _d(modes.get("oneshot-best")).get("strength")
    if isinstance(margin, (int, float)) and isinstance(best, (int, float)):
        s.notes.append(f"One-shot steering's best single strength is {best:g}, picked on these same features.")
    need, ceiling = b.get("margin_needs_rate"), b.get("steering_ceiling")
    if isinstance(need, (int, float)) and isinstance(ceiling, (int, float)) and need > ceiling:
        s.notes.append(f"The margin asks for {pct(need)} by words; an oracle choosing each feature's best strength "
                       f"reaches {pct(ceiling)}: no judge reading these steered descriptions can meet it here.")
    perm = _d(controls.get("permuted"))
    expected = _d(perm.get("offline")).get("expected_word_rate")
    if isinstance(expected, (int, float)):
        one = _d(perm.get("oneshot-best")).get("expected_word_rate")
        s.notes.append(f"The permuted control's expectation over all derangements is {pct(expected)}"
                       + (f" (one-shot: {pct(one)})" if isinstance(one, (int, float)) else "")
                       + ": the chance that an explanation naming this many values names another feature's.")
    s.notes += _diagnostics(_d(m.get("diagnostics")))
    return s


def _diagnostics(dg: dict[str, Any]) -> list[str]:
    lines = []
    if "oneshot_any_strength" in dg:
        lines.append(f"Some single strength names the truth (an oracle per feature): "
                     f"{rate_text(dg['oneshot_any_strength'])}.")
    for name in ("offline", "llm"):
        if f"{name}_evidence" not in dg:
            continue
        missed = _d(dg.get(f"{name}_judge_missed"))
        why = "; ".join(f"{k}: {v}" for k, v in _d(missed.get("why")).items())
        lines.append(f"{name} judge: a description it read names the truth {rate_text(dg[f'{name}_evidence'])}; "
                     f"its explanation misses it anyway for {missed.get('n', '?')} features"
                     + (f" ({why})." if why else "."))
    return lines


def modes(m: dict[str, Any]) -> Section | None:
    ms = {k: v for k, v in _d(m.get("modes")).items() if "word" in _d(v) or "embedding" in _d(v)}
    if not ms:
        return None
    specific = any("specific" in _d(d) for d in ms.values())
    cols = ["mode", "by words", "by embedding"] + (["specific", "false claims (mean)"] if specific else []) + ["strength"]
    s = Section("modes", "Accuracy by mode", cols)
    for name in ordered(ms):
        d = _d(ms[name])
        extra = [rate_text(d.get("specific")), num(d.get("false_claims_mean"), ".2f")] if specific else []
        s.rows.append([mode_name(name), rate_text(d.get("word")), rate_text(d.get("embedding")), *extra,
                       num(d.get("strength"))])
    s.notes.append("By words: names the true value and no other value of its family; by embedding "
                   f"({m.get('embedder') or 'no model'}): the true value is the most similar."
                   + (" Specific: a hit by words with no false claim beside it." if specific else ""))
    return s


def controls(m: dict[str, Any]) -> Section | None:
    cs = _d(m.get("controls"))
    if not cs:
        return None
    perm = {k: _d(v) for k, v in _d(cs.get("permuted")).items()}
    expected = any("expected_word_rate" in d for d in perm.values())
    cols = ["control", "by words", "by embedding"] + (["all derangements"] if expected else []) + ["strength"]
    s = Section("controls", "Controls (lower is better)", cols)
    known = [k for k in ("random-offline", "oneshot-random-max") if k in cs]
    for name in known + sorted(k for k in cs if k not in known and k != "permuted"):
        d = _d(cs[name])
        s.rows.append([mode_name(name), rate_text(d.get("word")), rate_text(d.get("embedding")),
                       *([""] if expected else []), num(d.get("strength"))])
    for name in ordered(perm):
        d = perm[name]
        s.rows.append([f"permuted: {mode_name(name)}", rate_text(d.get("word")), rate_text(d.get("embedding")),
                       *([pct(d.get("expected_word_rate"))] if expected else []), num(d.get("strength"))])
    s.notes.append("A control that names the truth shows what chance and priors give. Permuted: each explanation "
                   "scored against another feature's truth (one seeded derangement)"
                   + ("; all derangements: its expectation over every derangement." if expected else "."))
    return s


def families(m: dict[str, Any]) -> Section | None:
    ms, cs = _d(m.get("modes")), _d(m.get("controls"))
    counts = _d(_d(m.get("features")).get("by_family"))
    names = [(n, _d(ms[n])) for n in ordered(ms)] + ([("random-offline", _d(cs["random-offline"]))]
                                                      if "random-offline" in cs else [])
    fams = list(counts) or sorted({f for _, d in names for f in _d(d.get("by_family"))})
    if not fams or not names:
        return None
    s = Section("families", "By attribute family (by words)",
                ["mode", *(f"{f} (n={counts[f]})" if f in counts else f for f in fams)])
    for name, d in names:
        by = _d(d.get("by_family"))
        s.rows.append([mode_name(name), *(rate_text(_d(by.get(f)).get("word")) for f in fams)])
    return s


def strengths(m: dict[str, Any]) -> list[Section]:
    out = []
    for name, rows in _d(m.get("by_strength")).items():
        if not isinstance(rows, list) or not rows:
            continue
        s = Section(f"strength-{name}", f"Against strength: {SERIES.get(name, name)}",
                    ["strength", "by words", "by embedding"])
        s.rows = [[num(_d(r).get("strength")), rate_text(_d(r).get("word")), rate_text(_d(r).get("embedding"))]
                  for r in rows]
        out.append(s)
    return out


def forced_choice(m: dict[str, Any]) -> Section | None:
    fc = _d(m.get("forced_choice"))
    if not fc:
        return None
    emb, llm = _d(fc.get("embedding")), _d(fc.get("llm"))
    s = Section("forced-choice", "Forced choice (no ground truth needed)",
                ["explanation from", "embedding reader", "LLM reader"])
    for name in ordered(set(emb) | set(llm)):
        e, q = _d(emb.get(name)), _d(llm.get(name))
        s.rows.append([mode_name(name), rate_text(e.get("accuracy")) if e else "n/a",
                       rate_text(q.get("accuracy")) if q else "not run"])
    chance = fc.get("chance")
    sets = round(1 / chance) if isinstance(chance, (int, float)) and chance > 0 else "?"
    s.notes.append(f"{fc.get('n_trials', '?')} trials: the reader sees an explanation and {sets} sets of "
                   f"{fc.get('descriptions_per_set', '?')} held-out descriptions and picks the feature's. "
                   f"Chance is {pct(chance)}."
                   + (f" LLM reader: {fc['llm_reader']}." if fc.get("llm_reader") else ""))
    return s


def clip(m: dict[str, Any]) -> Section | None:
    c = _d(m.get("clip"))
    if not c:
        return None
    s = Section("clip", "CLIP similarity (masked top-k images vs explanation)",
                ["explanation from", "matched", "permuted", "matched > permuted"])
    for name, d in c.items():
        if isinstance(d, dict):
            s.rows.append([mode_name(name), num(d.get("matched"), ".3f") or "n/a",
                           num(d.get("permuted"), ".3f") or "n/a", rate_text(d.get("matched_wins"))])
    s.notes.append(f"Model: {c.get('model', '?')}. Mean cosine similarity of each masked top image to the "
                   "explanation, against another feature's explanation (permuted).")
    return s


def cost(m: dict[str, Any]) -> Section | None:
    cs = _d(m.get("cost"))
    if not cs:
        return None
    s = Section("cost", "What the agent loop cost per feature",
                ["run", "done", "rounds mean/max", "probes mean/max", "tokens mean/total", "seconds mean"])

    def pair(c: dict[str, Any], key: str, a: str = "mean", b: str = "max") -> str:
        st = _d(c.get(key))
        return f"{num(st.get(a))} / {num(st.get(b))}" if st else "n/a"

    for name, c in cs.items():
        c = _d(c)
        s.rows.append([mode_name(name), f"{c.get('done', '?')}/{c.get('n', '?')}", pair(c, "rounds"),
                       pair(c, "probes"), pair(c, "tokens", "mean", "total"),
                       num(_d(c.get("seconds")).get("mean"), ".2f") or "n/a"])
        if c.get("stop_reason"):
            s.notes.append(f"{name}: stopped ({c['stop_reason']}).")
        for err, n in _d(c.get("errors")).items():
            s.notes.append(f"{name}: {n}x {err}")
    return s


STANDING = ("agent_vs_best_nonadaptive", "agent_vs_best_baseline")
"""The comparisons the benchmark's first table shows: the new headline, and the old one for continuity."""


def _plain(line: str) -> str:
    return line.replace("`", "").replace("**", "")


def bench(m: dict[str, Any]) -> list[Section]:
    """The benchmark: the agent's standing, scores by mode, floors, recall by family, pooled seeds."""
    b = _d(m.get("bench"))
    if not _d(b.get("modes")):
        return []
    split = b.get("split", "?")
    notes = [_plain(x) for x in (rb.split_reminder(b), rb.standing(b, md=False), rb.truth_gate(m),
                                 rb.pooled_line(m), rb.scored_line(m)) if x]
    out = []
    cols, rows = rb.diffs_table(b, short=True, only=STANDING)
    if rows:
        out.append(Section("bench-standing", f"Benchmark ({split} split): the agent against the best "
                                             "no-follow-up method", cols, rows, notes))
        notes = []
    best = rb.best_nonadaptive(b)
    cols, rows = rb.mode_table(b, short=True)
    out.append(Section("bench-modes", f"Benchmark ({split} split): claim-level scores by mode", cols, rows, notes + [
        "F1, precision, recall, exact: % per feature, means (F1 with a 95% CI clustered by true value). AUROC: "
        "the simulation score." + (" Causal F1: against what steering the feature adds." if rb.has_causal(b) else "")
        + (f" Error reduction: the share of the error (100 - F1) of {rb.bench_name(best, short=True)}, the best "
           "no-follow-up method on dev, a mode removes." if best else "")]))
    cols, rows = rb.floor_table(b)
    if rows:
        out.append(Section("bench-floors", "Benchmark floors (a good metric keeps them low)", cols, rows,
                           ["Skill: the share of the constant explanation's error (100 - F1) a floor removes."]))
    fams = rb.family_table(b, short=True)
    if fams and fams[1]:
        out.append(Section("bench-families", "Benchmark: recall by family", *fams,
                           notes=["The share of each family's true claims a mode names (n: true claims)."]))
    seeds = rb.seed_table(m, short=True)
    if seeds:
        out.append(Section("bench-seeds", "Pooled planted seeds, one by one", *seeds))
    return out


BUILDERS: tuple[Callable[[dict[str, Any]], Section | list[Section] | None], ...] = (
    warnings, bench, bar, modes, controls, families, strengths, forced_choice, clip, cost)


def sections(metrics: dict[str, Any]) -> list[Section]:
    """Every table the metrics have data for, in the report's order."""
    out: list[Section] = []
    for build in BUILDERS:
        got = build(metrics)
        out += got if isinstance(got, list) else [got] if got is not None else []
    return out
