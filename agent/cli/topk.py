"""`steer-agent topk`: collect each feature's top-activating images into the store, for the top-k and
hybrid evidence of `steer-agent --evidence ...` and the TUI's images tab.

One streaming, resumable pass of the vision encoder + SAE (steering.topk) over an image folder or a
local `datasets` dataset; on the toy world with no source, over scenes from its own generator.
The collection goes to <store>/topk/<source>/ and the store records it (meta key "topk").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from agent.cli.args import add_model_options, add_ray_options, add_store_option, positive_int, scale_out, world_spec
from agent.session import Session
from agent.world import ChoiceError, same_world

TOY_SCENES = 2000


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "topk", help="collect each feature's top-activating images into the store",
        description="Run the vision encoder + SAE once over an image set and keep, per feature, the k images "
                    "it fires on most (with activation maps). Resumes an interrupted collection; the store "
                    "records it for `steer-agent --evidence topk|hybrid|all` and steer-tui.")
    src = p.add_argument_group("images (default on the toy world: scenes from its own generator)")
    one = src.add_mutually_exclusive_group()
    one.add_argument("--images", type=Path, metavar="DIR", help="folder of images (searched recursively)")
    one.add_argument("--dataset", metavar="NAME", help="a locally available `datasets` dataset (name or path)")
    src.add_argument("--split", help="dataset split (with --dataset; default train)")
    src.add_argument("--image-column", help="dataset column of the images (default: the first image column)")
    src.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N images")
    src.add_argument("--toy-scenes", type=positive_int, default=TOY_SCENES, metavar="N",
                     help=f"toy world only: scenes to render (default {TOY_SCENES})")
    src.add_argument("--seed", type=int, default=0, help="toy world only: scene seed (default 0)")
    c = p.add_argument_group("collection")
    c.add_argument("--k", type=positive_int, default=10, help="images kept per feature (default 10)")
    c.add_argument("--restart", action="store_true", help="discard a partial or finished collection of this source")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_store_option(c)
    add_model_options(p)  # --batch-size here: images per encoder pass (default 16)
    add_ray_options(p)  # the images shared out over encoder actors, their top-k merged exactly here
    p.set_defaults(func=run)
    return p


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.rstrip("/").split("/")[-1] or text).strip("-")[:40] or "x"


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def folder_name(args: argparse.Namespace) -> str:
    """A readable folder per source and k, so collections of different image sets live side by side."""
    if args.images is not None:
        root = str(Path(args.images).expanduser().resolve())
        return f"images-{_slug(root)}-{_digest({'root': root, 'limit': args.limit, 'k': args.k})}"
    if args.dataset is not None:
        key = {"name": args.dataset, "split": args.split or "train", "column": args.image_column,
               "limit": args.limit, "k": args.k}
        return f"dataset-{_slug(args.dataset)}-{_slug(args.split or 'train')}-{_digest(key)}"
    return f"toy-scenes-{args.toy_scenes}-seed{args.seed}-k{args.k}"


def check_args(args: argparse.Namespace) -> str | None:
    """A one-line complaint about the options, or None."""
    if args.dataset is None and (args.split or args.image_column):
        return "--split and --image-column go with --dataset NAME"
    if args.images is None and args.dataset is None and (args.model or args.sae):
        return ("pass --images DIR or --dataset NAME: only the bundled toy world has scenes of its own "
                "(run without --model and --sae for it)")
    if args.images is not None:
        from steering.topk.sources import folder_problem

        problem = folder_problem(args.images)
        if problem:
            return problem
    return scale_out(args).problem()


def run(args: argparse.Namespace) -> int:
    problem = check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    spec = world_spec(args)
    spec.resolved()  # SteeringError (exit 2) when there is no world to collect for
    with Session(spec, args.store, scale=scale_out(args), report=lambda line: print(line, file=sys.stderr)) as session:
        try:
            store = session.open_store()
        except ChoiceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _collect_into(session, store, args)


def _collect_into(session: Session, store: Any, args: argparse.Namespace) -> int:
    """Collect (or find collected) the top-k of the images the options name, and record it in the store."""
    held = store.world()
    if held and not same_world(session.world, held):
        print(f"error: store {store.path} holds records for model {held.get('model')} / SAE {held.get('sae')} / "
              f"layer {held.get('layer')}: pass that model's options or another --store", file=sys.stderr)
        return 2
    out = store.path / "topk" / folder_name(args)
    t0 = time.perf_counter()
    toy = args.images is None and args.dataset is None
    try:
        result, fresh = _collect_toy(session, args, out) if toy else _collect(session, args, out)
    except KeyboardInterrupt:
        print(f"interrupted: run the same command again to resume from the last checkpoint in {out}",
              file=sys.stderr)
        return 130
    try:
        session.record_topk(result, out)
    except ChoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    meta = result.meta
    rate = meta.get("images_per_second")
    fired = int((result.ids[:, 0] >= 0).sum())
    done = f"in {seconds:.1f} s" + (f", {rate:g} images/s collecting" if rate else "") if fresh else \
        "(already collected: --restart collects again)"
    print(f"top-{result.k} images of {result.d_sae} features over {meta['n_images']} images "
          f"({fired} features fired) {done}")
    skipped = result.unreadable()
    if skipped:
        print(f"warning: {skipped}", file=sys.stderr)
    print(f"collection: {out}")
    print(f"recorded in store {store.path}: use it with steer-agent --evidence topk|hybrid|all, and in steer-tui")
    return 0


def _finished(out: Path, k: int, names: list[str] | None) -> Any:
    """The collection already in ``out`` when it is complete for these images and k (no model needed)."""
    from steering.topk import TopKError, load_topk

    if not (out / "topk.json").is_file():
        return None
    try:
        done = load_topk(out)
    except TopKError:
        return None  # unreadable: collect_topk reports it with the fix
    return done if done.k == k and (names is None or done.names == names) else None


def _collect(session: Session, args: argparse.Namespace, out: Path) -> tuple[Any, bool]:
    """(result, whether it was collected now)."""
    from steering.topk import DatasetSource, FolderSource, TopKConfig
    from steering.topk.sources import quiet_size_warnings

    quiet_size_warnings()  # oversized images are skipped and named in one warning line

    if args.images is not None:
        source: Any = FolderSource(args.images, args.limit)  # TopKError names a folder without images
    else:
        source = DatasetSource(args.dataset, args.split or "train", args.limit, args.image_column)
    done = None if args.restart else _finished(out, args.k, list(source.names))
    if done is not None:
        return done, False
    source.check_readable()  # TopKError (exit 2) before the model loads when no image can be read
    config = TopKConfig(k=args.k, batch_size=args.batch_size or TopKConfig.batch_size)
    return session.collect_topk(source, out, config, restart=args.restart, progress=not args.no_progress), True


def _collect_toy(session: Session, args: argparse.Namespace, out: Path) -> tuple[Any, bool]:
    if args.restart and out.exists():
        shutil.rmtree(out)
    done = _finished(out, args.k, None)
    if done is not None:
        return done, False
    return session.collect_toy_topk(out, n_scenes=args.toy_scenes, seed=args.seed, k=args.k,
                                    progress=not args.no_progress), True
