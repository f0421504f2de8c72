"""Image sources: a folder, a ``datasets`` dataset, rendered toy scenes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from steering.topk.errors import TopKError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


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
