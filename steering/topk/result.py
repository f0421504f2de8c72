"""A finished top-k collection and its safe loader."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from steering.topk.constants import FORMAT, FORMAT_VERSION, TENSORS
from steering.topk.errors import TopKError
from steering.topk.sources import open_source, unreadable_line

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

    def unreadable(self) -> str | None:
        """One line on the images the collection skipped as unreadable (``skipped 3 unreadable images (e.g.
        bad.jpg: truncated)``), or None when it read them all."""
        count = int(self.meta.get("skipped", 0))
        return unreadable_line(count, self.meta.get("skipped_examples", [])) if count else None

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
