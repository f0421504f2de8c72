"""Torch-free test doubles for the TUI: an engine whose features name known words, a record factory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.probes import Probe, ProbeResult
from steering.errors import FeatureOutOfRangeError

CONCEPTS = ("red", "circle", "striped", "green", "triangle", "dotted", "blue", "square")
BASELINE = "nothing, the image is empty and white."
STRENGTHS = (5.0, 10.0, 20.0, 40.0)


@dataclass
class FakeSAE:
    d_sae: int = 64

    def check_feature(self, f: int) -> int:
        if not 0 <= f < self.d_sae:
            raise FeatureOutOfRangeError(f"feature {f} is out of range: this SAE has features 0-{self.d_sae - 1}")
        return f


class FakeEngine:
    """Feature f names CONCEPTS[f % 8] from strength ``onset``; random directions say 'a grey blob'."""

    def __init__(self, d_sae: int = 64, onset: float = 10.0, delay: float = 0.0, model: str = "fake-vlm") -> None:
        self.sae = FakeSAE(d_sae)
        self.onset = onset
        self.delay = delay
        self.model = model
        self.calls: list[list[Probe]] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        """When set, run() waits for it (tests watch a run in flight)."""

    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.model, "revision": None, "sae": "fake-sae", "layer": 1,
                "prompts": ["vlm_describe@v1", "vlm_ask@v1"], "generation": {"max_new_tokens": 8}}

    def hidden_norm(self, base_image: str = "white") -> float:
        return 10.0

    def text(self, p: Probe, i: int) -> str:
        if p.is_baseline:
            return BASELINE
        if p.direction == "random":
            return "a grey blob" if p.strength >= self.onset else BASELINE
        if p.strength < self.onset:
            return BASELINE
        c = CONCEPTS[p.feature % len(CONCEPTS)]
        if p.prompt == "ask":
            return f"It is {c}."
        return f"a {c} shape" if p.strength < 4 * self.onset else f"the colour {c} filling the whole image"

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        for p in probes:
            if p.feature is not None:
                self.sae.check_feature(p.feature)
        with self.lock:
            self.calls.append(list(probes))
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        out = []
        for p in probes:
            r = ProbeResult(probe=p, texts=tuple(self.text(p, i) for i in range(p.samples)),
                            n_tokens=tuple(6 for _ in range(p.samples)),
                            kl_first=0.0 if p.is_baseline else round(p.strength / 10, 3))
            if on_result:
                on_result(r)
            out.append(r)
        return out


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
    from agent.config import RunConfig, SweepConfig
    from agent.runner import run_features

    config = RunConfig(sweep=SweepConfig(strengths=STRENGTHS, background=2))
    return run_features(engine, judge or scripted_judge(), store, list(features), config)
