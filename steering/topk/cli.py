"""Top-k activating images per SAE latent, collected in one streaming, resumable pass.

    python -m steering.topk --images DIR | --dataset NAME [--split S] | --toy-scenes N
                            [--limit N] --k 10 --out DIR [--model M --sae S --layer L ...]

The vision encoder runs only up to layer L (a hook stops it there), the SAE encodes each batch
one chunk of latents at a time, and a running per-latent top-k (scores, image ids, activation maps)
absorbs the batch. The state is checkpointed atomically every few batches; a rerun resumes.
Output (no pickles): ``topk.safetensors`` (tensors), ``topk.json`` (metadata), ``images.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from steering.errors import SteeringError
from steering.topk.collect import EncoderSpec, TopKConfig, collect_topk
from steering.topk.constants import MAP_DTYPES
from steering.topk.errors import TopKError
from steering.topk.sources import DatasetSource, FolderSource, quiet_size_warnings, write_toy_scenes

# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m steering.topk", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="folder of images (searched recursively)")
    src.add_argument("--dataset", help="a locally available `datasets` dataset (name or path)")
    src.add_argument("--toy-scenes", type=int, metavar="N", help="render N toy scenes into OUT/images and use them")
    parser.add_argument("--split", default="train", help="dataset split (with --dataset)")
    parser.add_argument("--image-column", help="dataset column holding the images (default: the first Image column)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (with --toy-scenes)")
    parser.add_argument("--k", type=int, default=10, help="images kept per latent")
    parser.add_argument("--out", type=Path, required=True, help="output folder (also holds the checkpoint)")
    parser.add_argument("--model", help="VLM hub id or folder (default: the bundled toy model)")
    parser.add_argument("--sae", help="SAE folder, decoder file or hub spec (default: the bundled toy SAE)")
    parser.add_argument("--layer", type=int, help="encoder layer (default: the SAE's own)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--dtype", default="float32", help="model dtype: fp32, bf16, fp16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--checkpoint-every", type=int, default=20, help="batches between checkpoints")
    parser.add_argument("--map-dtype", choices=tuple(MAP_DTYPES), default="float16")
    parser.add_argument("--restart", action="store_true", help="discard a checkpoint or result in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_size_warnings()
    from steering.models import load_vlm
    from steering.sae import load_sae

    try:
        if args.model is None or args.sae is None:
            import steering.toy as toy

            if not toy.is_available():
                raise TopKError("the toy world is not built: pass --model and --sae, or run python -m steering.toy.build")
            args.model, args.sae = args.model or str(toy.model_dir()), args.sae or str(toy.sae_dir())
        if args.toy_scenes is not None:
            folder = args.out / "images"
            if not (folder / "scenes.json").is_file():
                write_toy_scenes(folder, args.toy_scenes, args.seed)
            source: Any = FolderSource(folder, args.limit)
        elif args.images is not None:
            source = FolderSource(args.images, args.limit)
        else:
            source = DatasetSource(args.dataset, args.split, args.limit, args.image_column)
        source.check_readable()  # before the model loads
        vlm = load_vlm(args.model, dtype=args.dtype, device=args.device)
        sae = load_sae(args.sae, layer=args.layer)
        spec = EncoderSpec.from_vlm(vlm, sae, args.layer)
        cfg = TopKConfig(k=args.k, batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                         map_dtype=args.map_dtype)
        result = collect_topk(spec, sae, source, args.out, cfg, restart=args.restart, progress=not args.quiet)
    except SteeringError as exc:
        print(f"error: {exc}")
        return 2
    assert result is not None
    m = result.meta
    print(f"top-{result.k} of {result.d_sae} latents over {m['n_images']} images -> {args.out} "
          f"({m['images_per_second']} images/s this run)")
    skipped = result.unreadable()
    if skipped:
        print(f"warning: {skipped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
