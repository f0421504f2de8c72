"""The per-feature loop with a scripted judge: hypothesis -> probes -> final, re-asks, budgets, failures."""

from __future__ import annotations

import json
import re

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.judges import JudgeCallError, JudgeQuotaError, LLMJudge
from agent.judges.scripted import ScriptedChat, final_reply, probe_reply
from agent.run import run_features
from agent.store.store import Store
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=0))


def cfg(**kw) -> RunConfig:
    return RunConfig(**{**CFG.__dict__, **kw})


def feature_of(messages: list[dict[str, str]]) -> int:
    return int(re.search(r"Feature (\d+)\.", messages[1]["content"]).group(1))


def test_hypothesis_probes_final(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat([probe_reply([10, 40], hypothesis="maybe red"), final_reply(evidence=[2, 6])])
    summary = run_features(fake_engine, LLMJudge(chat), store, [0], CFG)
    r = store.get_record(0)
    assert summary.exit_code == 0 and r.status == "done" and r.rounds == 2
    assert r.label == "red colour" and r.explanation.startswith("The feature makes")
    assert [t["kind"] for t in r.transcript] == ["sweep", "verdict", "probes", "verdict"]
    assert r.transcript[1]["hypothesis"] == "maybe red" and r.transcript[1]["action"] == "probe"
    strengths = [e["result"]["probe"]["strength"] for e in r.evidence]
    assert strengths == [0.0, 5.0, 20.0, 80.0, 80.0, 10.0, 40.0]  # baseline, sweep, control, requested
    assert [e["role"] for e in r.evidence][:5] == ["baseline", "steered", "steered", "steered", "control"]
    # The second call carries the first verdict and the new evidence.
    second = chat.calls[1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert json.loads(second[2]["content"])["hypothesis"] == "maybe red"
    assert "#6 steered, strength 10" in second[3]["content"] and "the colour red" in second[3]["content"]
    assert r.usage["total_tokens"] == 200 and r.judge["backend"]["kind"] == "scripted"


def test_invalid_reply_is_reasked_with_the_error(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat(["I think it is red!", json.dumps({**final_reply(), "label": "red"}), final_reply()])
    run_features(fake_engine, LLMJudge(chat), store, [0], CFG)
    r = store.get_record(0)
    assert r.status == "done" and r.transcript[-1]["attempts"] == 3
    assert "not a JSON object" in chat.calls[1][-1]["content"]
    assert "2-5 words" in chat.calls[2][-1]["content"]
    assert chat.calls[2][-2] == {"role": "assistant", "content": json.dumps({**final_reply(), "label": "red"})}


def test_reply_still_invalid_after_two_reasks_fails_and_keeps_raw(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat(["nope", "still nope", '{"hypothesis": "red"}'])
    summary = run_features(fake_engine, LLMJudge(chat), store, [0], CFG)
    r = store.get_record(0)
    assert summary.exit_code == 1 and len(chat.calls) == 3
    assert r.status == "failed" and r.raw_reply == '{"hypothesis": "red"}'
    assert r.explanation is None and r.label is None and "no valid verdict after 3 replies" in r.error


def test_round_budget_forces_a_final(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat([probe_reply([10]), probe_reply([12]), final_reply()])
    run_features(fake_engine, LLMJudge(chat), store, [0], cfg(max_rounds=2))
    r = store.get_record(0)
    assert "Give your final answer now" in chat.calls[1][-1]["content"]
    assert "must be 'final'" in chat.calls[2][-1]["content"]  # the probe request was re-asked
    assert r.status == "done" and r.forced and r.rounds == 2


def test_probe_budget_forces_a_final(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat([probe_reply([10, 12]), final_reply()])
    run_features(fake_engine, LLMJudge(chat), store, [0], cfg(max_probes=2))
    assert "Give your final answer now" in chat.calls[1][-1]["content"]
    assert store.get_record(0).forced


def test_feature_token_budget_forces_a_final(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat([probe_reply([10]), final_reply()], tokens_per_call=500)
    run_features(fake_engine, LLMJudge(chat), store, [0], cfg(max_feature_tokens=400))
    assert "Give your final answer now" in chat.calls[1][-1]["content"]


def test_run_token_budget_stops_new_features(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat(lambda m: final_reply(), tokens_per_call=100)
    summary = run_features(fake_engine, LLMJudge(chat), store, list(range(6)), cfg(budget_tokens=250, in_flight=1))
    assert summary.stop_reason == "budget" and summary.exit_code == 1
    assert [f for f, s in summary.statuses.items() if s == "done"] == [0, 1, 2]
    assert summary.statuses[5] == "not-started" and store.features() == [0, 1, 2]


def test_call_error_fails_one_feature_and_the_run_goes_on(fake_engine: FakeEngine, store: Store) -> None:
    def script(messages):
        return JudgeCallError("500 after 6 attempts") if feature_of(messages) == 1 else final_reply()

    summary = run_features(fake_engine, LLMJudge(ScriptedChat(script)), store, [0, 1, 2], CFG)
    assert summary.statuses == {0: "done", 1: "failed", 2: "done"} and summary.exit_code == 1
    assert "500 after 6 attempts" in store.get_record(1).error and store.get_record(1).explanation is None


def test_quota_error_stops_the_run_cleanly(fake_engine: FakeEngine, store: Store) -> None:
    def script(messages):
        return JudgeQuotaError("quota exhausted") if feature_of(messages) >= 2 else final_reply()

    summary = run_features(fake_engine, LLMJudge(ScriptedChat(script)), store, list(range(5)), cfg(in_flight=1))
    assert summary.stop_reason == "quota" and "quota exhausted" in summary.fatal_error
    assert store.features() == [0, 1] and summary.statuses[4] == "not-started"


def test_finished_judge_calls_come_from_the_store(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat(lambda m: probe_reply([10]) if len(m) == 2 else final_reply())
    run_features(fake_engine, LLMJudge(chat), store, [0, 1], CFG)
    assert len(chat.calls) == 4
    store.delete_record(0)  # e.g. a crash before the record was written
    replay = ScriptedChat(lambda m: pytest.fail("a finished judge call was repeated"))
    run_features(fake_engine, LLMJudge(replay), store, [0, 1], CFG)
    r = store.get_record(0)
    assert r.status == "done" and all(t.get("cached", True) for t in r.transcript if t["kind"] == "verdict")
    # --rejudge asks again.
    again = ScriptedChat(lambda m: final_reply(label="another answer"))
    run_features(fake_engine, LLMJudge(again), store, [0], cfg(rejudge=True))
    assert len(again.calls) == 1 and store.get_record(0).label == "another answer"
