"""What the TUI runs on: world and judge choices, the engine holder, judge checks (no textual, no torch)."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.probes import Probe, ProbeResult

Engine = Any
"""Something with ``run(probes, on_result=)``, ``fingerprint()`` and ``sae.d_sae`` (SteeringEngine has them)."""
EngineFactory = Callable[["WorldSpec"], Engine]
JudgeFactory = Callable[["JudgeSpec"], Any]

JUDGE_KINDS = ("offline", "openai")
INJECTED = "injected"
"""JudgeSpec.kind of the judge handed to create_app (a scripted judge in tests)."""


class SetupError(Exception):
    """A choice on the setup screen cannot work; ``field`` names the input to fix."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class WorldSpec:
    """Which model, SAE and layer to steer (None model and SAE: the bundled toy world)."""

    model: str | None = None
    """VLM hub id or local folder."""
    sae: str | None = None
    """SAE folder, decoder file or hub path."""
    layer: int | None = None
    """Vision-encoder layer (None: from the SAE config)."""
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int | None = None
    batch_size: int | None = None
    decode: str = "auto"
    """``auto``, ``hf`` or ``fast`` (see steer-agent --decode)."""
    no_compile: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorldSpec:
        return cls(model=args.model, sae=args.sae, layer=args.layer, revision=args.revision, device=args.device,
                   dtype=args.dtype, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                   decode=getattr(args, "decode", "auto"), no_compile=getattr(args, "no_compile", False))

    @classmethod
    def from_world(cls, world: dict[str, Any] | None, base: WorldSpec | None = None) -> WorldSpec:
        """The spec that reloads the world a store was made for (keeping ``base``'s device settings)."""
        base = base or cls()
        if not world:
            return base
        return replace(base, model=world.get("model"), sae=world.get("sae"), layer=world.get("layer"),
                       revision=world.get("revision"))

    def namespace(self) -> argparse.Namespace:
        """The parsed-options form agent.options.build_engine reads."""
        return argparse.Namespace(model=self.model or None, sae=self.sae or None, layer=self.layer,
                                  revision=self.revision, device=self.device, dtype=self.dtype,
                                  max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                  decode=self.decode, no_compile=self.no_compile)

    def resolved(self) -> tuple[str, str]:
        """(model, SAE) with the toy world filled in; raises SetupError naming the fix."""
        from agent.options import SteeringError, resolve_model_and_sae

        try:
            return resolve_model_and_sae(self.namespace())
        except SteeringError as exc:
            raise SetupError(str(exc), field="model") from None

    def check_paths(self) -> None:
        """Cheap checks before loading anything: local paths that do not exist."""
        for field, value, what in (("model", self.model, "model folder"), ("sae", self.sae, "SAE path")):
            if value and value.startswith((".", "/", "~")) and not Path(value).expanduser().exists():
                raise SetupError(f"{what} {value} does not exist: pass a hub id or an existing path", field=field)

    def describe(self) -> str:
        model = self.model or "toy world"
        sae = self.sae or ("toy SAE" if not self.model else "?")
        layer = "auto" if self.layer is None else str(self.layer)
        return f"{Path(model).name or model} · {Path(sae).name or sae} · layer {layer}"


@dataclass(frozen=True)
class JudgeSpec:
    """Which judge reads the evidence."""

    kind: str = "offline"
    """offline, openai, or ``injected`` (the judge given to create_app)."""
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 6


def load_engine(spec: WorldSpec) -> Engine:
    """The default engine factory: load model + SAE as steer-agent does (imports torch; call in a worker)."""
    from agent.options import build_engine

    return build_engine(spec.namespace())


def make_judge_for(spec: JudgeSpec) -> Any:
    """The default judge factory (raises SetupError naming the fix)."""
    from agent.judges import JudgeFatalError, make_judge

    try:
        return make_judge(spec.kind, model=spec.model or None, base_url=spec.base_url or None,
                          api_key_env=spec.api_key_env, timeout=spec.timeout, retries=spec.retries)
    except JudgeFatalError as exc:
        raise SetupError(str(exc), field="judge") from None


def check_judge(judge: Any, timeout: float = 3.0) -> None:
    """The judge's own check (agent.judges.check_judge: an OpenAI endpoint must answer a TCP connect),
    as a SetupError pointing at the judge URL field."""
    from agent.judges import JudgeFatalError, JudgeUnreachable
    from agent.judges import check_judge as agent_check

    try:
        agent_check(judge, timeout=timeout)
    except JudgeUnreachable as exc:
        raise SetupError(str(exc), field="judge_url") from None
    except JudgeFatalError as exc:
        raise SetupError(str(exc), field="judge") from None


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
        from agent.scale import hidden_norm

        with self.lock:
            return hidden_norm(self.engine, base_image)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class Engines:
    """Loads an engine once per world and hands out the same (locked) one to every caller."""

    def __init__(self, factory: EngineFactory | None = None, engine: Engine | None = None,
                 spec: WorldSpec | None = None) -> None:
        self.factory = factory or load_engine
        self._lock = threading.Lock()
        self._key: WorldSpec | None = spec if engine is not None else None
        self._engine: LockedEngine | None = LockedEngine(engine) if engine is not None else None

    def loaded(self, spec: WorldSpec) -> bool:
        return self._engine is not None and self._key == spec

    def get(self, spec: WorldSpec) -> LockedEngine:
        """The engine for ``spec``, loading it if needed (blocking: call from a worker thread)."""
        with self._lock:
            if self._engine is None or self._key != spec:
                spec.check_paths()
                self._engine = LockedEngine(self.factory(spec))
                self._key = spec
            return self._engine

    def n_features(self, spec: WorldSpec) -> int | None:
        if not self.loaded(spec):
            return None
        d = getattr(getattr(self._engine, "sae", None), "d_sae", None)
        return int(d) if d is not None else None
