"""What a run steers: the one WorldSpec, the one world comparison (same_world) and load_engine(spec)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Re-exported (see __all__): what loading a world raises, so front ends need not import steering.
from steering.errors import SteeringError
from steering.revisions import content_revision, is_local_revision, local_path

if TYPE_CHECKING:
    from steering.engine import SteeringEngine

__all__ = ["CHOICE_KEYS", "WORLD_KEYS", "ChoiceError", "Engines", "SteeringError", "WorldFacts", "WorldSpec",
           "check_world", "load_engine", "same_world", "toy_defaults", "wanted_world", "world_differences", "world_of"]

Engine = Any
"""Something with ``run(probes, on_result=)``, ``fingerprint()`` and ``sae.d_sae`` (SteeringEngine has them)."""
EngineFactory = Callable[["WorldSpec"], Engine]

WORLD_KEYS = ("model", "revision", "sae", "sae_revision", "layer")
"""What a store's records belong to: the model (and its revision), the SAE (and the fingerprint of its
files, steering.revisions), and the layer."""
CHOICE_KEYS = ("model", "sae", "layer", "revision")
"""What a person chooses of a world (the rest is resolved or fingerprinted from it)."""


class ChoiceError(Exception):
    """A choice (world, judge, store, features) cannot work; ``field`` names the input to fix."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class WorldSpec:
    """Which model, SAE and layer to steer, and how to load them (None model and SAE: the bundled toy world)."""

    model: str | None = None
    """VLM hub id or local folder."""
    sae: str | None = None
    """SAE folder, decoder file or hub path."""
    layer: int | None = None
    """Vision-encoder layer (None: from the SAE config)."""
    revision: str | None = None
    """Hub revision of the model (branch, tag or commit)."""
    device: str = "auto"
    """cpu, cuda or cuda:N (auto: cuda when available)."""
    dtype: str = "auto"
    """bf16, fp16 or fp32 (auto: bf16 on CUDA, fp32 on CPU)."""
    max_new_tokens: int | None = None
    """Answer length cap (None: the engine's default)."""
    batch_size: int | None = None
    """Rows per generate call (None: sized from free GPU memory)."""
    decode: str = "auto"
    """``auto``, ``hf`` or ``fast`` (see steer-agent --decode)."""
    no_compile: bool = False
    """Never torch.compile the fast decode step."""

    @classmethod
    def from_world(cls, world: Mapping[str, Any] | None, base: WorldSpec | None = None) -> WorldSpec:
        """The spec that reloads the world a store was made for (keeping ``base``'s device settings)."""
        base = base or cls()
        if not world:
            return base
        return replace(base, model=world.get("model"), sae=world.get("sae"), layer=world.get("layer"),
                       revision=world.get("revision"))

    def resolved(self) -> tuple[str, str]:
        """(model, SAE) the spec names, the toy world filling in; local paths made absolute, so that
        ``--sae ./sae`` run from two folders names two SAEs (and two default stores), not one.
        Raises SteeringError naming the fix."""
        if self.model and self.sae:
            return _absolute(self.model), _absolute(self.sae)
        defaults = toy_defaults()
        if self.model and not self.sae:
            raise SteeringError("--model was given without --sae: pass the SAE trained on that model's vision encoder")
        if defaults is None:
            raise SteeringError("the bundled toy world is not installed: pass --model and --sae")
        if self.sae and not self.model:
            return defaults[0], _absolute(self.sae)
        return defaults

    def identity(self) -> dict[str, Any] | None:
        """The world keys this choice names, resolved and fingerprinted without loading anything (cheap:
        steering.revisions); a layer or revision left open stays None. None: it names no world (a model
        without an SAE)."""
        try:
            model, sae = self.resolved()
        except SteeringError:
            return None
        model_path, sae_path = local_path(model), local_path(sae)
        revision = self.revision or (content_revision(model_path) if model_path and model_path.is_dir() else None)
        return {"model": model, "revision": revision, "sae": sae, "layer": self.layer,
                "sae_revision": content_revision(sae_path) if sae_path else None}

    def check_paths(self) -> None:
        """Cheap checks before loading anything: local paths that do not exist (raises ChoiceError)."""
        for field, value, what in (("model", self.model, "model folder"), ("sae", self.sae, "SAE path")):
            if value and value.startswith((".", "/", "~")) and not Path(value).expanduser().exists():
                raise ChoiceError(f"{what} {value} does not exist: pass a hub id or an existing path", field=field)

    def describe(self) -> str:
        model = self.model or "toy world"
        sae = self.sae or ("toy SAE" if not self.model else "?")
        layer = "auto" if self.layer is None else str(self.layer)
        return f"{Path(model).name or model} · {Path(sae).name or sae} · layer {layer}"


