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
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from steering.errors import SteeringError
from steering.sae import SAE

log = logging.getLogger(__name__)

FORMAT = "steer-interp/topk"
FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TENSORS = ("scores", "ids", "maps", "image_frequency", "patch_frequency", "max_activation")
MAP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class TopKError(SteeringError):
    """A top-k collection cannot run, resume or load (bad source, foreign checkpoint, corrupt files)."""


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


# ----------------------------------------------------------------------------- image sources


class FolderSource:
    """Every image file under a folder (recursively), in sorted relative-path order."""

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise TopKError(f"image folder {root} does not exist: pass --images with an existing folder")
        names = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        self.names = names[:limit] if limit is not None else names
        if not self.names:
            raise TopKError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {self.root}")

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Image.Image:
        with Image.open(self.root / self.names[i]) as img:
            return img.convert("RGB")

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "root": str(self.root), "limit": len(self.names)}


class DatasetSource:
    """Images of a locally available ``datasets`` dataset (the package is optional, imported lazily)."""

    def __init__(self, name: str, split: str = "train", limit: int | None = None,
                 image_column: str | None = None) -> None:
        try:
            import datasets
        except ImportError:
            raise TopKError("--dataset needs the 'datasets' package: pip install datasets, "
                            "or export the images to a folder and pass --images") from None
        try:
            ds = datasets.load_dataset(name, split=split)
        except Exception as exc:  # datasets raises many types; the user needs the one line
            raise TopKError(f"cannot load dataset {name!r} split {split!r} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}): is it available locally?") from exc
        if image_column is None:
            image_column = next((c for c, f in ds.features.items() if type(f).__name__ == "Image"), None)
        if image_column is None or image_column not in ds.column_names:
            raise TopKError(f"dataset {name!r} has no image column (columns: {ds.column_names}): pass --image-column")
        n = len(ds) if limit is None else min(limit, len(ds))
        self.ds, self.column, self.name, self.split = ds, image_column, name, split
        self.names = [f"{name}:{split}:{i}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Image.Image:
        img = self.ds[i][self.column]
        return img.convert("RGB") if isinstance(img, Image.Image) else Image.open(img).convert("RGB")

    def describe(self) -> dict[str, Any]:
        return {"kind": "dataset", "name": self.name, "split": self.split, "column": self.column,
                "limit": len(self.names)}


def open_source(desc: dict[str, Any]) -> FolderSource | DatasetSource:
    """Reopen the source a stored top-k was collected from (to show its images)."""
    if desc.get("kind") == "folder":
        return FolderSource(desc["root"], desc.get("limit"))
    if desc.get("kind") == "dataset":
        return DatasetSource(desc["name"], desc.get("split", "train"), desc.get("limit"), desc.get("column"))
    raise TopKError(f"unknown image source {desc!r} in topk.json")


def write_toy_scenes(out: str | Path, n: int, seed: int = 0, side: int = 64) -> Path:
    """Render ``n`` synthetic toy scenes as PNGs under ``out`` plus ``scenes.json`` (their attributes)."""
    import numpy as np

    from steering.toy import scenes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n - 1)))
    records = []
    for i, scene in enumerate(scenes.sample_scenes(n, seed)):
        name = f"scene_{i:0{width}d}.png"
        Image.fromarray(np.asarray(scenes.render(scene, side)), "RGB").save(out / name)
        records.append({"name": name, **asdict(scene)})
    (out / "scenes.json").write_text(json.dumps({"seed": seed, "side": side, "scenes": records}))
    return out


# ----------------------------------------------------------------------------- encoder up to layer L


class _Stop(Exception):
    """Raised by the capture hook: nothing after layer L is needed."""


