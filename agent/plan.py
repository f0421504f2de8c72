"""Run preparation (agent.session.Session.prepare): a RunRequest, checked cheapest first -> PreparedRun; and the
one way a front door opens a store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.run.config import RunConfig
from agent.run.features import FeatureSpecError, check_ranges, parse_features, parse_ranges
from agent.judges import JudgeConfig, JudgeFatalError, JudgeUnreachable, checked_judge, url_problem
from agent.store.store import Store, StoreError, default_store_path
from agent.topk import TopKMissing, require_topk
from agent.world import ChoiceError, Engines, SteeringError, WorldSpec, wanted_world, world_of

__all__ = ["ChoiceError", "PreparedRun", "RunRequest", "check_features", "default_store", "engine_source",
           "field_of", "judge_error", "open_store", "prepare_run", "require_collection"]

JudgeSource = Callable[[JudgeConfig], Any]
"""JudgeConfig -> a judge ready to run (raises JudgeFatalError or ChoiceError)."""

# Which request field a steering error points at (any other: the model).
_ERROR_FIELDS = {"SAELoadError": "sae", "ShapeMismatchError": "sae", "LayerOutOfRangeError": "layer",
                 "FeatureOutOfRangeError": "features", "TopKError": None}


@dataclass
class RunRequest:
    """What a run is asked for, as typed values (from the CLI's options or the TUI's setup screen)."""

    features: str
    """Feature ids: ranges and lists like 0-9,42 or all."""
    world: WorldSpec = field(default_factory=WorldSpec)
    """The model, SAE and layer to steer."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The judge that reads the evidence."""
    config: RunConfig = field(default_factory=RunConfig)
    """Sweep, budgets and scheduling."""
    store: str | Path | None = None
    """Store folder; None: the store already open, else the default one for the world."""
    topk: str | Path | None = None
    """Top-k collection folder for image evidence; None: the one the store records."""
    ray: str | None = None
    """The Ray cluster whose actors run the engines (``local``: a new one on this machine, ``auto``,
    ``host:6379``); None: this process. The engines passed to prepare_run must be that pool's."""
    ray_workers: int | None = None
    """Engine actors on it (None: one per GPU, or one CPU actor)."""


@dataclass
class PreparedRun:
    """A run that passed every check: ready for agent.run.run_features (in a worker in a UI)."""

    features: list[int]
    engine: Any
    """The loaded engine, or a zero-argument factory that loads it only if some feature needs work."""
    judge: Any
    config: RunConfig
    world: WorldSpec
    judge_config: JudgeConfig
    store: Store
    title: str = "run"
    """How a UI names the run."""
    rerun: bool = False
    """A re-run of one feature (its config is not remembered as the next run's)."""
    load_seconds: float = 0.0
    """Seconds spent opening the store and loading what sizing the run needed."""
    engines: Any = None
    """Engines that end with the run (a Ray pool's: close them afterwards); None: the caller's own."""


def field_of(exc: Exception) -> str | None:
    """The request field a steering error points at."""
    return _ERROR_FIELDS.get(type(exc).__name__, "model")


def judge_error(exc: JudgeFatalError) -> ChoiceError:
    """A judge that cannot work, on the field to fix: the URL when the endpoint does not answer."""
    return ChoiceError(str(exc), field="judge_url" if isinstance(exc, JudgeUnreachable) else "judge")


def check_features(text: str) -> None:
    """Fail on the syntax of a feature list before anything is loaded, without expanding its ranges
    (``all`` and the bounds wait for the SAE's size)."""
    if text.strip().lower() != "all":
        try:
            check_ranges(parse_ranges(text), None)
        except FeatureSpecError as exc:
            raise ChoiceError(str(exc), field="features") from None


def default_store(spec: WorldSpec) -> Path:
    """The store a world's runs use when none is named (raises SteeringError for a spec naming no world)."""
    model, sae = spec.resolved()
    return default_store_path(model, sae, spec.layer)


def open_store(folder: str | Path | None, spec: WorldSpec, current: Store | None = None, *,
               existing: bool = False) -> Store:
    """``current``, or the store at ``folder`` (None: ``current``, else the default one for the world). Raises
    ChoiceError naming the field to fix. existing: a folder that does not exist is refused, not created (the
    commands that only read a store)."""
    if not folder:
        if current is not None:
            return current
        path = _steering(default_store, spec)
        if existing and not path.exists():
            raise ChoiceError(f"no store at {path}: pass --store DIR", field="store")
    else:
        if existing and not Path(folder).exists():
            raise ChoiceError(f"no store at {folder}: check the path", field="store")
        path = Path(folder).expanduser()
    if current is not None and path.resolve() == current.path.resolve():
        return current
    try:
        return Store(path)
    except StoreError as exc:
        raise ChoiceError(str(exc), field="store") from None


