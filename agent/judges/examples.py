"""Worked examples of activation tests for the LLM judge's prompt, built from real toy-world runs on the
benchmark's dev split (never its test split).

Each example is one feature's story, shortened: part of its opening sweep, a reply asking for tests, the
tests' results (``ActivationTestResult.line()``, numbered as the loop numbers them) and the final reply they
support. The ``render`` example is shown to a judge that may ask for render tests, the ``edit`` example to
one that may only ask for edit tests, none to a judge that may ask for neither (judge_system.j2).

Regenerate (CPU, a few minutes; writes ``prompts/judge_examples.json``, bump ``VERSION`` when the format
or the choice rules change)::

    python -m agent.judges.examples

How a feature is chosen: the dev features (``steering.toy.gates.split(scored, truth, 0)["dev"]``) whose
tests, read by the rule below, name exactly their true claims (render) or at least two true claims and
nothing else (edit, where at least one edit leaves the activation standing); among those, the one whose
steered descriptions name the most values the truth lacks, so that the example shows tests correcting
steering. The rule: a rendered value is claimed when it fills at least ``TOP`` of the top
scenes and wins at least ``WINS`` of the paired scenes; an edit that drops the top images' activation by
at least ``DROP`` makes its family needed, and the value steering names in that family is claimed.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VERSION = 1
"""The examples' format and choice rules (part of the judge's identity, with the file's content hash)."""
EXAMPLES_FILE = "judge_examples.json"
"""The committed examples, in the ``prompts`` package beside the templates that show them."""
TOP, WINS, DROP = 0.5, 0.8, 0.5
"""The choice rule's thresholds (module docstring)."""
SWEEP_SHOWN = (1, 3, 6)
"""Positions of the steered probes of the opening sweep an example shows (of the default seven)."""
TEXT_CHARS = 50
"""A sweep description shown in an example is cut to this many characters."""
CANDIDATES = 12
"""Dev features swept per example kind (the first, in dev order, whose tests pass the rule)."""
EDIT_FAMILY = {"desaturate": "colour", "hue": "colour", "blur": "pattern", "rescale": "size"}
"""The claim family whose information an edit removes (mask: context, no family)."""
EDIT_DONE = {"desaturate": "desaturated", "hue": "hue-rotated", "blur": "blurred", "rescale": "shrunk",
             "mask": "cut to where it fires"}
"""An edit as the example's explanation says it."""


# ----------------------------------------------------------------------------- reading (cheap, no torch)

@lru_cache(maxsize=1)
def load_examples() -> dict[str, Any]:
    """The committed examples: ``{"version", "examples": {"render": {...}, "edit": {...}}}`` (empty when the
    file is missing: the prompt then shows none)."""
    path = resources.files("prompts") / EXAMPLES_FILE
    if not path.is_file():
        return {"version": VERSION, "examples": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def example_for(kinds: Sequence[str]) -> dict[str, Any] | None:
    """The example a judge that may ask for ``kinds`` of tests is shown: render where it may render, else
    edit where it may edit, else none."""
    examples = load_examples().get("examples", {})
    for kind in ("render", "edit"):
        if kind in kinds and kind in examples:
            return examples[kind]
    return None


def examples_ref() -> str:
    """``judge_examples@v1:<hash>``: the examples' version and content, for the judge's identity."""
    import hashlib

    text = json.dumps(load_examples(), sort_keys=True)
    return f"judge_examples@v{load_examples().get('version', VERSION)}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def reply_json(verdict: dict[str, Any]) -> str:
    """A verdict as the example shows it: compact JSON, a test request without its empty keys (they default)."""
    tests = [{k: v for k, v in t.items() if v not in (None, [])} for t in verdict.get("tests", [])]
    return json.dumps({**verdict, "tests": tests}, separators=(",", ":"))


# ----------------------------------------------------------------------------- building (the toy world)

def dev_features(seed: int = 0) -> tuple[list[int], dict[int, Any]]:
    """The benchmark's dev features of the shipped toy world, and its truth."""
    from steering import toy
    from steering.toy import claims, gates
    from steering.toy import truth as toy_truth

    truth = toy_truth.load(toy.sae_dir())
    scored = claims.scored_features(truth, sorted(truth))[0]
    return gates.split(scored, truth, seed)["dev"], truth


def _sweep(engine: Any, features: Sequence[int]) -> dict[int, list[Any]]:
    """Each feature's opening sweep as a real run makes it (offline judge, one round, no tests): its
    evidence items, numbered as the loop numbers them."""
    from agent.judges import make_judge
    from agent.judges.evidence import EvidenceItem
    from agent.run import run_features
    from agent.run.config import RunConfig
    from agent.store.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store") as store:
        run_features(engine, make_judge("offline"), store, list(features), RunConfig(max_rounds=1, max_tests=0))
        out = {}
        for f in features:
            record = store.get_record(f)
            out[f] = [EvidenceItem.from_dict(d) for d in (record.evidence if record else [])]
        return out


def _steering_claims(items: Sequence[Any]) -> Counter:
    """How many steered descriptions name each (family, value)."""
    from steering.toy.claims import parse_claims

    named: Counter = Counter()
    for i in items:
        if i.role == "steered":
            for text in i.result.texts:
                named.update(parse_claims(text))
    return named


def _steering_phrase(items: Sequence[Any]) -> tuple[str, list[str]]:
    """What the steered descriptions name most (one value per family), as words, and those values."""
    from agent.judges.hypotheses import phrase

    best: dict[str, str] = {}
    for (fam, v), _ in _steering_claims(items).most_common():
        best.setdefault(fam, v)
    found = [(fam, v) for fam, v in best.items() if fam != "kind"]
    return phrase(found), [v for _, v in found]


def _sweep_lines(items: Sequence[Any]) -> list[str]:
    from agent.judges.evidence import item_view

    steered = [i for i in items if i.role == "steered"]
    shown = [i for i in items if i.role == "baseline"]
    shown += [steered[k] for k in SWEEP_SHOWN if k < len(steered)]
    shown += [i for i in items if i.role == "control"]
    lines = []
    for i in shown:
        view = item_view(i)
        text = view["texts"][0] if view["texts"] else ""
        text = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 3] + "..."
        kl = f" (KL {view['kl']})" if view["kl"] is not None else ""
        lines.append(f'#{i.id} {view["title"]}{kl}: "{text}"')
    return lines


