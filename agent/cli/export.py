"""`steer-agent export` and `steer-agent review`: read and annotate a store without loading a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli.args import output_file, world_spec
from agent.session import Session
from agent.world import ChoiceError


def _session(args: argparse.Namespace) -> Session:
    """A session over the store the options name (it must exist: these commands only read and annotate it)."""
    session = Session(world_spec(args), args.store)
    try:
        session.open_store(existing=True)
    except BaseException:
        session.close()
        raise
    return session


def add_parsers(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="write the store's records as JSON lines, or as a static HTML site",
                       description="Write one JSON object per feature (explanation, label, review, ground truth...), "
                       "or with --html a self-contained site to open in a browser (index, one page per feature, "
                       "the run's settings). Corrupt records are named on stderr and skipped (exit 1); requested "
                       "features the store does not hold are counted (exit 0).")
    e.add_argument("--store", type=Path, help="store folder (default: the toy world's / the given model's)")
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=output_file, help="output .jsonl file, or - for stdout")
    where.add_argument("--html", type=Path, metavar="DIR",
                       help="write a static site into DIR (open DIR/index.html; no server or network needed)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace --out whatever it holds (default: only an export of this store that this one "
                        "holds all of); with --html, write into a folder that is not an earlier HTML export of "
                        "this store")
    e.add_argument("--features", help="only these features (e.g. 0-63)")
    add_world_options(e)
    e.set_defaults(func=export)

    r = sub.add_parser("review", help="accept, edit or reject a feature's explanation",
                       description="Record a human decision about a stored explanation.")
    r.add_argument("decision", choices=("accept", "edit", "reject"))
    r.add_argument("--feature", type=int, required=True)
    r.add_argument("--store", type=Path, help="store folder")
    r.add_argument("--explanation", help="new explanation (edit)")
    r.add_argument("--label", help="new label (edit)")
    r.add_argument("--note", help="why")
    r.add_argument("--reviewer", help="who decides (default: $STEER_REVIEWER or the user name)")
    add_world_options(r)
    r.set_defaults(func=review)


def add_world_options(p: argparse.ArgumentParser) -> None:
    """Only the options that find the default store (nothing is loaded: no device, dtype or decoding)."""
    g = p.add_argument_group("which store, without --store (default: the bundled toy world's)")
    g.add_argument("--model", help="VLM hub id or local folder the store was made with")
    g.add_argument("--sae", help="SAE folder or hub owner/repo/subfolder the store was made with")
    g.add_argument("--layer", type=int, help="vision-encoder layer (default: from the SAE config)")
    p.set_defaults(revision=None, dtype="auto", device="auto", max_new_tokens=None, batch_size=None, decode="auto",
                   no_compile=False)


def export(args: argparse.Namespace) -> int:
    from agent.store.export import ExportRefused, export_store
    from agent.run.features import FeatureSpecError, parse_features

    try:
        features = parse_features(args.features) if args.features is not None else None
        session = _session(args)
    except (FeatureSpecError, ChoiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.html is not None:
        return export_html(session, args, features)
    with session:
        try:  # a file there is replaced only when this export holds all of it (same store, no feature dropped)
            result = export_store(session.store, args.out, features, keep=None if args.overwrite else "--out")
        except ExportRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for line in [f"warning: {w}" for w in result.warnings] + [f"error: {exc}" for exc in result.corrupt]:
        print(line, file=sys.stderr)
    print(result.summary(args.out), file=sys.stderr if args.out == "-" else sys.stdout)
    return 1 if result.corrupt else 0  # missing features are reported, not failed: a store may be partial


def export_html(session: Session, args: argparse.Namespace, features: list[int] | None) -> int:
    from agent.site.html import write_site
    from agent.store.export import ExportRefused

    with session:
        try:
            result = write_site(session.store, args.html, features, overwrite=args.overwrite)
        except ExportRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: cannot write {args.html}: {exc.strerror or exc}: choose a writable folder", file=sys.stderr)
            return 2
    for line in [f"warning: {w}" for w in result.warnings] + [f"error: {exc}" for exc in result.corrupt]:
        print(line, file=sys.stderr)
    print(result.summary())
    return 1 if result.corrupt else 0


def review(args: argparse.Namespace) -> int:
    from agent.store.store import StoreError

    try:
        with _session(args) as session:
            rv = session.store.set_review(args.feature, args.decision, explanation=args.explanation,
                                          label=args.label, note=args.note, reviewer=args.reviewer)
    except (ChoiceError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"feature {args.feature}: {rv.decision} by {rv.reviewer} at {rv.at}")
    return 0
