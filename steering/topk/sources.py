"""Image sources: a folder, a ``datasets`` dataset, rendered toy scenes."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, UnidentifiedImageError

from steering.topk.errors import TopKError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
EXAMPLES = 3
"""Unreadable images a message names before it says "..."."""


# ----------------------------------------------------------------------------- reading one image


class UnreadableImage(TopKError):
    """One image of a source cannot be decoded; a collection skips it and counts it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickles whole (across processes, Ray)
        return type(self), (self.name, self.reason)


def read_image(file: str | Path | BinaryIO, name: str) -> Image.Image:
    """The image in ``file`` as RGB, or UnreadableImage with a short reason (truncated, not an image, empty
    file, too large). Checks the pixel count from the header before decoding, so a decompression bomb costs
    nothing (PIL still warns about one while opening it: see quiet_size_warnings)."""
    try:
        with Image.open(file) as img:
            w, h = img.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and w * h > limit:
                raise UnreadableImage(name, f"too large ({w}x{h} pixels)")
            return img.convert("RGB")
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:  # Image.open refuses twice the limit before we see the size
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{pixels.group(1)} pixels" if pixels else "a decompression bomb"
        raise UnreadableImage(name, f"too large ({size})") from exc
    except UnidentifiedImageError as exc:
        empty = isinstance(file, (str, Path)) and Path(file).stat().st_size == 0
        raise UnreadableImage(name, "empty file" if empty else "not an image") from exc
    except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error, ... on bad bytes
        text = getattr(exc, "strerror", None) or str(exc).split("\n")[0]
        reason = "truncated" if "truncated" in text else (text[:80] or type(exc).__name__)
        raise UnreadableImage(name, reason) from exc


def quiet_size_warnings() -> None:
    """Silence PIL's DecompressionBombWarning in this process (for the CLIs): read_image refuses those images
    itself and the skip line names them, so the warning would only be a second, unattributed line."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def unreadable_line(count: int, examples: Sequence[Sequence[str]]) -> str:
    """``skipped 3 unreadable images (e.g. bad.jpg: truncated; ...)``: ``examples`` are (name, reason) pairs."""
    shown = "; ".join(f"{name}: {reason}" for name, reason in examples[:EXAMPLES])
    more = "; ..." if count > min(len(examples), EXAMPLES) else ""
    return f"skipped {count} unreadable image{'s' if count != 1 else ''} (e.g. {shown}{more})"


# ----------------------------------------------------------------------------- image sources


class FolderSource:
    """Every image file under a folder (recursively), in sorted relative-path order."""

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        problem = folder_problem(root)
        if problem:
            raise TopKError(problem)
        names = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        self.names = names[:limit] if limit is not None else names
        if not self.names:
            raise TopKError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {self.root}")

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Image.Image:
        """Image ``i`` as RGB; UnreadableImage when it cannot be decoded."""
        return read_image(self.root / self.names[i], self.names[i])

    def check_readable(self) -> None:
        """TopKError when no image of the source can be read (before a model is loaded for nothing)."""
        _check_readable(self, f"under {self.root}", f"pass a folder of readable images ({', '.join(IMAGE_SUFFIXES)})")

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
        """Image ``i`` as RGB; UnreadableImage when it cannot be decoded."""
        name = self.names[i]
        try:
            img = self.ds[i][self.column]
        except Exception as exc:  # datasets decodes on access and raises PIL's errors (and its own)
            raise UnreadableImage(name, str(exc).split("\n")[0][:80] or type(exc).__name__) from exc
        if isinstance(img, Image.Image):
            w, h = img.size
            if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
                raise UnreadableImage(name, f"too large ({w}x{h} pixels)")
            try:
                return img.convert("RGB")
            except Exception as exc:  # lazily decoded: truncated bytes show up here
                raise UnreadableImage(name, "truncated" if "truncated" in str(exc) else str(exc)[:80]) from exc
        return read_image(img, name)

    def check_readable(self) -> None:
        """TopKError when no image of the dataset can be read."""
        _check_readable(self, f"in dataset {self.name!r} split {self.split!r}", "pass a dataset of readable images")

    def describe(self) -> dict[str, Any]:
        return {"kind": "dataset", "name": self.name, "split": self.split, "column": self.column,
                "limit": len(self.names)}


def folder_problem(root: str | Path) -> str | None:
    """A one-line complaint when ``root`` is not a folder of images to pass as --images, or None."""
    path = Path(root).expanduser()
    if path.is_dir():
        return None
    if path.exists():
        return (f"--images {root} is a file, not a folder: pass the folder that holds the images "
                "(searched recursively)")
    return f"image folder {root} does not exist: pass --images with an existing folder"


def _check_readable(source: FolderSource | DatasetSource, where: str, fix: str) -> None:
    """Reads images until one decodes (usually the first); TopKError naming a few when none does."""
    failed: list[UnreadableImage] = []
    for i in range(len(source)):
        try:
            source.load(i)
            return
        except UnreadableImage as exc:
            failed.append(exc)
    shown = "; ".join(str(e) for e in failed[:EXAMPLES]) + ("; ..." if len(failed) > EXAMPLES else "")
    raise TopKError(f"none of the {len(failed)} images {where} can be read ({shown}): {fix}")


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
