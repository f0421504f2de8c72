"""The manifest of an assembled folder: what it was made from and the sha256 of every file it holds, so a
second run answers "already assembled" from hashes alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from steering.worlds.clip_smollm2.fetch import sha256

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
"""Bump when the assembly writes anything differently: folders of another format are assembled again."""


def file_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` but the manifest."""
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: Path, inputs: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    manifest = {"format": FORMAT, "inputs": inputs, "files": file_hashes(folder), **extra}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stale(folder: Path, inputs: dict[str, str]) -> str | None:
    """Why ``folder`` is not the assembly of ``inputs`` (None: it is, every file hash-checked)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return "no manifest" if folder.exists() else "not assembled yet"
    if manifest.get("format") != FORMAT:
        return f"assembled by format {manifest.get('format')}, this is {FORMAT}"
    if manifest.get("inputs") != inputs:
        changed = sorted(k for k in set(inputs) | set(manifest.get("inputs") or {})
                         if inputs.get(k) != (manifest.get("inputs") or {}).get(k))
        return f"made from other inputs ({', '.join(changed)})"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "the manifest lists no files"
    have = file_hashes(folder)
    if have != files:
        changed = sorted(k for k in set(have) | set(files) if have.get(k) != files.get(k))
        return f"files changed since assembly ({', '.join(changed[:3])})"
    return None