def require_collection(store: Store, config: RunConfig, topk: str | Path | None = None) -> None:
    """Top-k evidence needs a collection: say how to get one before the run starts."""
    if config.image_modes:
        try:
            require_topk(store, topk)
        except TopKMissing as exc:
            raise ChoiceError(str(exc), field="store") from None


def engine_source(engines: Engines, spec: WorldSpec) -> Any:
    """The loaded engine, or a factory that loads it when the run first needs it."""
    if engines.loaded(spec):
        return engines.get(spec)
    return lambda: engines.get(spec)


def prepare_run(request: RunRequest, engines: Engines, *, judges: JudgeSource = checked_judge,
                current: Store | None = None) -> PreparedRun:
    """Check ``request`` cheapest first: feature syntax, judge URL, judge (and its endpoint), world (from
    configs and file headers: steering.preflight), features against the SAE's size and the base image,
    store, top-k collection, the store's world, the SAE's size (loading the engine only when neither the
    checks nor the store know it). Raises ChoiceError naming the field to fix; a store opened here is
    closed again."""
    check_features(request.features)
    url = request.judge.endpoint().url if request.judge.kind == "openai" else request.judge.base_url
    if url and url_problem(url):
        raise ChoiceError(str(url_problem(url)), field="judge_url")
    try:
        judge = judges(request.judge)
    except JudgeFatalError as exc:
        raise judge_error(exc) from None
    t0 = time.perf_counter()
    spec = request.world
    if not engines.loaded(spec):
        _steering(engines.check, spec)
    _check_before_store(request, engines)
    store = open_store(request.store, spec, current)
    try:
        require_collection(store, request.config, request.topk)
        features, engine = _size(store, request.features, spec, engines)
    except BaseException:
        if store is not current:
            store.close()
        raise
    return PreparedRun(features=features, engine=engine, judge=judge, config=request.config, world=spec,
                       judge_config=request.judge, store=store, title=f"run {request.features}",
                       load_seconds=time.perf_counter() - t0)


def _check_before_store(request: RunRequest, engines: Engines) -> None:
    """The features against the SAE's size where the checks already know it, and the base image, before
    a store folder is created."""
    from steering.images import check_base_image

    n = engines.n_features(request.world)
    if n is not None and request.features.strip().lower() != "all":
        try:
            check_ranges(parse_ranges(request.features), n)
        except FeatureSpecError as exc:
            raise ChoiceError(str(exc), field="features") from None
    try:
        check_base_image(request.config.sweep.base_image)
    except SteeringError as exc:
        raise ChoiceError(str(exc), field="base_image") from None


def _size(store: Store, text: str, spec: WorldSpec, engines: Engines) -> tuple[list[int], Any]:
    """(the features ``text`` names, the engine source): the SAE's size from the store when it holds
    this world's records, else from the engine (loaded now)."""
    matched = _holds(store, spec, engines)
    n = store.get_meta("n_features") if matched else None
    if n is None:
        n = engines.n_features(spec)
    if n is None:
        n = _steering(lambda s: int(engines.get(s).sae.d_sae), spec)
    try:
        features = parse_features(text, int(n))
    except FeatureSpecError as exc:
        raise ChoiceError(str(exc), field="features") from None
    return features, engine_source(engines, spec)


def _holds(store: Store, spec: WorldSpec, engines: Engines) -> bool:
    """Whether the store holds records of ``spec``'s world (False: of none yet). Another world's store
    is refused with Store.bind_world's own message, by its rule: the loaded engine's world is compared
    exactly, a spec's leaves its open layer and revision open."""
    if not store.world():
        return False
    want, wildcards = wanted_world(world_of(engines.get(spec)) if engines.loaded(spec) else spec)
    if want is None:
        return False
    try:
        store.check_world(want, wildcards=wildcards)
    except StoreError as exc:
        raise ChoiceError(str(exc), field="store") from None
    return True


def _steering(step: Callable[[WorldSpec], Any], spec: WorldSpec) -> Any:
    """``step(spec)``, a SteeringError (or a front end's ChoiceError) as a ChoiceError on its field."""
    try:
        return step(spec)
    except SteeringError as exc:
        raise ChoiceError(str(exc), field=field_of(exc)) from None
