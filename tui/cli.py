"""`steer-tui`: open the Textual app on a store (default: the toy world's), optionally with a model."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from agent.cli.args import add_model_options, world_spec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steer-tui", description="Run, inspect and review SAE feature explanations.",
                                epilog="Keys: ? in the app lists them all; ctrl+p opens the command palette.")
    p.add_argument("--store", type=Path, help="store folder (default: the one steer-agent uses for the model/SAE)")
    p.add_argument("--features", help="feature range the setup screen starts with, e.g. 0-63")
    add_model_options(p)
    j = p.add_argument_group("judge (default: offline, a deterministic heuristic that is not an LLM)")
    j.add_argument("--judge", choices=("offline", "openai"), help="judge the setup screen starts with")
    j.add_argument("--judge-model", help="model name at the endpoint (default gpt-4o-mini)")
    j.add_argument("--judge-base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    j.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="environment variable holding the API key (default OPENAI_API_KEY)")
    p.add_argument("--topk", type=Path, help="top-k collection folder (default: the one `steer-agent topk` recorded "
                                             "in the store)")
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="an evaluation report (the folder `steer-agent eval --report DIR` wrote, or its metrics.json) "
                        "whose numbers the app shows (key m)")
    p.add_argument("--reviewer", help="name recorded with review decisions (default: $STEER_REVIEWER or the user)")
    p.add_argument("--setup", action="store_true", help="open on the setup screen")
    p.add_argument("--log", type=Path, help="write logs to this file (the terminal belongs to the app)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The app owns the terminal: logs go to a file or nowhere, and libraries draw no progress bars.
    handlers: list[logging.Handler] = [logging.FileHandler(args.log)] if args.log else [logging.NullHandler()]
    logging.basicConfig(level=logging.INFO if args.log else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")

    from agent.judges import JudgeConfig, default_kind
    from agent.plan import default_store
    from agent.store import Store, StoreError
    from agent.world import SteeringError
    from tui.app import create_app
    from tui.evaluation import ReportError, load_report

    world = world_spec(args)
    startup_error = None
    path = args.store
    if path is None:
        try:
            path = default_store(world)
        except SteeringError as exc:  # shown in the app, which asks for a store
            startup_error = str(exc)
    judge = JudgeConfig(kind=args.judge or default_kind(args.judge_model, args.judge_base_url),
                        model=args.judge_model, base_url=args.judge_base_url, api_key_env=args.judge_api_key_env)
    try:
        report = load_report(args.report) if args.report is not None else None  # before the store opens
        store = Store(path) if path is not None else None
        app = create_app(store, world=world, judge_spec=judge, features=args.features, reviewer=args.reviewer,
                         topk=args.topk, open_setup=True if args.setup else None, startup_error=startup_error,
                         report=report)
    except (StoreError, SteeringError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.run()
    if store is not None:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
