"""The app's backends behind one object: a thin adapter over the app's agent.session.Session (the store, engines,
judge, runs, probes, strengths, ground truth), plus what only the app does (reviews, rows, pictures, export).

Blocking methods are called from worker threads; nothing here imports textual or (at module level) torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.run.config import RunConfig
from agent.session import PreparedRun, RunRequest
from agent.probes import Probe, ProbeResult
from agent.store.records import FeatureRecord, Review, default_reviewer
from agent.session import Session
from agent.store.store import RecordUnreadable, Store, StoreError
from tui.backends import INJECTED, Engines, JudgeFactory, JudgeSpec, SetupError, WorldSpec, check_judge, make_judge_for
from tui.rows import FeatureRow

__all__ = ["PreparedRun", "RunRequest", "Services", "display_path", "last_config"]

log = logging.getLogger(__name__)


def display_path(path: str | Path) -> str:
    """``path`` relative to the working folder when inside it, else with ~ for the home folder."""
    p = Path(path).expanduser().absolute()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        return prefix + str(rel) if str(rel) != "." else (prefix or ".")
    return str(p)


def last_config(store: Store | None) -> RunConfig | None:
    """The settings of the store's last run (what steer-agent remembers), minus one-off switches."""
    last = store.get_meta("last_run") if store is not None else None
    if not isinstance(last, dict) or not isinstance(last.get("config"), dict):
        return None
    try:
        config = RunConfig.from_dict(last["config"])
    except (TypeError, ValueError) as exc:
        log.warning("store %s: last run config unreadable (%s)", store.path if store else "?", exc)
        return None
    return replace(config, force=False, rejudge=False, overwrite_reviewed=False, note=None)


