"""`steer-agent eval`: measure how good explanations are, per mode, and write a report."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.cli.args import (
    add_judge_options,
    add_model_options,
    add_ray_options,
    judge_config,
    parse_floats,
    scale_out,
    world_spec,
)
from agent.eval.config import ALL_MODES, DEFAULT_MODES, EvalConfig
from agent.session import check_features
from agent.session import Session
from agent.world import ChoiceError, WorldSpec

CPU_BATCH = 128
"""Rows per generate call on a CPU unless --batch-size says otherwise."""


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in modes if m not in ALL_MODES]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {', '.join(bad) or text!r}: choose from {', '.join(ALL_MODES)}")
    return modes


def parse_seeds(text: str) -> tuple[int, ...]:
    """Planted seeds: one (3), a list (1,5,9) or a range (0-4), each a whole number >= 0."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            lo, _, hi = part.partition("-")
            a, b = int(lo), int(hi) if hi else int(lo)
            if a < 0 or b < a:
                raise ValueError
            seeds += range(a, b + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --planted-seed {text!r}: use a seed (0), a list (1,5,9) or a "
                                         "range (0-4)") from None
    if len(seeds) > 50:
        raise argparse.ArgumentTypeError(f"--planted-seed {text!r} names {len(seeds)} seeds: at most 50")
    return tuple(dict.fromkeys(seeds))


def parse_numbers(text: str) -> tuple[float, ...]:
    """A comma list of positive numbers, as the run command parses them (kept as a tuple for the config)."""
    return tuple(parse_floats(text))


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval", help="measure explanation quality per mode and write a report",
        description="Score explanations of each mode (one-shot steering, the agent loop with the offline or an "
                    "LLM judge, top-k, hybrid) against ground truth where the world has it (the toy world), with "
                    "random-direction and permuted-feature controls, forced choice and CLIP similarity.")
    p.add_argument("--report", type=Path, required=True, metavar="DIR",
                   help="folder for report.md, the PNG plots and metrics.json")
    p.add_argument("--modes", type=parse_modes,
                   help=f"comma list of {', '.join(ALL_MODES)} (default: {','.join(DEFAULT_MODES)}, plus llm "
                        "with a judge endpoint and clip with --clip)")
    p.add_argument("--features", default="all",
                   help="feature ids like 0-99,120 or all (default); with ground truth only the pure ones are scored")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    p.add_argument("--seed", type=int, default=0, help="seed of the sweep, controls, permutation and forced choice")
    b = p.add_argument_group("benchmark (claims, simulation AUROC, baselines tuned on dev, gates)")
    b.add_argument("--split", choices=("dev", "test"), default="dev",
                   help="the split the benchmark's tables report (default dev, where anything tunable is chosen; "
                        "read test once, for the closing figures)")
    b.add_argument("--split-seed", type=int, default=0, help="seed of the dev/test split of features (default 0)")
    b.add_argument("--planted-seed", type=parse_seeds, default=None, metavar="SEEDS",
                   help="evaluate planted features (a dictionary built from class-mean differences of the toy "
                        "world's activations; the seed chooses which values are combined) instead of the SAE's; "
                        "a list or range (0-4, 1,5,9) pools the seeds' splits into one benchmark")
    b.add_argument("--no-simulation", action="store_true", help="skip the simulation AUROC")
    add_model_options(p)
    g = p.add_argument_group("what is measured")
    g.add_argument("--ground-truth", type=Path, metavar="FILE",
                   help="ground_truth.json (default: the one beside the SAE, as the toy world ships)")
    g.add_argument("--purity", type=float, default=0.9, help="in a truth file without version-3 counts (your own): score values at least this pure (default 0.9); "
                        "a version-3 truth scores features with a true claim and at least 50 active eval scenes")
    g.add_argument("--strengths", type=parse_numbers,
                   help="strength schedule (default: 0.5,1,1.5,2,2.5,3,4 x the hidden-state norm, as steer-agent run)")
    g.add_argument("--hybrid-multiples", type=parse_numbers, default=(0.25, 0.5, 1.0),
                   help="hybrid strengths as multiples of the hidden-state norm (default 0.25,0.5,1)")
    g.add_argument("--topk", type=Path, metavar="DIR",
                   help="a top-k collection (python -m steering.topk); default on the toy world: collected over "
                        "freshly rendered scenes")
    g.add_argument("--topk-scenes", type=int, default=1000, help="toy scenes for that collection (default 1000)")
    g.add_argument("--n-images", type=int, default=5, help="top images shown in top-k/hybrid mode (default 5)")
    g.add_argument("--clip", metavar="MODEL", help="a CLIP-like model (local folder or cached hub id) for CLIP similarity")
    g.add_argument("--max-rounds", type=int, default=4, help="judge rounds per feature in the agent loop (default 4)")
    g.add_argument("--max-probes", type=int, default=24, help="extra probes per feature in the agent loop (default 24)")
    add_judge_options(p)  # the llm mode (and the LLM forced-choice reader) runs this judge, as a run would
    add_ray_options(p)  # the probes on Ray actors; the model's other uses stay in this process
    o = p.add_argument_group("cache and output")
    o.add_argument("--eval-store", type=Path, metavar="DIR",
                   help="cache of probes, records and descriptions (default: one per world under "
                        "$STEER_INTERP_CACHE/eval); reruns answer from it")
    o.add_argument("--no-plots", action="store_true", help="no PNG plots")
    o.add_argument("--require-bar", action="store_true", help="exit 1 when the toy-world bar is not met")
    p.set_defaults(func=run, eval_parser=p)
    return p


