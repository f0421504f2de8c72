"""Torch-free test doubles for the TUI: an engine whose features name known words, a record factory."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from tests.agent.fakes import BASELINE, CONCEPTS, FakeSAE
from tests.agent.fakes import FakeEngine as _FakeEngine

__all__ = ["BASELINE", "CONCEPTS", "STRENGTHS", "FakeEngine", "FakeSAE", "fill_store", "scripted_judge"]

STRENGTHS = (5.0, 10.0, 20.0, 40.0)
# The TUI's fake world has no revision (as a local folder without a hash would).
FakeEngine = partial(_FakeEngine, revision=None)


def scripted_judge() -> Any:
    """An LLM judge over a scripted chat: feature f is 'the colour CONCEPTS[f % 8]', in one round.

    Tests use it instead of the offline judge so that what they pin does not move with its heuristics.
    """
    import re

    from agent.judges import LLMJudge
    from agent.judges.scripted import ScriptedChat, final_reply

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        found = re.findall(r"Feature (\d+)\.", " ".join(m["content"] for m in messages))
        concept = CONCEPTS[int(found[-1]) % len(CONCEPTS)] if found else "nothing"
        return final_reply(explanation=f"Steering makes the model describe something {concept}.",
                           label=f"{concept} mentions", confidence=0.8, hypothesis=f"{concept}")

    return LLMJudge(ScriptedChat(reply, model="script"))


def fill_store(store: Any, engine: FakeEngine, features: Sequence[int], judge: Any = None) -> Any:
    """Explain ``features`` into ``store`` (with the scripted judge unless given one; no UI)."""
    from agent.run.config import RunConfig, SweepConfig
    from agent.run import run_features

    config = RunConfig(sweep=SweepConfig(strengths=STRENGTHS, background=2))
    return run_features(engine, judge or scripted_judge(), store, list(features), config)
