"""Shared command-line options for choosing the model, SAE and layer, and building the engine."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

# Re-exported (see __all__): what loading a world raises, so front ends need not import steering.
from steering.errors import SteeringError

if TYPE_CHECKING:
    from steering.engine import SteeringEngine

__all__ = ["SteeringError", "add_model_options", "build_engine", "resolve_model_and_sae", "toy_defaults"]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and SAE (default: the bundled toy world)")
    g.add_argument("--model", help="VLM hub id or local folder (default: the toy world's model)")
    g.add_argument("--revision", help="hub revision of the model (branch, tag or commit)")
    g.add_argument("--sae", help="SAE folder, decoder .safetensors, or hub owner/repo/subfolder")
    g.add_argument("--layer", type=int, help="vision-encoder layer to steer (default: from the SAE config)")
    g.add_argument("--dtype", default="auto", help="bf16, fp16 or fp32 (default: bf16 on CUDA, fp32 on CPU)")
    g.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when available)")
    g.add_argument("--max-new-tokens", type=int, default=None, help="answer length cap (default 48)")
    g.add_argument("--batch-size", type=int, default=None, help="rows per generate call (default: sized from free GPU memory; 32 on CPU)")
    g.add_argument("--decode", choices=("auto", "hf", "fast"), default="auto",
                   help="answer decoding: fast (one prefill, then the language model on a static cache), hf "
                        "(transformers' generate), or auto (fast where the model supports it); same tokens")
    g.add_argument("--no-compile", action="store_true",
                   help="never torch.compile the fast decode step (default: compiled with CUDA graphs on a GPU)")


def toy_defaults() -> tuple[str, str] | None:
    """(model folder, SAE folder) of the bundled toy world, when it is installed."""
    try:
        from steering import toy
    except ImportError:
        return None
    if not toy.is_available():
        return None
    return str(toy.model_dir()), str(toy.sae_dir())


def resolve_model_and_sae(args: argparse.Namespace) -> tuple[str, str]:
    """(model, SAE) the options name, the toy world filling in; local paths made absolute, so that
    ``--sae ./sae`` run from two folders names two SAEs (and two default stores), not one."""
    if args.model and args.sae:
        return _absolute(args.model), _absolute(args.sae)
    defaults = toy_defaults()
    if args.model and not args.sae:
        raise SteeringError("--model was given without --sae: pass the SAE trained on that model's vision encoder")
    if defaults is None:
        raise SteeringError("the bundled toy world is not installed: pass --model and --sae")
    if args.sae and not args.model:
        return defaults[0], _absolute(args.sae)
    return defaults


def _absolute(spec: str) -> str:
    """An existing local path as an absolute one; a hub id as given."""
    from steering.revisions import local_path

    path = local_path(spec)
    return str(path) if path is not None else spec


def build_engine(args: argparse.Namespace, **settings: Any) -> SteeringEngine:
    """Load model + SAE from the parsed options and return a ready engine (raises SteeringError)."""
    import torch

    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm, resolve_device
    from steering.sae import load_sae

    model_id, sae_id = resolve_model_and_sae(args)
    device = resolve_device(args.device)
    dtype = args.dtype if args.dtype != "auto" else ("bf16" if device.startswith("cuda") else "fp32")
    vlm = load_vlm(model_id, dtype=dtype, device=device, revision=args.revision)
    sae = load_sae(sae_id, layer=args.layer, d_in=vlm.vision.width, device=device, dtype=torch.float32)
    gen = GenerationSettings()
    if args.max_new_tokens:
        gen.max_new_tokens = args.max_new_tokens
    if args.batch_size:
        gen.batch_size = args.batch_size
    gen.decode = getattr(args, "decode", None) or "auto"
    if getattr(args, "no_compile", False):
        gen.compile_decode = False
    for key, value in settings.items():
        setattr(gen, key, value)
    return SteeringEngine(vlm, sae, layer=args.layer, settings=gen)
