"""`steer-agent`: the parser and dispatch; with no subcommand it runs the agent (`steer-agent --features 0-9`)."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from typing import NoReturn

from agent.cli import eval as eval_command
from agent.cli import export, judge_check, probe, run, topk, world

COMMANDS = ("run", "probe", "export", "review", "eval", "topk", "judge-check", "world")


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (the usage only with --help); its subparsers too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="steer-agent", description="Explain SAE features by steering a VLM.",
        epilog="Without a command, runs the agent: steer-agent --features 0-63 [--judge openai ...]")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="{run,probe,export,review,eval,topk,judge-check,world}")
    run.add_parser(sub)
    probe.add_parser(sub)
    export.add_parsers(sub)
    eval_command.add_parser(sub)
    topk.add_parser(sub)
    judge_check.add_parser(sub)
    world.add_parser(sub)
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """Insert ``run`` when the first word after the global flags is not a command."""
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        i += 1
    if i < len(argv) and argv[i] not in COMMANDS and argv[i] not in ("-h", "--help"):
        return argv[:i] + ["run"] + argv[i:]
    return argv


def unknown_command(argv: list[str]) -> str | None:
    """A one-line complaint when the first word after the global flags is neither a command nor an option
    (the agent's default command takes no bare words), with the nearest command; None otherwise."""
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        i += 1
    if i >= len(argv) or argv[i].startswith("-") or argv[i] in COMMANDS:
        return None
    word = argv[i]
    near = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f": did you mean {near[0]}?" if near else f" (commands: {', '.join(COMMANDS)}; see steer-agent --help)"
    return f"unknown command {word!r}{hint}"


def options_of(parser: argparse.ArgumentParser, command: str | None) -> list[str]:
    """The long and short options ``command`` (None: the top level) accepts, the global ones included."""
    options = list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            options += list(action.choices[command]._option_string_actions)
    return options


def unknown_option(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """A one-line complaint about the first option no parser accepts (with the nearest real one), or None.

    Checked before parsing, so that ``--featurs 0-3`` is named as the typo it is rather than as a
    missing ``--features``. Prefixes argparse accepts (``--feat``) pass; words after ``--`` are values.
    """
    command = next((a for a in argv if a in COMMANDS), None)
    options = options_of(parser, command)
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("--") or len(arg) < 3:
            continue
        flag = arg.split("=", 1)[0]
        if any(o.startswith(flag) for o in options):
            continue
        near = difflib.get_close_matches(flag, [o for o in options if o.startswith("--")], n=1, cutoff=0.6)
        where = f"steer-agent {command}" if command else "steer-agent"
        return f"unknown option {flag}" + (f": did you mean {near[0]}?" if near else f" (see {where} --help)")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = unknown_command(argv)
    argv = with_default_command(argv)
    problem = problem or unknown_option(parser, argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from agent.judges.redact import install_log_redaction

    install_log_redaction()  # every command's log lines: no escape sequences, no credentials
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not args.verbose:
        # Read by transformers / huggingface_hub when (and only if) a command imports them.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
    from steering.errors import SteeringError

    try:
        return args.func(args)
    except SteeringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
