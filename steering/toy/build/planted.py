"""Planted features: a second dictionary in the SAE format, built in seconds from class-mean
differences of the toy VLM's layer activations, with ground truth by construction.

    python -m steering.toy.build.planted --out DIR [--planted-seed 0]

The dictionary itself is built by the toy runtime (steering.toy.planted), which the commands that
evaluate planted features call; this is its command line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from steering.toy import DATA_DIR, truth
from steering.toy.planted import build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.toy.build.planted", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the planted SAE (ae.pt, config.json, "
                                                                 "ground_truth.json)")
    parser.add_argument("--planted-seed", type=int, default=0, help="which values are combined and how (default 0)")
    parser.add_argument("--source", type=Path, default=DATA_DIR, help="toy world folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    out = build(args.out, args.planted_seed, args.source)
    kinds: dict[str, int] = {}
    for v in truth.load(out).values():
        kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    print(f"{sum(kinds.values())} planted features {kinds} -> {out}")


if __name__ == "__main__":
    main()