def command_line(args: argparse.Namespace) -> str:
    """The options that differ from their defaults, as one ``steer-agent eval`` command."""
    parser: argparse.ArgumentParser = args.eval_parser
    words = ["steer-agent", "eval"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, (tuple, list)):
            words += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _judge_wanted(args: argparse.Namespace) -> bool:
    """An LLM judge is asked for: --judge openai, or a judge model or URL without --judge offline."""
    return judge_config(args).kind == "openai"


def eval_store_path(args: argparse.Namespace) -> Path:
    if args.eval_store:
        return args.eval_store
    from agent.store.store import cache_root, store_name

    model, sae = world_spec(args).resolved()
    return cache_root() / "eval" / store_name(model, sae, args.layer)


def build_config(args: argparse.Namespace) -> EvalConfig:
    modes = args.modes
    if modes is None:
        modes = DEFAULT_MODES + (("llm",) if _judge_wanted(args) else ()) + (("clip",) if args.clip else ())
    return EvalConfig(modes=modes, purity=args.purity, seed=args.seed, strengths=args.strengths,
                      hybrid_multiples=args.hybrid_multiples, n_images=args.n_images, topk_scenes=args.topk_scenes,
                      max_rounds=args.max_rounds, max_probes=args.max_probes, split=args.split,
                      split_seed=args.split_seed)


def say(msg: str) -> None:
    """A line for the user on stderr (stdout carries --json)."""
    print(msg, file=sys.stderr, flush=True)


TEST_REMINDER = ("note: these are test-split figures, for the closing note; choose anything tunable with "
                 "--split dev (the default for tuning) and read test once, at the end")


def run(args: argparse.Namespace) -> int:
    from agent.eval.report import write_report
    from agent.eval.runner import EvalError

    problem = scale_out(args).problem()
    if problem:
        say(f"error: {problem}")
        return 2
    seeds = args.planted_seed
    args.command = command_line(args)  # before --sae points at a planted dictionary's cache folder
    try:
        cfg = build_config(args)
        check_features(args.features)
        if seeds is not None and (args.model or args.sae):
            raise ValueError("--planted-seed plants features in the toy world: drop --model and --sae")
    except (ValueError, ChoiceError) as exc:
        say(f"error: {exc}")
        return 2
    if cfg.split == "test":
        say(TEST_REMINDER)
    t0 = time.perf_counter()
    if seeds is not None and len(seeds) > 1:
        return run_pooled(args, cfg, seeds, t0)
    if seeds is not None:
        use_planted(args, seeds[0])
    try:
        metrics, _inputs = evaluate_once(args, cfg)
    except (ChoiceError, EvalError) as exc:
        say(f"error: {exc}")
        return 2
    metrics["timings"]["total"] = round(time.perf_counter() - t0, 2)
    if seeds is not None:
        metrics["planted_seed"] = seeds[0]
    report = write_report(metrics, args.report, command=args.command, plots=not args.no_plots)
    if args.json:
        print(json.dumps(metrics, indent=1))
    for w in metrics.get("warnings", []):
        say(f"warning: {w}")
    say(summary_line(metrics) + f"\nreport: {report}")
    bar = metrics.get("bar", {})
    return 1 if args.require_bar and not bar.get("met") else 0