def toy_defaults() -> tuple[str, str] | None:
    """(model folder, SAE folder) of the bundled toy world, when it is installed."""
    try:
        from steering import toy
    except ImportError:
        return None
    if not toy.is_available():
        return None
    return str(toy.model_dir()), str(toy.sae_dir())


def _absolute(spec: str) -> str:
    """An existing local path as an absolute one; a hub id as given."""
    path = local_path(spec)
    return str(path) if path is not None else spec


def world_differences(held: Mapping[str, Any], want: Mapping[str, Any], *, wildcards: bool = False) -> list[str]:
    """The world keys on which ``want`` names another model, SAE or layer than ``held`` (empty: the same).

    A local model or SAE is what its files hold: two content fingerprints decide, whatever the folders
    (a world copied to another clone is the same world; an SAE retrained in place is another). Without
    fingerprints on both sides, the names (and the model's hub revision) decide. wildcards: a value
    ``want`` leaves as None (no layer or revision asked for) matches any.
    """
    def differs(key: str) -> bool:
        if wildcards and want.get(key) is None:
            return False
        return held.get(key) != want.get(key)

    diff: list[str] = []
    local = is_local_revision(held.get("revision")) and is_local_revision(want.get("revision"))
    diff += [k for k in (("revision",) if local else ("model", "revision")) if differs(k)]
    fingerprinted = held.get("sae_revision") is not None and want.get("sae_revision") is not None
    diff += [k for k in (("sae_revision",) if fingerprinted else ("sae",)) if differs(k)]
    if differs("layer"):
        diff.append("layer")
    return diff


def world_of(engine: Engine) -> dict[str, Any]:
    """The world keys of a loaded engine (its fingerprint's)."""
    fp = engine.fingerprint()
    return {k: fp.get(k) for k in WORLD_KEYS}


