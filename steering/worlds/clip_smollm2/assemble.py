"""Fetch and assemble the clip-smollm2 world into ``<cache>/worlds/clip-smollm2/model``: idempotent (a folder
whose manifest hashes match is left alone), resumable (checked wheels stay in ``wheels/``) and atomic (the
folder is written beside its place and renamed into it)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steering.worlds.clip_smollm2 import errors, manifest
from steering.worlds.clip_smollm2 import projector as proj
from steering.worlds.clip_smollm2.errors import WorldError
from steering.worlds.clip_smollm2.fetch import Runner, no_space_hint, read_member, sha256, wheel_paths
from steering.worlds.clip_smollm2.pins import CLIP, SMOLLM2, WHEELS, WORLD

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where the trained parts ship (item 2 of issue 32: ``projector.safetensors``)."""
NEED_BYTES = 1_400_000_000
"""Free disk the assembly needs at most: the wheels (171 MB), the folder (about 0.9 GB float32) and the GGUF
unpacked on the way (98 MB)."""


@dataclass
class Assembled:
    """What ``assemble`` did."""

    folder: Path
    """The LLaVA folder (``--model`` takes it)."""
    fresh: bool
    """Whether it was assembled now (False: already assembled, hashes checked)."""
    seconds: float
    """Wall time of the call (hashes only, when not fresh)."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """The folder's manifest: inputs, file hashes, checks, timings."""


def world_root(cache: Path) -> Path:
    """The world's own folder under ``cache``: ``wheels/``, ``model/`` and a lock file."""
    return Path(cache).expanduser() / "worlds" / WORLD


def model_dir(cache: Path) -> Path:
    """The assembled folder under ``cache`` (whether or not it is there yet)."""
    return world_root(cache) / "model"


def default_projector() -> Path | None:
    """The trained projector the package ships, once it does."""
    path = DATA_DIR / proj.PROJECTOR_FILE
    return path if path.is_file() else None


def default_sae() -> Path | None:
    """The SAE the package ships for this world, once it does (item 2 of issue 32: ``data/sae``)."""
    path = DATA_DIR / "sae"
    return path if (path / "config.json").is_file() else None


def wanted_inputs(projector: Path | None, image_size: int = proj.DEFAULT_IMAGE_SIZE) -> dict[str, str]:
    """What the folder is made from: the pinned wheels, the projector (trained file's hash, or the init) and
    the image size."""
    inputs = {w.requirement: w.sha256 for w in WHEELS}
    inputs["projector"] = (sha256(projector) if projector is not None else
                           f"init:seed={proj.SEED},std={proj.STD}")
    inputs["image_size"] = str(image_size)
    return inputs


