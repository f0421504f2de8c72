"""`steer-agent judge-check`: what a judge endpoint accepts, before a long run (one small verdict per format)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from agent.cli.args import judge_url, positive_float, positive_int
from agent.judges.config import DEFAULT_KEY_ENV
from agent.judges.redact import printable


def add_parser(sub: Any) -> None:
    p = sub.add_parser("judge-check", help="check a judge endpoint: formats it accepts, latency, models",
                       description="Send one small verdict request in each response format and print what the "
                                   "server accepts, its latency, its context limit where it says, and its models.")
    p.add_argument("--judge-base-url", required=True, type=judge_url,
                   help="endpoint URL, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--judge-model", help="model name at the endpoint (default: the first one it lists)")
    p.add_argument("--judge-api-key-env", default=DEFAULT_KEY_ENV, metavar="NAME",
                   help=f"environment variable holding the API key (default {DEFAULT_KEY_ENV}; local servers need none)")
    p.add_argument("--judge-timeout", type=positive_float, default=120.0, help="seconds per request (default 120)")
    p.add_argument("--judge-max-tokens", type=positive_int, default=600, help="reply cap (default 600)")
    p.set_defaults(func=main)


def tiny_context() -> Any:
    """One feature's opening evidence and one activation test, small enough for any context window (a forced
    final round: the reply is short, and no test is offered)."""
    from agent.judges.evidence import Evidence
    from agent.judges import JudgeContext
    from agent.probes import Probe, ProbeResult
    from steering.activation_tests import ActivationTest, ActivationTestResult

    ev = Evidence()
    ev.add([ProbeResult(Probe(None), ("nothing, the image is empty and white.",)),
            ProbeResult(Probe(3, strength=40.0), ("a red circle",), kl_first=1.2),
            ProbeResult(Probe(3, strength=80.0), ("the colour red filling the image",), kl_first=2.5)], round=1)
    ev.add_tests([ActivationTestResult(ActivationTest(3, "render", "colour"), values={"red": 2.0, "blue": 0.0},
                                       top_share={"red": 1.0, "blue": 0.0}, wins={"red": 1.0, "blue": 0.0},
                                       n_images=128, n_top=20, peak=3.0)], round=1)
    return JudgeContext(feature=3, round=1, max_rounds=2, evidence=ev, strengths=[40.0, 80.0], probes_left=2,
                        force_final=True, world={"model": "a VLM", "sae": "an SAE", "layer": 8,
                                                 "tests": ["render"], "tests_left": 4})


def say(line: str, file: Any = None) -> None:
    """Print one line of what the server said: no escape sequence or control character reaches the terminal."""
    print(printable(line), file=file or sys.stdout, flush=True)


async def list_models(backend: Any) -> tuple[list[str], int | None]:
    """The served model names, and a context length where the listing gives one (vLLM: max_model_len)."""
    page = await backend._client().models.list()
    names, limit = [], None
    for m in page.data:
        names.append(m.id)
        extra = getattr(m, "model_extra", None) or {}
        found = extra.get("max_model_len") or (extra.get("meta") or {}).get("n_ctx_train")
        limit = limit or (int(found) if found else None)
    return names, limit


def judge_config(args: argparse.Namespace) -> Any:
    """The options as the judge configuration a Session holds."""
    from agent.judges import JudgeConfig

    return JudgeConfig(kind="openai", model=args.judge_model, base_url=args.judge_base_url,
                       api_key_env=args.judge_api_key_env, timeout=args.judge_timeout,
                       max_tokens=args.judge_max_tokens)


async def try_format(session: Any, model: str, fmt: str) -> tuple[str, bool, bool]:
    """One verdict request in ``fmt``: (a line saying whether it was accepted, valid, and how fast; accepted;
    valid)."""
    from agent.judges import JudgeCallError, JudgeError, LLMJudge
    from agent.judges.retry import RetryPolicy

    timeout = session.judge_config.timeout
    backend = session.judge_backend(model, json_mode=fmt, concurrency=1, down_limit=10.0,
                                    retry=RetryPolicy(attempts=1, timeout=timeout, timeout_retries=0))
    judge = LLMJudge(backend, max_reasks=0)
    t0 = time.perf_counter()
    try:
        turn = await judge.decide(tiny_context())
    except JudgeCallError as exc:
        return f"{fmt:12s} refused or failed: {exc}", False, False
    except JudgeError as exc:
        return f"{fmt:12s} refused: {exc}", False, False
    finally:
        await judge.aclose()
    seconds = time.perf_counter() - t0
    tokens = turn.usage.completion_tokens
    verdict = "a valid verdict" if turn.verdict is not None else f"an invalid verdict ({turn.error})"
    return (f"{fmt:12s} accepted: {verdict} in {seconds:.2f} s, {tokens} reply tokens", True,
            turn.verdict is not None)


def summary(url: str | None, accepted: list[str], valid: list[str]) -> str:
    """The last line: which formats work and the one a run (``--judge-format auto``) would use, or that none does."""
    from agent.judges.openai_chat import safe_url

    if not accepted:
        return (f"summary: no response format works at {safe_url(url)}: fix the server or the options the lines "
                "above name, or use --judge offline")
    line = f"summary: works: {', '.join(accepted)}; a run would use {accepted[0]} (--judge-format auto)"
    if not valid:
        line += "; no valid verdict came back: try a larger --judge-model"
    return line


async def check(session: Any) -> int:
    """Print what the endpoint accepts; 0 when some response format works, 2 when none does."""
    from agent.judges.config import DEFAULT_JUDGE_MODEL
    from agent.judges.openai_chat import FORMATS, safe_url

    wanted = session.judge_config.model
    url = session.judge_config.base_url
    probe = session.judge_backend(wanted or "?")
    probe.reach(timeout=5.0)  # the formats below are the real requests
    try:
        names, limit = await list_models(probe)
    except Exception as exc:  # noqa: BLE001 - a server without /models is still worth checking
        names, limit = [], None
        say(f"models: not listed ({type(exc).__name__})")
    finally:
        await probe.aclose()
    model = wanted or (names[0] if names else DEFAULT_JUDGE_MODEL)
    if names:
        known = "" if model in names else f"  <- {model!r} is not among them: check --judge-model"
        say(f"models at {safe_url(url)}: {', '.join(names)}{known}")
    say(f"context limit: {limit if limit else 'not reported (a too-long request will say it)'}")
    accepted, valid = [], []
    for fmt in FORMATS:
        line, ok, good = await try_format(session, model, fmt)
        say(line)
        accepted += [fmt] if ok else []
        valid += [fmt] if good else []
    say(f"instructions go in the {probe.instructions} message ({'local' if probe.local else 'remote'} endpoint)")
    say(summary(url, accepted, valid))
    return 0 if accepted else 2


def main(args: argparse.Namespace) -> int:
    from agent.judges import JudgeFatalError
    from agent.session import Session

    try:
        with Session(judge=judge_config(args)) as session:
            return asyncio.run(check(session))
    except JudgeFatalError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 2
