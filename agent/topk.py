"""Top-k collections and pictures for front ends: where a store's collection lives, a feature's top
images (masked, heatmap or plain) with captions, and the base images of steering.

The TUI talks to this module instead of steering.topk / steering.topk.views / steering.images. Nothing
here imports torch at module level; loading a collection does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from agent.store.store import Store
    from steering.topk import TopKResult

META_KEY = "topk"
"""Store meta key holding the collection's folder (relative to the store when inside it)."""
VIEW_KINDS = ("masked", "heatmap", "plain")
_CACHE_SIZE = 2


class TopKMissing(Exception):
    """The store records no top-k collection, or the recorded one is gone; the message names the fix."""


def fix_hint(store_path: str | Path | None = None) -> str:
    where = f" --store {store_path}" if store_path else ""
    return f"steer-agent topk{where} [--images DIR | --dataset NAME]"


def topk_dir(store: Store | None, override: str | Path | None = None) -> Path | None:
    """The collection folder to use: ``override`` (a command-line choice) or the one the store records."""
    if override:
        return Path(override).expanduser()
    value = store.get_meta(META_KEY) if store is not None else None
    if isinstance(value, dict):  # tolerate a richer entry: {"path": ...}
        value = value.get("path")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else store.path / path  # type: ignore[union-attr]


def record_topk(store: Store, folder: str | Path) -> str:
    """Record ``folder`` as the store's collection (relative when inside the store, so a moved store keeps it)."""
    folder = Path(folder).expanduser().absolute()
    try:
        value = folder.relative_to(store.path.expanduser().absolute()).as_posix()
    except ValueError:
        value = str(folder)
    store.set_meta(META_KEY, value)
    return value


def require_topk(store: Store, override: str | Path | None = None) -> Path:
    """The collection folder, or TopKMissing naming ``steer-agent topk`` as the fix."""
    root = topk_dir(store, override)
    if root is None:
        raise TopKMissing(f"store {store.path} has no top-k collection: collect one first with "
                          f"`{fix_hint(store.path)}`")
    if not (root / "topk.json").is_file():
        raise TopKMissing(f"top-k collection {root} is missing or unfinished: run `{fix_hint(store.path)}` "
                          "(it resumes an interrupted collection)")
    return root


# ----------------------------------------------------------------------------- loading

_loaded: OrderedDict[tuple[str, float], TopKResult] = OrderedDict()
_lock = threading.Lock()


def open_topk(root: str | Path) -> TopKResult:
    """Load a finished collection (kept in memory for the next call while its files are unchanged)."""
    from steering.topk import load_topk

    root = Path(root).expanduser()
    try:
        stamp = (root / "topk.json").stat().st_mtime
    except OSError:
        stamp = -1.0
    key = (str(root.resolve()), stamp)
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            _loaded.move_to_end(key)
            return hit
    result = load_topk(root)  # raises TopKError naming the fix
    with _lock:
        _loaded[key] = result
        while len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
    return result


# ----------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class TopView:
    """One of a feature's top images, drawn for a person or a judge."""

    image: Image.Image
    """At the model's resolution (masked, heatmap or plain)."""
    image_id: int
    name: str
    score: float
    """Mean activation over the patch grid."""

    @property
    def caption(self) -> str:
        return f"{self.score:.2f} {Path(self.name).name}"


def feature_views(root: str | Path, feature: int, n: int = 5, kind: str = "masked") -> list[TopView]:
    """The ``n`` best images of ``feature`` in ``root``'s collection, best first (empty if it never fired)."""
    from steering.topk.views import feature_views as draw

    if kind not in VIEW_KINDS:
        raise ValueError(f"unknown view {kind!r}: use one of {', '.join(VIEW_KINDS)}")
    topk = open_topk(root)
    items = topk.top(feature, n)
    images = draw(topk, feature, n=n, kind=kind)
    return [TopView(img, t.id, t.name, t.score) for img, t in zip(images, items)]


def base_image(spec: str = "white", size: int = 64) -> Image.Image:
    """The base image a sweep steers on (white, black, noise or a file), as a PIL image."""
    from steering.images import base_image as make

    return make(spec, size=size)


def feature_stats(root: str | Path, feature: int) -> dict[str, Any]:
    """Activation frequency (share of images and of patches) and the largest activation of ``feature``."""
    topk = open_topk(root)
    topk.top(feature, 0)  # range check with the collection's own message
    return {"image_frequency": float(topk.image_frequency[feature]),
            "patch_frequency": float(topk.patch_frequency[feature]),
            "max_activation": float(topk.max_activation[feature])}