def evaluate_once(args: argparse.Namespace, cfg: EvalConfig) -> tuple[dict[str, Any], Any]:
    """One world's evaluation in its own Session: (metrics, the inputs, whose ``bench`` pooling reads)."""
    t0 = time.perf_counter()
    # a Ray pool's actors stop with the session, Ctrl-C included
    with Session(world_spec(args), judge=judge_config(args), scale=scale_out(args, model_here=True),
                 report=say) as session:
        inputs = load_inputs(session, args, cfg)
        inputs.timings["load"] = round(time.perf_counter() - t0, 2)
        return session.evaluate(inputs, cfg), inputs


def run_pooled(args: argparse.Namespace, cfg: EvalConfig, seeds: tuple[int, ...], t0: float) -> int:
    """``--planted-seed 0-4``: each seed evaluated (its report in DIR/seed-N), then one benchmark over the
    seeds' pooled splits in DIR (agent.eval.bench.pool)."""
    from agent.eval.bench import pool, run_bench
    from agent.eval.report import write_report
    from agent.eval.runner import EvalError, pooled_metrics

    per_seed: dict[int, dict[str, Any]] = {}
    benches, at4 = {}, {}
    for seed in seeds:
        use_planted(args, seed)
        try:
            metrics, inputs = evaluate_once(args, cfg)
        except (ChoiceError, EvalError) as exc:
            say(f"error: seed {seed}: {exc}")
            return 2
        metrics["planted_seed"] = seed
        write_report(metrics, args.report / f"seed-{seed}", command=args.command, plots=False)
        if inputs.bench is None:
            say(f"error: seed {seed}: no benchmark (no ground truth?)")
            return 2
        per_seed[seed], benches[seed], at4[seed] = metrics, inputs.bench, inputs.at_4x_onset
    pooled_bench, pooled_at4 = pool(benches, at4)
    bench = run_bench(pooled_bench, cfg.split, pooled_at4)
    metrics = pooled_metrics(per_seed, bench, cfg)
    metrics["timings"] = {"total": round(time.perf_counter() - t0, 2)}
    report = write_report(metrics, args.report, command=args.command, plots=False)
    if args.json:
        print(json.dumps(metrics, indent=1))
    say(summary_line(metrics) + f"\nreport: {report}")
    return 0


def use_planted(args: argparse.Namespace, seed: int) -> None:
    """Point --sae at the planted dictionary of ``seed`` (built once, in seconds)."""
    from agent.store.store import cache_root
    from steering.toy.planted import ensure

    say(f"eval: planted features, seed {seed} ...")
    args.sae = str(ensure(cache_root() / "planted" / f"seed-{seed}", seed))


def _simulator(args: argparse.Namespace, engine: Any, truth: Any) -> Any:
    """The simulation score, for the toy world's model (its scenes are what the claims render)."""
    import steering.toy as toy

    if args.no_simulation or truth is None or args.model or not toy.is_available():
        return None
    from agent.eval.simulation import Simulator

    return Simulator(engine, seed=args.seed, mix_of=lambda f: (truth.get(f) or {}).get("kind_mix"))


def load_inputs(session: Session, args: argparse.Namespace, cfg: EvalConfig) -> Any:
    """The evaluation's Inputs over the session's engine: ground truth, features, embedder, cache, judge, top-k,
    CLIP (raises ChoiceError; SteeringError goes to cli.main, exit 2)."""
    from agent.run.features import FeatureSpecError, parse_features

    truth = session.truth(args.ground_truth)
    n = session.check().n_features  # a range past the SAE is refused before the weights load
    if n is not None and args.features.strip().lower() != "all":
        try:
            parse_features(args.features, n)
        except FeatureSpecError as exc:
            raise ChoiceError(str(exc), field="features") from None
    session.world = eval_world(session.world)
    engine = session.engine()
    try:
        return _inputs(session, args, cfg, engine, truth)
    except BaseException:
        session.close(report=False)  # a Ray pool's actors stop at once: nothing ran on them
        raise


