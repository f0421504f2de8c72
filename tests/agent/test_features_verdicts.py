"""Feature lists, verdict validation and reply parsing."""

from __future__ import annotations

import json

import pytest

from agent.run.features import FeatureSpecError, format_features, parse_features
from agent.judges.scripted import final_reply, probe_reply
from agent.judges.verdicts import VerdictError, parse_verdict


@pytest.mark.parametrize("spec, n, expected", [
    ("0-3", None, [0, 1, 2, 3]),
    ("0-2,7, 5,1", None, [0, 1, 2, 5, 7]),
    ("all", 4, [0, 1, 2, 3]),
    (" 42 ", 100, [42]),
])
def test_parse_features(spec: str, n: int | None, expected: list[int]) -> None:
    assert parse_features(spec, n) == expected


@pytest.mark.parametrize("spec, n, message", [
    ("", None, "empty"),
    ("3-1", None, "backwards"),
    ("a-b", None, "bad feature list item"),
    ("all", None, "needs to know"),
    ("0-10", 8, "8, 9, 10 are out of range"),
    ("-4", None, "bad feature list item"),
])
def test_parse_features_errors(spec: str, n: int | None, message: str) -> None:
    with pytest.raises(FeatureSpecError, match=message):
        parse_features(spec, n)


def test_format_features_round_trips() -> None:
    ids = [0, 1, 2, 5, 7, 8, 100]
    assert format_features(ids) == "0-2,5,7-8,100"
    assert parse_features(format_features(ids)) == ids


def test_valid_verdicts_parse_from_plain_fenced_and_chatty_text() -> None:
    final = json.dumps(final_reply(label="red colour field"))
    for text in (final, f"```json\n{final}\n```", f"Sure! Here it is:\n{final}\nHope that helps."):
        v = parse_verdict(text)
        assert v.action == "final" and v.label == "red colour field"
    v = parse_verdict(json.dumps(probe_reply([10, 20])))
    assert v.action == "probe" and [p.strength for p in v.probes] == [10, 20]


@pytest.mark.parametrize("reply, message", [
    ("", "empty"),
    ("not json at all", "not a JSON object"),
    ('{"hypothesis": "x", "confidence": 0.5, "action": "final"', "not a JSON object"),
    ("[1, 2]", "not an object"),
    (json.dumps({**final_reply(), "confidence": 1.5}), "confidence"),
    (json.dumps({**final_reply(), "label": "red"}), "2-5 words"),
    (json.dumps({**final_reply(), "explanation": None}), "explanation"),
    (json.dumps({**probe_reply([]), "probes": []}), "at least one"),
    (json.dumps({**final_reply(), "action": "maybe"}), "action"),
    (json.dumps(probe_reply(["strong"])), "strength"),  # out-of-bounds values are dropped: tests/agent/test_probe_bounds.py
])
def test_invalid_verdicts_say_what_is_wrong(reply: str, message: str) -> None:
    with pytest.raises(VerdictError, match=message):
        parse_verdict(reply)


def test_validation_context_enforces_budget() -> None:
    with pytest.raises(VerdictError, match="must be 'final'"):
        parse_verdict(json.dumps(probe_reply([1])), {"force_final": True})
    with pytest.raises(VerdictError, match="at most 1 probes"):
        parse_verdict(json.dumps(probe_reply([1, 2])), {"max_probes": 1})
    over = parse_verdict(json.dumps(probe_reply([1], samples=5)), {"max_samples": 2})  # dropped, not re-asked
    assert not over.probes and [d.problem for d in over.dropped] == ["samples 5 is outside 1..2"]
    with pytest.raises(VerdictError, match="do not exist"):
        parse_verdict(json.dumps(final_reply(evidence=[99])), {"evidence_ids": {1, 2}})


def test_a_percentage_confidence_is_read_as_a_share_and_nonsense_still_fails() -> None:
    reply = final_reply()
    assert parse_verdict(json.dumps({**reply, "confidence": 80})).confidence == 0.8
    assert parse_verdict(json.dumps({**reply, "confidence": 0.3})).confidence == 0.3
    for bad in (-0.5, 1.5, 250):
        with pytest.raises(VerdictError, match="confidence"):
            parse_verdict(json.dumps({**reply, "confidence": bad}))


def test_the_constrained_schema_enumerates_samples_and_this_rounds_evidence() -> None:
    from agent.judges.verdicts import constrained_schema

    probe, final = constrained_schema(3, evidence_ids={4, 1, 2})["oneOf"]
    assert probe["properties"]["probes"]["items"]["properties"]["samples"] == {"type": "integer", "enum": [1, 2, 3]}
    assert final["properties"]["evidence"]["items"] == {"type": "integer", "enum": [1, 2, 4]}
    only_final = constrained_schema(3, force_final=True, evidence_ids=range(1000))
    assert only_final["properties"]["evidence"]["items"] == {"type": "integer", "minimum": 0}  # too many: a range


def test_a_raw_control_character_inside_a_string_is_read() -> None:
    """Gemma 3 270M behind llama.cpp wrote a raw newline inside the hypothesis: valid otherwise."""
    text = json.dumps(final_reply()).replace('"hypothesis": "', '"hypothesis": "line one\nline two ', 1)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert parse_verdict(text).hypothesis.startswith("line one\nline two")
