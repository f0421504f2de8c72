"""The report on the ruler's version 3 (issue 29): causal F1, error reduction, skill, recall by family, the agent
against the best no-follow-up method, the truth-AUROC gate, scored and excluded features, the test reminder,
pooled planted seeds, and no absolute path of the machine that ran it."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any
from unittest import mock

import pytest

from agent.eval.bench import MODES, Bench, pool, run_bench
from agent.eval.config import EvalConfig
from agent.eval.report import render_markdown, write_report
from agent.eval.report_bench import BENCH_NAMES, FLOOR_NAMES
from agent.eval.runner import pooled_metrics
from steering.toy.gates import Sweep, split
from tests.agent.test_eval_report_bench import CAPTION, _bench

VALUES = {"colour": ["red", "blue", "green", "yellow"], "shape": ["circle", "square", "triangle", "cross"]}
MODEL = "/home/alice/models/toy-gemma"
SAE = "/home/alice/saes/run-7/layer3"
EXCLUDED = list(range(100, 130))


def _truth(n: int) -> dict[int, dict[str, Any]]:
    fams = sorted(VALUES)
    return {f: {"family": fams[f % 2], "value": VALUES[fams[f % 2]][(f // 2) % 4], "purity": 1.0} for f in range(n)}


def _said(t: dict[str, Any], right: bool) -> str:
    vals = VALUES[t["family"]]
    return f"a {t['value'] if right else vals[(vals.index(t['value']) + 1) % 4]} thing"


def rich_bench(part: str = "test", n: int = 32, causal: bool = True) -> Bench:
    """A benchmark with every version-3 figure: the claim filters, AUROC, a causal truth (SAE-like)."""
    from steering.toy.claims import parse_claims, truth_claims

    truth = _truth(n)
    sweep = Sweep([1.0, 2.0], [{f: CAPTION for f in truth}, {f: _said(t, f % 4 != 0) for f, t in truth.items()}],
                  CAPTION)
    texts = {"agent": {f: _said(t, f % 3 != 0) for f, t in truth.items()},
             "topk": {f: _said(t, f % 2 == 0) for f, t in truth.items()},
             "hybrid": {f: _said(t, f % 5 != 0) for f, t in truth.items()}}
    claims = {"filter": {f: parse_claims(_said(t, f % 7 != 0)) for f, t in truth.items()},
              "filter_images": {f: parse_claims(_said(t, f % 6 != 0)) for f, t in truth.items()}}

    def auroc(f: int, said: frozenset) -> float:
        return 0.9 if said & truth_claims(truth[f]) else 0.5

    cause = {f: truth_claims(t) for f, t in truth.items()} if causal else None
    return Bench(truth, split(list(truth), truth), sweep, texts, auroc, claims=claims, causal=cause)


def single_metrics(part: str = "test") -> dict[str, Any]:
    """One SAE world's metrics as evaluate writes them, trimmed to what the benchmark section reads (a copy of
    one computed per process: the bootstrap takes seconds)."""
    return copy.deepcopy(_single(part))


def pooled(seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Planted seeds pooled the way ``steer-agent eval --planted-seed 0-2`` pools them."""
    return copy.deepcopy(_pooled(seeds))


def quick_bench(b: Bench, part: str) -> dict[str, Any]:
    """run_bench with 200 bootstrap resamples instead of 2000: the report only formats the CIs."""
    import agent.eval.bench as B
    from agent.eval import stats

    with mock.patch.object(B, "cluster_ci", functools.partial(stats.cluster_ci, n_boot=200)), \
            mock.patch.object(B, "paired_diff", functools.partial(stats.paired_diff, n_boot=200)):
        return run_bench(b, part)


@functools.cache
def _single(part: str) -> dict[str, Any]:
    b = quick_bench(rich_bench(part), part)
    return {"world": {"model": MODEL, "revision": "local-1", "sae": SAE, "layer": 3, "scored": 32,
                      "excluded": EXCLUDED, "truth_auroc": b["gates"]["truth_auroc"]["value"]},
            "config": EvalConfig().to_dict(), "features": {"requested": 62, "n": 32}, "strengths": [1.0, 2.0],
            "hidden_norm": 1.0, "modes": {}, "bench": b, "gates": b["gates"], "floors": b["floors"],
            "diffs": b["diffs"], "digest": "0123456789abcdef"}


