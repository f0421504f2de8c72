"""A judge's probe requests are held to the bounds a user's flags are: an out-of-bounds request is dropped
and the judge reads why in its next round; the feature goes on instead of failing after three re-asks."""

from __future__ import annotations

import argparse
import json

import pytest

from agent.cli.args import parse_strengths
from agent.run.config import RunConfig, SweepConfig
from agent.judges import LLMJudge
from agent.judges.notes import note_questions
from agent.judges.offline import OfflineJudge
from agent.judges.scripted import ScriptedChat, final_reply, probe_reply
from agent.probes import BASE_IMAGES
from agent.run import run_features
from agent.store.store import Store
from agent.run.strengths import MAX_STRENGTH
from agent.judges.verdicts import MAX_QUESTION_CHARS, ProbeRequest, Verdict, parse_verdict
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=0))
LONG_QUESTION = "Is it " + "very " * 998 + "red?"  # 5,000 characters
BAD = {  # a request out of bounds -> the problem the judge is told
    "strength": ({"strength": 1e9}, "strength 1e+09 is outside 0..1e+06"),
    "infinite": ({"strength": float("inf")}, "strength inf is not a finite number"),
    "negative": ({"strength": -1}, "strength -1 is outside 0..1e+06"),
    "huge integer": ({"strength": 10 ** 400}, "strength inf is not a finite number"),
    "samples": ({"samples": 10000}, "samples 10000 is outside 1..4"),
    "question": ({"question": LONG_QUESTION}, "a question of 5000 characters is longer than 200"),
    "base image": ({"base_image": "/etc/passwd"}, "base image '/etc/passwd' is not one of white, black, noise, "
                                                  "object-a/-b/-c, outline-<circle|square|triangle|cross>-<small|large>"),
}


def with_bad(*bad: dict) -> dict:
    """A probe verdict asking for strength 10 and, after it, one request per ``bad`` override."""
    reply = probe_reply([10])
    good = reply["probes"][0]
    reply["probes"] += [{**good, **b} for b in bad]
    return reply


@pytest.mark.parametrize("name", list(BAD))
def test_an_out_of_bounds_request_is_dropped_and_the_others_kept(name: str) -> None:
    request, problem = BAD[name]
    v = parse_verdict(json.dumps(with_bad(request)), {"max_samples": 4, "max_probes": 5})
    assert [p.strength for p in v.probes] == [10]
    assert [d.problem for d in v.dropped] == [problem]
    assert len(v.dropped[0].line()) < 200  # a 5,000-character value is quoted short
    assert "dropped" not in v.model_dump()  # the verdict's JSON stays what the judge wrote


def test_a_verdict_whose_every_request_is_dropped_is_still_read() -> None:
    v = parse_verdict(json.dumps({**with_bad(BAD["samples"][0]), "probes": [BAD["samples"][0] | {"strength": 3}]}),
                      {"max_samples": 4})
    assert v.action == "probe" and not v.probes and len(v.dropped) == 1
    reply = json.dumps({**probe_reply([10]), "dropped": [{"asked": "x", "problem": "y"}]})
    assert parse_verdict(reply).dropped == []  # never read from a reply


def test_the_bounds_are_the_cli_flags_bounds() -> None:
    """One definition: a strength the CLI refuses is dropped, one it accepts is kept; the same base images."""
    for s in (0.0, MAX_STRENGTH):
        assert parse_strengths(f"{s}") == [s]
        assert Verdict(hypothesis="h", confidence=0.5, action="probe", probes=[ProbeRequest(strength=s)]).probes
    over = MAX_STRENGTH * 1.5
    with pytest.raises(argparse.ArgumentTypeError):
        parse_strengths(f"{over}")
    v = Verdict(hypothesis="h", confidence=0.5, action="probe", probes=[ProbeRequest(strength=over)])
    assert not v.probes and v.dropped  # built by a judge in code (the offline one), not parsed: the same bound
    assert set(ProbeRequest.model_json_schema()["properties"]["base_image"]["enum"]) == set(BASE_IMAGES)


def test_dropped_requests_reach_the_judge_and_the_feature_completes(fake_engine: FakeEngine, store: Store) -> None:
    chat = ScriptedChat([with_bad(*(request for request, _ in BAD.values())), final_reply()])
    summary = run_features(fake_engine, LLMJudge(chat), store, [0], CFG)
    r = store.get_record(0)
    assert summary.exit_code == 0 and r.status == "done" and r.rounds == 2 and len(chat.calls) == 2
    requested = [e["result"]["probe"] for e in r.evidence if e["round"] == 2]
    assert [(p["strength"], p["samples"], p["base_image"]) for p in requested] == [(10.0, 1, "white")]
    probes = next(t for t in r.transcript if t["kind"] == "probes")
    assert probes["probes"] == ["f0 s=10"] and len(probes["dropped"]) == len(BAD)
    verdict = next(t for t in r.transcript if t["kind"] == "verdict")
    assert [d["problem"] for d in verdict["dropped"]] == [problem for _, problem in BAD.values()]
    second_round = chat.calls[1][-1]["content"]
    assert "Not run, because a value is out of bounds" in second_round
    for _, problem in BAD.values():
        assert problem in second_round
    assert LONG_QUESTION not in second_round and "/etc/passwd" in second_round
    assert "Not run" not in chat.calls[0][-1]["content"]


def test_a_round_of_only_dropped_requests_goes_on_to_the_next(fake_engine: FakeEngine, store: Store) -> None:
    only_bad = {**probe_reply([10]), "probes": [probe_reply([1e9])["probes"][0]]}
    chat = ScriptedChat([only_bad, final_reply()])
    run_features(fake_engine, LLMJudge(chat), store, [0], CFG)
    r = store.get_record(0)
    assert r.status == "done" and r.rounds == 2 and len(chat.calls) == 2  # no re-ask
    assert not [e for e in r.evidence if e["round"] == 2]
    assert "strength 1e+09 is outside 0..1e+06" in chat.calls[1][-1]["content"]


def test_a_note_question_longer_than_a_probe_may_ask_is_not_asked(fake_engine: FakeEngine, store: Store) -> None:
    note = f"ask: {LONG_QUESTION} and look at the shape"
    assert note_questions(note) == ["What shape is the highlighted element?"]
    assert note_questions("ask: is it " + "x" * (MAX_QUESTION_CHARS - 12) + "?")  # at the bound: asked
    run_features(fake_engine, OfflineJudge(), store, [0], RunConfig(**{**CFG.__dict__, "note": note}))
    r = store.get_record(0)
    assert r.status == "done", r.error
