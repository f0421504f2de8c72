"""End to end: many feature loops with a slow judge; is the GPU kept busy while the judge thinks?

A simulated judge answers every call after a fixed latency (no LLM): rounds 1..R-1 ask for two
more probes, round R gives the final answer. The run's wall time is printed beside its lower bound
max(engine time, judge time / concurrency), where judge time = features x rounds x latency.

CPU, toy scale (CI can run it):  python bench/end_to_end.py
GPU, full-size Gemma-3-4B architecture, random weights:
                                 python bench/end_to_end.py --gpu --features 500 --latency 2 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.run.config import RunConfig, SweepConfig
from agent.judges.base import JudgeContext, JudgeTurn
from agent.run import run_features
from agent.store.store import Store
from agent.judges.verdicts import ProbeRequest, Verdict


class SimulatedJudge:
    """Waits ``latency`` seconds per call, then probes twice more per round until the last round."""

    name = "simulated"
    is_llm = False

    def __init__(self, latency: float, rounds: int, strengths: tuple[float, float]) -> None:
        self.latency, self.rounds, self.strengths = latency, rounds, strengths
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": "simulated", "latency": self.latency, "rounds": self.rounds}

    async def decide(self, ctx: JudgeContext) -> JudgeTurn:
        self.calls += 1
        await asyncio.sleep(self.latency)
        if ctx.round < self.rounds and not ctx.force_final:
            probes = [ProbeRequest(strength=s + ctx.round, reason="refine") for s in self.strengths]
            verdict = Verdict(hypothesis="a pattern", confidence=0.5, action="probe", probes=probes)
        else:
            verdict = Verdict(hypothesis="a pattern", confidence=0.6, action="final",
                              explanation="A simulated explanation.", label="simulated pattern label")
        return JudgeTurn(verdict=verdict, raw=verdict.model_dump_json(), seconds=self.latency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="full-size Gemma-3-4B architecture on CUDA")
    parser.add_argument("--smoke", action="store_true", help="the --gpu code path on the CPU with a shrunken config "
                                                             "(checks the script, not the speed)")
    parser.add_argument("--features", type=int, default=48)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per judge call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="judge calls in flight")
    parser.add_argument("--new-tokens", type=int, default=None)
    args = parser.parse_args()

    from steering.engine import GenerationSettings, SteeringEngine
    from throughput import full_size_world, toy_world  # bench/ sibling

    if args.gpu or args.smoke:
        vlm, sae = full_size_world(16, "cpu" if args.smoke else "cuda", smoke=args.smoke)
        strength, new_tokens = 200.0, args.new_tokens or 100
    else:
        vlm, sae, strength = toy_world()
        new_tokens = args.new_tokens or 16
    if args.features > sae.d_sae:
        raise SystemExit(f"--features {args.features}: this SAE has only {sae.d_sae} features")
    engine = SteeringEngine(vlm, sae, layer=sae.layer,
                            settings=GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens))
    schedule = tuple(strength * m for m in (0.25, 0.5, 1.0))
    # Warm up outside the timed run: prefix cache, the self-check, and (on a GPU) the compiled decode
    # step, which every later call reuses at the same row count.
    from steering.probes import Probe

    engine.run([Probe(f % sae.d_sae, schedule[-1]) for f in range(engine.batch_rows())])
    judge = SimulatedJudge(args.latency, args.rounds, (schedule[1], schedule[2]))
    cfg = RunConfig(sweep=SweepConfig(strengths=schedule, controls=1, background=0, panel=0),
                    max_rounds=args.rounds, concurrency=args.concurrency, in_flight=max(64, args.concurrency))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        t0 = time.perf_counter()
        summary = run_features(engine, judge, store, list(range(args.features)), cfg)
        wall = time.perf_counter() - t0
        store.close()
    stats = summary.stats
    from collections import Counter

    statuses = Counter(summary.statuses.values())
    judge_time = judge.calls * args.latency
    bound = max(stats.engine_seconds, judge_time / args.concurrency)
    print(f"device: {'cuda' if args.gpu else 'cpu'}; {args.features} features x {args.rounds} rounds; "
          f"judge latency {args.latency:g}s, concurrency {args.concurrency}; {new_tokens} new tokens pinned")
    print(f"features: {dict(statuses)}")
    print(f"judge calls {judge.calls}; probes {stats.probes_run} in {stats.probe_rows} rows; "
          f"engine busy {stats.engine_seconds:.1f}s; judge time / concurrency {judge_time / args.concurrency:.1f}s")
    print(f"wall {wall:.1f}s; lower bound {bound:.1f}s; ratio {wall / bound:.2f} (bar <= 1.25)")


if __name__ == "__main__":
    main()
