"""Scale-out on a local Ray cluster (CPU, the toy world): the same export as one process, an actor killed mid-run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
FEATURES = list(range(32))
VOLATILE = ("seconds", "created_at", "run_id", "store_id")
"""Export fields that differ between any two runs (timings and ids, the store's own id)."""

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install -e '.[ray]'")


def _toy_available() -> bool:
    from steering import toy

    return toy.is_available()


def cluster_test(test: Any) -> Any:
    """A slow test on a local Ray cluster with the toy world."""
    for mark in (pytest.mark.slow, needs_ray,
                 pytest.mark.skipif(not _toy_available(), reason="the toy world is not installed")):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A small local cluster (2 CPUs, a small object store, no dashboard), always shut down."""
    import ray

    from agent.run.ray.actor import RayOptions, connect

    connect(RayOptions(init={"num_cpus": 2, "object_store_memory": 80 * 2**20}))
    try:
        yield ray
    finally:
        ray.shutdown()


class CountingStore:
    """Counts every probe result a store is asked to write, by key (nothing may be written twice)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from agent.store.store import Store

        self.puts: Counter[str] = Counter()
        real = Store.put_probe

        def put_probe(store: Any, key: str, result: Any) -> None:
            self.puts[key] += 1
            real(store, key, result)

        monkeypatch.setattr(Store, "put_probe", put_probe)


def _explain(engine: Any, folder: Path) -> dict[int, dict[str, Any]]:
    """Run the 32 features with the offline judge into a fresh store; the export, timings left out."""
    from agent.store.export import export_records
    from agent.judges import JudgeConfig, checked_judge
    from agent.run import run_features
    from agent.store.store import Store

    with Store(folder / "store") as store:
        summary = run_features(engine, checked_judge(JudgeConfig()), store, FEATURES)
        assert summary.exit_code == 0
        export_records(store, folder / "export.jsonl", FEATURES)
    rows = [json.loads(line) for line in (folder / "export.jsonl").read_text().splitlines()]
    return {r["feature"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in rows}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    from agent.world import WorldSpec, load_engine

    return _explain(load_engine(WorldSpec(device="cpu")), tmp_path_factory.mktemp("one-process"))


def _pool(workers: int = 2) -> Any:
    from agent.run.ray.actor import RayOptions
    from agent.run.ray.pool import RayEnginePool
    from agent.world import WorldSpec

    return RayEnginePool(WorldSpec(), RayOptions(workers=workers))


@cluster_test
def test_two_actors_export_what_one_process_does(cluster: Any, one_process: dict[int, dict[str, Any]],
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingStore(monkeypatch)
    pool = _pool()
    try:
        exported = _explain(pool, tmp_path)
        stats = pool.stats()
    finally:
        pool.close()
    assert exported == one_process
    assert all(r["status"] == "done" for r in exported.values())
    assert all(w.rows_done > 0 for w in stats), "both actors ran chunks"
    assert counting.puts and max(counting.puts.values()) == 1


@cluster_test
def test_an_actor_killed_mid_run_loses_nothing(cluster: Any, one_process: dict[int, dict[str, Any]],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingStore(monkeypatch)
    pool = _pool()
    victim = pool.workers[0]
    pid = cluster.get(pool.actors[0].info.remote())["pid"]  # the actor's process, as Ray runs it
    killed = threading.Event()

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (victim.rows_done > 0 and victim.in_flight > 0):
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    try:
        exported = _explain(pool, tmp_path)
        killer.join(timeout=5)
    finally:
        pool.close()
    assert killed.is_set()
    assert victim.deaths == 1 and pool.retried_chunks >= 1, "the killed actor's chunks were sent again"
    assert exported == one_process
    assert max(counting.puts.values()) == 1, "no probe result stored twice"


def test_a_run_without_ray_never_imports_it(tmp_path: Path) -> None:
    """The CLI's engines without --ray are in-process ones, and nothing imports ray on the way."""
    code = ("import sys\n"
            "from agent.cli.main import build_parser, with_default_command\n"
            "from agent.cli.args import scale_out\n"
            "from agent.session import Session\n"
            "args = build_parser().parse_args(with_default_command(['--features', '0-3']))\n"
            "engines = Session(scale=scale_out(args)).engines\n"
            "print(type(engines).__name__, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.split() == ["Engines", "False"], out.stderr


@pytest.mark.slow
def test_a_whole_cli_run_without_ray_never_imports_it(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from agent.cli.main import main\n"
            f"code = main(['--features', '0-1', '--store', {str(tmp_path / 'store')!r}, '--no-progress'])\n"
            "print('RESULT', code, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.stdout.split()[-3:] == ["RESULT", "0", "False"], out.stdout[-500:] + out.stderr[-2000:]


@cluster_test
def test_ctrl_c_stops_the_cluster_and_leaves_a_resumable_store(tmp_path: Path) -> None:
    """Ctrl-C at a terminal (SIGINT to the whole process group, Ray's processes included): exit 130, the
    finished features stored; the same command without --ray then finishes the rest."""
    from agent.cli.main import main
    from agent.store.store import Store

    store = tmp_path / "store"
    argv = ["--features", "0-63", "--store", str(store), "--no-progress", "--table-limit", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "-v", *argv, "--ray", "--ray-workers", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ": done " in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, rest[-2000:]
    assert "run the same command again to resume" in rest
    with Store(store) as s:
        done = [r.feature for r in s.list_records(range(64)) if r.status == "done"]
    assert 0 < len(done) < 64
    assert main(argv) == 0
    with Store(store) as s:
        assert all(r.status == "done" for r in s.list_records(range(64)))


@cluster_test
def test_the_scale_out_bench_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "scale_out.py"), "--rows", "64", "--repeats", "1",
                          "--max-new-tokens", "4"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout, not an installed copy
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio 2/1 actors:" in out.stdout and "driver overhead per chunk" in out.stdout


def test_the_display_lines_show_each_worker() -> None:
    """Live: rows/s and chunks queued per actor; at the end: rows, rows/s, deaths (no cluster needed)."""
    from agent.run.ray.dispatch import WorkerStats
    from agent.run.ray.pool import RayEnginePool, RayEngines

    pool = RayEnginePool.__new__(RayEnginePool)  # the numbers only, no actors behind them
    pool._lock = threading.Lock()
    pool.workers = [WorkerStats(0, pid=11, host="a", rows_done=64, seconds=2.0, in_flight=2),
                    WorkerStats(1, pid=12, host="b", alive=False, restarting=True, deaths=1)]
    engines = RayEngines()
    assert engines.live_line() == "ray: starting the engine actors" and engines.worker_lines() == []
    engines._engine = pool
    assert engines.live_line() == "ray: w0 32.0 rows/s q2 | w1 0.0 rows/s q0 (restarting)"
    assert engines.worker_lines()[0] == "ray worker 0 (pid 11 on a): 64 rows, 32.0 rows/s, 32 rows per chunk"
    assert engines.worker_lines()[1].endswith("died 1x, dropped")