def _inputs(session: Session, args: argparse.Namespace, cfg: EvalConfig, engine: Any, truth: Any) -> Any:
    """load_inputs once the engine is loaded."""
    from agent.eval.cache import EvalCache
    from agent.eval.embeddings import EmbeddingUnavailable, load_embedder
    from agent.eval.runner import Inputs
    from agent.run.features import FeatureSpecError, parse_features

    try:
        features = parse_features(args.features, engine.sae.d_sae)
    except FeatureSpecError as exc:
        raise ChoiceError(str(exc), field="features") from None
    if truth is None:
        say("no ground truth for this SAE: only forced choice and CLIP similarity are measured")
    embedder = None
    try:
        embedder = load_embedder()
    except EmbeddingUnavailable as exc:
        say(f"note: {exc}; embedding hits and the embedding forced choice are skipped")
    cache = EvalCache(eval_store_path(args))
    judge, chooser = _judge(session, args, cfg, cache)
    topk = None
    if args.topk:
        from steering.topk import load_topk

        topk = load_topk(args.topk)
    return Inputs(engine=engine, cache=cache, features=features, truth=truth, embedder=embedder,
                  llm_judge=judge, chooser=chooser, topk=topk, clip=_clip(args, cfg, engine),
                  simulator=_simulator(args, engine, truth),
                  on_stage=lambda name: say(f"eval: {name} ..."))


def eval_world(spec: WorldSpec) -> WorldSpec:
    """The world as the evaluation loads it: larger batches pay on a CPU (a tiny model's generate is bound by
    per-step overhead), a GPU sizes its batches from free memory. The batch size changes no answer. With
    --ray, its probes run on a pool of Ray actors (one engine each, as in a run), loaded the same."""
    from steering.models import resolve_device

    cpu = resolve_device(spec.device) == "cpu"
    return replace(spec, batch_size=CPU_BATCH) if cpu and not spec.batch_size else spec


def _judge(session: Session, args: argparse.Namespace, cfg: EvalConfig, cache: Any) -> tuple[Any, Any]:
    """(the LLM judge, its forced-choice reader) when an endpoint is given and a mode needs them."""
    if not (_judge_wanted(args) and (cfg.wants("llm") or cfg.wants("forced-choice"))):
        return None, None
    from agent.eval.forced_choice import LLMChooser

    judge = session.judge()
    backend = judge.backend
    return judge, LLMChooser(backend, cache=cache.shared, concurrency=backend.limit.limit)


def _clip(args: argparse.Namespace, cfg: EvalConfig, engine: Any) -> Any:
    """The CLIP model when the clip mode is asked for."""
    if not cfg.wants("clip"):
        return None
    if not args.clip:
        raise ChoiceError("mode clip needs --clip MODEL", field="clip")
    from agent.eval.clip_score import load_clip

    return load_clip(args.clip, device=str(engine.vlm.device))


def summary_line(m: dict[str, Any]) -> str:
    parts = []
    for name in ("offline", "llm", "oneshot-best", "topk", "hybrid-best"):
        d = m.get("modes", {}).get(name)
        if d and d.get("word", {}).get("n"):
            parts.append(f"{name} {100 * d['word']['rate']:.0f}%")
    for name, d in m.get("controls", {}).items():
        if name == "permuted":
            if "offline" in d:
                parts.append(f"permuted {100 * d['offline']['word']['rate']:.0f}%")
        elif d["word"]["n"]:
            parts.append(f"{name} {100 * d['word']['rate']:.0f}%")
    bar = m.get("bar")
    if "planted_seeds" in m:
        parts.append(f"planted seeds {','.join(map(str, m['planted_seeds']))} pooled")
    line = f"{m['features']['n']} features: " + ", ".join(parts) if parts else f"{m['features']['n']} features"
    if bar is not None:
        line += f" | bar {'met' if bar.get('met') else 'NOT met'}"
    d = m.get("diffs", {}).get("agent_vs_best_baseline")
    if d:
        f, split = d["f1"], m["bench"]["split"]
        line += (f" | {split}: agent F1 {100 * m['modes']['agent']['f1']['mean']:.1f} vs {d['baseline']} "
                 f"{100 * m['modes'][d['baseline']]['f1']['mean']:.1f} ({f['verdict']})")
    d = m.get("diffs", {}).get("agent_vs_best_nonadaptive")
    if d:
        f = d["f1"]
        line += (f"; vs the best no-follow-up method, {d['baseline']}: {100 * f['mean']:+.1f} "
                 f"[{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}] ({f['verdict']})")
    return line + f" | {m['timings'].get('total', 0):.0f} s"
