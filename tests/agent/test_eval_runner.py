"""The evaluation runner on a torch-free fake world: modes, controls, caching, reproducibility."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.eval.cache import EvalCache
from agent.eval.config import EvalConfig
from agent.eval.control import RandomDirectionEngine
from agent.eval.forced_choice import LLMChooser
from agent.eval.runner import Inputs, evaluate
from agent.judges import LLMJudge
from agent.judges.scripted import ScriptedChat, final_reply
from agent.probes import Probe
from tests.agent.eval_fakes import BagOfWordsEmbedder
from tests.agent.fakes import CONCEPTS, FakeEngine

FAMILY = {"red": "colour", "green": "colour", "blue": "colour", "circle": "shape", "triangle": "shape",
          "square": "shape", "striped": "pattern", "dotted": "pattern"}
MODES = ("oneshot", "offline", "random", "permuted", "forced-choice")


def fake_truth(n: int = 24, pure: int = 16) -> dict[int, dict]:
    """Feature f stands for the fake engine's concept of f; features past ``pure`` are impure."""
    return {f: {"family": FAMILY[CONCEPTS[f % 8]], "value": CONCEPTS[f % 8], "purity": 1.0 if f < pure else 0.5}
            for f in range(n)}


def run_eval(tmp: Path, modes=MODES, **inputs) -> dict:
    with EvalCache(tmp / "cache") as cache:
        inp = Inputs(engine=inputs.pop("engine", FakeEngine()), cache=cache, features=list(range(24)),
                     truth=fake_truth(), embedder=BagOfWordsEmbedder(), **inputs)
        return evaluate(inp, EvalConfig(modes=modes, seed=3))


def test_random_direction_engine_swaps_only_target_features() -> None:
    inner = FakeEngine()
    eng = RandomDirectionEngine(inner, targets=[1, 2])
    probes = [Probe(None), Probe(1, 20.0), Probe(5, 20.0), Probe(2, 20.0, direction="random")]
    seen = []
    results = eng.run(probes, on_result=seen.append)
    sent = inner.calls[0]
    assert sent[0] == probes[0] and sent[2] == probes[2] and sent[3] == probes[3]
    assert sent[1].direction == "random" and sent[1].feature == 1 and sent[1].seed != probes[1].seed
    assert [r.probe for r in results] == probes  # the loop sees what it asked for
    assert results[1].texts == ("a grey blob",) and results[1].extra["control_of"] == 1
    assert results[2].texts == ("a dotted shape",)
    assert [r.probe for r in seen] == probes
    assert eng.fingerprint() != inner.fingerprint()


def test_fake_world_scores_and_bar(tmp_path: Path) -> None:
    m = run_eval(tmp_path)
    assert m["features"]["n"] == 16  # only the pure ones
    assert m["strengths"] == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0]  # 0.5..4 x the fake hidden norm 10
    by = {r["strength"]: r["word"]["rate"] for r in m["by_strength"]["oneshot"]}
    assert by[5.0] == 0.0 and by[10.0] == 1.0  # below and past the fake features' onset
    assert m["modes"]["oneshot-best"]["strength"] == 10.0  # the lowest of the tied best
    assert m["modes"]["offline"]["word"]["rate"] == 1.0
    assert m["modes"]["offline"]["embedding"]["rate"] == 1.0
    assert m["controls"]["random-offline"]["word"]["rate"] == 0.0
    assert m["controls"]["oneshot-random-max"]["word"]["rate"] == 0.0
    assert m["controls"]["permuted"]["offline"]["word"]["rate"] <= 0.25
    assert set(m["modes"]["offline"]["by_family"]) == {"colour", "shape", "pattern"}
    # The bar: the fake world's one-shot steering is already perfect, so the margin is not met.
    assert m["bar"]["pipeline_ok"] and m["bar"]["controls_ok"] and not m["bar"]["margin_ok"] and not m["bar"]["met"]
    fc = m["forced_choice"]["embedding"]
    # f and f + 8 share a concept: a trial holding both is a coin toss, anything else is right.
    assert fc["offline"]["accuracy"]["rate"] >= 0.75 and m["forced_choice"]["chance"] == pytest.approx(1 / 3)
    cost = m["cost"]["offline"]
    assert cost["done"] == 16 and cost["rounds"]["max"] <= 4 and cost["tokens"]["total"] == 0
    assert len(cost["per_feature"]) == 16
    json.dumps(m)  # JSON-able


def test_rerun_answers_from_the_cache_and_reproduces_the_digest(tmp_path: Path) -> None:
    first = run_eval(tmp_path)
    engine = FakeEngine()
    again = run_eval(tmp_path, engine=engine)
    assert again["digest"] == first["digest"]
    # Only the offline judge's own fresh verdicts: every probe came from the cache.
    assert engine.calls == []
    fresh = run_eval(tmp_path / "other")
    assert fresh["digest"] == first["digest"]  # reproducible from the seed, not from the cache


def test_llm_pipeline_and_llm_reader(tmp_path: Path) -> None:
    def judge_script(messages: list[dict[str, str]]) -> dict:
        f = int(re.search(r"Feature (\d+)\.", messages[1]["content"]).group(1))
        c = CONCEPTS[f % 8]
        return final_reply(explanation=f"Steering makes the model name {c}.", label=f"the {c} concept", hypothesis=c)

    def reader_script(messages: list[dict[str, str]]) -> dict:
        text = messages[0]["content"]
        word = text.split('"')[1].rstrip(".").split()[-1]
        sets = text.split("Set ")[1:]
        return {"choice": next((i + 1 for i, s in enumerate(sets) if word in s), 1), "reason": "x"}

    chat = ScriptedChat(judge_script)
    reader = ScriptedChat(reader_script)
    m = run_eval(tmp_path, modes=("llm", "permuted", "forced-choice"), llm_judge=LLMJudge(chat),
                 chooser=LLMChooser(reader))
    assert m["modes"]["llm"]["word"]["rate"] == 1.0
    assert m["cost"]["llm"]["tokens"]["total"] == 16 * 100 and m["cost"]["llm"]["rounds"]["mean"] == 1
    assert m["forced_choice"]["llm"]["llm"]["accuracy"]["rate"] >= 0.75
    assert "oneshot-best" not in m["modes"] and "offline" not in m["modes"]
    n_calls = len(chat.calls)
    run_eval(tmp_path, modes=("llm",), llm_judge=LLMJudge(chat))
    assert len(chat.calls) == n_calls  # finished LLM records are resumed, not asked again


def test_no_ground_truth_measures_forced_choice_only(tmp_path: Path) -> None:
    with EvalCache(tmp_path / "c") as cache:
        inp = Inputs(engine=FakeEngine(), cache=cache, features=list(range(10)), truth=None,
                     embedder=BagOfWordsEmbedder())
        m = evaluate(inp, EvalConfig(modes=("offline", "forced-choice")))
    assert "bar" not in m and m["modes"] == {}
    assert m["forced_choice"]["embedding"]["offline"]["accuracy"]["n"] == 10
    assert m["per_feature"][0]["texts"]["offline"]


def test_no_pure_feature_is_an_error(tmp_path: Path) -> None:
    with EvalCache(tmp_path / "c") as cache:
        inp = Inputs(engine=FakeEngine(), cache=cache, features=[20, 21], truth=fake_truth())
        with pytest.raises(ValueError, match="pure"):
            evaluate(inp, EvalConfig(modes=("oneshot",)))
