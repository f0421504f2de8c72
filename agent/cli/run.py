"""`steer-agent run` (also plain `steer-agent --features ...`): explain many features, store, export."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from agent.cli.args import (
    add_judge_options,
    add_model_options,
    add_ray_options,
    add_store_option,
    judge_config,
    output_file,
    parse_floats,
    parse_strengths,
    positive_float,
    positive_int,
    scale_out,
    world_spec,
)
from agent.run.config import DEFAULT_KL_TARGETS, EVIDENCE_MODES, HYBRID_MULTIPLE, RunConfig, SweepConfig
from agent.run.phases import LEGEND
from agent.session import ChoiceError, PreparedRun, RunRequest, check_features
from agent.session import Session


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="feature ids: ranges and lists like 0-9,42,100-120, or all")
    add_model_options(p)
    add_ray_options(p)
    add_judge_options(p)
    _add_sweep_options(p)
    _add_evidence_options(p)
    _add_budget_options(p)
    _add_output_options(p)
    p.set_defaults(func=run)


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("sweep")
    sched = s.add_mutually_exclusive_group()
    sched.add_argument("--strengths", type=parse_strengths,
                       help="fixed strength schedule (default: 0.5,1,1.5,2,2.5,3,4 x the median hidden-state norm at the layer)")
    sched.add_argument("--calibrate", action="store_true", help="per feature, bisect strengths to KL targets")
    s.add_argument("--kl-targets", type=parse_floats, default=list(DEFAULT_KL_TARGETS),
                   help=f"first-token KL targets for --calibrate (default {','.join(map(str, DEFAULT_KL_TARGETS))})")
    s.add_argument("--samples", type=positive_int, default=1, help="descriptions per strength (1 = greedy; default 1)")
    s.add_argument("--controls", type=int, default=1, help="random-direction controls per feature (default 1)")
    s.add_argument("--base-image", default="white", help="white (default), black, noise, object-a, object-b, object-c (plain drawn objects), "
                        "outline-<circle|square|triangle|cross>-<small|large> (grey outlines, no colour) or an image file")
    s.add_argument("--seed", type=int, default=0, help="seed for sampling and control directions")


def _add_evidence_options(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("top-k evidence (needs a collection in the store: steer-agent topk)")
    e.add_argument("--evidence", choices=tuple(EVIDENCE_MODES), default="steering",
                   help="what the judge reads besides the steering sweep: steering (nothing more, the default), "
                        "topk (the model's description of the feature's masked top-activating images), hybrid "
                        "(the same, steered at the patches where it fired) or all")
    e.add_argument("--hybrid-strength", type=positive_float, metavar="S",
                   help="strength of the hybrid description (default: 50 for the reference Gemma-3-4B layer-16 "
                        f"SAE, else {HYBRID_MULTIPLE:g} x the hidden-state norm at the layer)")
    e.add_argument("--topk-images", type=positive_int, default=5, metavar="N",
                   help="top images shown per description (default 5)")
    e.add_argument("--judge-images", action="store_true",
                   help="also attach the masked top images to an LLM judge's first message (image content parts; "
                        "the judge model must accept images)")


def _add_budget_options(p: argparse.ArgumentParser) -> None:
    b = p.add_argument_group("budgets and scheduling")
    b.add_argument("--max-rounds", type=positive_int, default=4, help="judge rounds per feature (default 4)")
    b.add_argument("--max-probes", type=int, default=24, help="extra probes per feature (default 24)")
    b.add_argument("--max-tests", type=int, default=16,
                   help="activation tests per feature the judge may ask for: scenes rendered with one attribute "
                        "changed (the toy world), or the top images edited (with a top-k collection); 0: none "
                        "(default 16)")
    b.add_argument("--max-feature-tokens", type=positive_int, default=40_000, help="judge tokens per feature")
    b.add_argument("--budget-tokens", type=positive_int, help="judge tokens for the whole run")
    b.add_argument("--concurrency", type=positive_int, default=4, help="judge calls in flight (default 4)")
    b.add_argument("--in-flight", type=positive_int, default=64, help="feature loops in flight (default 64)")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("store and output")
    add_store_option(o)
    o.add_argument("--export", type=output_file, metavar="FILE.jsonl",
                   help="export the requested features when done (an existing FILE only when it is an export of "
                        "this store holding no other feature; else --overwrite)")
    o.add_argument("--overwrite", action="store_true", help="let --export replace FILE whatever it holds")
    o.add_argument("--force", action="store_true", help="recompute everything (ignore stored probes and answers)")
    o.add_argument("--rejudge", action="store_true", help="ask the judge again, reusing stored probe results")
    o.add_argument("--overwrite-reviewed", action="store_true",
                   help="let this run replace records a human has reviewed")
    o.add_argument("--note", help="a note passed to the judge for every feature of this run")
    o.add_argument("--no-progress", action="store_true", help="no live display")
    o.add_argument("--table-limit", type=int, default=64, help="rows of the summary table (default 64)")


PROGRESS_LEGEND = "The live display. " + LEGEND


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="explain features (the default command)",
                       description="Explain SAE features: sweep, judge, store; resumes by default.",
                       epilog=PROGRESS_LEGEND)
    add_run_options(p)
    return p


def build_config(args: argparse.Namespace) -> RunConfig:
    sweep = SweepConfig(strengths=tuple(args.strengths) if args.strengths else None, calibrate=args.calibrate,
                        kl_targets=tuple(args.kl_targets), samples=args.samples, controls=max(0, args.controls),
                        base_image=args.base_image, seed=args.seed)
    return RunConfig(sweep=sweep, max_rounds=args.max_rounds, max_probes=max(0, args.max_probes),
                     max_tests=max(0, args.max_tests),
                     max_feature_tokens=args.max_feature_tokens, budget_tokens=args.budget_tokens,
                     concurrency=args.concurrency, in_flight=args.in_flight, force=args.force, rejudge=args.rejudge,
                     overwrite_reviewed=args.overwrite_reviewed, note=args.note, evidence=args.evidence,
                     hybrid_strength=args.hybrid_strength, topk_images=args.topk_images,
                     judge_images=args.judge_images)


def run_request(args: argparse.Namespace) -> RunRequest:
    """The options as the typed request agent.session checks."""
    return RunRequest(features=args.features, world=world_spec(args), judge=judge_config(args),
                      config=build_config(args), store=args.store, ray=args.ray, ray_workers=args.ray_workers)


def evidence_problem(args: argparse.Namespace, kind: str) -> str | None:
    """A one-line complaint about the evidence options, or None."""
    modes = EVIDENCE_MODES[args.evidence]
    if args.hybrid_strength is not None and "hybrid" not in modes:
        return "--hybrid-strength goes with --evidence hybrid or all"
    if args.judge_images and not modes:
        return "--judge-images needs top-k evidence: add --evidence topk, hybrid or all"
    if args.judge_images and kind == "offline":
        return "--judge-images needs an LLM judge that reads images (--judge openai); the offline judge reads the texts"
    return None


def run(args: argparse.Namespace) -> int:
    from agent.cli.progress import line_console, loading, say
    from agent.judges.redact import install_log_redaction

    install_log_redaction()  # log lines too: no terminal escape sequences, no credentials
    err = line_console(stderr=True)  # an error stays one line
    request = run_request(args)
    scale = scale_out(args)
    try:
        check_features(request.features)  # fail on syntax before the other checks
        problem = scale.problem() or evidence_problem(args, request.judge.kind) or export_problem(args)
        if problem:
            raise ChoiceError(problem, field="evidence")
    except ChoiceError as exc:
        say(err, f"error: {exc}")
        return 2
    # a Ray pool's actors stop with the session, Ctrl-C included, each saying its line first
    with Session(request.world, request.store, request.judge, scale, report=lambda line: say(err, line)) as session:
        try:
            with loading(err, not args.no_progress):
                prepared = session.prepare(request)  # loads the engine only to learn the SAE's size
        except ChoiceError as exc:
            say(err, f"error: {exc}")
            return 2
        problem = export_problem(args, prepared)  # now the store and the features are known
        if problem:
            say(err, f"error: {problem}")
            return 2
        return execute(prepared, args, err, live=getattr(session.engines, "live_line", None), session=session)


def export_problem(args: argparse.Namespace, prepared: PreparedRun | None = None) -> str | None:
    """Why --export may not replace its FILE (agent.store.export.replace_problem; None: it may), checked before
    the run: without ``prepared``, the file against the features named (before the store opens); with it,
    against the store and its features."""
    from agent.run.features import FeatureSpecError, parse_ranges
    from agent.store.export import ExportRefused, refuse_replacing

    if not args.export or args.overwrite:
        return None
    features: list[int] | None = None
    if prepared is not None:
        features = prepared.features
    elif args.features.strip().lower() != "all":
        try:
            ranges = parse_ranges(args.features)
        except FeatureSpecError:
            return None  # check_features names it
        if sum(hi - lo + 1 for lo, hi in ranges) <= 1_000_000:  # else checked once the SAE's size is known
            features = [f for lo, hi in ranges for f in range(lo, hi + 1)]
    try:
        refuse_replacing(args.export, prepared.store if prepared else None, features, "--export")
    except ExportRefused as exc:
        return str(exc)
    return None


class LoadInterrupted(Exception):
    """Ctrl-C while the model was loading: nothing was started."""


def interruptible(engine: Any, control: Any) -> Any:
    """``engine``, or its factory made to give up as soon as ``control`` is cancelled: the load runs in a
    daemon thread that the process does not wait for (a model load cannot be stopped midway, and nothing
    of the run has started yet)."""
    if hasattr(engine, "run"):
        return engine
    import threading

    def load() -> Any:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["engine"] = engine()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc

        loader = threading.Thread(target=target, name="engine-load", daemon=True)
        loader.start()
        while loader.is_alive():
            loader.join(0.05)
            if control.cancelled:
                raise LoadInterrupted
        if "error" in box:
            raise box["error"]
        return box["engine"]

    return load


def execute(prepared: PreparedRun, args: argparse.Namespace, err: Any, live: Any = None,
            session: Session | None = None) -> int:
    """Run a prepared request to the end (Ctrl-C: finish the batch in progress, or stop loading at once;
    twice: quit), then report. ``session``: the one it was prepared in (None: one over its store, closed here)."""
    from dataclasses import replace

    from agent.cli.progress import RichProgress, say
    from agent.store.export import ExportRefused, export_records
    from agent.run import RunControl
    from agent.store.store import StoreError

    if session is None:
        with Session(prepared.world, prepared.store, prepared.judge_config) as own:
            return execute(prepared, args, err, live, own)

    control = RunControl()
    interrupted = {"n": 0}

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted["n"] += 1
        if interrupted["n"] == 1:
            control.cancel("interrupted")
            say(err, "stopping: finishing the generate call in progress; Ctrl-C again to quit at once")
        else:
            raise KeyboardInterrupt

    store, features = prepared.store, prepared.features
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with RichProgress(err, enabled=not args.no_progress, verbose=args.verbose, extra=live) as progress:
            try:
                summary = session.run(replace(prepared, engine=interruptible(prepared.engine, control)),
                                      on_event=progress, control=control)
            except StoreError as exc:
                say(err, f"error: {exc}")
                return 2
            except LoadInterrupted:
                progress.__exit__()
                say(err, "interrupted while loading the model: nothing was started")
                return 130
            progress.__exit__()
            # An interrupted run reads back only the features it reached (not the 100k it never started),
            # and exports nothing: the export of a partial run is one command away once it is resumed.
            reached = features if summary.stop_reason != "interrupted" else \
                [f for f in features if summary.statuses.get(f, "not-started") != "not-started"]
            records = store.list_records(reached)
            truth = session.ground_truth()
            refused = None
            try:  # checked before the run; again on what is written (a record may have turned unreadable)
                exported = export_records(store, args.export, features, keep=None if args.overwrite else "--export") \
                    if args.export and summary.stop_reason != "interrupted" else None
            except ExportRefused as exc:
                exported, refused = None, exc
    finally:
        signal.signal(signal.SIGINT, previous)
    code = report(prepared, summary, records, truth, exported, args, err)
    if refused is not None:
        say(err, f"error: {refused} (the records are in the store: steer-agent export)")
        return 2
    return code


def next_steps(prepared: PreparedRun) -> list[str]:
    """What to do after a run, as commands to paste: review in the TUI, then export."""
    import shlex
    from pathlib import Path

    path = Path(prepared.store.path)
    try:
        where = str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:  # a store outside the working folder keeps its full path
        where = str(path)
    words = ["--store", where]
    world = prepared.world
    for flag, value in (("--model", getattr(world, "model", None)), ("--revision", getattr(world, "revision", None)),
                        ("--sae", getattr(world, "sae", None)), ("--layer", getattr(world, "layer", None))):
        if value is not None:
            words += [flag, str(value)]
    store_args = " ".join(shlex.quote(w) for w in words)
    share = (f"      then share them: steer-agent export --store {shlex.quote(where)} --html site "
             "(or --out explanations.jsonl)")
    return [f"next: review the explanations: steer-tui {store_args}", share]


def report(prepared: PreparedRun, summary: Any, records: list[Any], truth: dict[int, Any] | None,
           exported: int | None, args: argparse.Namespace, err: Any) -> int:
    """Print the summary table and lines of a finished run; the exit code."""
    from rich.console import Console

    from agent.cli.progress import say, summary_table
    from agent.groundtruth import PURE, score

    out = Console(highlight=False, emoji=False)  # wraps at the terminal's width; text goes through say()
    store, features = prepared.store, prepared.features
    s = summary.stats
    if records and args.table_limit > 0:
        out.print(summary_table(records, truth, args.table_limit))
    counts = {k: sum(v == k for v in summary.statuses.values())
              for k in ("done", "failed", "skipped-done", "skipped-reviewed", "unreadable", "not-started")}
    cost = f", ~${s.cost_usd:.4f}" if s.cost_usd is not None else ""
    say(out, f"{len(features)} features: {counts['done']} done, {counts['failed']} failed, "
             f"{counts['skipped-done'] + counts['skipped-reviewed']} already finished"
             + (f" ({counts['skipped-reviewed']} reviewed)" if counts["skipped-reviewed"] else "")
             + (f", {counts['unreadable']} unreadable" if counts["unreadable"] else "")
             + (f", {counts['not-started']} not started" if counts["not-started"] else "")
             + f" in {s.elapsed:.1f} s (+{prepared.load_seconds:.1f} s loading)")
    say(out, f"probes: {s.probes_run} run ({s.probes_per_s:.1f}/s, {s.probe_rows} rows), {s.probes_cached} from the "
             f"store | judge {prepared.judge.name}: {s.judge_calls} calls ({s.judge_cached} from the store), "
             f"{s.tokens:,} tokens{cost}")
    judge_line = getattr(prepared.judge, "call_line", None)
    if callable(judge_line) and judge_line():
        say(out, f"judge endpoint: {judge_line()}", soft_wrap=True)
    if summary.images:
        im = summary.images
        hybrid = (f", hybrid at strength {im['hybrid_strength']:g} ({im.get('hybrid_source')})"
                  if "hybrid_strength" in im else "")
        say(out, f"top-k evidence: {', '.join(im['modes'])} of {im['n_images']} images{hybrid}"
                 + (", images attached for the judge" if im.get("judge_images") else ""), soft_wrap=True)
    if truth:
        sc = score(records, truth, PURE)
        say(out, f"ground truth named: {sc['pure_named']}/{sc['pure_known']} pure features (purity >= {PURE}), "
                 f"{sc['named']}/{sc['known']} of all with a known value")
    if exported is not None:
        say(out, f"exported {exported} records to {args.export}")
    say(out, f"store: {store.path}")
    if counts["done"] + counts["skipped-done"] + counts["skipped-reviewed"] and summary.stop_reason != "interrupted":
        for line in next_steps(prepared):
            say(out, line, soft_wrap=True)
    if summary.stop_reason in ("quota", "judge", "budget"):
        say(err, f"stopped: {summary.fatal_error}")
    elif summary.stop_reason == "interrupted":
        say(err, "interrupted: finished features are stored; run the same command again to resume"
                 + (f" (nothing exported to {args.export})" if args.export else ""))
        return 130
    return summary.exit_code