class Services:
    """Everything the app does to the outside world, over one Session (``session``)."""

    def __init__(self, store: Store | None, *, engines: Engines, judge_factory: JudgeFactory | None = None,
                 judge: Any = None, world: WorldSpec | None = None, judge_spec: JudgeSpec | None = None,
                 run_config: RunConfig | None = None, reviewer: str | None = None,
                 topk_dir: str | Path | None = None, features: str | None = None) -> None:
        self.judge_factory = judge_factory or make_judge_for
        self.injected_judge = judge
        self.session = Session(world, store, judge_spec or JudgeSpec(kind=INJECTED if judge is not None else "offline"),
                               engines=engines, judges=self.make_judge)
        """The app's session: its store, world and judge are the current ones (a run in another store moves it)."""
        self.run_config = run_config or last_config(store) or RunConfig()
        self.reviewer = reviewer or default_reviewer()
        self.topk_dir = Path(topk_dir) if topk_dir else None
        """A collection chosen on the command line (--topk); None: the one the store records."""
        self.features = features
        # Decisions are written by one thread in the order they were made (accept then undo stays so).
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steer-tui-review")

    def close(self) -> None:
        """Close the session (its store; a Ray run's engines have stopped with their run)."""
        self._writer.shutdown(wait=True)
        self.session.close()

    # ------------------------------------------------------------------ store

    @property
    def store(self) -> Store | None:
        return self.session.store

    @property
    def engines(self) -> Engines:
        return self.session.engines  # type: ignore[return-value]

    @property
    def judge_spec(self) -> JudgeSpec:
        return self.session.judge_config

    @property
    def store_label(self) -> str:
        return display_path(self.store.path) if self.store is not None else "no store"

    def current_world(self) -> WorldSpec:
        """The world of the open store (so probes and re-runs use the model it was made with); a model named on
        the command line wins."""
        return self.session.current_world()

    def load_rows(self) -> tuple[list[FeatureRow], list[str]]:
        if self.store is None:
            return [], []
        errors: list[RecordUnreadable] = []
        rows = [FeatureRow.from_record(r) for r in self.store.list_records(errors=errors)]
        return rows, [str(e) for e in errors]

    def ground_truth(self, feature: int) -> dict[str, Any] | None:
        """The feature's known attribute (the toy world ships one for every feature), or None."""
        truth = self.session.ground_truth()
        return truth.get(feature) if truth else None

    def store_signature(self) -> tuple[Any, ...] | None:
        """A cheap fingerprint of the store's records and reviews (the database files' times and sizes):
        it changes when any process writes them."""
        if self.store is None:
            return None
        out: list[Any] = [str(self.store.path)]
        for name in ("cache.db", "cache.db-wal"):
            try:
                st = (self.store.path / "main" / name).stat()
            except OSError:
                out.append(None)
                continue
            out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def record(self, feature: int) -> FeatureRecord | None:
        return self.store.get_record(feature) if self.store is not None else None

    def review(self, feature: int, decision: str, *, explanation: str | None = None, label: str | None = None,
               note: str | None = None) -> Review:
        if self.store is None:
            raise StoreError("no store is open: start a run first")
        return self.store.set_review(feature, decision, explanation=explanation, label=label, note=note,
                                     reviewer=self.reviewer)

    def submit_review(self, feature: int, decision: str | None, *, explanation: str | None = None,
                      label: str | None = None, note: str | None = None) -> Future[FeatureRecord | None]:
        """Queue a decision (None withdraws the current one); the future holds the record as stored after it."""

        def write() -> FeatureRecord | None:
            if decision is None:
                self.undo_review(feature)
            else:
                self.review(feature, decision, explanation=explanation, label=label, note=note)
            return self.record(feature)

        return self._writer.submit(write)

    def undo_review(self, feature: int) -> None:
        if self.store is not None:
            self.store.clear_review(feature, reviewer=self.reviewer)

    def export(self, path: str | Path) -> int:
        from agent.store.export import export_records

        if self.store is None:
            raise StoreError("no store is open: nothing to export")
        return export_records(self.store, path)

    # ------------------------------------------------------------------ runs

    def make_judge(self, spec: JudgeSpec) -> Any:
        if spec.kind == INJECTED:
            if self.injected_judge is None:
                raise SetupError("no judge was given to the app: pick offline or openai", field="judge")
            return self.injected_judge
        judge = self.judge_factory(spec)
        check_judge(judge)
        return judge

    def prepare(self, request: RunRequest) -> PreparedRun:
        """Check a run request from cheapest to dearest (Session.prepare); raises SetupError naming the field to
        fix. A request with a Ray address runs on engines of its own there, as ``steer-agent --ray``, closed
        when the run ends."""
        return self.session.prepare(replace(request, topk=request.topk or self.topk_dir))

    def prepare_rerun(self, feature: int, note: str | None) -> PreparedRun:
        """Re-judge one feature with a note (cached probes reused; a human decision moves to the history)."""
        config = replace(self.run_config, rejudge=True, overwrite_reviewed=True, note=note or None)
        return self.session.prepare_rerun(feature, config, self.topk_dir)

    def adopt(self, prepared: PreparedRun) -> bool:
        """Make the run's choices the current ones; True when the store changed."""
        changed = self.session.adopt(prepared)
        if not prepared.rerun:
            self.run_config = prepared.config
        return changed

    def run(self, prepared: PreparedRun, on_event: Callable[[Any], None], control: Any) -> Any:
        """Run to the end (blocking: call from a worker thread); returns the RunSummary."""
        return self.session.run(prepared, on_event, control,
                                topk=self.topk_dir)  # None: the collection the store records

    # ------------------------------------------------------------------ manual probes

    def probe(self, probe: Probe, on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        """Run ``probe`` and the unsteered baseline under the same settings; results go to the store's
        cache, and the probe to the feature's record (it persists across sessions and shows in export)."""
        baseline = replace(probe, feature=None, strength=0.0, direction="feature")
        results = self.session.probe([baseline, probe], on_result=on_result, world=self.current_world())
        if self.store is not None and probe.feature is not None:
            self.store.add_manual_probe(probe.feature, results[-1], baseline=results[0], reviewer=self.reviewer)
        return results

    def run_strengths(self) -> list[float]:
        """The strengths a run would sweep now (the hidden-norm multiples, the norm remembered in the
        store or measured on the engine; blocking: may load the model)."""
        return self.session.run_strengths(self.run_config.sweep, world=self.current_world())

    def manual_probes(self, feature: int) -> list[dict[str, Any]]:
        """The feature's stored manual probes, oldest first."""
        return self.store.manual_probes(feature) if self.store is not None else []

    # ------------------------------------------------------------------ pictures

    def topk_source(self) -> Path | None:
        from agent.topk import topk_dir

        return topk_dir(self.store, self.topk_dir)

    def topk_views(self, feature: int, n: int | None = None) -> list[tuple[Any, str]]:
        """(image, caption) of the feature's top images, all the collection kept unless ``n``, drawn as heatmaps
        of where it fires, captioned with their rank, mean and peak activation (loads torch; call in a worker)."""
        from agent.site.feature import activation

        root = self.topk_source()
        if root is None:
            return []
        act = activation(root, feature, pictures=n or 10_000)
        return [(i.picture, i.caption) for i in act.top if i.picture is not None]

    def activation(self, feature: int) -> Any:
        """The feature's density and activation histogram on the collection (agent.site.feature.Activation), or
        None without a readable collection."""
        from agent.site.feature import activation

        root = self.topk_source()
        if root is None:
            return None
        try:
            return activation(root, feature)
        except Exception as exc:  # noqa: BLE001 - the page shows what else it has
            log.debug("no activations for feature %d: %s", feature, exc)
            return None

    def topk_stats(self, feature: int) -> dict[str, float] | None:
        """How often the feature fires on the collection (image and patch frequency, largest activation)."""
        from agent.topk import feature_stats

        root = self.topk_source()
        if root is None:
            return None
        try:
            return feature_stats(root, feature)
        except Exception as exc:  # noqa: BLE001 - a collection without these numbers still shows its images
            log.debug("no activation statistics for feature %d: %s", feature, exc)
            return None

    def base_image(self, spec: str, size: int = 64) -> Any:
        """The base image a sweep steered on, as a PIL image (raises for a missing custom image)."""
        from agent.topk import base_image

        return base_image(spec, size)
