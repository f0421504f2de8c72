"""Before loading a hub id: say at once when the hub cannot be reached (offline) and the id is not cached."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

TRUE = {"1", "true", "yes", "on"}
CONNECT_S = 3.0
"""How long the reachability check waits for the hub (the hub's own retries take half a minute)."""


def hub_repo(spec: str | None) -> str | None:
    """The ``owner/name`` repo a model or SAE spec names on the hub, or None for a local path or no spec."""
    if not spec or spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists():
        return None
    parts = spec.split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 and all(parts[:2]) else None


def cached(repo: str) -> bool:
    """Whether the Hugging Face cache holds anything of ``repo`` (a model or dataset download)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE)
    return (folder / f"models--{repo.replace('/', '--')}").exists()


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def reachable(url: str, timeout: float = CONNECT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` (no request is sent)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_problem(spec: str | None, what: str = "model") -> str | None:
    """One line on why ``spec`` cannot be loaded from the hub now (None: it may be)."""
    repo = hub_repo(spec)
    if repo is None or cached(repo):
        return None
    if offline():
        return (f"{what} {spec!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: unset it to download "
                "the weights, or pass a local folder")
    if not reachable(endpoint()):
        return (f"cannot reach {endpoint()} (no network?) and {what} {spec!r} is not in the Hugging Face cache: "
                "connect, or pass a local folder")
    return None