def wanted_world(choice: WorldSpec | Mapping[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(the world keys ``choice`` names, whether its open keys match any): a world dict (a loaded engine's,
    world_of) is exact, as Store.bind_world compares it; a WorldSpec is resolved without loading anything
    and leaves what it does not choose open."""
    if isinstance(choice, Mapping):
        return dict(choice), False
    return choice.identity(), True


def same_world(choice: WorldSpec | Mapping[str, Any] | None, held: Mapping[str, Any] | None, **values: Any) -> bool:
    """Whether ``choice`` names the world a store was made for (``held``: its ``world()``), by the rule
    Store.bind_world applies (world_differences), without loading anything.

    ``choice`` is a WorldSpec, a world dict (an engine's world_of: compared exactly) or None; keywords
    give plain values instead or on top, e.g. ``same_world(None, store.world(), model="org/m",
    sae="org/s", layer=16)``. No model and SAE mean the bundled toy world; no layer or revision
    matches any. A choice that names no world (a model without an SAE) matches none. Local folders are
    fingerprinted from their files (cheap: steering.revisions), so an SAE retrained in place is
    another world, and a copied one the same.
    """
    unknown = set(values) - set(CHOICE_KEYS)
    if unknown:
        raise TypeError(f"same_world() got unexpected keywords {sorted(unknown)}: use {', '.join(CHOICE_KEYS)}")
    if isinstance(choice, Mapping) and values:
        raise TypeError("same_world() takes keywords with a WorldSpec or None, not with a world dict")
    if not held:
        return False
    if not isinstance(choice, Mapping):
        base = choice or WorldSpec()
        choice = replace(base, **{k: values.get(k, getattr(base, k)) or None for k in CHOICE_KEYS})
    want, wildcards = wanted_world(choice)
    return want is not None and not world_differences(held, want, wildcards=wildcards)


@dataclass(frozen=True)
class WorldFacts:
    """What the checks before loading learnt of a world (None: not known until it loads)."""

    n_features: int | None
    """The SAE's number of latents."""
    layer: int | None
    """The layer to steer (--layer, else the SAE's)."""
    n_layers: int | None
    """The vision encoder's depth."""


def check_world(spec: WorldSpec) -> WorldFacts:
    """Everything about ``spec`` that configs and file headers can tell, checked before any weights load:
    the paths, device, dtype and sizes, the model's config and weight files, the SAE's size and layer
    against the encoder's depth (imports torch, reads no weights; raises SteeringError in one line)."""
    from steering.errors import LayerOutOfRangeError, ModelLoadError
    from steering.models import resolve_device, resolve_dtype
    from steering.preflight import inspect_model, inspect_sae

    model_id, sae_id = spec.resolved()
    for name, value in (("max_new_tokens", spec.max_new_tokens), ("batch_size", spec.batch_size)):
        if value is not None and value < 1:
            raise ModelLoadError(f"{name.replace('_', '-')} is {value}: give a whole number of at least 1")
    if spec.layer is not None and spec.layer < 0:
        raise LayerOutOfRangeError(f"layer {spec.layer} is negative: pass --layer 0 or more")
    resolve_device(spec.device)
    if spec.dtype != "auto":
        resolve_dtype(spec.dtype)
    model = inspect_model(model_id, spec.revision)
    sae = inspect_sae(sae_id, spec.layer)
    n_layers = model.n_layers if model else None
    layer = sae.layer if sae else spec.layer
    if sae is not None and layer is None:
        raise LayerOutOfRangeError(f"SAE {sae_id} names no layer: pass --layer")
    if layer is not None and n_layers is not None and not 0 <= layer < n_layers:
        raise LayerOutOfRangeError(f"layer {layer} is out of range: the vision encoder has layers 0-{n_layers - 1}")
    return WorldFacts(sae.d_sae if sae else None, layer, n_layers)


def load_engine(spec: WorldSpec) -> SteeringEngine:
    """Load model + SAE as ``spec`` says and return a ready engine (checks first with check_world;
    imports torch; raises SteeringError)."""
    import torch

    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm, resolve_device
    from steering.sae import load_sae

    check_world(spec)
    model_id, sae_id = spec.resolved()
    device = resolve_device(spec.device)
    dtype = spec.dtype if spec.dtype != "auto" else ("bf16" if device.startswith("cuda") else "fp32")
    vlm = load_vlm(model_id, dtype=dtype, device=device, revision=spec.revision)
    sae = load_sae(sae_id, layer=spec.layer, d_in=vlm.vision.width, device=device, dtype=torch.float32)
    gen = GenerationSettings()
    if spec.max_new_tokens:
        gen.max_new_tokens = spec.max_new_tokens
    if spec.batch_size:
        gen.batch_size = spec.batch_size
    gen.decode = spec.decode or "auto"
    if spec.no_compile:
        gen.compile_decode = False
    return SteeringEngine(vlm, sae, layer=spec.layer, settings=gen)


class Engines:
    """Loads an engine once per world and hands out the same one to every caller (thread-safe).

    Front ends adapt it by overriding ``check`` (cheap checks before loading) and ``wrap`` (what
    callers get instead of the bare engine: the TUI's is locked, runs and manual probes share it).
    """

    def __init__(self, factory: EngineFactory | None = None, engine: Engine | None = None,
                 spec: WorldSpec | None = None) -> None:
        self.factory = factory or load_engine
        self._lock = threading.Lock()
        self._key: WorldSpec | None = spec if engine is not None else None
        self._engine: Engine | None = self.wrap(engine) if engine is not None else None
        self._facts: dict[WorldSpec, WorldFacts] = {}

    def wrap(self, engine: Engine) -> Engine:
        """What callers get for a loaded engine (the engine itself)."""
        return engine

    def check(self, spec: WorldSpec) -> None:
        """Cheap checks of a spec before loading it (check_world; raises SteeringError): that it names a
        world, that a hub id can be fetched (offline: said at once, not after the hub's retries), and what
        the files tell (the SAE's size answers n_features until the engine loads). A custom factory's world
        (tests, benches) is only resolved."""
        spec.resolved()
        if self.factory is not load_engine:
            return
        from agent.hub import hub_problem

        for field, value in (("model", spec.model), ("sae", spec.sae)):
            problem = hub_problem(value, "SAE" if field == "sae" else "model")
            if problem:
                raise ChoiceError(problem, field=field)
        self._facts[spec] = check_world(spec)

    def loaded(self, spec: WorldSpec) -> bool:
        return self._engine is not None and self._key == spec

    def get(self, spec: WorldSpec) -> Engine:
        """The engine for ``spec``, loading it if needed (blocking: call from a worker thread in a UI)."""
        with self._lock:
            if self._engine is None or self._key != spec:
                self._engine = self.wrap(self.factory(spec))
                self._key = spec
            return self._engine

    def n_features(self, spec: WorldSpec) -> int | None:
        """The SAE's width when ``spec``'s engine is loaded, else what check() read of it, else None."""
        if not self.loaded(spec):
            facts = self._facts.get(spec)
            return facts.n_features if facts else None
        d = getattr(getattr(self._engine, "sae", None), "d_sae", None)
        return int(d) if d is not None else None