def vision_tower(model: nn.Module) -> nn.Module:
    """The module that maps ``pixel_values`` to vision hidden states (a bare tower is returned as is)."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "vision_tower", None)
    if tower is None:
        if hasattr(model, "embeddings") and hasattr(model, "encoder"):
            return model
        raise TopKError(f"{type(model).__name__} has no vision_tower: top-k supports tower-based VLMs "
                        "(Gemma-3, PaliGemma, InternVL, LLaVA)")
    return tower


@torch.no_grad()
def layer_output(tower: nn.Module, layers: nn.ModuleList, layer: int, pixel_values: torch.Tensor) -> torch.Tensor:
    """Hidden states at the output of ``layers[layer]`` [images, seq, d]; later layers never run."""
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: tuple, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = layers[layer].register_forward_hook(hook)
    try:
        tower(pixel_values=pixel_values)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise TopKError(f"layer {layer} never ran in {type(tower).__name__}: is it the right tower?")
    return captured[0]


# ----------------------------------------------------------------------------- chunked SAE codes


class ChunkedCodes:
    """SAE codes of one batch [N, d_sae], produced one chunk of latents at a time.

    For TopK SAEs the per-row top-k (values, indices) is found by a streaming merge over latent
    chunks; the dense codes of any chunk are then scattered from it. ReLU/JumpReLU SAEs encode
    each chunk directly. Never more than [N, chunk] pre-activations exist at once.
    """

    def __init__(self, sae: SAE, x: torch.Tensor, chunk: int) -> None:
        if sae.W_enc is None:
            raise TopKError(f"SAE {sae.sae_id} has only a decoder: top-k needs its encoder weights")
        self.sae, self.chunk = sae, chunk
        self.x = x.to(sae.W_enc.dtype) - (sae.b_dec if sae.b_dec is not None else 0)  # [N, d]
        self.vals = self.idx = None
        if sae.k is not None and not (sae.threshold is not None and sae.threshold.ndim == 1):
            self._sparse_topk(sae.k)

    def _pre(self, c0: int, c1: int) -> torch.Tensor:
        pre = self.x @ self.sae.W_enc[c0:c1].T  # [N, C]
        return pre + self.sae.b_enc[c0:c1] if self.sae.b_enc is not None else pre

    def _sparse_topk(self, k: int) -> None:
        vals = idx = None
        for c0 in range(0, self.sae.d_sae, self.chunk):
            c1 = min(c0 + self.chunk, self.sae.d_sae)
            v, i = self._pre(c0, c1).topk(min(k, c1 - c0), dim=1)
            i = i + c0
            if vals is not None:
                v, j = torch.cat([vals, v], 1).topk(min(k, vals.shape[1] + v.shape[1]), dim=1)
                i = torch.cat([idx, i], 1).gather(1, j)
            vals, idx = v, i
        self.vals, self.idx = torch.relu(vals), idx  # [N, k] each

    def codes(self, c0: int, c1: int) -> torch.Tensor:
        """Dense codes of latents c0..c1-1, [N, C]."""
        if self.vals is not None:
            out = self.x.new_zeros(self.x.shape[0], c1 - c0)
            hit = (self.idx >= c0) & (self.idx < c1)
            rows = torch.arange(self.x.shape[0], device=self.x.device)[:, None].expand_as(self.idx)
            out[rows[hit], self.idx[hit] - c0] = self.vals[hit]
            return out
        pre = self._pre(c0, c1)
        thr = self.sae.threshold
        if thr is not None and thr.ndim == 1:
            return pre * (pre > thr[c0:c1])
        return torch.relu(pre)


# ----------------------------------------------------------------------------- the running top-k


class RunningTopK:
    """Per-latent top-k images by mean patch activation, with their maps, plus firing statistics."""

    def __init__(self, d_sae: int, k: int, n_patches: int, map_dtype: torch.dtype = torch.float16,
                 device: str | torch.device = "cpu") -> None:
        self.k, self.n_patches = k, n_patches
        self.scores = torch.full((d_sae, k), -math.inf, device=device)  # [n, k], -inf = empty slot
        self.ids = torch.full((d_sae, k), -1, dtype=torch.long, device=device)  # [n, k]
        self.maps = torch.zeros(d_sae, k, n_patches, dtype=map_dtype, device=device)  # [n, k, P]
        self.patch_active = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.image_active = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.max_activation = torch.zeros(d_sae, device=device)
        self.n_images = 0

    @property
    def d_sae(self) -> int:
        return self.scores.shape[0]

    def chunk_size(self, n_rows: int, batch: int, budget: int) -> int:
        per_latent = max(n_rows, (self.k + batch) * self.n_patches)
        return max(1, min(self.d_sae, budget // per_latent))

    @torch.no_grad()
    def update(self, codes: ChunkedCodes, image_ids: torch.Tensor) -> None:
        """Absorb one batch: ``codes`` covers [B * P] rows, ``image_ids`` [B] are global ids."""
        B, P = image_ids.shape[0], self.n_patches
        image_ids = image_ids.to(self.ids.device)
        for c0 in range(0, self.d_sae, codes.chunk):
            c1 = min(c0 + codes.chunk, self.d_sae)
            acts = codes.codes(c0, c1).float().view(B, P, c1 - c0)  # [B, P, C]
            on = acts > 0
            self.patch_active[c0:c1] += on.sum((0, 1))
            self.image_active[c0:c1] += on.any(1).sum(0)
            self.max_activation[c0:c1] = torch.maximum(self.max_activation[c0:c1], acts.amax((0, 1)))
            batch_scores = acts.mean(1).T  # [C, B]
            batch_scores = torch.where(batch_scores > 0, batch_scores, -math.inf)
            # Stable sort over (running entries, then batch in id order): ties go to the lower id,
            # whatever the batching, so one pass equals a global sort.
            scores = torch.cat([self.scores[c0:c1], batch_scores], 1)  # [C, k + B]
            order = scores.sort(dim=1, descending=True, stable=True).indices[:, :self.k]  # [C, k]
            rows = (order >= self.k).any(1).nonzero().squeeze(1)  # latents a batch image entered
            if rows.numel() == 0:
                continue
            order, lat = order[rows], rows + c0  # [m, k], [m]
            self.scores[lat] = scores[rows].gather(1, order)
            ids = torch.cat([self.ids[lat], image_ids[None].expand(rows.numel(), B)], 1)
            self.ids[lat] = ids.gather(1, order)
            new_maps = acts[:, :, rows].permute(2, 0, 1).to(self.maps.dtype)  # [m, B, P]
            maps = torch.cat([self.maps[lat], new_maps], 1)  # [m, k + B, P]
            self.maps[lat] = maps.gather(1, order[..., None].expand(-1, -1, P))
        self.n_images += B

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores, "ids": self.ids, "maps": self.maps, "patch_active": self.patch_active,
                "image_active": self.image_active, "max_activation": self.max_activation,
                "n_images": torch.tensor(self.n_images)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("scores", "ids", "maps", "patch_active", "image_active", "max_activation"):
            mine = getattr(self, name)
            if state[name].shape != mine.shape:
                raise TopKError(f"checkpoint {name} has shape {tuple(state[name].shape)}, expected "
                                f"{tuple(mine.shape)}: use a new --out or --restart")
            mine.copy_(state[name])
        self.n_images = int(state["n_images"])


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
                   {"model": vlm.model_id, "revision": vlm.revision, "sae": sae.sae_id, "layer": layer,
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


def _batches(source: Any, start: int, batch_size: int) -> Iterator[tuple[int, list[Image.Image]]]:
    """(first id, images) per batch from ``start``; the next batch loads while this one runs."""
    starts = list(range(start, len(source), batch_size))
    load = lambda s: [source.load(i) for i in range(s, min(s + batch_size, len(source)))]  # noqa: E731
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for n, s in enumerate(starts):
            images = pending.result()
            pending = pool.submit(load, starts[n + 1]) if n + 1 < len(starts) else None
            yield s, images


def collect_topk(
    spec: EncoderSpec, sae: SAE, source: Any, out: str | Path, config: TopKConfig | None = None, *,
    restart: bool = False, progress: bool = True, max_batches: int | None = None,
) -> TopKResult | None:
    """One pass over ``source``; writes ``out`` and returns the loaded result.

    Resumes from ``out/checkpoint.safetensors`` when it belongs to the same run. ``max_batches``
    stops early after a checkpoint (for tests and time-boxed runs) and then returns None.
    """
    cfg = config or TopKConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = next(spec.tower.parameters()).device
    tower_dtype = next(spec.tower.parameters()).dtype
    sae.to(device=device)
    run_id = {**spec.identity, "k": cfg.k, "map_dtype": cfg.map_dtype, "source": source.describe(),
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
        state = RunningTopK(sae.d_sae, cfg.k, grid[0] * grid[1], MAP_DTYPES[cfg.map_dtype], device)
        state.load_state_dict(saved)
        log.info("resuming %s at image %d of %d", out, state.n_images, len(source))

    def checkpoint() -> None:
        assert state is not None and grid is not None
        _atomic_save(state.state_dict(), ckpt, {"run": run_id, "grid": grid, "image_size": image_size})

    t0, start = time.perf_counter(), state.n_images if state else 0
    bar = _progress(progress, len(source), start)
    batches = 0
    try:
        for first, images in _batches(source, start, cfg.batch_size):
            pixel_values = spec.preprocess(images).to(device=device, dtype=tower_dtype)
            hidden = layer_output(spec.tower, spec.layers, spec.layer, pixel_values)  # [B, seq, d]
            if spec.has_cls:
                hidden = hidden[:, 1:]
            B, P = hidden.shape[0], hidden.shape[1]
            if state is None:
                side = math.isqrt(P)
                if side * side != P:
                    raise TopKError(f"{P} patches do not form a square grid")
                grid, image_size = (side, side), tuple(pixel_values.shape[-2:])
                state = RunningTopK(sae.d_sae, cfg.k, P, MAP_DTYPES[cfg.map_dtype], device)
            rows = hidden.reshape(B * P, -1)
            codes = ChunkedCodes(sae, rows, state.chunk_size(B * P, B, cfg.chunk_elements))
            state.update(codes, torch.arange(first, first + B))
            batches += 1
            bar.advance(B)
            if cfg.checkpoint_every and batches % cfg.checkpoint_every == 0:
                checkpoint()
            if max_batches is not None and batches >= max_batches and state.n_images < len(source):
                checkpoint()
                return None
    finally:
        bar.stop()
    if state is None:
        raise TopKError("no images to collect (the checkpoint already covers every image?)")
    seconds = time.perf_counter() - t0
    done_now = state.n_images - start
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "run": run_id, "k": cfg.k, "grid": list(grid),
            "image_size": list(image_size), "n_images": state.n_images, "d_sae": sae.d_sae,
            "source": source.describe(), "seconds": round(seconds, 3),
            "images_per_second": round(done_now / seconds, 3) if seconds > 0 else None}
    _write_result(out, state, grid, meta, source.names)
    ckpt.unlink(missing_ok=True)
    return load_topk(out)


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


# ----------------------------------------------------------------------------- the stored result


@dataclass
class TopImage:
    """One of a latent's top images."""

    id: int
    name: str
    score: float
    """Mean activation over the patch grid."""
    map: torch.Tensor
    """Activation map [grid_h, grid_w] (float32)."""


