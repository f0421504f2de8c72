"""Content fingerprints of local model and SAE files (no torch).

A local folder's path says where it is, not what it holds: the same SAE copied to another folder or
clone is the same SAE, and an SAE retrained into the same folder is a different one. Stores and
cache keys name local models and SAEs by this fingerprint, so neither case reuses the wrong results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CONFIGS = ("config.json", "cfg.json")
_WEIGHTS = (".safetensors", ".bin", ".pt")
_CHUNK = 1 << 20


def content_revision(path: str | Path) -> str:
    """``local-<12 hex>`` for a folder's configs and weight files, or for one weight file.

    Hashes each file's name and size and its first and last MiB: cheap on an 8 GB checkpoint, and
    retrained weights change those bytes. Timestamps and the folder's own path do not count.
    """
    path = Path(path).expanduser()
    if path.is_file():
        files = [path]
    else:
        files = sorted(f for f in path.iterdir() if f.is_file() and (f.name in _CONFIGS or f.suffix in _WEIGHTS))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(_CHUNK))
            if size > 2 * _CHUNK:
                fh.seek(-_CHUNK, 2)
                h.update(fh.read(_CHUNK))
    return "local-" + h.hexdigest()[:12]


def is_local_revision(revision: object) -> bool:
    """Whether a revision is a content fingerprint (a local folder) rather than a hub commit or tag."""
    return isinstance(revision, str) and revision.startswith("local-")


def local_path(spec: str) -> Path | None:
    """The existing local file or folder a model or SAE spec names, absolute (None: a hub id)."""
    path = Path(spec).expanduser()
    return path.resolve() if path.exists() else None
