"""`steer-agent topk` over a folder with unreadable images: one warning line and the rest collected (also
when already collected); a folder with none readable, or a file for --images, is one error line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from tests.steering.topk.hostile_images import BAD, write_hostile_folder

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # bad_big.png: refused
WARNING = ("warning: skipped 8 unreadable images (e.g. bad_big.png: too large (12000x10000 pixels); "
           "bad_bomb.png: too large (400000000 pixels); bad_empty.png: empty file; ...)")


def topk(tiny_world: tuple[Path, Path], images: Path, store: Path, *more: str) -> list[str]:
    return ["topk", "--images", str(images), "--model", str(tiny_world[0]), "--sae", str(tiny_world[1]),
            "--store", str(store), "--k", "3", "--no-progress", *more]


def test_unreadable_images_are_one_warning_line(tiny_world, tmp_path: Path, capsys) -> None:
    hostile = write_hostile_folder(tmp_path / "images")
    assert main(topk(tiny_world, hostile, tmp_path / "store")) == 0
    out = capsys.readouterr()
    assert "top-3 images of 64 features over 8 images" in out.out
    assert out.err.strip().splitlines() == [WARNING]
    assert main(topk(tiny_world, hostile, tmp_path / "store")) == 0  # a rerun finds it collected
    out = capsys.readouterr()
    assert "already collected" in out.out and out.err.strip().splitlines() == [WARNING]


def test_no_readable_image_and_a_file_are_one_error_line(tiny_world, tmp_path: Path, capsys, monkeypatch) -> None:
    def no_model(*_: object) -> None:
        raise AssertionError("the model loaded before the images were checked")

    monkeypatch.setattr("agent.world.load_engine", no_model)  # the session's engines load with it
    hostile = write_hostile_folder(tmp_path / "hostile")
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in BAD:
        (bad / name).write_bytes((hostile / name).read_bytes())
    assert main(topk(tiny_world, bad, tmp_path / "store")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: none of the 6 images under {bad.resolve()} can be read "
                                               "(bad_big.png: too large (12000x10000 pixels); ")
    assert not (tmp_path / "store" / "topk").exists() or not any((tmp_path / "store" / "topk").rglob("*.safetensors"))
    a_file = hostile / "good_00.png"
    assert main(topk(tiny_world, a_file, tmp_path / "store")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --images {a_file} is a file, not a folder: pass the folder that holds the images "
        "(searched recursively)"]