@dataclass
class TopKResult:
    """A loaded top-k collection."""

    scores: torch.Tensor
    """[d_sae, k] mean activation of each kept image, best first; 0 in empty slots."""
    ids: torch.Tensor
    """[d_sae, k] image ids (indices into ``names``); -1 in empty slots."""
    maps: torch.Tensor
    """[d_sae, k, grid_h, grid_w] activation maps of the kept images."""
    image_frequency: torch.Tensor
    """[d_sae] share of images where the latent fires on at least one patch."""
    patch_frequency: torch.Tensor
    """[d_sae] share of all patches where the latent fires."""
    max_activation: torch.Tensor
    """[d_sae] largest activation seen on any patch."""
    names: list[str]
    """Image names (relative paths or dataset:split:index), by id."""
    meta: dict[str, Any]
    """topk.json: the run identity, grid, image size, source, timing."""
    root: Path

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    @property
    def d_sae(self) -> int:
        return int(self.ids.shape[0])

    @property
    def grid(self) -> tuple[int, int]:
        return (int(self.maps.shape[2]), int(self.maps.shape[3]))

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the model's input images."""
        h, w = self.meta["image_size"]
        return int(h), int(w)

    def fingerprint(self) -> str:
        """Identity of this collection, for cache keys of descriptions made from it."""
        payload = json.dumps({"run": self.meta.get("run"), "n_images": self.meta.get("n_images")}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def top(self, feature: int, n: int | None = None) -> list[TopImage]:
        """The kept images of ``feature``, best first (empty slots left out)."""
        if not 0 <= feature < self.d_sae:
            raise TopKError(f"feature {feature} is out of range: this top-k covers features 0-{self.d_sae - 1}")
        out = []
        for j in range(self.k if n is None else min(n, self.k)):
            i = int(self.ids[feature, j])
            if i >= 0:
                out.append(TopImage(i, self.names[i], float(self.scores[feature, j]), self.maps[feature, j].float()))
        return out

    def image(self, image_id: int) -> Image.Image:
        """Open one image of the source (reopened lazily, once)."""
        if getattr(self, "_source", None) is None:
            self._source = open_source(self.meta["source"])
        return self._source.load(image_id)


def load_topk(root: str | Path) -> TopKResult:
    """Load a finished collection (safetensors + JSON only; nothing executes code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(root)
    try:
        meta = json.loads((root / "topk.json").read_text())
        names = json.loads((root / "images.json").read_text())
    except FileNotFoundError as exc:
        raise TopKError(f"{root} holds no finished top-k ({Path(exc.filename).name} missing): run the collection") from exc
    except json.JSONDecodeError as exc:
        raise TopKError(f"{root}: corrupt JSON ({exc}); rerun the collection with --restart") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TopKError(f"{root}/topk.json is not a {FORMAT} file")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise TopKError(f"{root} was written by a newer version (format {meta['version']}): upgrade steer-interp")
    try:
        t = load_file(str(root / "topk.safetensors"))
    except (OSError, SafetensorError) as exc:
        raise TopKError(f"cannot read {root}/topk.safetensors ({exc}); rerun the collection with --restart") from exc
    missing = set(TENSORS) - set(t)
    if missing:
        raise TopKError(f"{root}/topk.safetensors lacks {sorted(missing)}: rerun the collection with --restart")
    n, k = t["ids"].shape
    ok = (t["scores"].shape == (n, k) and t["maps"].shape[:2] == (n, k) and t["maps"].ndim == 4
          and all(t[x].shape == (n,) for x in ("image_frequency", "patch_frequency", "max_activation"))
          and isinstance(names, list) and (int(t["ids"].max()) if t["ids"].numel() else -1) < len(names))
    if not ok:
        raise TopKError(f"{root}: tensors or image list have inconsistent shapes; rerun the collection with --restart")
    return TopKResult(t["scores"], t["ids"], t["maps"], t["image_frequency"], t["patch_frequency"],
                      t["max_activation"], names, meta, root)


def build_toy_topk(out: str | Path, n_scenes: int = 2000, seed: int = 0, k: int = 10,
                   progress: bool = False) -> TopKResult:
    """The toy world's own top-k: render ``n_scenes`` scenes into ``out/images`` and collect over them
    (seconds on a CPU; ``out/images/scenes.json`` keeps each image's attributes for evaluation)."""
    import steering.toy as toy
    from steering.models import load_vlm
    from steering.sae import load_sae

    if not toy.is_available():
        raise TopKError("the toy world is not built: run python -m steering.toy.build")
    out = Path(out)
    folder = out / "images"
    if not (folder / "scenes.json").is_file():
        write_toy_scenes(folder, n_scenes, seed)
    vlm, sae = load_vlm(toy.model_dir()), load_sae(toy.sae_dir())
    result = collect_topk(EncoderSpec.from_vlm(vlm, sae), sae, FolderSource(folder), out, TopKConfig(k=k),
                          progress=progress)
    assert result is not None
    return result


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