def _render_claims(results: Sequence[Any]) -> list[tuple[str, str]]:
    from steering.activation_tests import family_values

    out = []
    for r in results:
        if r.error is None and r.peak > 0:
            out += [(str(r.test.family), v) for v in family_values(str(r.test.family))
                    if r.top_share.get(v, 0.0) >= TOP and r.wins.get(v, 0.0) >= WINS]
    return out


def _needed(results: Sequence[Any]) -> set[str]:
    """The claim families whose edits drop the activation by at least DROP."""
    return {EDIT_FAMILY[str(r.test.edit)] for r in results
            if r.error is None and str(r.test.edit) in EDIT_FAMILY and r.values.get("before", 0.0) > 0
            and r.values.get("after", 0.0) <= (1 - DROP) * r.values["before"]}


def _edit_claims(results: Sequence[Any], named: Counter) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in results:
        before, after = r.values.get("before", 0.0), r.values.get("after", 0.0)
        family = EDIT_FAMILY.get(str(r.test.edit))
        if r.error is None and family and before > 0 and after <= (1 - DROP) * before:
            said = [(c, n) for c, n in named.most_common() if c[0] == family]
            if said and said[0][0] not in out:
                out.append(said[0][0])
    return out


def _render_example(feature: int, items: Sequence[Any], results: Sequence[Any],
                    found: list[tuple[str, str]]) -> dict[str, Any]:
    from agent.judges.evidence import TestItem
    from agent.judges.hypotheses import evidence_line, phrase
    from agent.judges.labels import make_label

    first = 1 + max(i.id for i in items)
    tests = [TestItem(id=first + k, round=2, result=r) for k, r in enumerate(results)]
    said, named = _steering_phrase(items)
    rejected = [v for v in named if v not in {v for _, v in found}]
    what = phrase(found)
    explanation = (f"This feature fires on {what}: in rendered scenes that differ in one attribute only, "
                   f"{evidence_line(tests, found)}" + (f"; {' and '.join(rejected)}, which steering named, "
                                                       f"do not decide it." if rejected else "."))
    values = [v for fam, v in found if fam != "kind"]
    cited = sorted({t.id for t in tests if any(t.result.test.family == fam for fam, _ in found)})
    ask = {"hypothesis": f"H1: {said} (steering) vs H2: only some of these values make it fire",
           "confidence": 0.4, "action": "probe", "probes": [],
           "tests": [{"kind": "render", "family": r.test.family, "hold": [], "edit": None,
                      "reason": f"which {r.test.family}"} for r in results],
           "explanation": None, "label": None, "evidence": []}
    final = {"hypothesis": f"tests: {what}", "confidence": 0.8, "action": "final", "probes": [], "tests": [],
             "explanation": explanation,
             "label": make_label(values, explanation, field=("kind", "field") in found),
             "evidence": cited}
    return {"kind": "render", "feature": feature, "split": "dev", "claims": [list(c) for c in found],
            "sweep": _sweep_lines(items), "ask": ask,
            "results": [f"#{t.id} {t.result.line()}" for t in tests], "final": final}


