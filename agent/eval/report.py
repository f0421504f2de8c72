"""Write an evaluation's report: ``report.md`` (tables), PNG plots, ``metrics.json``."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from agent.eval.metrics import Rate, rate_from

log = logging.getLogger(__name__)

REPORT = "report.md"
METRICS = "metrics.json"
PLOT_STRENGTH = "accuracy_vs_strength.png"
PLOT_MODES = "accuracy_by_mode_family.png"

MODE_NAMES = {
    "offline": "multi-strength sweep + offline judge (agent loop)",
    "offline-images": "agent loop + offline judge, also reading top-k and hybrid descriptions",
    "llm": "agent loop + LLM judge",
    "oneshot-best": "one-shot steering, best single strength",
    "topk": "top-k (masked top images)",
    "hybrid-best": "hybrid (top-k + steering), best strength",
    "random-offline": "random directions + offline judge (agent loop)",
    "oneshot-random-max": "random directions, one-shot, worst strength",
}
MODE_ORDER = ("offline", "offline-images", "llm", "oneshot-best", "topk", "hybrid-best")


def _fmt(d: dict[str, Any] | None) -> str:
    if not d or not d.get("n"):
        return "n/a"
    return rate_from(d).fmt()


def _pct(d: dict[str, Any] | None) -> str:
    return "n/a" if not d or not d.get("n") else f"{100 * d['hits'] / d['n']:.0f}%"


def _strength(s: float | None) -> str:
    return "" if s is None else f"{s:g}"


def _cell(text: str | None, n: int = 90) -> str:
    if not text:
        return "—"
    t = " ".join(str(text).split()).replace("|", "\\|")
    return t if len(t) <= n else t[: n - 1] + "…"


def write_report(metrics: dict[str, Any], out: str | Path, command: str | None = None,
                 plots: bool = True) -> Path:
    """Write ``out/report.md``, ``out/metrics.json`` and (with matplotlib) the PNG plots; returns the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).write_text(json.dumps(metrics, indent=1, sort_keys=False) + "\n")
    images: list[str] = []
    if plots:
        try:
            images = write_plots(metrics, out)
        except ImportError:
            log.warning("matplotlib is not installed: the report has no plots (pip install 'steer-interp[eval]')")
    path = out / REPORT
    path.write_text(render_markdown(metrics, images, command))
    return path


def render_markdown(metrics: dict[str, Any], images: list[str] | None = None, command: str | None = None) -> str:
    """The report as markdown; every section past the title reads only the keys it finds (pooled planted seeds
    have no word-level bar, strengths, per-feature rows or forced choice)."""
    images = images or []
    w = metrics.get("world") or {}
    feats = metrics.get("features") or {}
    cfg = metrics.get("config") or {}
    L: list[str] = []
    L.append(f"# Explanation quality: {world_name(w, planted_seeds(metrics))}")
    L.append("")
    fam = feats.get("by_family")
    fam_txt = f" ({', '.join(f'{k} {v}' for k, v in fam.items())})" if fam else ""
    if "bar" in metrics and "purity" in cfg:
        what = f"{feats.get('n', '?')} features with a ground-truth value at purity >= {cfg['purity']:g}"
    elif "bench" in metrics:
        what = f"{feats.get('n', '?')} features with ground truth"
    else:
        what = f"{feats.get('n', '?')} features (no ground truth: forced choice and CLIP only)"
    line = f"{what}{fam_txt}, of {feats.get('requested', '?')} asked for."
    if metrics.get("strengths"):
        norm = metrics.get("hidden_norm")
        line += (f" Strength schedule: {', '.join(_strength(s) for s in metrics['strengths'])}"
                 + (f" (hidden-state norm {norm:g})." if isinstance(norm, (int, float)) else "."))
    if "seed" in cfg:
        line += f" Seed {cfg['seed']};"
    if metrics.get("digest"):
        line += f" metrics digest `{metrics['digest']}` (equal digests, equal results)."
    L.append(line.rstrip(";") + ("" if line.endswith(".") else "."))
    L.append("")
    if any(k in metrics for k in ("bar", "forced_choice", "clip")):  # the word-level sections' rates
        L += _rates_note(metrics)
    for w in metrics.get("warnings", []):
        L += [f"> **Warning**: {_cell(w, 400)}", ""]
    if "bench" in metrics:
        from agent.eval.report_bench import bench_section

        L += bench_section(metrics)
    if "bar" in metrics:
        L += _bar_section(metrics)
        L += _modes_section(metrics)
        L += _family_section(metrics)
        L += _strength_section(metrics, images)
    if "forced_choice" in metrics:
        L += _forced_choice_section(metrics["forced_choice"])
    if "clip" in metrics:
        L += _clip_section(metrics["clip"])
    if "cost" in metrics:
        L += _cost_section(metrics["cost"])
    if "bar" in metrics:
        L += _examples_section(metrics)
    L += _method_section(metrics, command)
    return "\n".join(L).rstrip() + "\n"