def image_size_for(projector: Path | None, asked: int | None) -> int:
    """The image size to assemble at: the one a trained projector was trained at, else the one asked for,
    else CLIP's 224 (a size that disagrees with the projector's is refused)."""
    trained = proj.trained_image_size(projector) if projector is not None else None
    if asked is not None and trained is not None and asked != trained:
        raise WorldError(f"projector {projector} was trained at {trained} px, not {asked}: leave out the image size "
                         "or pass another projector")
    return trained or asked or proj.DEFAULT_IMAGE_SIZE


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One assembly at a time per cache (a second waits for the first, then finds the folder assembled)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _no_space(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def assemble(cache: Path, *, wheels: Path | None = None, projector: Path | None = None,
             image_size: int | None = None, force: bool = False, runner: Runner | None = None,
             report: Callable[[str], None] = lambda _: None) -> Assembled:
    """Make sure ``<cache>/worlds/clip-smollm2/model`` is the assembled world and say whether it was built now.

    wheels: a folder holding the two wheels (no download). projector: a trained ``projector.safetensors``
    (or a folder holding one); None: the shipped one, else a seeded untrained init. image_size: the input
    size in px (None: the trained projector's, else 224; 112 gives 7 x 7 = 49 image tokens). force: assemble again.
    runner: runs pip (None: this Python's). report: progress lines. Raises WorldError in one line.
    """
    t0 = time.perf_counter()
    root = world_root(cache)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorldError(no_space_hint(root) if _no_space(exc) else f"cannot create {root} ({exc.strerror}): "
                         "set STEER_INTERP_CACHE to a writable folder") from exc
    projector = proj.projector_file(projector) if projector is not None else default_projector()
    size = image_size_for(projector, image_size)
    inputs = wanted_inputs(projector, size)
    target = model_dir(cache)
    with _locked(root):
        why = None if force else manifest.stale(target, inputs)
        if not force and why is None:
            return Assembled(target, False, time.perf_counter() - t0, manifest.read_manifest(target) or {})
        log.info("assembling %s: %s", target, why or "--force")
        errors.check_extra()
        free = shutil.disk_usage(root).free
        if free < NEED_BYTES:
            raise WorldError(f"not enough disk space for {root} ({free / 1e9:.1f} GB free, about "
                             f"{NEED_BYTES / 1e9:.1f} GB needed): free some space, or set STEER_INTERP_CACHE to a "
                             "folder on another disk")
        for leftover in root.glob(".model.*"):  # what an interrupted run left (the lock says none is running)
            shutil.rmtree(leftover, ignore_errors=True)
        work = root / f".model.tmp-{os.getpid()}"
        try:
            facts = _build(root, work, wheels, projector, size, runner, report)
            made = manifest.write_manifest(work, inputs, facts)
            _swap(work, target)
        except OSError as exc:
            if _no_space(exc):
                raise WorldError(no_space_hint(root)) from exc
            raise WorldError(f"cannot write the world under {root} ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:
            if _no_space(exc):
                raise WorldError(no_space_hint(root)) from exc
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return Assembled(target, True, time.perf_counter() - t0, made)


def _build(root: Path, work: Path, given: Path | None, projector: Path | None, image_size: int,
           runner: Runner | None, report: Callable[[str], None]) -> dict[str, Any]:
    """Write the folder into ``work``; returns the facts and checks the manifest keeps."""
    # torch and transformers only now: "already assembled" answers without them.
    from steering.worlds.clip_smollm2 import checks, clip_onnx, folder
    from steering.worlds.clip_smollm2.smollm2 import load_gguf

    timings: dict[str, float] = {}
    t = time.perf_counter()
    paths = wheel_paths(root / "wheels", given, runner, report)
    timings["wheels"] = time.perf_counter() - t
    report("converting CLIP ViT-B/16 (int8 ONNX -> float32)")
    t = time.perf_counter()
    onnx_bytes = read_member(paths[CLIP.name], CLIP)
    clip_state, clip_config = clip_onnx.clip_from_onnx(clip_onnx.parse_onnx(onnx_bytes))
    projection = clip_state.pop("visual_projection.weight")  # [512, 768]: CLIP's own head, kept for the checks
    clip_state, clip_config = clip_onnx.at_resolution(clip_state, clip_config, image_size)
    timings["clip"] = time.perf_counter() - t
    report("converting SmolLM2-135M-Instruct (Q4_1 GGUF -> float32)")
    t = time.perf_counter()
    unpacked = work / ".gguf"
    unpacked.mkdir(parents=True)
    name = Path(SMOLLM2.member).name
    (unpacked / name).write_bytes(read_member(paths[SMOLLM2.name], SMOLLM2))
    lm = load_gguf(unpacked, name)
    shutil.rmtree(unpacked)
    timings["smollm2"] = time.perf_counter() - t
    vision_width, text_width = clip_config["hidden_size"], lm.config["hidden_size"]
    trained = projector is not None
    joint = (proj.load_projector(projector, vision_width, text_width) if trained
             else proj.init_projector(vision_width, text_width))
    report(f"writing the LLaVA folder ({'trained' if trained else 'untrained, seeded'} projector)")
    t = time.perf_counter()
    facts = folder.write_folder(work, clip_state, clip_config, lm, joint)
    del clip_state, lm
    timings["write"] = time.perf_counter() - t
    report("checking the folder (transformers loads it; CLIP against the ONNX graph; a text answer)")
    t = time.perf_counter()
    found = checks.check_folder(work, onnx_bytes, projection)
    timings["checks"] = time.perf_counter() - t
    return {"world": WORLD, "projector": "trained" if trained else "untrained (seeded init)", **facts,
            "checks": found, "seconds": {k: round(v, 1) for k, v in timings.items()}}


def _swap(work: Path, target: Path) -> None:
    """Put ``work`` in ``target``'s place (the old folder, if any, moved aside first and then removed)."""
    old = target.with_name(f".model.old-{os.getpid()}")
    if target.exists():
        target.replace(old)
    work.replace(target)
    shutil.rmtree(old, ignore_errors=True)
