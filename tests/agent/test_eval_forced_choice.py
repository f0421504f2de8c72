"""Forced choice: trials, the embedding reader on synthetic data, the LLM reader over a scripted chat."""

from __future__ import annotations

import json

import pytest

import prompts
from agent.eval.forced_choice import (
    LLMChooser,
    forced_choice,
    make_trials,
    parse_choice,
    render_messages,
)
from agent.judges.scripted import ScriptedChat
from tests.agent.eval_fakes import BagOfWordsEmbedder

CONCEPTS = ["red", "blue", "green", "circle", "striped", "dotted", "square", "yellow", "cross", "purple"]
BASE = "nothing, the image is empty and white."


def synthetic(n: int = 10) -> tuple[list[int], dict[int, list[str]]]:
    """Feature f's steered descriptions name CONCEPTS[f] (and the baseline at low strength)."""
    feats = list(range(n))
    texts = {f: [BASE, f"a {CONCEPTS[f]} field", f"the colour {CONCEPTS[f]} filling the whole image"] for f in feats}
    return feats, texts


def test_trials_are_seeded_per_feature_and_hold_the_answer() -> None:
    feats = list(range(20))
    trials = make_trials(feats, feats, 2, seed=3)
    assert len(trials) == 20
    for t in trials:
        assert len(set(t.options)) == 3 and t.feature in t.options
        assert t.options[t.answer - 1] == t.feature
    assert make_trials(feats, feats, 2, seed=3) == trials
    # A trial does not depend on which other features are evaluated.
    assert make_trials([7], feats, 2, seed=3) == [t for t in trials if t.feature == 7]
    # The right answer is not always in the same place.
    assert len({t.answer for t in trials}) == 3
    assert make_trials([0], [0, 1], 2, seed=0) == []  # not enough distractors


def test_embedding_reader_beats_chance_with_good_explanations_and_not_with_empty_ones() -> None:
    feats, texts = synthetic()
    trials = make_trials(feats, feats, 2, seed=0)
    emb = BagOfWordsEmbedder()
    good = forced_choice(trials, {f: f"Steering makes the model say {CONCEPTS[f]}." for f in feats}, texts, emb)
    assert good["accuracy"]["hits"] == 10 and good["chance"] == pytest.approx(1 / 3)
    none = forced_choice(trials, {f: None for f in feats}, texts, emb)
    assert none["accuracy"]["hits"] == 0 and none["unanswered"] == 10
    shuffled = forced_choice(trials, {f: f"about {CONCEPTS[(f + 1) % 10]}" for f in feats}, texts, emb)
    assert shuffled["accuracy"]["hits"] < good["accuracy"]["hits"]


def test_parse_choice() -> None:
    assert parse_choice('{"choice": 2, "reason": "red"}', 3) == 2
    assert parse_choice('Sure! ```json\n{"choice": 3, "reason": "x"}\n```', 3) == 3
    for bad in ('{"choice": 4, "reason": ""}', "set 2", '{"choice": "two"}', '{"reason": "x"}'):
        with pytest.raises(ValueError):
            parse_choice(bad, 3)


def test_prompt_is_pinned() -> None:
    t = prompts.load("judge_forced_choice")
    text = render_messages("red things", [["a red field"], ["blue"], [BASE]])[0]["content"]
    assert t.version == 1
    assert text.startswith("A vision model was steered along 3 different internal features")
    assert '"red things"' in text and "Set 1:\n- a red field" in text and "Set 3:\n- " + BASE in text
    assert text.endswith('{"choice": <the set\'s number, 1 to 3>, "reason": "<one short sentence>"}')


class MemoCache:
    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get_judge_call(self, key: str) -> dict | None:
        return self.data.get(key)

    def put_judge_call(self, key: str, value: dict) -> None:
        self.data[key] = value


def oracle(messages: list[dict[str, str]]) -> str:
    """Picks the set that contains the explanation's last word; answers once in prose first per prompt."""
    text = messages[0]["content"]
    word = text.split('"')[1].rstrip(".").split()[-1]
    sets = text.split("Set ")[1:]
    choice = next((i + 1 for i, s in enumerate(sets) if word in s), 1)
    return json.dumps({"choice": choice, "reason": f"mentions {word}"})


def test_llm_reader_over_a_scripted_chat_and_its_cache() -> None:
    feats, texts = synthetic()
    trials = make_trials(feats, feats, 2, seed=1)
    chat = ScriptedChat(oracle)
    cache = MemoCache()
    reader = LLMChooser(chat, cache=cache)
    res = forced_choice(trials, {f: f"the feature means {CONCEPTS[f]}" for f in feats}, texts, reader)
    assert res["accuracy"]["hits"] == 10 and len(chat.calls) == 10
    assert reader.tokens == 1000 and reader.calls == 10
    again = forced_choice(trials, {f: f"the feature means {CONCEPTS[f]}" for f in feats}, texts,
                          LLMChooser(chat, cache=cache))
    assert again["accuracy"] == res["accuracy"] and len(chat.calls) == 10  # all from the cache


def test_llm_reader_reasks_once_then_gives_up() -> None:
    feats, texts = synthetic(3)
    trials = make_trials(feats, feats, 2, seed=0)[:1]
    chat = ScriptedChat(["I think the second one.", json.dumps({"choice": trials[0].answer, "reason": "x"})])
    res = forced_choice(trials, {f: "x" for f in feats}, texts, LLMChooser(chat))
    assert res["accuracy"]["hits"] == 1 and len(chat.calls) == 2
    assert "could not be used" in chat.calls[1][-1]["content"]
    chat = ScriptedChat(["no", "still no"])
    res = forced_choice(trials, {f: "x" for f in feats}, texts, LLMChooser(chat))
    assert res["accuracy"]["hits"] == 0 and res["unanswered"] == 1
