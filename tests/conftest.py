"""Test-wide guards (no hub, no remote API, no network beyond 127.0.0.1) and the shared tiny world."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

# Set before transformers/huggingface_hub are imported anywhere in the test process.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlocked(RuntimeError):
    """A test tried to reach beyond the loopback interface."""


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkBlocked(f"test tried to connect to {address!r}; tests must stay on 127.0.0.1")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise NetworkBlocked(f"test tried to connect to {address!r}; tests must stay on 127.0.0.1")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not _is_local((host,)) and host not in ("127.0.0.1", "::1"):
        raise NetworkBlocked(f"test tried to resolve {host!r}; tests must stay on 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest):
    """Fail any test (not marked `online`) that reaches beyond loopback."""
    if request.node.get_closest_marker("online"):
        yield
        return
    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _guarded_connect)
    mp.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    mp.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, SAE folder) of a tiny random Gemma-3 world, as ``python -m steering.tiny`` writes it."""
    from steering.tiny import write_tiny_world

    return write_tiny_world(tmp_path_factory.mktemp("tiny-world"))


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """(Shared by the preflight tests.) Fail the test if any model or SAE weights are loaded."""
    import steering.models
    import steering.sae

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(steering.models, "load_vlm", refuse)
    monkeypatch.setattr(steering.sae, "load_sae", refuse)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
