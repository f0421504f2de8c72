"""The network guard itself: remote hosts are refused, loopback is allowed."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import NetworkBlocked


def test_remote_connect_is_blocked() -> None:
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect(("93.184.216.34", 443))


def test_remote_name_lookup_is_blocked() -> None:
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("huggingface.co", 443)


def _chain(exc: BaseException | None) -> list[BaseException]:
    """An exception and everything it was raised from or while handling."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def test_hub_download_is_blocked_by_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the hub's offline switch turned off, it is the guard that stops a download (not HF_HUB_OFFLINE)."""
    from huggingface_hub import constants, hf_hub_download

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(Exception) as info:
        hf_hub_download("google/gemma-3-4b-it", "config.json", cache_dir="/nonexistent-cache-dir-for-test")
    assert any(isinstance(e, NetworkBlocked) for e in _chain(info.value)), repr(info.value)


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    t = threading.Thread(target=lambda: server.accept()[0].close())
    t.start()
    with socket.socket() as c:
        c.connect(("127.0.0.1", port))
    t.join()
    server.close()
