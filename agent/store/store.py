"""The on-disk store (diskcache): probe results, judge calls, feature records and human reviews.

Values are JSON text read through agent.store.disk, which refuses pickles (a store may come from
someone else), and a record is written whole in one transaction. Every record is checked against
its schema on read; one that fails is a corrupt record, named in one line, and the rest stays usable.
Several processes may share a store (a CLI run and the TUI): diskcache's SQLite handles locking.
A store is data, not a program: a database carrying SQL triggers, views or settings steer-interp never
writes is refused on open (agent.store.sqlite), and a store that cannot be written (a read-only folder,
a full disk) opens read-only, so it can still be exported and browsed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.judges.evidence import ImageEvidence
from agent.probes import ProbeResult
from agent.store.records import (
    DECISIONS,
    SCHEMA_VERSION,
    FeatureRecord,
    Review,
    default_reviewer,
    now_iso,
    record_problem,
    review_problem,
)
from agent.store.disk import CorruptValue, TextOnlyDisk
from agent.store.errors import (  # noqa: F401 - re-exported
    RecordUnreadable,
    StoreDamaged,
    StoreError,
    StoreForeign,
    StoreFull,
    StoreReadOnly,
    StoreUnwritable,
    db_errors,
)
from agent.store.sqlite import open_caches
from agent.world import WORLD_KEYS as WORLD_KEYS  # re-exported: the keys a store is bound by
from agent.world import world_differences
from steering.activation_tests import ActivationTestResult
from steering.revisions import is_local_revision

log = logging.getLogger(__name__)

APP = "steer-interp"


def cache_root() -> Path:
    """Where default stores live: $STEER_INTERP_CACHE, else the user cache dir (~/.cache/steer-interp)."""
    env = os.environ.get("STEER_INTERP_CACHE")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir(APP))
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        return Path(base).expanduser() / APP


def store_name(model: str, sae: str, layer: int | None) -> str:
    """A readable folder name for a (model, SAE, layer), e.g. ``toy-gemma3__sae__L3``."""

    def slug(text: str) -> str:
        text = text.rstrip("/").split("/")[-1] or text
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:40]

    import hashlib

    digest = hashlib.sha256(f"{model}|{sae}|{layer}".encode()).hexdigest()[:8]
    return f"{slug(model)}__{slug(sae)}__L{'auto' if layer is None else layer}-{digest}"


def default_store_path(model: str, sae: str, layer: int | None) -> Path:
    return cache_root() / store_name(model, sae, layer)


MARKER = Path("main") / "cache.db"
"""The file every store folder holds (its main database, agent.store.sqlite): what tells a store from a folder."""


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a store folder (one a run made), not a folder that merely exists."""
    return (Path(path).expanduser() / MARKER).is_file()


def _named(value: Any) -> str:
    """A model or SAE as a person names it: a hub id as given, a local path by its last two folders."""
    text = str(value)
    if text.startswith(("/", "~", ".")) or "\\" in text:
        parts = Path(text).parts
        text = "/".join(parts[-2:]) if len(parts) > 2 else text
    return repr(text)


def describe_world(world: dict[str, Any], keys: Iterable[str] = ("model", "sae", "layer")) -> str:
    """A world in words, e.g. ``model 'toy/model', SAE 'planted/seed-3', layer 3`` (fingerprints left out)."""
    words = {"model": f"model {_named(world.get('model'))}", "sae": f"SAE {_named(world.get('sae'))}",
             "layer": "any layer" if world.get("layer") is None else f"layer {world.get('layer')}"}
    return ", ".join(words[k] for k in keys)


def _record_key(feature: int) -> str:
    return f"record/{int(feature)}"


def _review_key(feature: int) -> str:
    return f"review/{int(feature)}"


def _manual_key(feature: int) -> str:
    return f"manual/{int(feature)}"


def _lease_key(feature: int) -> str:
    return f"lease/{int(feature)}"


