"""What the TUI runs on: agent.world and agent.judges under the app's names, and a locked engine holder (no torch)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from agent.judges import JudgeConfig, JudgeFatalError, build_judge
from agent.judges import check_judge as agent_check
from agent.session import judge_error
from agent.probes import Probe, ProbeResult
from agent.world import ChoiceError, Engine, EngineFactory, WorldSpec
from agent.world import Engines as WorldEngines

__all__ = ["INJECTED", "JUDGE_KINDS", "Engine", "EngineFactory", "Engines", "JudgeFactory", "JudgeSpec",
           "LockedEngine", "SetupError", "WorldSpec", "check_judge", "make_judge_for"]

SetupError = ChoiceError
"""A choice on the setup screen cannot work; ``field`` names the input to fix (agent.world.ChoiceError)."""
JudgeSpec = JudgeConfig
"""Which judge reads the evidence (agent.judges.JudgeConfig; kind ``injected``: the judge given to create_app)."""
JudgeFactory = Callable[[JudgeSpec], Any]

JUDGE_KINDS = ("offline", "openai")
INJECTED = "injected"
"""JudgeSpec.kind of the judge handed to create_app (a scripted judge in tests)."""


def make_judge_for(spec: JudgeSpec) -> Any:
    """The default judge factory (raises SetupError naming the fix)."""
    try:
        return build_judge(spec)
    except JudgeFatalError as exc:
        raise judge_error(exc) from None


def check_judge(judge: Any, timeout: float = 3.0) -> None:
    """The judge's own check (agent.judges.check_judge: an OpenAI endpoint must answer a TCP connect),
    as a SetupError pointing at the judge URL field."""
    try:
        agent_check(judge, timeout=timeout)
    except JudgeFatalError as exc:
        raise judge_error(exc) from None


class LockedEngine:
    """One engine shared by a run and manual probes: its calls never overlap (hooks are per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.RLock()

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        with self.lock:
            return self.engine.run(probes, on_result=on_result)

    def fingerprint(self) -> dict[str, Any]:
        return self.engine.fingerprint()

    def hidden_norm(self, base_image: str = "white") -> float:
        from agent.run.strengths import hidden_norm

        with self.lock:
            return hidden_norm(self.engine, base_image)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class Engines(WorldEngines):
    """agent.world.Engines for the app: local paths checked before loading, one LockedEngine per world."""

    def wrap(self, engine: Engine) -> LockedEngine:
        return LockedEngine(engine)

    def check(self, spec: WorldSpec) -> None:
        spec.check_paths()
        super().check(spec)

    def get(self, spec: WorldSpec) -> LockedEngine:
        """The engine for ``spec``, loading it if needed (blocking: call from a worker thread)."""
        if not self.loaded(spec):
            spec.check_paths()
        return super().get(spec)
