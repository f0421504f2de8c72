"""The collection pass: config, encoder spec, the streaming loop, atomic checkpoints and results."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import nn

from steering.sae import SAE
from steering.topk.constants import FORMAT, FORMAT_VERSION, MAP_DTYPES
from steering.topk.encode import ChunkedCodes, layer_output, vision_tower
from steering.topk.errors import TopKError
from steering.topk.result import TopKResult, load_topk
from steering.topk.running import RunningTopK
from steering.topk.sources import EXAMPLES, FolderSource, UnreadableImage, write_toy_scenes

log = logging.getLogger(__name__)


@dataclass
class TopKConfig:
    """How one collection runs; only ``k`` and ``map_dtype`` change what is stored."""

    k: int = 10
    """Images kept per latent."""
    batch_size: int = 16
    """Images per encoder forward pass."""
    chunk_elements: int = 1 << 24
    """Memory budget, in tensor elements, for one chunk of latents (codes and candidate maps)."""
    checkpoint_every: int = 20
    """Batches between atomic checkpoints (0: only at the end)."""
    map_dtype: str = "float16"
    """Storage dtype of the activation maps (scores and statistics stay float32)."""


# ----------------------------------------------------------------------------- the collection pass


@dataclass
class EncoderSpec:
    """What collection needs of a model: the tower, its layers, and how to preprocess images."""

    tower: nn.Module
    layers: nn.ModuleList
    layer: int
    has_cls: bool
    preprocess: Callable[[list[Image.Image]], torch.Tensor]
    """PIL images -> pixel_values [B, 3, H, W] at the model's resolution."""
    identity: dict[str, Any] = field(default_factory=dict)
    """Model id, revision, SAE id: recorded in the metadata and checked on resume."""

    @classmethod
    def from_vlm(cls, vlm: Any, sae: SAE, layer: int | None = None) -> EncoderSpec:
        from steering.sae import check_layer

        layer = check_layer(layer if layer is not None else sae.layer, vlm.vision.n_layers)
        sae.check_fits(vlm.vision.width, vlm.vision.n_layers, layer)
        if vlm.vision.flat:
            raise TopKError("top-k needs a fixed patch grid; flat encoders (Qwen2.5-VL) are not supported")
        image_processor = getattr(vlm.processor, "image_processor", vlm.processor)

        def preprocess(images: list[Image.Image]) -> torch.Tensor:
            pv = image_processor(images=images, return_tensors="pt")["pixel_values"]
            pv = pv[:, 0] if pv.ndim == 5 else pv  # tiled processors: the base (whole-image) tile
            if pv.shape[0] != len(images):
                raise TopKError(f"the processor made {pv.shape[0]} tiles of {len(images)} images: "
                                "turn image tiling off for top-k")
            return pv

        return cls(vision_tower(vlm.model), vlm.vision.layers, layer, vlm.vision.has_cls, preprocess,
                   {"model": vlm.model_id, "revision": vlm.revision, "sae": sae.sae_id,
                    "sae_revision": sae.revision, "layer": layer,
                    "d_sae": sae.d_sae})


def _names_hash(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"state": json.dumps(metadata)})
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Batch(NamedTuple):
    """Images of a source as read: the readable ones with their global ids, and the ids of the others."""

    ids: list[int]
    images: list[Image.Image]
    unreadable: list[int]

    @property
    def size(self) -> int:
        """Images of the source this batch covers, readable or not."""
        return len(self.ids) + len(self.unreadable)


def _read(source: Any, first: int, stop: int) -> Batch:
    ids, images, unreadable = [], [], []
    for i in range(first, stop):
        try:
            images.append(source.load(i))
            ids.append(i)
        except UnreadableImage as exc:
            log.debug("skipping %s", exc)
            unreadable.append(i)
    return Batch(ids, images, unreadable)