def _edit_example(feature: int, items: Sequence[Any], results: Sequence[Any],
                  found: list[tuple[str, str]]) -> dict[str, Any]:
    from agent.judges.hypotheses import phrase
    from agent.judges.labels import make_label

    first = 1 + max(i.id for i in items)
    ids = {str(r.test.edit): first + k for k, r in enumerate(results)}

    def change(r: Any) -> str:
        before, after = r.values["before"], r.values["after"]
        return f"{(after - before) / before:+.0%}, #{ids[str(r.test.edit)]}"

    needed = [f"{r.test.edit} {change(r)}" for r in results
              if r.values.get("after", 0.0) <= (1 - DROP) * r.values.get("before", 0.0)]
    kept_words = [f"{EDIT_DONE[str(r.test.edit)]} ({change(r)})" for r in results
                  if r.values.get("after", 0.0) > (1 - DROP) * r.values.get("before", 0.0)]
    said, _ = _steering_phrase(items)
    what = phrase(found + [("kind", "object")]) if not any(f == "kind" for f, _ in found) else phrase(found)
    explanation = (f"This feature fires on {what}: its top images lose their activation when edited "
                   f"({'; '.join(needed)}) but keep it when {' or '.join(kept_words)}.")
    cited = sorted(ids[str(r.test.edit)] for r in results if EDIT_FAMILY.get(str(r.test.edit)) in
                   {f for f, _ in found})
    ask = {"hypothesis": f"H1: {said} (steering) vs H2: only some of these values make it fire",
           "confidence": 0.4, "action": "probe", "probes": [],
           "tests": [{"kind": "edit", "family": None, "hold": [], "edit": r.test.edit,
                      "reason": "does it need this?"} for r in results],
           "explanation": None, "label": None, "evidence": []}
    final = {"hypothesis": f"edits: {what}", "confidence": 0.7, "action": "final", "probes": [], "tests": [],
             "explanation": explanation, "label": make_label([v for _, v in found], explanation),
             "evidence": cited}
    return {"kind": "edit", "feature": feature, "split": "dev", "claims": [list(c) for c in found],
            "sweep": _sweep_lines(items), "ask": ask,
            "results": [f"#{ids[str(r.test.edit)]} {r.line()}" for r in results], "final": final}


def build(seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Run the toy world on its dev features and choose one render and one edit example (module docstring)."""
    from agent.world import WorldSpec, load_engine
    from steering.activation_tests import (
        EDITS,
        RENDER_FAMILIES,
        ActivationTest,
        engine_tester,
    )
    from steering.topk import build_toy_topk
    from steering.toy.claims import truth_claims

    dev, truth = dev_features(seed)
    engine = load_engine(WorldSpec(device=device))
    with tempfile.TemporaryDirectory() as tmp:
        tester = engine_tester(engine, build_toy_topk(Path(tmp) / "topk"))
        render, edit = {}, {}
        for f in dev:
            true = truth_claims(truth[f])
            opened = tester.run([ActivationTest(f, "render", family) for family in RENDER_FAMILIES])
            if set(_render_claims(opened)) == true and len(render) < CANDIDATES:
                render[f] = opened
            edited = tester.run([ActivationTest(f, "edit", edit=e) for e in EDITS])
            if len(edit) < CANDIDATES and 2 <= len(_needed(edited)) and _needed(edited) <= {fam for fam, _ in true}:
                edit[f] = edited
    log.info("candidates on the dev split: render %s, edit %s", sorted(render), sorted(edit))
    sweeps = _sweep(engine, sorted(set(render) | set(edit)))
    out: dict[str, Any] = {}

    def misled(f: int) -> int:
        """How many values the feature's steered descriptions name that its truth lacks."""
        return sum(1 for c in _steering_claims(sweeps[f]) if c not in truth_claims(truth[f]) and c[0] != "kind")

    ranked = sorted(render, key=lambda f: (-misled(f), -len(truth_claims(truth[f])), f))
    if ranked:
        f = ranked[0]
        out["render"] = _render_example(f, sweeps[f], render[f], _render_claims(render[f]))
    edits = {f: _edit_claims(r, _steering_claims(sweeps[f])) for f, r in edit.items()}
    good = [f for f, found in edits.items() if len(found) >= 2 and set(found) <= truth_claims(truth[f])
            and f != out.get("render", {}).get("feature") and _needed(edit[f]) != {"colour", "pattern", "size"}]
    if good:  # an edit that keeps the activation shows the contrast: every family needed shows none
        f = min(good, key=lambda f: (-misled(f), -len(edits[f]), f))
        out["edit"] = _edit_example(f, sweeps[f], edit[f], edits[f])
    return {"version": VERSION, "source": f"toy world, dev split (seed {seed}): python -m agent.judges.examples",
            "examples": out}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.judges.examples", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(str(resources.files("prompts") / EXAMPLES_FILE)),
                        help="where to write the examples (default: the prompts package's judge_examples.json)")
    parser.add_argument("--seed", type=int, default=0, help="the benchmark split's seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = build(args.seed, args.device)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    chosen = ", ".join(f"{k}: feature {v['feature']}" for k, v in data["examples"].items()) or "none"
    print(f"wrote {args.out} ({chosen})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
