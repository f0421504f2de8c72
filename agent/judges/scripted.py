"""A chat backend that replays scripted replies: for tests, demos and the TUI's test harness."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agent.judges.base import JudgeCallError, Usage
from agent.judges.llm import Completion

Reply = str | dict[str, Any] | Exception
Script = Sequence[Reply] | Callable[[list[dict[str, str]]], Reply]


class ScriptedChat:
    """Answers each call with the next scripted reply (or what a function of the messages returns).

    A dict reply is sent as its JSON; an exception is raised as the call's failure. Every call's
    messages are kept in ``calls``.
    """

    def __init__(self, script: Script, model: str = "scripted", json_mode: str = "text",
                 tokens_per_call: int = 100) -> None:
        self.script = script
        self.model = model
        self._mode = json_mode
        self.tokens_per_call = tokens_per_call
        self.calls: list[list[dict[str, str]]] = []

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "model": self.model}

    @property
    def json_mode(self) -> str:
        return self._mode

    def use_text_mode(self) -> None:
        self._mode = "text"

    async def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None) -> Completion:
        self.calls.append(messages)
        if callable(self.script):
            reply = self.script(messages)
        else:
            i = len(self.calls) - 1
            if i >= len(self.script):
                raise JudgeCallError(f"scripted judge ran out of replies after {len(self.script)} calls")
            reply = self.script[i]
        if isinstance(reply, Exception):
            raise reply
        text = reply if isinstance(reply, str) else json.dumps(reply)
        half = self.tokens_per_call // 2
        return Completion(text=text, usage=Usage(prompt_tokens=half, completion_tokens=half, calls=1),
                          model=self.model)


def probe_reply(strengths: Sequence[float], hypothesis: str = "something", confidence: float = 0.4,
                **probe: Any) -> dict[str, Any]:
    """A valid 'probe' verdict asking for ``strengths``."""
    return {"hypothesis": hypothesis, "confidence": confidence, "action": "probe",
            "probes": [{"strength": s, "samples": 1, "question": None, "base_image": "white", "control": False,
                        "reason": "check", **probe} for s in strengths],
            "explanation": None, "label": None, "evidence": []}


def final_reply(explanation: str = "The feature makes the model describe a red colour field.",
                label: str = "red colour", confidence: float = 0.8, evidence: Sequence[int] = (),
                hypothesis: str = "red") -> dict[str, Any]:
    """A valid 'final' verdict."""
    return {"hypothesis": hypothesis, "confidence": confidence, "action": "final", "probes": [],
            "explanation": explanation, "label": label, "evidence": list(evidence)}