def _rates_note(metrics: dict[str, Any]) -> list[str]:
    """What a rate and a hit by words or by embedding mean (the word-level sections' figures)."""
    L: list[str] = []
    L.append("Rates are shares of features with a 95% Wilson interval and the counts. A hit **by words**: the "
             "explanation names the true value (or a synonym) and no other value of its family. A hit **by "
             f"embedding** ({metrics.get('embedder') or 'no model'}): among all values of the family, and a "
             "no-value phrase, the true value is the most similar to the explanation."
             + (" A **specific** hit: a hit by words that claims nothing false beside the truth (every value of "
                "another family it names is carried by at least half of the feature's top scenes)."
                if _has_specific(metrics) else ""))
    L.append("")
    return L


def _has_specific(m: dict[str, Any]) -> bool:
    return any("specific" in d for d in m.get("modes", {}).values())


def planted_seeds(m: dict[str, Any]) -> list[int]:
    """The planted seeds an evaluation ran on: several when pooled, one, or none (another world)."""
    seeds = m.get("planted_seeds")
    if isinstance(seeds, list) and seeds:
        return list(seeds)
    return [] if m.get("planted_seed") is None else [m["planted_seed"]]


def short_path(p: Any) -> str:
    """A model or SAE as a report may print it: a hub id or a relative path unchanged, an absolute path as its
    last two components (absolute paths name the machine that ran it, and reports move between machines)."""
    s = str(p) if p is not None else ""
    if not s:
        return "?"
    path = Path(s)
    if not (path.is_absolute() or s.startswith("~")):
        return s
    return "/".join(path.parts[-2:]) or s


REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository (the folder holding agent/ and steering/): a report names local folders inside it relative to it."""


def portable_path(p: Any) -> Any:
    """A model or SAE as a report records it: a hub id or a relative path unchanged, a local folder inside the
    repository relative to it (``steering/toy/data/sae``), any other absolute path by its last two components.
    An absolute path names only the machine that ran the evaluation; a report is read on others (the world is
    matched by its content fingerprints, ``revision`` and ``sae_revision``, not by this name)."""
    if p is None:
        return None
    s = str(p)
    path = Path(s).expanduser()
    if not path.is_absolute():
        return s
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return short_path(s)


def portable_world(world: dict[str, Any]) -> dict[str, Any]:
    """``world`` with its model and SAE as ``portable_path`` writes them."""
    return {**world, **{k: portable_path(world[k]) for k in ("model", "sae") if world.get(k) is not None}}


def recorded_folder(p: Any) -> Path | None:
    """The folder a report's model or SAE names on this machine: an absolute path (older reports) as it is, a
    relative one under the repository; None for a hub id or a folder that is not here."""
    if not p:
        return None
    path = Path(str(p)).expanduser()
    path = path if path.is_absolute() else REPO_ROOT / path
    return path if path.is_dir() else None


def bundled_world(w: dict[str, Any], seeds: list[int] | None = None, code: str = "`") -> str | None:
    """The world's readable name when it is planted features or the bundled toy world; None otherwise."""
    layer = w.get("layer")
    if seeds:
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {_seed_list(seeds)}, pooled"
        return f"planted features ({which}) in the bundled toy world (SAE layer {layer})"
    try:
        from steering import toy

        here = recorded_folder(w.get("sae"))
        if toy.is_available() and here is not None and here.resolve() == toy.sae_dir().resolve():
            return f"the bundled toy world ({code}{toy.MODEL_ID}{code}, SAE layer {layer})"
    except Exception:  # noqa: BLE001 - a title is no reason to fail
        log.debug("cannot tell whether this is the toy world", exc_info=True)
    return None


