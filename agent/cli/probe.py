"""`steer-agent probe`: steer one feature at a few strengths and print what the model says."""

from __future__ import annotations

import argparse
import json

from agent.cli.args import add_model_options, parse_strengths, positive_int, whole_number, world_spec
from agent.session import Session
from agent.run.strengths import PROBE_MULTIPLES
from agent.run.strengths import finite_or_none

__all__ = ["PROBE_MULTIPLES", "add_parser", "feature_id", "run"]


def feature_id(text: str) -> int:
    """A feature id: a whole number >= 0 (its upper bound waits for the SAE's size)."""
    return whole_number(text, 0, "{text!r} is not a feature id: give a whole number like 42",
                        "feature {value} is negative: ids start at 0")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("probe", help="steer one feature and print the model's words per strength",
                       description="Steer one SAE feature at several strengths and print the model's answers.")
    p.add_argument("--feature", type=feature_id, required=True, help="SAE feature id")
    p.add_argument("--strengths", type=parse_strengths, default=None,
                   help="comma-separated strengths (default: 0, 0.5, 1, 2 and 3 times the hidden-state norm "
                        "at the hooked layer)")
    p.add_argument("--samples", type=positive_int, default=1,
                   help="descriptions per strength (>1 samples; default 1, greedy)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--question", help="ask this question about the highlighted element instead of describing it")
    p.add_argument("--base-image", default="white", help="white (default), black, noise, object-a, object-b, object-c (plain drawn objects), "
                        "outline-<circle|square|triangle|cross>-<small|large> (grey outlines, no colour) or an image file")
    p.add_argument("--control", action="store_true", help="steer a norm-matched random direction instead")
    p.add_argument("--json", action="store_true", help='print [{"strength": s, "texts": [...]}, ...]')
    add_model_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from steering.errors import FeatureOutOfRangeError
    from steering.images import check_base_image
    from steering.probes import Probe

    with Session(world_spec(args)) as session:  # no store: a probe is a look, nothing is kept
        facts = session.check()  # before any weights load: SteeringError, exit 2
        if facts.n_features is not None and args.feature >= facts.n_features:
            raise FeatureOutOfRangeError(f"feature {args.feature} is out of range: this SAE has features "
                                         f"0-{facts.n_features - 1}")
        check_base_image(args.base_image)
        engine = session.engine()
        engine.sae.check_feature(args.feature)
        strengths = args.strengths or session.probe_strengths(args.base_image)
        probes = [
            Probe(feature=args.feature, strength=s, samples=args.samples, seed=args.seed,
                  prompt="ask" if args.question else "describe", question=args.question,
                  base_image=args.base_image, direction="random" if args.control else "feature",
                  greedy=args.samples == 1)
            for s in strengths
        ]
        results = session.probe(probes)
    if args.json:
        print(json.dumps([{"strength": r.probe.strength, "texts": list(r.texts),
                           "kl_first": finite_or_none(round(r.kl_first, 4))} for r in results], indent=2, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from agent.cli.progress import plain
    from agent.judges.redact import printable

    what = f"question {args.question!r}" if args.question else "describe"
    console = Console(emoji=False)
    console.print(plain(f"feature {args.feature} at layer {engine.layer} of {engine.vlm.model_id} "
                        f"({what}, base image {args.base_image})"), highlight=False)
    table = Table()
    table.add_column("strength", justify="right")
    table.add_column("KL@1", justify="right")
    table.add_column("the model's words")
    for r in results:  # the model's words are shown literally: never read as Rich markup
        table.add_row(f"{r.probe.strength:g}", f"{r.kl_first:.3f}", Text(printable("\n".join(r.texts), newlines=True)))
    console.print(table)
    return 0