def _read_batches(source: Any, start: int, batch_size: int, stop: int | None = None) -> Iterator[Batch]:
    """Batches of images ``start``..``stop`` (default: to the end), unreadable ones set aside; the next
    batch loads while this one runs."""
    stop = len(source) if stop is None else min(stop, len(source))
    starts = list(range(start, stop, batch_size))
    load = lambda s: _read(source, s, min(s + batch_size, stop))  # noqa: E731
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for n, _ in enumerate(starts):
            batch = pending.result()
            pending = pool.submit(load, starts[n + 1]) if n + 1 < len(starts) else None
            yield batch


def _batches(source: Any, start: int, batch_size: int,
             stop: int | None = None) -> Iterator[tuple[int, list[Image.Image]]]:
    """(first id, images) per batch, for sources whose every image reads (bench/topk_speed.py)."""
    for batch in _read_batches(source, start, batch_size, stop):
        yield min(batch.ids[:1] + batch.unreadable[:1]), batch.images


class Absorbed(NamedTuple):
    """One step of a collection: the running state after it, and what the step added."""

    state: RunningTopK
    image_size: tuple[int, int]
    """(height, width) of the model's input images."""
    images: int
    batches: int


Steps = Callable[[int, RunningTopK | None], Iterator[Absorbed]]
"""(first image id, the state to continue or None) -> the steps over the images from there, in id order."""


@torch.no_grad()
def absorb(spec: EncoderSpec, sae: SAE, batch: Batch, state: RunningTopK | None,
           config: TopKConfig) -> tuple[RunningTopK, tuple[int, int]]:
    """One batch into ``state`` (None: a new one, sized from this batch), its unreadable images counted as
    skipped; returns the state and the input image size."""
    device, dtype = _device_dtype(spec)
    # A batch with no readable image still sizes a new state: a blank image stands in (and is not absorbed).
    pixel_values = spec.preprocess(batch.images or [Image.new("RGB", (64, 64))]).to(device=device, dtype=dtype)
    if not batch.images and state is not None:
        state.skip(batch.unreadable)
        return state, tuple(pixel_values.shape[-2:])
    hidden = layer_output(spec.tower, spec.layers, spec.layer, pixel_values)  # [B, seq, d]
    if spec.has_cls:
        hidden = hidden[:, 1:]
    B, P = hidden.shape[0], hidden.shape[1]
    if state is None:
        if math.isqrt(P) ** 2 != P:
            raise TopKError(f"{P} patches do not form a square grid")
        state = RunningTopK(sae.d_sae, config.k, P, MAP_DTYPES[config.map_dtype], device)
    state.skip(batch.unreadable)
    if batch.images:
        rows = hidden.reshape(B * P, -1)
        codes = ChunkedCodes(sae, rows, state.chunk_size(B * P, B, config.chunk_elements))
        state.update(codes, torch.tensor(batch.ids))
    return state, tuple(pixel_values.shape[-2:])


def _device_dtype(spec: EncoderSpec) -> tuple[torch.device, torch.dtype]:
    param = next(spec.tower.parameters())
    return param.device, param.dtype


def collect_shard(spec: EncoderSpec, sae: SAE, source: Any, start: int, stop: int,
                  config: TopKConfig) -> tuple[RunningTopK, tuple[int, int]]:
    """The running top-k of images ``start``..``stop`` alone (whole batches from ``start``, as one pass cuts
    them), with their global ids: merged in order (RunningTopK.merge), shards give one pass's result."""
    sae.to(device=_device_dtype(spec)[0])
    state, size = None, None
    for batch in _read_batches(source, start, config.batch_size, stop):
        state, size = absorb(spec, sae, batch, state, config)
    if state is None or size is None:
        raise TopKError(f"no images in {start}..{stop} of the source")
    return state, size