@functools.cache
def _pooled(seeds: tuple[int, ...]) -> dict[str, Any]:
    per_seed, benches = {}, {}
    for s in seeds:
        benches[s] = rich_bench(n=12 + 4 * s, causal=False)
        b = quick_bench(benches[s], "test")
        per_seed[s] = {"world": {"model": MODEL, "revision": "local-1", "sae": f"/home/alice/.cache/planted/seed-{s}",
                                 "layer": 3, "scored": 12 + 4 * s, "excluded": []},
                       "features": {"requested": 12 + 4 * s, "n": 12 + 4 * s}, "strengths": [1.0, 2.0],
                       "hidden_norm": 1.0, "bench": b, "diffs": b["diffs"], "digest": f"seed{s}"}
    bench, _ = pool(benches)
    return pooled_metrics(per_seed, quick_bench(bench, "test"), EvalConfig())


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells (header first)."""
    out: list[list[list[str]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            rows = [lines[i - 1]]
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(lines[j])
                j += 1
            out.append([[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows])
    return out


def table_with(text: str, header: str) -> list[list[str]]:
    found = [t for t in tables(text) if any(header in cell for cell in t[0])]
    assert found, f"no table with a {header!r} column"
    return found[0]


def test_the_report_shows_the_version_3_figures() -> None:
    m = single_metrics()
    b = m["bench"]
    text = render_markdown(m)
    section = text.split("## Benchmark: claim-level scores on the test split\n\n", 1)[1]
    assert section.startswith("> Test split: these figures are for the closing note; anything tunable reads dev")

    main = table_with(text, "causal F1 [95% CI]")
    assert main[0] == ["mode", "F1 [95% CI]", "precision", "recall", "exact", "AUROC", "causal F1 [95% CI]",
                       "error reduction"]
    rows = {r[0]: r for r in main[1:]}
    for mode, row in b["modes"].items():
        shown = rows[BENCH_NAMES[mode]]
        assert shown[1].startswith(f"{100 * row['f1']['mean']:.1f} [")
        assert shown[6].startswith(f"{100 * row['causal_f1']['mean']:.1f} [")
        assert shown[7] == f"{100 * row['error_reduction']:+.1f}%"
    assert rows["claim filter fitted on dev (steering signals)"] and \
        rows["claim filter fitted on dev (+ top-k and hybrid descriptions)"]

    floors = table_with(text, "skill")
    for name, row in b["floors"].items():
        shown = next(r for r in floors if r[0] == FLOOR_NAMES[name])
        assert shown[1].startswith(f"{100 * row['f1']['mean']:.1f} [") and shown[2] == f"{100 * row['skill']:+.1f}%"

    d = b["diffs"]["agent_vs_best_nonadaptive"]
    verdict = d["f1"]["verdict"]
    assert verdict in ("loses", "no clear difference", "wins")
    line = next(x for x in text.splitlines() if x.startswith("The agent against the best no-follow-up method"))
    assert f"(picked on dev: {BENCH_NAMES[d['baseline']]}): **{verdict}**." in line
    assert f"F1 difference {100 * d['f1']['mean']:+.1f} points" in line
    assert f"error reduction {100 * d['error_reduction']:+.1f}%" in line

    gate = b["gates"]["truth_auroc"]
    assert (f"Truth-AUROC gate (the true claims' mean simulation AUROC over the scored features): "
            f"{gate['value']:.3f}, bar >= 0.85: {'met' if gate['met'] else 'NOT met'}.") in text
    scored = next(x for x in text.splitlines() if x.startswith("Scored: "))
    assert "32 features with a true claim beyond the scene kind, active on at least 50 eval scenes; 30 left out: 100, 101," in scored
    assert "129." in scored and "more)" not in scored  # the report lists every feature left out

    fams = table_with(text, "colour (n=")
    assert fams[0][1:] == [f"colour (n={n})" for n in [b["modes"]["agent"]["recall_by_family"]["colour"]["n"]]] + \
        [f"shape (n={b['modes']['agent']['recall_by_family']['shape']['n']})"]
    agent = [r for r in fams if r[0] == BENCH_NAMES["agent"]][0]
    assert agent[1] == f"{100 * b['modes']['agent']['recall_by_family']['colour']['recall']:.0f}%"


def test_no_table_names_a_mode_by_its_internal_id() -> None:
    text = render_markdown(single_metrics())
    ids = set(MODES) | {"truth", "constant", "permuted", "random", "caption"}
    for table in tables(text):
        for row in table[1:]:
            assert row[0] not in ids, row
            assert not re.search(r"\((?:agent|oneshot|rule_\w+|filter\w*|topk|hybrid)\)", row[0]), row
    assert "best no-follow-up method = " in text and "best_nonadaptive" not in text


def test_the_dev_split_has_no_reminder_and_planted_features_no_causal_column() -> None:
    b = quick_bench(rich_bench("dev", causal=False), "dev")
    text = render_markdown({**single_metrics(), "bench": b})
    assert "## Benchmark: claim-level scores on the dev split" in text and "closing note" not in text
    assert "causal F1" not in text and "error reduction" in table_with(text, "F1 [95% CI]")[0]


def test_pooled_seeds_render_without_the_word_level_keys() -> None:
    m = pooled()
    for key in ("bar", "by_strength", "per_feature", "forced_choice", "controls", "planted_seed"):
        assert key not in m
    for lean in (m, {k: v for k, v in m.items() if k not in ("strengths", "hidden_norm", "digest")}):
        command = "steer-agent eval --planted-seed 0-2 --sae /home/alice/.cache/planted/seed-2"
        text = render_markdown(lean, command=command)
        assert text.startswith("# Explanation quality: planted features (seeds 0-2, pooled) in the bundled toy world")
        assert "no ground truth" not in text
    n = m["bench"]["n"]
    assert f"Planted seeds 0-2 pooled (3 seeds): {n} test features; CIs are clustered by seed and true value" in text
    seeds = table_with(text, "test features")
    assert [r[0] for r in seeds[1:]] == ["0", "1", "2"]
    for r in seeds[1:]:
        p = m["per_seed"][r[0]]
        assert r[1] == str(p["n_test"]) and r[2] == BENCH_NAMES[p["agent_vs_best_nonadaptive"]["baseline"]]
        assert r[5] == p["agent_vs_best_nonadaptive"]["f1"]["verdict"]
    assert "causal F1" not in text and "--sae" not in text and "--planted-seed 0-2" in text


def test_no_absolute_path_from_the_world_is_printed(tmp_path: Any) -> None:
    for m in (single_metrics(), pooled()):
        paths = {str(m["world"][k]) for k in ("model", "sae")} | {"/home/alice"}
        text = write_report(m, tmp_path / "rep", command=f"steer-agent eval --model {MODEL} --sae {SAE}",
                            plots=False).read_text()
        assert not [p for p in paths if p.startswith("/") and p in text]
        assert "/home/" not in text
    text = render_markdown(single_metrics())
    assert "# Explanation quality: `models/toy-gemma` with SAE `run-7/layer3`, layer 3" in text


@pytest.mark.parametrize("drop", ["recall_by_family", "error_reduction", "causal_f1", "skill", "truth_auroc"])
def test_a_metrics_file_from_before_version_3_still_renders(drop: str) -> None:
    """A guard, not a new behaviour: the committed reports of version 2 keep rendering (it passes on the old code)."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != drop and k != "agent_vs_best_nonadaptive"}
        return [strip(v) for v in x] if isinstance(x, list) else x

    m = strip(single_metrics())
    m["world"] = {k: m["world"][k] for k in ("model", "sae", "layer")}
    text = render_markdown(m)
    assert "## Benchmark: claim-level scores on the test split" in text
    assert "The agent against the best no-follow-up method" not in text and "Scored: " not in text


@pytest.mark.parametrize(("agent", "verdict"), [("a large black striped square", "loses"),
                                                ("{}", "no clear difference")])
def test_the_standing_says_the_verdict_plainly(agent: str, verdict: str) -> None:
    from agent.eval.report_bench import standing

    b = _bench(agent)
    line = standing(b)
    assert line is not None and line.startswith(
        "The agent against the best no-follow-up method (picked on dev: one-shot steering at the dev-chosen "
        f"strength): **{verdict}**.")
    assert standing(b, md=False).count("**") == 0
    assert standing({**b, "diffs": {}}) is None


def test_the_scored_line_says_why_each_feature_is_left_out_and_planted_needs_no_support() -> None:
    from agent.eval.report_bench import scored_line

    sae = scored_line({"world": {"scored": 2, "excluded": [7, 9], "excluded_why": {"7": "support", "9": "kind only"}}})
    assert "7 (support), 9 (kind only)" in sae and "active on at least 50" in sae
    planted = scored_line({"planted_seeds": [0, 1], "world": {"scored": 80, "excluded": []}})
    assert "80 planted features" in planted and "eval scenes" not in planted