def _lease_alive(lease: dict[str, Any], now: float) -> bool:
    """Whether a lease still binds: not expired, and its process not known dead (same host only)."""
    expires = lease.get("expires")
    if not isinstance(expires, (int, float)) or expires <= now:
        return False
    pid = lease.get("pid")
    if lease.get("host") == socket.gethostname() and isinstance(pid, int) and pid > 0 and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # alive, owned by someone else
            pass
    return True


_PART = {"model": "model", "revision": "model", "sae": "sae", "sae_revision": "sae", "layer": "layer"}
"""Which part of a world (in words) each world key belongs to."""


def refusal(path: Path, held: dict[str, Any], want: dict[str, Any], diff: list[str]) -> str:
    """One line: the store holds ``held``'s records, not ``want``'s; the differing fingerprints last.

    e.g. ``store S holds records of model 'toy/model', SAE 'planted/seed-3', layer 3, not of SAE
    'planted/seed-4': pass another --store (sae_revision='local-6099b8a3adaa', not 'local-0f2a...')``.
    """
    parts = [k for k in ("model", "sae", "layer") if any(_PART[d] == k for d in diff)]
    asked = []
    for part in parts:
        words = describe_world(want, (part,))
        rev = {"model": "revision", "sae": "sae_revision"}.get(part)
        if rev and words == describe_world(held, (part,)):  # the same name: other files, revision or folder
            if rev in diff and is_local_revision(want.get(rev)):
                words += " as its files are now (they differ from those the records were made with)"
            elif rev in diff:
                words += f" at revision {want.get(rev)!r}"
            else:
                words = f"{'model' if part == 'model' else 'SAE'} {want.get(part)!r}"
        asked.append(words)
    detail = "; ".join(f"{k}={held.get(k)!r}" + ("" if want.get(k) is None else f", not {want.get(k)!r}")
                       for k in diff if k in ("revision", "sae_revision"))
    return (f"store {path} holds records of {describe_world(held)}, not of {', '.join(asked)}: "
            f"pass another --store" + (f" ({detail})" if detail else ""))