def collect_topk(
    spec: EncoderSpec, sae: SAE, source: Any, out: str | Path, config: TopKConfig | None = None, *,
    restart: bool = False, progress: bool = True, max_batches: int | None = None,
) -> TopKResult | None:
    """One pass over ``source`` in this process; writes ``out`` and returns the loaded result (see
    run_collection: resume, ``max_batches``)."""
    cfg = config or TopKConfig()
    device = _device_dtype(spec)[0]
    sae.to(device=device)

    def steps(start: int, state: RunningTopK | None) -> Iterator[Absorbed]:
        for batch in _read_batches(source, start, cfg.batch_size):
            state, size = absorb(spec, sae, batch, state, cfg)
            yield Absorbed(state, size, batch.size, 1)

    return run_collection(spec.identity, sae.d_sae, source, out, cfg, steps, device=device, restart=restart,
                          progress=progress, max_batches=max_batches)


def run_collection(
    identity: dict[str, Any], d_sae: int, source: Any, out: str | Path, config: TopKConfig, steps: Steps, *,
    device: str | torch.device = "cpu", restart: bool = False, progress: bool = True,
    max_batches: int | None = None,
) -> TopKResult | None:
    """The pass over ``source`` that ``steps`` makes (here, or on other processes), with its checkpoints;
    writes ``out`` and returns the loaded result.

    Long on purpose: the loop, its checkpoint cadence and the resume state are one piece of state (what
    was absorbed, up to which image, with which config); keeping them in one function keeps "resume gives
    the same result as one pass" checkable by reading it.

    Resumes from ``out/checkpoint.safetensors`` when it belongs to the same run. ``max_batches``
    stops early after a checkpoint (for tests and time-boxed runs) and then returns None.
    """
    cfg = config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_id = {**identity, "k": cfg.k, "map_dtype": cfg.map_dtype, "source": source.describe(),
              "names": _names_hash(source.names)}
    ckpt = out / "checkpoint.safetensors"
    if restart:
        for name in ("checkpoint.safetensors", "topk.safetensors", "topk.json", "images.json"):
            (out / name).unlink(missing_ok=True)
    if (out / "topk.json").is_file():
        done = load_topk(out)
        if done.meta.get("run") == run_id:
            log.info("top-k in %s is already complete", out)
            return done
        raise TopKError(f"{out} holds a top-k of another run: use a new --out or --restart")

    state: RunningTopK | None = None
    grid: tuple[int, int] | None = None
    image_size: tuple[int, int] | None = None
    if ckpt.is_file():
        from safetensors import safe_open

        with safe_open(str(ckpt), "pt") as f:
            meta = json.loads(f.metadata()["state"])
            saved = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("run") != run_id:
            raise TopKError(f"{ckpt} belongs to another run (model, SAE, k or images differ): "
                            "use a new --out or --restart")
        grid, image_size = tuple(meta["grid"]), tuple(meta["image_size"])
        state = RunningTopK(d_sae, cfg.k, grid[0] * grid[1], MAP_DTYPES[cfg.map_dtype], device)
        state.load_state_dict(saved)
        log.info("resuming %s at image %d of %d", out, state.n_seen, len(source))

    def checkpoint() -> None:
        assert state is not None and grid is not None
        _atomic_save(state.state_dict(), ckpt, {"run": run_id, "grid": grid, "image_size": image_size})

    t0, start = time.perf_counter(), state.n_seen if state else 0
    bar = _progress(progress, len(source), start)
    batches = 0
    try:
        for step in steps(start, state):
            state, image_size = step.state, step.image_size
            if grid is None:
                side = math.isqrt(state.n_patches)
                grid = (side, side)
            before, batches = batches, batches + step.batches
            bar.advance(step.images)
            if cfg.checkpoint_every and batches // cfg.checkpoint_every > before // cfg.checkpoint_every:
                checkpoint()
            if max_batches is not None and batches >= max_batches and state.n_seen < len(source):
                checkpoint()
                return None
    finally:
        bar.stop()
    if state is None or grid is None or image_size is None:
        raise TopKError("no images to collect (the checkpoint already covers every image?)")
    examples = [[source.names[i], _reason(source, i)] for i in state.skipped[:EXAMPLES]]
    if state.n_images == 0:
        raise TopKError(f"none of the {len(source)} images can be read "
                        f"({'; '.join(': '.join(e) for e in examples)}): pass readable images")
    seconds = time.perf_counter() - t0
    done_now = state.n_seen - start
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "run": run_id, "k": cfg.k, "grid": list(grid),
            "image_size": list(image_size), "n_images": state.n_images, "d_sae": d_sae,
            "source": source.describe(), "seconds": round(seconds, 3),
            "images_per_second": round(done_now / seconds, 3) if seconds > 0 else None,
            "skipped": len(state.skipped), "skipped_examples": examples}
    _write_result(out, state, grid, meta, source.names)
    ckpt.unlink(missing_ok=True)
    return load_topk(out)


