"""Where an evaluation keeps its work: one shared probe cache for every mode, a record store per
pipeline mode, and a cache of top-k/hybrid descriptions. Reruns answer from here."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.probes import Probe, ProbeResult
from agent.store.store import Store

log = logging.getLogger(__name__)


def digest(payload: Any, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:n]


class SplitStore:
    """A Store whose probe results and judge calls live in a shared store.

    Each pipeline mode gets its own records (feature f's explanation by the offline judge and by the
    random-direction control must not overwrite each other), while a probe computed for one mode is
    reused by every other.
    """

    def __init__(self, records: Store, shared: Store) -> None:
        self._records = records
        self._shared = shared

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def get_probe(self, key: str) -> ProbeResult | None:
        return self._shared.get_probe(key)

    def put_probe(self, key: str, result: ProbeResult) -> None:
        self._shared.put_probe(key, result)

    def get_judge_call(self, key: str) -> dict[str, Any] | None:
        return self._shared.get_judge_call(key)

    def put_judge_call(self, key: str, value: dict[str, Any]) -> None:
        self._shared.put_judge_call(key, value)


class EvalCache:
    """The folder of one evaluation's caches (one per world: model, SAE, layer)."""

    def __init__(self, root: str | Path) -> None:
        from agent.store.disk import CacheDisk
        from agent.store.sqlite import open_checked_cache

        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.shared = Store(self.root / "shared")
        # Never unpickles (agent.store.disk), never runs a foreign trigger or setting (agent.store.sqlite).
        self._evidence = open_checked_cache(self.root / "evidence", self.root, CacheDisk)
        self.embeddings = open_checked_cache(self.root / "embeddings", self.root, CacheDisk)
        """Sentence embeddings by model and text (raw float32 bytes)."""
        self._stores: dict[str, Store] = {}

    def close(self) -> None:
        for s in self._stores.values():
            s.close()
        self.shared.close()
        self._evidence.close()
        self.embeddings.close()

    def __enter__(self) -> EvalCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mode_store(self, name: str) -> SplitStore:
        """The record store of pipeline mode ``name`` (probes and judge calls shared)."""
        if name not in self._stores:
            self._stores[name] = Store(self.root / "modes" / name)
        return SplitStore(self._stores[name], self.shared)

    # ------------------------------------------------------------------ probes

    def run_probes(self, engine: Any, probes: Sequence[Probe],
                   on_batch: Callable[[int], None] | None = None) -> list[ProbeResult]:
        """Results of ``probes`` in order, computing only those the shared cache lacks."""
        fp = engine.fingerprint()
        keys = [p.key(fp) for p in probes]
        found: dict[str, ProbeResult] = {}
        for k, p in zip(keys, probes):
            hit = self.shared.get_probe(k)
            if hit is not None and hit.probe == p:
                found[k] = hit
        todo: dict[str, Probe] = {}
        for k, p in zip(keys, probes):
            if k not in found:
                todo.setdefault(k, p)
        if todo:
            log.info("running %d probes (%d from the cache)", len(todo), len(found))
            by_probe = {p: k for k, p in todo.items()}

            def store(result: ProbeResult) -> None:
                self.shared.put_probe(by_probe[result.probe], result)
                found[by_probe[result.probe]] = result

            engine.run(list(todo.values()), on_result=store)
            if on_batch is not None:
                on_batch(len(todo))
        return [found[k] for k in keys]

    # ------------------------------------------------------------------ top-k / hybrid descriptions

    def get_evidence(self, key: str) -> dict[str, Any] | None:
        raw = self._evidence.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            log.warning("eval cache %s: unreadable description %s; recomputing it", self.root, key)
            return None

    def put_evidence(self, key: str, value: dict[str, Any]) -> None:
        self._evidence.set(key, json.dumps(value, sort_keys=True))