def world_name(w: dict[str, Any], seeds: list[int] | None = None) -> str:
    """The report's title for a world; never an absolute path."""
    return bundled_world(w, seeds) or (f"`{short_path(w.get('model'))}` with SAE `{short_path(w.get('sae'))}`, "
                                       f"layer {w.get('layer')}")


def _seed_list(seeds: list[int]) -> str:
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def scrub_command(command: str, m: dict[str, Any]) -> str:
    """The reproduce command without the machine's absolute model or SAE paths: planted runs lose the
    ``--sae`` the CLI filled in (``--planted-seed`` rebuilds it); another world's paths are shortened."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    world = m.get("world") or {}
    paths = {str(world[k]) for k in ("model", "sae") if world.get(k) and short_path(world[k]) != str(world[k])}
    paths |= {w for w in words if Path(w).is_absolute()}  # what the user typed, whatever the world records
    out: list[str] = []
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if planted_seeds(m) and word == "--sae" and i + 1 < len(words):
            skip = True
            continue
        out.append(portable_path(word) if word in paths else word)
    return " ".join(shlex.quote(x) for x in out)


def _bar_section(m: dict[str, Any]) -> list[str]:
    bar = m["bar"]
    t = bar["thresholds"]
    L = ["## The bar", "", "| criterion | needed | measured | met |", "|---|---|---|---|"]

    def ok(v: bool | None) -> str:
        return "—" if v is None else ("yes" if v else "**no**")

    if "pipeline_rate" in bar:
        L.append(f"| agent loop + offline judge names the ground truth | >= {100 * t['pipeline_min']:.0f}% | "
                 f"{_fmt(m['modes']['offline']['word'])} | {ok(bar.get('pipeline_ok'))} |")
    if "margin_over_oneshot" in bar:
        best = m["modes"]["oneshot-best"]
        L.append(f"| ... beats one-shot steering at its best strength ({_strength(best['strength'])}: "
                 f"{_pct(best['word'])}) | >= {100 * t['margin_over_oneshot']:.0f} points | "
                 f"{100 * bar['margin_over_oneshot']:+.0f} points | {ok(bar.get('margin_ok'))} |")
    for name, v in bar.get("controls", {}).items():
        d = m["controls"]["random-offline"] if name == "random-offline" else m["controls"]["permuted"]["offline"]
        label = ("random directions + offline judge" if name == "random-offline"
                 else "permuted features (offline explanations)")
        L.append(f"| control: {label} | <= {100 * t['controls_max']:.0f}% | {_fmt(d['word'])} | "
                 f"{ok(v is not None and v <= t['controls_max'])} |")
    L += ["", f"Bar met: **{'yes' if bar.get('met') else 'no'}**.", ""]
    need, ceiling = bar.get("margin_needs_rate"), bar.get("steering_ceiling")
    if need is not None and ceiling is not None and need > ceiling:
        L += [(f"The margin asks for {100 * need:.0f}% by words; an oracle choosing each feature's best strength of "
               f"the schedule reaches {100 * ceiling:.0f}%, so no judge reading these steered descriptions can meet "
               "it on this world: one global strength already names what steering can name here."), ""]
    perm = m["controls"].get("permuted", {}).get("offline", {})
    if perm.get("expected_word_rate") is not None:
        oneshot = m["controls"]["permuted"].get("oneshot-best", {}).get("expected_word_rate")
        L += [(f"The permuted control's expectation over all derangements is {100 * perm['expected_word_rate']:.0f}%"
               + (f" (one-shot descriptions: {100 * oneshot:.0f}%)" if oneshot is not None else "")
               + ": the chance that an explanation naming this many values names another feature's value."), ""]
    dg = m.get("diagnostics", {})
    if dg:
        L.append("Where the misses come from:")
        L.append("")
        if "oneshot_any_strength" in dg:
            L.append(f"- some single strength of the schedule names the truth (an oracle choosing the strength per "
                     f"feature): {_fmt(dg['oneshot_any_strength'])}")
        for name in ("offline", "llm"):
            if f"{name}_evidence" in dg:
                L.append(f"- {name} judge: some steered description it read names the truth: "
                         f"{_fmt(dg[f'{name}_evidence'])}; its explanation misses it anyway for "
                         f"{dg[f'{name}_judge_missed']['n']} features"
                         + (" (" + "; ".join(f"{k}: {v}" for k, v in dg[f"{name}_judge_missed"].get("why", {}).items())
                            + ")" if dg[f"{name}_judge_missed"].get("why") else ""))
        L.append("")
    return L


def _modes_section(m: dict[str, Any]) -> list[str]:
    spec = _has_specific(m)
    head = "| mode | by words | by embedding | " + ("specific | false claims per feature | " if spec else "") + "strength |"
    L = ["## Accuracy by mode", "", head, "|---|---|---|" + ("---|---|" if spec else "") + "---|"]
    for name in MODE_ORDER:
        d = m["modes"].get(name)
        if d:
            extra = (f"{_fmt(d.get('specific'))} | {d.get('false_claims_mean', 0):.2f} | " if spec else "")
            L.append(f"| {MODE_NAMES.get(name, name)} | {_fmt(d['word'])} | {_fmt(d['embedding'])} | {extra}"
                     f"{_strength(d.get('strength'))} |")
    L += ["", "Controls (lower is better; a control that names the truth shows what chance and priors give):", "",
          "| control | by words | by embedding | strength |", "|---|---|---|---|"]
    for name in ("random-offline", "oneshot-random-max"):
        d = m["controls"].get(name)
        if d:
            L.append(f"| {MODE_NAMES[name]} | {_fmt(d['word'])} | {_fmt(d['embedding'])} | {_strength(d.get('strength'))} |")
    for name, d in m["controls"].get("permuted", {}).items():
        exp = d.get("expected_word_rate")
        L.append(f"| permuted features: {MODE_NAMES.get(name, name)} | {_fmt(d['word'])}"
                 + (f" (all derangements: {100 * exp:.0f}%)" if exp is not None else "")
                 + f" | {_fmt(d['embedding'])} | {_strength(d.get('strength'))} |")
    L.append("")
    return L


def _family_section(m: dict[str, Any]) -> list[str]:
    fams = list(m["features"].get("by_family", {}))
    names = [n for n in MODE_ORDER if n in m["modes"]] + (["random-offline"] if "random-offline" in m["controls"] else [])
    L = ["## By attribute family (by words)", "",
         "| mode | " + " | ".join(f"{f} (n={m['features']['by_family'][f]})" for f in fams) + " |",
         "|---|" + "---|" * len(fams)]
    for name in names:
        d = m["modes"].get(name) or m["controls"].get(name)
        L.append(f"| {MODE_NAMES.get(name, name)} | "
                 + " | ".join(_fmt(d["by_family"].get(f, {}).get("word")) for f in fams) + " |")
    return L + [""]


def _strength_section(m: dict[str, Any], images: list[str]) -> list[str]:
    bs = m["by_strength"]
    L = ["## Against strength", ""]
    if PLOT_STRENGTH in images:
        L += [f"![accuracy against strength]({PLOT_STRENGTH})", ""]
    if PLOT_MODES in images:
        L += [f"![accuracy by mode and family]({PLOT_MODES})", ""]
    for name, title in (("oneshot", "one-shot steering"), ("oneshot-random", "one-shot, random direction"),
                        ("hybrid", "hybrid")):
        if name not in bs:
            continue
        L += [f"{title}:", "", "| strength | by words | by embedding |", "|---|---|---|"]
        L += [f"| {_strength(r['strength'])} | {_fmt(r['word'])} | {_fmt(r['embedding'])} |" for r in bs[name]]
        L.append("")
    return L


def _forced_choice_section(fc: dict[str, Any]) -> list[str]:
    L = ["## Forced choice (no ground truth needed)", "",
         (f"{fc['n_trials']} trials: the reader sees a feature's explanation and {round(1 / fc['chance'])} sets of "
          f"{fc['descriptions_per_set']} held-out sampled descriptions (the feature's and other features'), and "
          f"picks the feature's set. Chance is {100 * fc['chance']:.0f}%."), "",
         "| explanation from | embedding reader | LLM reader |", "|---|---|---|"]
    for name in sorted(set(fc["embedding"]) | set(fc["llm"]), key=lambda n: (n not in MODE_ORDER, MODE_ORDER.index(n) if n in MODE_ORDER else 0, n)):
        e, q = fc["embedding"].get(name), fc["llm"].get(name)
        L.append(f"| {MODE_NAMES.get(name, name)} | {_fmt(e['accuracy']) if e else 'n/a'} | "
                 f"{_fmt(q['accuracy']) if q else 'not run'} |")
    return L + [""]


def _clip_section(clip: dict[str, Any]) -> list[str]:
    L = ["## CLIP similarity (masked top-k images vs explanation)", "",
         (f"Model: `{clip.get('model')}`. Mean cosine similarity between each masked top image and the explanation, "
          "against the same for another feature's explanation (permuted)."), "",
         "| explanation from | matched | permuted | matched > permuted |", "|---|---|---|---|"]
    for name, d in clip.items():
        if isinstance(d, dict):
            def num(x: float | None) -> str:
                return "n/a" if x is None else f"{x:.3f}"

            L.append(f"| {MODE_NAMES.get(name, name)} | {num(d['matched'])} | {num(d['permuted'])} | "
                     f"{_fmt(d['matched_wins'])} |")
    return L + [""]


def _cost_section(cost: dict[str, Any]) -> list[str]:
    L = ["## What the agent loop cost per feature", "",
         "| judge | features done | rounds (mean / max) | probes (mean / max) | judge tokens (mean / total) | seconds (mean) |",
         "|---|---|---|---|---|---|"]
    def ms(c: dict[str, Any], k: str, a: str = "mean", b: str = "max") -> str:
        s = c.get(k)
        return "n/a" if not s else f"{s[a]:g} / {s[b]:g}"

    for name, c in cost.items():
        sec = c.get("seconds")
        secs = "n/a" if not sec else f"{sec['mean']:.2f}"
        L.append(f"| {name} | {c['done']}/{c['n']} | {ms(c, 'rounds')} | {ms(c, 'probes')} | {ms(c, 'tokens', 'mean', 'total')} | "
                 f"{secs} |")
    return L + ["", "Per-feature figures are in `metrics.json` (`cost.<judge>.per_feature`).", ""]


def _examples_section(m: dict[str, Any], n: int = 8) -> list[str]:
    rows = m.get("per_feature", [])
    names = [x for x in ("offline", "oneshot-best", "topk", "hybrid-best", "llm") if x in m["modes"]]
    L = ["<details><summary>Every feature: truth, the agent loop's label, hits per mode (W words, E embedding)</summary>",
         "", "| feature | truth | offline label | " + " | ".join(names) + " |",
         "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        marks = []
        for x in names:
            w, e = r["word"].get(x), r["embedding"].get(x)
            marks.append(("W" if w else "·") + ("E" if e else ("·" if e is not None else "")))
        label = r.get("labels", {}).get("offline") or r["texts"].get("offline")
        L.append(f"| {r['feature']} | {r['family']}={r['value']} | {_cell(label, 60)} | "
                 + " | ".join(marks) + " |")
    L += ["", "</details>", ""]
    return L


def _method_section(m: dict[str, Any], command: str | None) -> list[str]:
    c = m.get("config") or {}
    hybrid = ", ".join(f"{x:g}" for x in c.get("hybrid_multiples") or []) or "?"
    L = ["## How this was measured", "",
         ("- **one-shot steering**: the paper's method, one greedy description at one global strength; every "
          "strength of the schedule is scored and the best is reported, picked on these same features (an "
          "optimistic pick for this baseline)."),
         ("- **agent loop + offline judge**: `steer-agent run` with the offline judge (a deterministic word "
          f"statistic, not an LLM), the same schedule, at most {c.get('max_rounds', '?')} rounds and {c.get('max_probes', '?')} "
          "extra probes."),
         (f"- **top-k / hybrid**: the explainer sees {c.get('n_images', '?')} masked top images; the hybrid also steers at "
          f"the patches where the feature fired, at {hybrid} x the hidden-state norm."),
         ("- **random directions**: the same loop and judge, each feature's direction replaced by a random one "
          "of the same norm. **permuted features**: each explanation scored against the ground truth of "
          "another evaluated feature (a seeded derangement)."),
         ("- **forced choice**: held-out descriptions sampled with a seed no explainer saw; distractor features "
          "are drawn from the evaluated ones."),
         ]
    L.append("- every figure is in `metrics.json` beside this report (`modes`, `controls`, `by_strength`, "
             "`forced_choice`, `clip`, `cost`, `diagnostics`, `bar`, `per_feature`); `digest` hashes all of it but "
             "the timings.")
    t = m.get("timings", {})
    if t:
        L.append("- time per stage (s): " + ", ".join(f"{k} {v:g}" for k, v in t.items()) + ".")
    if command:
        L += ["", "Reproduce:", "", "```bash", scrub_command(command, m), "```"]
    return L + [""]


# ----------------------------------------------------------------------------- plots


def write_plots(metrics: dict[str, Any], out: Path) -> list[str]:
    """PNG plots beside the report; returns the file names written (one block per figure, in report
    order: long, but each block is independent plotting code)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    bs = metrics.get("by_strength", {})
    if bs:
        fig, ax = plt.subplots(figsize=(7, 5.0), dpi=110)
        styles = {"oneshot": ("one-shot steering", "tab:blue", "o-"),
                  "oneshot-random": ("one-shot, random direction", "tab:gray", "s--"),
                  "hybrid": ("hybrid", "tab:green", "^-")}
        for name, (label, colour, style) in styles.items():
            rows = bs.get(name)
            if not rows:
                continue
            xs = [r["strength"] for r in rows]
            rates = [rate_from(r["word"]) for r in rows]
            _errorbar(ax, xs, rates, label, colour, style)
        for name, colour in (("offline", "tab:red"), ("llm", "tab:purple"), ("topk", "tab:orange")):
            d = metrics["modes"].get(name)
            if d and (d.get("word") or {}).get("n"):
                r = rate_from(d["word"])
                ax.axhline(r.value, color=colour, lw=1.5, label=f"{MODE_NAMES[name]} ({100 * (r.value or 0):.0f}%)")
                ax.axhspan(r.lo, r.hi, color=colour, alpha=0.08)
        ax.set_xlabel("steering strength (L2 norm of the added vector)")
        ax.set_ylabel("names the ground truth (by words)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        fig.tight_layout()
        fig.savefig(out / PLOT_STRENGTH)
        plt.close(fig)
        written.append(PLOT_STRENGTH)

    names = [n for n in MODE_ORDER if n in metrics.get("modes", {})]
    controls = [n for n in ("random-offline",) if n in metrics.get("controls", {})]
    fams = list((metrics.get("features") or {}).get("by_family", {}))
    if names and fams:
        groups = ["all"] + fams
        series = names + controls
        fig, ax = plt.subplots(figsize=(8, 5.0), dpi=110)
        width = 0.8 / len(series)
        for j, name in enumerate(series):
            d = metrics["modes"].get(name) or metrics["controls"][name]
            rates = [rate_from(d["word"])] + [rate_from(d["by_family"][f]["word"]) if f in d["by_family"]
                                              else Rate(0, 0, 0.0, 1.0) for f in fams]
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
            vals = [r.value or 0.0 for r in rates]
            err = [[v - r.lo for v, r in zip(vals, rates)], [r.hi - v for v, r in zip(vals, rates)]]
            ax.bar(xs, vals, width, yerr=err, capsize=2, label=MODE_NAMES.get(name, name),
                   hatch="//" if name in controls else None, alpha=0.9)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{g}\n(n={metrics['features']['n'] if g == 'all' else metrics['features']['by_family'][g]})"
                            for g in groups])
        ax.set_ylabel("names the ground truth (by words)")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        fig.tight_layout()
        fig.savefig(out / PLOT_MODES)
        plt.close(fig)
        written.append(PLOT_MODES)
    return written


def _errorbar(ax: Any, xs: list[float], rates: list[Rate], label: str, colour: str, style: str) -> None:
    vals = [r.value or 0.0 for r in rates]
    err = [[v - r.lo for v, r in zip(vals, rates)], [r.hi - v for v, r in zip(vals, rates)]]
    ax.errorbar(xs, vals, yerr=err, fmt=style, color=colour, capsize=3, ms=4, lw=1.2, label=label)