def _reason(source: Any, i: int) -> str:
    """Why image ``i`` was skipped (read again: a skipped image is only an id in the state, which may have come
    from another process)."""
    try:
        source.load(i)
    except UnreadableImage as exc:
        return exc.reason
    return "unreadable when collected"


def _write_result(out: Path, state: RunningTopK, grid: tuple[int, int], meta: dict[str, Any],
                  names: Sequence[str]) -> None:
    n = max(state.n_images, 1)
    empty = state.ids < 0
    tensors = {
        "scores": state.scores.masked_fill(empty, 0.0),
        "ids": state.ids,
        "maps": state.maps.view(state.d_sae, state.k, *grid),
        "image_frequency": state.image_active.float() / n,
        "patch_frequency": state.patch_active.float() / (n * state.n_patches),
        "max_activation": state.max_activation,
    }
    _atomic_write_text(out / "images.json", json.dumps(list(names)))
    _atomic_save(tensors, out / "topk.safetensors", {"format": FORMAT, "version": FORMAT_VERSION})
    _atomic_write_text(out / "topk.json", json.dumps(meta, indent=2))  # written last: marks completion


class _NoBar:
    def advance(self, n: int) -> None:
        pass

    def stop(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, done: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.p = Progress(TextColumn("top-k images"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn())
        self.task = self.p.add_task("collect", total=total, completed=done)
        self.p.start()

    def advance(self, n: int) -> None:
        self.p.advance(self.task, n)

    def stop(self) -> None:
        self.p.stop()


def _progress(enabled: bool, total: int, done: int) -> _NoBar | _RichBar:
    return _RichBar(total, done) if enabled else _NoBar()


Collector = Callable[[Any, Path, TopKConfig], TopKResult | None]
"""(source, out, config) -> the collection written to ``out``: collect_topk's pass elsewhere (on Ray actors)."""


def toy_encoder(_spec: Any = None) -> tuple[EncoderSpec, SAE]:
    """The toy world's encoder and SAE as its own top-k collects with them (float32 on the CPU)."""
    import steering.toy as toy
    from steering.models import load_vlm
    from steering.sae import load_sae

    if not toy.is_available():
        raise TopKError("the toy world is not built: run python -m steering.toy.build")
    vlm, sae = load_vlm(toy.model_dir()), load_sae(toy.sae_dir())
    return EncoderSpec.from_vlm(vlm, sae), sae


def build_toy_topk(out: str | Path, n_scenes: int = 2000, seed: int = 0, k: int = 10,
                   progress: bool = False, collect: Collector | None = None) -> TopKResult:
    """The toy world's own top-k: render ``n_scenes`` scenes into ``out/images`` and collect over them
    (seconds on a CPU; ``out/images/scenes.json`` keeps each image's attributes for evaluation).
    ``collect``: another pass than one in this process (the same result)."""
    import steering.toy as toy

    if not toy.is_available():
        raise TopKError("the toy world is not built: run python -m steering.toy.build")
    out = Path(out)
    folder = out / "images"
    if not (folder / "scenes.json").is_file():
        write_toy_scenes(folder, n_scenes, seed)
    source, config = FolderSource(folder), TopKConfig(k=k)
    if collect is not None:
        result = collect(source, out, config)
    else:
        spec, sae = toy_encoder()
        result = collect_topk(spec, sae, source, out, config, progress=progress)
    assert result is not None
    return result
