"""Feature leases: two runs on one store share overlapping work; a dead holder's features are taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from agent.run.config import RunConfig, SweepConfig
from agent.judges import OfflineJudge
from agent.run import RunSummary, run_features
from agent.store.store import Store
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=0, panel=0), in_flight=2)


def leases_left(path: Path) -> list[str]:
    with Store(path) as s:
        return [k for k in s._main.iterkeys() if isinstance(k, str) and k.startswith("lease/")]


def test_two_concurrent_runs_share_an_overlapping_range(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    ranges = {"a": list(range(0, 16)), "b": list(range(8, 24))}
    summaries: dict[str, RunSummary] = {}
    start = threading.Barrier(2)

    def run(name: str) -> None:
        with Store(path) as store:  # one Store object each, as two processes would have
            start.wait()
            summaries[name] = run_features(FakeEngine(delay=0.05), OfflineJudge(), store, ranges[name], CFG)

    threads = [threading.Thread(target=run, args=(name,)) for name in ranges]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    a, b = summaries["a"], summaries["b"]
    assert set(a.records) & set(b.records) == set(), "both runs explained the same features"
    assert set(a.records) | set(b.records) == set(range(24))
    assert a.exit_code == b.exit_code == 0
    assert {a.statuses[f] for f in range(8, 16)} | {b.statuses[f] for f in range(8, 16)} == {"done", "skipped-done"}
    with Store(path) as s:
        assert [r.feature for r in s.list_records() if r.status == "done"] == list(range(24))
    assert leases_left(path) == []


HOLDER = """
import sys, time
from agent.store.store import Store
s = Store(sys.argv[1])
assert s.claim(5, "doomed-run", 3600)
print("claimed", flush=True)
time.sleep(120)
"""


def test_a_dead_holders_lease_lapses_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s"
    Store(path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    with Store(path) as s:
        assert not s.claim(5, "someone-else", 60)  # a live holder keeps it
    holder.kill()
    holder.wait(timeout=30)
    with Store(path) as s:
        claims: list[tuple[int, bool]] = []
        real_claim = s.claim
        s.claim = lambda f, *a, **k: claims.append((f, real_claim(f, *a, **k))) or claims[-1][1]  # type: ignore
        summary = run_features(FakeEngine(), OfflineJudge(), s, [4, 5], CFG)
        assert summary.statuses == {4: "done", 5: "done"}
        assert next(ok for f, ok in claims if f == 5), "the dead holder's lease was waited out, not taken over"
    assert leases_left(path) == []


def test_a_claimed_feature_waits_for_its_holder_then_runs_when_it_lapses(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as s:
        assert s.claim(3, "a-live-run", 1.0)  # this process holds it: alive, until it expires
        claims: list[tuple[int, bool]] = []
        real_claim = s.claim
        s.claim = lambda f, *a, **k: claims.append((f, real_claim(f, *a, **k))) or claims[-1][1]  # type: ignore
        summary = run_features(FakeEngine(), OfflineJudge(), s, [2, 3], CFG)
        assert summary.statuses == {2: "done", 3: "done"}
        tries = [ok for f, ok in claims if f == 3]
        assert tries[0] is False and tries[-1] is True, tries  # refused while held, taken once the lease lapsed
        s.claim = real_claim  # type: ignore
        s.release(3, "not-the-holder")  # only the holder releases
        assert s.claim(3, "x", 60) and not s.claim(3, "y", 60)
        s.release(3, "x")
        assert s.claim(3, "y", 60)
