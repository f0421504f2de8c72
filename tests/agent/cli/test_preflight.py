"""Checks before weights load (18.2), huge ranges (17.6), other bad inputs (17.11), one-line usage errors (18.3)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.run.features import FeatureSpecError, parse_features


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


CHEAP = [
    (["--features", "0-500"], "features 64, 65, 66, 67, 68 ... are out of range: this SAE has features 0-63"),
    (["--features", "0-999999999"], "feature list names 1,000,000,000 features"),
    (["--features", "0-3", "--layer", "99"], "layer 99 is out of range: the vision encoder has layers 0-2"),
    (["--features", "0-3", "--dtype", "fp8"], "unknown dtype 'fp8'"),
    (["--features", "0-3", "--device", "tpu"], "unknown device 'tpu'"),
    (["--features", "0-3", "--base-image", "/nope.png"], "base image '/nope.png'"),
    (["probe", "--feature", "64"], "feature 64 is out of range"),
    (["probe", "--feature", "1", "--layer", "5"], "layer 5 is out of range"),
    (["probe", "--feature", "1", "--device", "tpu"], "unknown device 'tpu'"),
    (["eval", "--features", "0-500"], "features 64, 65, 66, 67, 68 ... are out of range"),
]


@pytest.mark.parametrize("argv, message", CHEAP)
def test_cheap_checks_never_wait_for_the_weights(argv, message, tiny_world, tmp_path, monkeypatch, capsys,
                                                 no_loading) -> None:
    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path / "cache"))
    model, sae = tiny_world
    world = ["--model", str(model), "--sae", str(sae)]
    store = {"probe": [], "eval": ["--report", str(tmp_path / "store"), "--eval-store", str(tmp_path / "store")]}
    assert main([*argv, *world, *store.get(argv[0], ["--store", str(tmp_path / "store")])]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache").exists()


@pytest.mark.skipif("_cuda()")
def test_cuda_without_cuda_is_refused_before_loading(tiny_world, tmp_path, capsys, no_loading) -> None:
    model, sae = tiny_world
    assert main(["--features", "0-3", "--model", str(model), "--sae", str(sae), "--device", "cuda",
                 "--store", str(tmp_path / "s")]) == 2
    assert "CUDA is not available" in _err(capsys) and not (tmp_path / "s").exists()


def test_a_bad_range_in_a_real_process_is_one_line_and_no_store(tiny_world, tmp_path: Path) -> None:
    model, sae = tiny_world
    done = subprocess.run([sys.executable, "-m", "agent.cli", "--features", "0-500", "--model", str(model),
                           "--sae", str(sae), "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr == "error: features 64, 65, 66, 67, 68 ... are out of range: this SAE has features 0-63\n"
    assert not (tmp_path / "store").exists()


def test_huge_ranges_are_checked_before_they_are_expanded() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(FeatureSpecError, match="out of range"):
            parse_features("0-999999999", 256)
        with pytest.raises(FeatureSpecError, match="narrow the range"):
            parse_features("0-999999999")  # the size unknown (export, a form's syntax check)
        with pytest.raises(FeatureSpecError, match=r"features 256, 1000000000 are out of range"):
            parse_features("3,256,1000000000-1000000000", 256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert parse_features("0-3,2-5", 8) == [0, 1, 2, 3, 4, 5]


def test_the_model_config_and_weight_headers_are_read_without_loading(tiny_world, tmp_path: Path) -> None:
    from steering.errors import ModelLoadError
    from steering.preflight import inspect_model, inspect_sae

    model, sae = tiny_world
    facts = inspect_model(str(model))
    assert facts is not None and facts.model_type == "gemma3" and facts.n_layers == 3
    assert inspect_sae(str(sae)).d_sae == 64 and inspect_sae(str(sae)).layer == 1
    assert inspect_sae(str(sae), layer=2).layer == 2
    broken = tmp_path / "m"
    broken.mkdir()
    for f in model.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(ModelLoadError, match="is truncated"):
        inspect_model(str(broken))
    assert inspect_model("some-org/not-cached-model") is None  # a hub id: the loader decides


ISSUE_17_11 = [
    (["probe", "--feature", "1", "--max-new-tokens", "-5"], "--max-new-tokens: -5 must be at least 1"),
    (["--features", "0", "--max-new-tokens", "0"], "--max-new-tokens: 0 must be at least 1"),
    (["--features", "0", "--batch-size", "0"], "--batch-size: 0 must be at least 1"),
    (["--features", "0", "--export", "/tmp"], "/tmp is a folder"),
    (["export", "--out", "/tmp"], "/tmp is a folder"),
    (["--features", "0", "--judge-base-url", "http://127.0.0.1:99999/v1"], "Port out of range"),
    (["--features", "0", "--judge-base-url", "http://[::1/v1"], "Invalid IPv6 URL"),
]


@pytest.mark.parametrize("argv, message", ISSUE_17_11)
def test_other_bad_inputs_are_one_line(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path / "cache"))
    assert main(argv) == 2
    assert message in _err(capsys)


def test_broken_model_folders_and_images_are_one_line(tiny_world, tmp_path, capsys, no_loading) -> None:
    from PIL import Image

    model, sae = tiny_world
    (tmp_path / "empty").mkdir()
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    assert main(["probe", "--feature", "1", "--model", str(tmp_path / "empty"), "--sae", str(sae)]) == 2
    assert "has no config.json" in _err(capsys)
    assert main(["probe", "--feature", "1", "--model", str(model), "--sae", str(sae),
                 "--base-image", str(tmp_path / "bomb.png")]) == 2
    assert "too large" in _err(capsys)


def test_usage_errors_are_one_line_and_name_the_typo(capsys) -> None:
    assert main(["--featurs", "0-3"]) == 2
    assert _err(capsys) == "error: unknown option --featurs: did you mean --features?"
    assert main(["probe", "--feature", "1", "--strenghts", "1"]) == 2
    assert "did you mean --strengths?" in _err(capsys)
    assert main(["--features", "0", "--strengths", "-1"]) == 2
    assert "--strengths" in _err(capsys)
    assert main(["--features", "0", "--samples", "0"]) == 2
    assert "--samples: 0 must be at least 1" in _err(capsys)
    assert main(["--feat", "0-3", "--strengths"]) == 2  # a prefix argparse accepts is no typo
    assert "expected one argument" in _err(capsys)
    assert main(["run", "--help"]) == 0 and "usage:" in capsys.readouterr().out
