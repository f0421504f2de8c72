"""The composition root every front door stands on: a Session, opened from a world, a store, a judge configuration
and scale-out options, owns the engines, the store, the judge, the ground truth and the world's strengths, and
does what `steer-agent`'s commands and the TUI ask: prepare and run, probe, collect top-k, evaluate.

A plain class, not a framework: the front doors parse their options into these typed values, open a Session
(a context manager: what it started outside this process stops on exit, and its store closes) and call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.judges import JudgeConfig, JudgeFatalError, JudgeUnreachable, build_judge, checked_judge, url_problem
from agent.run.config import RunConfig
from agent.run.features import FeatureSpecError, check_ranges, parse_features, parse_ranges
from agent.store.store import StoreError, default_store_path
from agent.topk import TopKMissing, require_topk
from agent.run.scale import Report, ScaleOut, close_engines, engines_on, ray_problem
from agent.store.store import Store
from agent.run.strengths import Norms, probe_schedule, resolve_strengths
from agent.world import (
    ChoiceError,
    Engine,
    Engines,
    SteeringError,
    WorldFacts,
    WorldSpec,
    check_world,
    load_engine,
    wanted_world,
    world_of,
)

if TYPE_CHECKING:
    from agent.run.config import SweepConfig
    from agent.probes import Probe, ProbeResult
    from agent.run import RunControl, RunSummary

__all__ = ["ChoiceError", "PreparedRun", "RunRequest", "ScaleOut", "Session", "check_features", "default_store",
           "engine_source", "field_of", "judge_error", "open_store", "prepare_run", "require_collection"]

Truth = dict[int, dict[str, Any]]
"""feature -> {family, value, purity, ...}"""

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
               existing: bool = False, match: bool = False) -> Store:
    """``current``, or the store at ``folder`` (None: ``current``, else the default one for the world). Raises
    ChoiceError naming the field to fix. existing: a folder that is not a store (missing, or one no run made)
    is refused and nothing is created (only runs create stores). match: a store holding records of another
    world than ``spec`` names is refused, as a run refuses it (a spec naming no model or SAE takes the store's)."""
    if not folder:
        if current is not None:
            return current
        path = _steering(default_store, spec)
        if existing and not path.exists():
            raise ChoiceError(f"no store at {path}: pass --store DIR", field="store")
    else:
        path = Path(folder).expanduser()
    if current is not None and path.resolve() == current.path.resolve():
        return current
    try:
        store = Store(path, create=not existing)
    except StoreError as exc:
        raise ChoiceError(str(exc), field="store") from None
    try:
        if match and (spec.model or spec.sae):
            want, wildcards = wanted_world(spec)
            if want is not None:
                store.check_world(want, wildcards=wildcards)
    except StoreError as exc:
        store.close()
        raise ChoiceError(str(exc), field="store") from None
    except BaseException:
        store.close()
        raise
    return store


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


class Session:
    """One world, one store, one judge and where the engines run, behind the calls every front door makes.

    Nothing is loaded on opening: the engine loads when first needed (``engine``), the store opens when
    first needed (``open_store``, or a run's ``prepare``), and the hidden-state norm is measured once per
    world and base image and remembered in the store (``norms``).
    """

    def __init__(self, world: WorldSpec | None = None, store: Store | str | Path | None = None,
                 judge: JudgeConfig | None = None, scale: ScaleOut | None = None, *,
                 engines: Engines | None = None, judges: JudgeSource = checked_judge,
                 report: Report | None = None) -> None:
        """world: what to steer (None: the bundled toy world); store: an open store, or the folder to open
        when one is needed (None: the world's default); judge: the judge a run gets; scale: where the
        engines run; engines: engines to share (the TUI's; default: opened from ``scale``); judges: how a
        run's judge is built and checked; report: where the lines of a Ray pool's actors go when it stops."""
        self.world = world or WorldSpec()
        self.judge_config = judge or JudgeConfig()
        self.scale = scale or ScaleOut()
        self.judges = judges
        self.report = report
        self.store: Store | None = store if isinstance(store, Store) else None
        self.folder: str | Path | None = None if isinstance(store, Store) else store
        """The store folder to open when one is needed (None: the world's default)."""
        self._engines = engines
        self._own_engines = engines is None
        self._twin: Any = None
        """With ScaleOut.model_here: the engine here whose probes go to the Ray pool."""
        self._norms = Norms(self.store)

    # ------------------------------------------------------------------ lifetime

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, report: bool = True) -> None:
        """Stop the engines this session started outside this process (a Ray pool's actors, a line per actor
        to ``report`` first unless ``report`` is False) and close its store. Safe to call twice."""
        lines = self.report if report else None
        twin, self._twin = self._twin, None
        if twin is not None:
            close_engines(twin, lines)
        if self._own_engines and self._engines is not None:
            close_engines(self._engines, lines)
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------------ the world

    @property
    def engines(self) -> Engines:
        """The engines this session's runs and probes use (opened from ``scale`` when none were given)."""
        if self._engines is None:
            self._engines = engines_on(self.scale.ray, self.scale.workers)
        return self._engines

    def current_world(self) -> WorldSpec:
        """The world of the open store when no model was named (so probes and re-runs use the model it was made
        with), else the session's."""
        held = self.store.world() if self.store is not None else None
        if self.world.model or not held:
            return self.world
        return WorldSpec.from_world(held, self.world)

    def check(self) -> WorldFacts:
        """What configs and file headers tell of the world, before any weights load (raises SteeringError)."""
        return check_world(self.world)

    def engine(self, world: WorldSpec | None = None) -> Engine:
        """The engine of ``world`` (None: the session's), loaded once (blocking: a worker thread in a UI). With
        ScaleOut.model_here and a Ray address, the engine here whose probes run on the pool."""
        spec = world or self.world
        if self.scale.ray is None or not self.scale.model_here or spec != self.world:
            return self.engines.get(spec)
        if self._twin is None:
            from agent.run.ray.pool import RayEnginePool, RayProbeEngine

            local = load_engine(spec)
            pool = RayEnginePool(spec, self.scale.options())
            try:
                self._twin = RayProbeEngine(pool, local)
            except BaseException:
                pool.close()
                raise
        return self._twin

    # ------------------------------------------------------------------ the store and the ground truth

    def open_store(self, folder: str | Path | None = None, *, existing: bool = False, match: bool = False) -> Store:
        """The session's store, opened now if needed: ``folder``, else the session's folder, else the world's
        default (existing: refuse a folder that is not a store; match: refuse a store of another world than the
        session's, module open_store). Raises ChoiceError naming the field to fix."""
        store = open_store(folder or self.folder, self.world, self.store, existing=existing, match=match)
        self._use(store)
        return store

    def _use(self, store: Store | None) -> bool:
        """Make ``store`` the session's (closing the one it replaces); True when it changed."""
        if store is self.store:
            return False
        if self.store is not None:
            self.store.close()
        self.store, self._norms = store, Norms(store)
        return True

    def ground_truth(self) -> Truth | None:
        """The known attribute of each feature of the store's world (agent.groundtruth), or None."""
        from agent.groundtruth import ground_truth_for

        held = self.store.world() if self.store is not None else None
        return ground_truth_for(held) if held else None

    def truth(self, file: str | Path | None = None) -> Truth | None:
        """The ground truth an evaluation scores against: ``file``, else the one the world's SAE carries
        (raises ChoiceError for an unreadable one)."""
        from agent.eval.world import TruthError, load_truth
        from agent.groundtruth import ground_truth_for

        _model, sae = self.world.resolved()  # SteeringError first: a choice naming no world
        try:
            if file:
                return load_truth(file)
            return ground_truth_for({"sae": sae, "layer": self.world.layer})
        except TruthError as exc:
            raise ChoiceError(str(exc), field="ground_truth") from None

    # ------------------------------------------------------------------ strengths

    @property
    def norms(self) -> Norms:
        """Where the hidden-state norm is measured and remembered (the store's meta, or this session)."""
        return self._norms

    def hidden_norm(self, base_image: str = "white", world: WorldSpec | None = None) -> float:
        """The median hidden-state norm at the layer on ``base_image`` (blocking: may load the model)."""
        return self._norms.norm(self.engine(world), base_image)

    def run_strengths(self, sweep: SweepConfig, world: WorldSpec | None = None) -> list[float]:
        """The strengths a run with ``sweep`` would use (blocking: may load the model)."""
        return resolve_strengths(self.engine(world), sweep, self._norms)[0]

    def probe_strengths(self, base_image: str = "white", world: WorldSpec | None = None) -> list[float]:
        """`steer-agent probe`'s default strengths: multiples of the norm, unsteered first."""
        return probe_schedule(self.hidden_norm(base_image, world))

    # ------------------------------------------------------------------ the judge

    def judge(self) -> Any:
        """The judge ``judge_config`` describes, unchecked (raises ChoiceError naming the field to fix)."""
        try:
            return build_judge(self.judge_config)
        except JudgeFatalError as exc:
            raise judge_error(exc) from None

    def judge_backend(self, model: str | None = None, **overrides: Any) -> Any:
        """The OpenAI-compatible client of ``judge_config`` (model: another name at the same endpoint;
        ``overrides``: the client's keyword arguments, as agent.judges.factory.build_backend takes them).
        Raises JudgeFatalError (a missing key, an unreadable URL)."""
        from agent.judges.factory import build_backend

        return build_backend(replace(self.judge_config, model=model or self.judge_config.model), **overrides)

    # ------------------------------------------------------------------ runs

    def prepare(self, request: RunRequest) -> PreparedRun:
        """Check a run request cheapest first (prepare_run; raises ChoiceError naming the field
        to fix). A request for other engines than the session's (a Ray address) gets engines of its own,
        which stop when that run ends."""
        problem = ray_problem(request.ray, request.ray_workers)
        if problem:
            raise ChoiceError(problem, field="ray")
        if (request.ray, request.ray_workers) == (self.scale.ray, self.scale.workers):
            return prepare_run(request, self.engines, judges=self.judges, current=self.store)
        engines = engines_on(request.ray, request.ray_workers)
        try:
            return replace(prepare_run(request, engines, judges=self.judges, current=self.store), engines=engines)
        except BaseException:
            close_engines(engines)
            raise

    def prepare_rerun(self, feature: int, config: RunConfig, topk: str | Path | None = None) -> PreparedRun:
        """One feature of the open store again, on its world with the session's judge (cached probes reused;
        raises ChoiceError naming the field to fix)."""
        if self.store is None:
            raise ChoiceError("no store is open", field="store")
        world = self.current_world()
        require_collection(self.store, config, topk)
        engine = engine_source(self.engines, world)
        try:
            judge = self.judges(self.judge_config)
        except JudgeFatalError as exc:
            raise judge_error(exc) from None
        return PreparedRun(features=[feature], engine=engine, judge=judge, config=config, world=world,
                           judge_config=self.judge_config, store=self.store, title=f"re-run #{feature}", rerun=True)

    def adopt(self, prepared: PreparedRun) -> bool:
        """Make a prepared run's store, world and judge the session's; True when the store changed."""
        changed = self._use(prepared.store)
        self.world, self.judge_config = prepared.world, prepared.judge_config
        return changed

    def run(self, prepared: PreparedRun, on_event: Callable[[Any], None] | None = None,
            control: RunControl | None = None, topk: str | Path | None = None) -> RunSummary:
        """Run a prepared request to the end (blocking: a worker thread in a UI), its store now the session's;
        a run's own engines stop with it. ``topk``: the collection for image evidence (None: the store's)."""
        from agent.run import run_features

        self._use(prepared.store)
        try:
            return run_features(prepared.engine, prepared.judge, prepared.store, prepared.features, prepared.config,
                                on_event=on_event, control=control,  # the runner closes the judge's client
                                topk=topk, norms=self._norms)
        finally:
            close_engines(prepared.engines, self.report)  # a Ray pool's actors stop with the run

    # ------------------------------------------------------------------ probes, top-k, evaluation

    def probe(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None,
              world: WorldSpec | None = None) -> list[ProbeResult]:
        """Run ``probes`` on the engine of ``world`` (None: the session's); with a store open, the results go
        to its cache."""
        engine = self.engine(world)
        results = engine.run(probes) if on_result is None else engine.run(probes, on_result=on_result)
        if self.store is not None:
            fingerprint = engine.fingerprint()
            for r in results:
                self.store.put_probe(r.probe.key(fingerprint), r)
        return results

    def collect_topk(self, source: Any, out: Path, config: Any, *, restart: bool = False,
                     progress: bool = True) -> Any:
        """Collect each feature's top images of ``source`` into ``out`` (steering.topk.collect_topk), on the
        Ray pool when the session has an address (the images shared out, the top-k merged exactly here)."""
        if self.scale.ray is not None:
            return self._on_ray(progress)(source, out, config, restart=restart)
        from steering.topk import EncoderSpec, collect_topk

        engine = self.engine()
        spec = EncoderSpec.from_vlm(engine.vlm, engine.sae, engine.layer)
        return collect_topk(spec, engine.sae, source, out, config, restart=restart, progress=progress)

    def collect_toy_topk(self, out: Path, *, n_scenes: int, seed: int, k: int, progress: bool = True) -> Any:
        """The toy world's collection over scenes from its own generator (steering.topk.build_toy_topk)."""
        from steering.topk import build_toy_topk

        collect = self._on_ray(progress, toy=True) if self.scale.ray is not None else None
        return build_toy_topk(out, n_scenes=n_scenes, seed=seed, k=k, progress=progress, collect=collect)

    def record_topk(self, result: Any, out: Path) -> None:
        """Bind the store to the world a collection was made with and record the collection in it (raises
        ChoiceError for a store made for another world)."""
        from agent.store.store import StoreError
        from agent.topk import record_topk
        from agent.world import WORLD_KEYS

        store = self.open_store()
        made = result.meta.get("run", {})
        try:
            store.bind_world({k: made.get(k) for k in WORLD_KEYS})
        except StoreError as exc:
            raise ChoiceError(str(exc), field="store") from None
        if store.get_meta("n_features") is None:
            store.set_meta("n_features", int(result.d_sae))
        record_topk(store, out)

    def _on_ray(self, progress: bool, toy: bool = False) -> Any:
        """The collection on Ray actors: (source, out, config, restart=False) -> the result."""
        from functools import partial

        from agent.run.ray.topk import TOY_ENCODER, collect_on_ray

        return partial(collect_on_ray, self.world, self.scale.options(), loader=TOY_ENCODER if toy else None,
                       progress=progress, report=self.report or (lambda _line: None))

    def evaluate(self, inputs: Any, config: Any) -> dict[str, Any]:
        """Measure explanation quality (agent.eval.runner.evaluate) on inputs built over this session's
        engine; their cache closes afterwards."""
        from agent.eval.runner import evaluate

        with inputs.cache:
            return evaluate(inputs, config)
