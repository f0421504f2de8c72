"""Arguments the front doors share (model and SAE, judge, scale-out, store, number lists; steer-tui's too) and
their typed forms (WorldSpec, JudgeConfig, ScaleOut): what a Session is opened from."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.judges import DEFAULT_JUDGE_MODEL, JudgeConfig, default_kind, url_problem
from agent.judges.config import DEFAULT_KEY_ENV
from agent.run.scale import ScaleOut
from agent.run.strengths import check_strengths
from agent.world import WorldSpec


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and SAE (default: the bundled toy world)")
    g.add_argument("--model", help="VLM hub id or local folder (default: the toy world's model)")
    g.add_argument("--revision", help="hub revision of the model (branch, tag or commit)")
    g.add_argument("--sae", help="SAE folder, decoder .safetensors, or hub owner/repo/subfolder")
    g.add_argument("--layer", type=int, help="vision-encoder layer to steer (default: from the SAE config)")
    g.add_argument("--dtype", default="auto", help="bf16, fp16 or fp32 (default: bf16 on CUDA, fp32 on CPU)")
    g.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when available)")
    g.add_argument("--max-new-tokens", type=positive_int, default=None, help="answer length cap (default 48)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="rows per generate call (default: sized from free GPU memory; 32 on CPU)")
    g.add_argument("--decode", choices=("auto", "hf", "fast"), default="auto",
                   help="answer decoding: fast (one prefill, then the language model on a static cache), hf "
                        "(transformers' generate), or auto (fast where the model supports it); same tokens")
    g.add_argument("--no-compile", action="store_true",
                   help="never torch.compile the fast decode step (default: compiled with CUDA graphs on a GPU)")


def world_spec(args: argparse.Namespace) -> WorldSpec:
    """The world the model options (add_model_options) choose."""
    return WorldSpec(model=args.model or None, sae=args.sae or None, layer=args.layer, revision=args.revision,
                     device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                     batch_size=args.batch_size, decode=args.decode, no_compile=args.no_compile)


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("scale out on Ray (pip install -e '.[ray]')")
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the engines in Ray actors, one per GPU: alone, a new local cluster on this machine; "
                        "auto, the cluster `ray start` made; or host:6379 / ray://host:10001")
    g.add_argument("--ray-workers", type=positive_int, metavar="N",
                   help="engine actors (default: one per GPU of the cluster; on a cluster without GPUs, 1 CPU actor)")


def scale_out(args: argparse.Namespace, model_here: bool = False) -> ScaleOut:
    """Where --ray runs the engines, and how many (no --ray: this process)."""
    return ScaleOut(ray=getattr(args, "ray", None), workers=getattr(args, "ray_workers", None), model_here=model_here)


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, help="store folder (default: one per model/SAE/layer under "
                                                   "$STEER_INTERP_CACHE or ~/.cache/steer-interp)")


def parse_floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number list {text!r}: use e.g. 0.1,1,4") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"bad number list {text!r}: give positive numbers")
    return values


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --strengths {text!r}: use numbers like 0,50,100,200") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"bad --strengths {text!r}: give one or more non-negative numbers")
    try:
        return check_strengths(values, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_price(text: str) -> tuple[float, float]:
    values = parse_floats(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError("--judge-price takes INPUT,OUTPUT in USD per million tokens")
    return values[0], values[1]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def whole_number(text: str, minimum: int, not_a_number: str = "{text!r} is not a whole number",
                 too_small: str = "{value} must be at least {minimum}") -> int:
    """``text`` as an int >= ``minimum``, else an argparse error from the given message templates."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(not_a_number.format(text=text)) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(too_small.format(value=value, minimum=minimum))
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def judge_url(text: str) -> str:
    """An http(s) endpoint URL with a host and a valid port (checked here, not mid-run)."""
    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_file(text: str) -> str:
    """A file to write (``-``: stdout) whose folder exists and is writable, as given; a folder is refused
    before any work."""
    if text == "-":
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file path such as {path / 'features.jsonl'}")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist: create it or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable: write elsewhere")
    return text


def add_judge_options(p: argparse.ArgumentParser) -> None:
    """The judge flags, one set for ``run``, ``eval`` and steer-tui (so a judge is compared on the benchmark,
    and started in the TUI, exactly as it would run)."""
    j = p.add_argument_group("judge (default: offline, a deterministic heuristic that is not an LLM)")
    j.add_argument("--judge", choices=("offline", "openai"),
                   help="offline, or openai for any OpenAI-compatible endpoint (default: openai when "
                        "--judge-model or --judge-base-url is given, else offline)")
    j.add_argument("--judge-model", help=f"model name at the endpoint (default {DEFAULT_JUDGE_MODEL})")
    j.add_argument("--judge-base-url", type=judge_url,
                   help="endpoint URL, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL "
                                            "or OpenAI)")
    j.add_argument("--judge-api-key-env", default=DEFAULT_KEY_ENV, metavar="NAME",
                   help=f"environment variable holding the API key (default {DEFAULT_KEY_ENV})")
    j.add_argument("--judge-format", choices=("auto", "schema", "json_object", "text"), default="auto",
                   help="response format: schema (json_schema), json_object (schema in the prompt, and in "
                        "response_format.schema for llama.cpp), text; auto learns once per endpoint what the "
                        "server accepts (default)")
    j.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge request (default 60)")
    j.add_argument("--judge-retries", type=positive_int, default=6, help="attempts per judge call (default 6)")
    j.add_argument("--judge-backoff", type=float, default=1.0, help="backoff scale in seconds (default 1)")
    j.add_argument("--judge-temperature", type=float, help="sampling temperature (default: the server's)")
    j.add_argument("--judge-max-tokens", type=positive_int, default=600,
                   help="reply length cap per call (default 600; a cut reply is reported as truncated)")
    j.add_argument("--judge-concurrency", type=positive_int,
                   help="requests in flight to the endpoint (default: 1 for a local server, 4 otherwise)")
    j.add_argument("--judge-down-limit", type=positive_float, default=120.0, metavar="SECONDS",
                   help="stop the run when the endpoint has not answered for this long (default 120)")
    j.add_argument("--judge-price", type=parse_price, metavar="IN,OUT",
                   help="USD per million input,output tokens for the cost estimate (known models are built in)")


def judge_config(args: argparse.Namespace) -> JudgeConfig:
    """The judge the options choose (openai when a judge model or URL is given and no --judge)."""
    return JudgeConfig(kind=args.judge or default_kind(args.judge_model, args.judge_base_url),
                       model=args.judge_model, base_url=args.judge_base_url, api_key_env=args.judge_api_key_env,
                       json_mode=args.judge_format, timeout=args.judge_timeout, retries=args.judge_retries,
                       backoff=args.judge_backoff, temperature=args.judge_temperature,
                       max_tokens=args.judge_max_tokens, price=args.judge_price,
                       concurrency=args.judge_concurrency, down_limit=args.judge_down_limit)
