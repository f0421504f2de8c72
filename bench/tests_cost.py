"""What the activation tests cost: the README's first command with and without them, side by side.

    python bench/tests_cost.py [--features 0-63]

Runs ``steer-agent --features ...`` on two fresh stores (and fresh cache folders) in one process each: ``--max-tests 0`` (the judge of
before the tests: steering only, with its transfer probes) and the default (the judge asks for activation
tests). Prints, for each, wall time, probes and activation tests per feature, and the ratio of wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(features: str, store: Path, extra: list[str]) -> dict[str, float]:
    # a cache folder of its own: the render pools a run keeps for the next are computed here, not read
    env = dict(os.environ, STEER_INTERP_CACHE=str(store.parent / f"cache-{store.name}"))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "agent.cli", "--features", features, "--store", str(store), *extra],
                         capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"steer-agent failed ({out.returncode}): {out.stderr.strip()[-400:]}")
    export = store / "bench.jsonl"
    subprocess.run([sys.executable, "-m", "agent.cli", "export", "--store", str(store), "--out", str(export)],
                   capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in export.read_text().splitlines() if line.strip()]
    n = max(1, len(rows))
    return {"wall_s": wall, "features": len(rows), "probes_per_feature": sum(r["n_probes"] for r in rows) / n,
            "tests_per_feature": sum(len(r.get("activation_tests") or []) for r in rows) / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", default="0-63")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = run(args.features, Path(tmp) / "before", ["--max-tests", "0"])
        after = run(args.features, Path(tmp) / "after", [])
    for name, r in (("steering only (--max-tests 0)", before), ("with activation tests (default)", after)):
        print(f"{name:34s} {r['wall_s']:7.1f} s  {r['features']} features  {r['probes_per_feature']:.1f} probes and "
              f"{r['tests_per_feature']:.1f} tests per feature")
    print(f"wall time ratio (tests / steering only): {after['wall_s'] / before['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
