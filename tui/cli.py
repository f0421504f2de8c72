"""`steer-tui`: open the Textual app on a store (default: the toy world's), optionally with a model."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.args import add_judge_options, add_model_options, judge_config, world_spec

if TYPE_CHECKING:
    from agent.world import WorldSpec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steer-tui", description="Run, inspect and review SAE feature explanations.",
                                epilog="Keys: ? in the app lists them all; ctrl+p opens the command palette.")
    p.add_argument("--store", type=Path, help="store folder (default: the one steer-agent uses for the model/SAE)")
    p.add_argument("--features", help="feature range the setup screen starts with, e.g. 0-63")
    add_model_options(p)
    add_judge_options(p)  # steer-agent's judge flags (the judge the setup screen starts with)
    p.add_argument("--topk", type=Path, help="top-k collection folder (default: the one `steer-agent topk` recorded "
                                             "in the store)")
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="an evaluation report (the folder `steer-agent eval --report DIR` wrote, or its metrics.json) "
                        "whose numbers the app shows (key m)")
    p.add_argument("--reviewer", help="name recorded with review decisions (default: $STEER_REVIEWER or the user)")
    p.add_argument("--setup", action="store_true", help="open on the setup screen")
    p.add_argument("--log", type=Path, help="write logs to this file (the terminal belongs to the app)")
    return p


def _no_default_store(world: WorldSpec) -> bool:
    """Whether the world's default store is still to be made (the app opens on the setup screen; its run makes it)."""
    from agent.session import default_store
    from agent.world import SteeringError

    try:
        return not default_store(world).exists()
    except SteeringError:  # no world to name one: open_store says so
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The app owns the terminal: logs go to a file or nowhere, and libraries draw no progress bars.
    handlers: list[logging.Handler] = [logging.FileHandler(args.log)] if args.log else [logging.NullHandler()]
    logging.basicConfig(level=logging.INFO if args.log else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")

    from agent.session import Session
    from agent.store.store import StoreError
    from agent.world import ChoiceError, SteeringError
    from tui.app import create_app
    from tui.evaluation import ReportError, load_report

    world = world_spec(args)
    startup_error = None
    with Session(world) as opener:  # opens the store as every front door does; the app's own session runs
        try:
            report = load_report(args.report) if args.report is not None else None  # before the store opens
            try:  # only runs create stores: a folder that is not one, or one of another world, is refused
                store = None if args.store is None and _no_default_store(world) else \
                    opener.open_store(args.store, existing=True, match=True)
            except ChoiceError as exc:
                if exc.field == "store":
                    raise
                store, startup_error = None, str(exc)  # no world to name a default store: the app asks for one
            app = create_app(store, world=world, judge_spec=judge_config(args), features=args.features,
                             reviewer=args.reviewer, topk=args.topk, open_setup=True if args.setup else None,
                             startup_error=startup_error, report=report)
        except (ChoiceError, StoreError, SteeringError, ReportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        app.run()
        app.services.close()  # the app's session: the store it ended on
    return 0


if __name__ == "__main__":
    sys.exit(main())