class Store:
    """One store directory. Safe to share between threads and processes."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        """create: make the folder a store when it is not one yet (runs do); False: refuse a folder that is
        not a store, creating nothing (the commands that only read or annotate one)."""
        self.path = Path(path).expanduser()
        if not create and not is_store(self.path):
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}: check the path")
            raise StoreError(f"{self.path} is not a store (it has no {MARKER.as_posix()}): pass the folder a run "
                             "wrote, or run steer-agent --features ... --store DIR to make one")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.path}: {exc.strerror}; pass another --store") from exc
        try:
            caches, read_only = open_caches(self.path, TextOnlyDisk, timeout=120)
        except StoreError:
            raise
        except Exception as exc:  # sqlite errors, permissions
            raise StoreError(f"cannot open store {self.path}: {exc}; check the folder or pass another --store") from exc
        self._main, self._probes, self._judge, self._images = caches
        self.read_only = read_only
        """Why the store opened read-only (StoreFull, StoreReadOnly), None when it can be written."""
        self.write_failed: StoreUnwritable | None = None
        """The last cache entry (probe, judge answer, description) the store could not take: a full disk.
        The entry is skipped, not failed for; a run notices this and stops (agent.run.scheduler)."""
        try:
            self._check_schema()
        except BaseException:
            self.close()
            raise

    @db_errors
    def _check_schema(self) -> None:
        with self._main.transact():
            try:
                schema = self._main.get("meta/schema")
            except CorruptValue as exc:
                raise StoreError(f"store {self.path}: its schema entry is corrupt ({exc}); "
                                 "pass another --store") from None
            if schema is None:
                if self.read_only is None:  # a read-only store that holds nothing yet reads as empty
                    self._main.set("meta/schema", SCHEMA_VERSION)
            elif not isinstance(schema, int) or isinstance(schema, bool):
                raise StoreError(f"store {self.path}: its schema entry is corrupt ({schema!r}); pass another --store")
            elif schema > SCHEMA_VERSION:
                raise StoreError(f"store {self.path} has schema {schema}, newer than this steer-interp "
                                 f"({SCHEMA_VERSION}): upgrade, or pass another --store")
            if self.read_only is None and "meta/id" not in self._main:  # stores older than ids get one now
                self._main.set("meta/id", self._dump(uuid.uuid4().hex))

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        for c in (self._main, self._probes, self._judge, self._images):
            c.close()

    def require_writable(self) -> None:
        """Raise StoreFull or StoreReadOnly when the store opened read-only (before work that must be stored)."""
        if self.read_only is not None:
            raise self.read_only.again()

    def _keep(self, cache: Any, key: str, value: dict[str, Any]) -> None:
        """Store a cache entry; one the store cannot take now (a full disk) is skipped and noted in
        ``write_failed``: a probe result or a paid judge answer in memory is worth more than a failed feature."""
        try:
            self._set(cache, key, self._dump(value))
        except StoreUnwritable as exc:
            self.write_failed = exc
            log.debug("%s: entry %s not kept", exc, key)

    @db_errors
    def _set(self, cache: Any, key: str, text: str) -> None:
        cache.set(key, text)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, cache: Any, key: str) -> Any:
        raw = self._get(cache, key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise RecordUnreadable(self.path, key, f"a {type(raw).__name__}, not JSON text")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RecordUnreadable(self.path, key, f"not valid JSON: {exc}") from None

    def _get(self, cache: Any, key: str) -> Any:
        """The raw value at ``key``; a pickle, bytes or a missing value file is a RecordUnreadable."""
        try:
            return cache.get(key)
        except CorruptValue as exc:
            if not exc.missing_file:
                raise RecordUnreadable(self.path, key, str(exc)) from None
            first = exc
        try:  # a concurrent write may have replaced the row (and its file) between the read and the open
            return cache.get(key)
        except CorruptValue:
            raise RecordUnreadable(self.path, key, str(first)) from None

    @staticmethod
    def _dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    # ------------------------------------------------------------------ meta

    @property
    @db_errors
    def schema(self) -> int:
        value = self._get(self._main, "meta/schema")
        return value if isinstance(value, int) else SCHEMA_VERSION

    @db_errors
    def get_meta(self, name: str, default: Any = None) -> Any:
        value = self._load(self._main, f"meta/{name}")
        return default if value is None else value

    @db_errors
    def set_meta(self, name: str, value: Any) -> None:
        self._main.set(f"meta/{name}", self._dump(value))

    @db_errors
    def world(self) -> dict[str, Any] | None:
        """The (model, revision, SAE, layer) this store's records belong to; RecordUnreadable when corrupt."""
        world = self.get_meta("world")
        if world is not None and not (isinstance(world, dict) and all(isinstance(k, str) for k in world)):
            raise RecordUnreadable(self.path, "meta/world", f"expected an object, found {type(world).__name__}")
        return world

    @db_errors
    def bind_world(self, world: dict[str, Any]) -> None:
        """Claim the store for ``world``; a store made for another model, SAE or layer is refused.

        A store bound before SAE fingerprints existed takes the fingerprint of the first SAE that
        matches its name.
        """
        with self._main.transact():
            current = self.world()
            if current is None:
                self.set_meta("world", world)
                return
            diff = world_differences(current, world)
            if not diff and current.get("sae_revision") is None and world.get("sae_revision") is not None:
                self.set_meta("world", current | {"sae_revision": world["sae_revision"]})
        self._refuse(current, world, diff)

    def check_world(self, world: dict[str, Any], *, wildcards: bool = False) -> None:
        """Refuse ``world`` as bind_world would, without claiming the store (wildcards: the keys ``world``
        leaves None match any, agent.world.world_differences)."""
        current = self.world()
        if current is not None:
            self._refuse(current, world, world_differences(current, world, wildcards=wildcards))

    def _refuse(self, current: dict[str, Any], world: dict[str, Any], diff: list[str]) -> None:
        """StoreError naming, in words, the world the store holds and what of ``world`` differs (none: nothing);
        content fingerprints only as a detail at the end."""
        if diff:
            raise StoreError(refusal(self.path, current, world, diff))

    @property
    @db_errors
    def id(self) -> str | None:
        """This store's identity (made when it was created or first opened writable; a copy shares it), stamped
        on every exported row so a later export knows whether a file came from this store."""
        try:
            value = self.get_meta("id")
        except RecordUnreadable:
            return None
        return value if isinstance(value, str) else None

    # ------------------------------------------------------------------ probe results

    @db_errors
    def get_probe(self, key: str) -> ProbeResult | None:
        try:
            data = self._load(self._probes, key)
            return None if data is None else ProbeResult.from_dict(data)
        except (RecordUnreadable, KeyError, TypeError, ValueError) as exc:
            log.warning("store %s: cached probe %s unreadable (%s); recomputing it", self.path, key, exc)
            return None

    @db_errors
    def put_probe(self, key: str, result: ProbeResult) -> None:
        self._keep(self._probes, key, result.to_dict())

    @db_errors
    def probe_count(self) -> int:
        return len(self._probes)

    # ------------------------------------------------------------------ top-k / hybrid descriptions

    @db_errors
    def get_image_evidence(self, key: str) -> ImageEvidence | None:
        try:
            data = self._load(self._images, key)
            return None if data is None else ImageEvidence.from_dict(data)
        except (RecordUnreadable, KeyError, TypeError, ValueError) as exc:
            log.warning("store %s: cached top-k description %s unreadable (%s); recomputing it", self.path, key, exc)
            return None

    @db_errors
    def put_image_evidence(self, key: str, result: ImageEvidence) -> None:
        self._keep(self._images, key, result.to_dict())

    # ------------------------------------------------------------------ activation tests

    @db_errors
    def get_activation_test(self, key: str) -> ActivationTestResult | None:
        """A cached activation test (kept beside the top-k descriptions: both are per-world image evidence)."""
        try:
            data = self._load(self._images, key)
            return None if data is None else ActivationTestResult.from_dict(data)
        except (RecordUnreadable, KeyError, TypeError, ValueError) as exc:
            log.warning("store %s: cached activation test %s unreadable (%s); recomputing it", self.path, key, exc)
            return None

    @db_errors
    def put_activation_test(self, key: str, result: ActivationTestResult) -> None:
        self._keep(self._images, key, result.to_dict())

    # ------------------------------------------------------------------ judge calls

    @db_errors
    def get_judge_call(self, key: str) -> dict[str, Any] | None:
        try:
            data = self._load(self._judge, key)
        except RecordUnreadable as exc:
            log.warning("%s; calling the judge again", exc)
            return None
        return data if isinstance(data, dict) and isinstance(data.get("text"), str) else None

    @db_errors
    def put_judge_call(self, key: str, value: dict[str, Any]) -> None:
        self._keep(self._judge, key, value)

    @db_errors
    def judge_call_count(self) -> int:
        return len(self._judge)

    # ------------------------------------------------------------------ records

    def _read_record(self, feature: int) -> FeatureRecord | None:
        key = _record_key(feature)
        data = self._load(self._main, key)
        if data is None:
            return None
        schema = data.get("schema") if isinstance(data, dict) else None
        if isinstance(schema, int) and schema > SCHEMA_VERSION:
            raise RecordUnreadable(self.path, key, f"schema {schema!r} is newer than this version reads")
        problem = record_problem(data)
        if problem is None and data["feature"] != feature:
            problem = f"it is filed under feature {feature} but names feature {data['feature']}"
        if problem:
            raise RecordUnreadable(self.path, key, problem)
        return FeatureRecord.from_dict(data)

    def _read_review(self, feature: int) -> dict[str, Any]:
        try:
            data = self._load(self._main, _review_key(feature))
            problem = None if data is None else review_problem(data)
            if problem:
                raise RecordUnreadable(self.path, _review_key(feature), problem)
        except RecordUnreadable as exc:
            log.error("%s", exc)
            data = None
        if not isinstance(data, dict):
            return {"current": None, "history": []}
        data.setdefault("current", None)
        data.setdefault("history", [])
        return data

    @db_errors
    def get_record(self, feature: int) -> FeatureRecord | None:
        """The record of ``feature`` with its current review and manual probes, or None.
        Raises RecordUnreadable."""
        rec = self._read_record(feature)
        if rec is not None:
            current = self._read_review(feature)["current"]
            rec.review = Review.from_dict(current) if current else None
            rec.manual = self.manual_probes(feature)
        return rec

    @db_errors
    def has_review(self, feature: int) -> bool:
        return self._read_review(feature)["current"] is not None

    @db_errors
    def put_record(self, record: FeatureRecord, *, overwrite_reviewed: bool = False) -> bool:
        """Write ``record`` whole. Returns False (and writes nothing) when a human has reviewed the
        feature, unless ``overwrite_reviewed``; then the old review moves to the review history."""
        feature = record.feature
        with self._main.transact():
            review = self._read_review(feature)
            if review["current"] is not None:
                if not overwrite_reviewed:
                    return False
                review["history"].append({**review["current"], "superseded_at": now_iso(),
                                          "superseded_by": record.run_id or "a later run"})
                review["current"] = None
                self._main.set(_review_key(feature), self._dump(review))
            self._main.set(_record_key(feature), self._dump(record.to_dict()), tag=time.time())
        return True

    @db_errors
    def record_stored_at(self, feature: int) -> float | None:
        """When the feature's record was last written (time.time()), None when unknown."""
        try:
            _value, tag = self._main.get(_record_key(feature), tag=True)
        except CorruptValue:
            return None
        return float(tag) if isinstance(tag, (int, float)) and not isinstance(tag, bool) else None

    @db_errors
    def delete_record(self, feature: int) -> None:
        self._main.delete(_record_key(feature))

    @db_errors
    def features(self) -> list[int]:
        """Ids of every feature with a record (readable or not)."""
        return self._feature_keys("record")

    def _feature_keys(self, prefix: str) -> list[int]:
        """Feature ids of the keys ``prefix/N``; keys this store never writes are skipped with a warning."""
        out = []
        for key in self._main.iterkeys():
            if not isinstance(key, str):
                log.warning("store %s: skipping an entry whose key is %r, not text", self.path, key)
                continue
            head, _, tail = key.partition("/")
            if head != prefix:
                continue
            if tail.isdigit() and tail.isascii():
                out.append(int(tail))
            else:
                log.warning("store %s: skipping entry %r (not a feature id)", self.path, key)
        return sorted(out)

    @db_errors
    def list_records(self, features: Iterable[int] | None = None,
                     errors: list[RecordUnreadable] | None = None) -> list[FeatureRecord]:
        """Readable records in feature order; unreadable ones go to ``errors`` (or the log)."""
        wanted = self.features() if features is None else sorted(set(features))
        out = []
        for f in wanted:
            try:
                rec = self.get_record(f)
            except RecordUnreadable as exc:
                if errors is not None:
                    errors.append(exc)
                else:
                    log.error("%s", exc)
                continue
            if rec is not None:
                out.append(rec)
        return out

    # ------------------------------------------------------------------ reviews

    @db_errors
    def set_review(self, feature: int, decision: str, *, explanation: str | None = None, label: str | None = None,
                   note: str | None = None, reviewer: str | None = None) -> Review:
        """Record a human decision (accept, edit or reject) about the feature's record."""
        if decision not in DECISIONS:
            raise StoreError(f"unknown review decision {decision!r}: use one of {', '.join(DECISIONS)}")
        if decision == "edit" and not (explanation or label):
            raise StoreError("an edit needs a new explanation or label")
        review = Review(decision=decision, reviewer=reviewer or default_reviewer(), at=now_iso(),
                        explanation=explanation if decision == "edit" else None,
                        label=label if decision == "edit" else None, note=note)
        with self._main.transact():
            if self._read_record(feature) is None:
                raise StoreError(f"store {self.path} has no record for feature {feature} to review")
            data = self._read_review(feature)
            if data["current"] is not None:
                data["history"].append(data["current"])
            data["current"] = review.to_dict()
            self._main.set(_review_key(feature), self._dump(data))
        return review

    @db_errors
    def clear_review(self, feature: int, reviewer: str | None = None) -> None:
        """Withdraw the current decision (it stays in the history)."""
        with self._main.transact():
            data = self._read_review(feature)
            if data["current"] is None:
                return
            data["history"].append({**data["current"], "withdrawn_at": now_iso(),
                                    "withdrawn_by": reviewer or default_reviewer()})
            data["current"] = None
            self._main.set(_review_key(feature), self._dump(data))

    @db_errors
    def get_review(self, feature: int) -> Review | None:
        current = self._read_review(feature)["current"]
        return Review.from_dict(current) if current else None

    @db_errors
    def review_history(self, feature: int) -> list[dict[str, Any]]:
        return list(self._read_review(feature)["history"])

    @db_errors
    def reviewed_features(self) -> set[int]:
        return {f for f in self._feature_keys("review") if self._read_review(f)["current"] is not None}

    # ------------------------------------------------------------------ manual probes

    @db_errors
    def add_manual_probe(self, feature: int, result: ProbeResult, *, baseline: ProbeResult | None = None,
                         reviewer: str | None = None) -> dict[str, Any]:
        """Append a probe a person ran by hand to the feature's record (kept apart from the automatic
        record, like reviews, so a later run does not drop it). Returns the stored entry."""
        entry = {"at": now_iso(), "by": reviewer or default_reviewer(), "result": result.to_dict(),
                 "baseline": list(baseline.texts) if baseline is not None else None}
        with self._main.transact():
            entries = self.manual_probes(feature)
            entries.append(entry)
            self._main.set(_manual_key(feature), self._dump(entries))
        return entry

    @db_errors
    def manual_probes(self, feature: int) -> list[dict[str, Any]]:
        """Every manual probe of ``feature``, oldest first (``result`` is a ProbeResult dict)."""
        try:
            data = self._load(self._main, _manual_key(feature))
        except RecordUnreadable as exc:
            log.error("%s", exc)
            return []
        return [e for e in data if isinstance(e, dict) and isinstance(e.get("result"), dict)] \
            if isinstance(data, list) else []

    # ------------------------------------------------------------------ leases

    @db_errors
    def claim(self, feature: int, holder: str, ttl: float) -> bool:
        """Lease ``feature`` to ``holder`` for ``ttl`` seconds (or renew its lease); False when another
        live holder has it. A lease lapses at its expiry, or at once when its process is known dead."""
        key, now = _lease_key(feature), time.time()
        with self._main.transact():
            try:
                lease = self._load(self._main, key)
            except RecordUnreadable as exc:
                log.warning("%s; taking the lease over", exc)
                lease = None
            if isinstance(lease, dict) and lease.get("holder") != holder and _lease_alive(lease, now):
                return False
            self._main.set(key, self._dump({"holder": holder, "expires": now + ttl, "pid": os.getpid(),
                                            "host": socket.gethostname()}))
        return True

    @db_errors
    def release(self, feature: int, holder: str) -> None:
        """End ``holder``'s lease on ``feature`` (another holder's lease is left alone)."""
        key = _lease_key(feature)
        with self._main.transact():
            try:
                lease = self._load(self._main, key)
            except RecordUnreadable:
                lease = {"holder": holder}
            if isinstance(lease, dict) and lease.get("holder") == holder:
                self._main.delete(key)

    # ------------------------------------------------------------------ summary

    @db_errors
    def counts(self) -> dict[str, int]:
        errors: list[RecordUnreadable] = []
        recs = self.list_records(errors=errors)
        out = {"records": len(recs), "done": sum(r.status == "done" for r in recs),
               "failed": sum(r.status == "failed" for r in recs), "unreadable": len(errors),
               "reviewed": sum(r.review is not None for r in recs),
               "probes": self.probe_count(), "judge_calls": self.judge_call_count()}
        return out
