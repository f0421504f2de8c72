"""Hundreds of generated bad inputs to every command: each ends in one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from agent.cli.main import main

BAD_POSITIVE_INTS = ("0", "-5", "x", "1.5", "", "nan")
BAD_RANGES = ("0-999999999", "0-500", "64", "x", "3-1", "-4", "", ",", "1-2-3", "0x10", "5-")
BAD_STRENGTHS = ("-1", "nan", "inf", "1e30", "x", "", ",", "1,,x", "-0.5,2")
BAD_URLS = ("http://127.0.0.1:99999/v1", "http://[::1/v1", "ftp://host/v1", "not a url", "http://", "http://:80/v1",
            "http://127.0.0.1:0/v1")
BAD_DEVICES = ("tpu", "cuda:x", "cpu:0", "", "gpu", "cuda:99")
BAD_DTYPES = ("fp8", "int8", "", "float64x")
TYPOS = ("--featurs", "--modle", "--frobnicate", "--sae-path", "--strenghts", "--devcie")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, tiny_world: tuple[Path, Path]) -> dict[str, Path]:
    """Broken models, SAEs and images, each in its own folder."""
    root = tmp_path_factory.mktemp("bad-files")
    model, _sae = tiny_world
    files: dict[str, Path] = {}

    def folder(name: str, **contents: bytes | str | Path) -> Path:
        d = root / name
        d.mkdir()
        for fname, data in contents.items():
            target = d / fname.replace("__", ".")
            if isinstance(data, Path):
                target.write_bytes(data.read_bytes())
            else:
                target.write_bytes(data if isinstance(data, bytes) else data.encode())
        files[name] = d
        return d

    folder("empty")
    trunc = folder("truncated", **{f.name.replace(".", "__"): f for f in model.iterdir() if f.is_file()})
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 3])
    folder("config_list", config__json="[1, 2]")
    folder("config_garbage", config__json="{not json")
    folder("config_no_type", config__json=json.dumps({"vision_config": {}}))
    folder("config_text_only", config__json=json.dumps({"model_type": "gemma3_text"}))
    no_weights = folder("no_weights", config__json=(model / "config.json").read_text())
    assert no_weights.is_dir()
    folder("sae_empty")
    folder("sae_garbage_pt", ae__pt=b"\x80\x04garbage", config__json="{}")
    folder("sae_cfg_list", ae__pt=(_sae / "ae.pt"), config__json="[]")
    folder("sae_layer_text", ae__pt=(_sae / "ae.pt"), config__json=json.dumps({"trainer": {"layer": "three"}}))
    folder("sae_layer_big", ae__pt=(_sae / "ae.pt"), config__json=json.dumps({"trainer": {"layer": 99}}))
    folder("saelens_trunc", sae_weights__safetensors=b"\x10\x00\x00\x00\x00\x00\x00\x00{}", cfg__json="{}")
    files["dec_garbage"] = root / "garbage.safetensors"
    files["dec_garbage"].write_bytes(b"\xff" * 64)
    files["not_safetensors"] = root / "decoder.npy"
    files["not_safetensors"].write_bytes(b"x")
    files["text_png"] = root / "text.png"
    files["text_png"].write_text("not an image")
    files["bomb"] = root / "bomb.png"
    Image.new("1", (20000, 20000)).save(files["bomb"])
    files["a_file"] = root / "a_file"
    files["a_file"].write_text("x")
    return files


def world(tiny_world: tuple[Path, Path]) -> list[str]:
    return ["--model", str(tiny_world[0]), "--sae", str(tiny_world[1])]


def bad_argvs(tiny_world: tuple[Path, Path], files: dict[str, Path], out: Path) -> list[list[str]]:
    """Generated bad command lines for run, probe, eval, topk and export (a few hundred)."""
    w = world(tiny_world)
    model, sae = str(tiny_world[0]), str(tiny_world[1])
    store = ["--store", str(out / "store")]
    run = ["--features", "0-3", *w, *store]
    probe = ["probe", "--feature", "1", "--strengths", "4", *w]
    evals = ["eval", "--report", str(out / "report"), "--eval-store", str(out / "eval-store"), *w]
    topk = ["topk", *store]
    export = ["export", *store, "--out", str(out / "x.jsonl")]
    cases: list[list[str]] = []
    for flag in ("--samples", "--max-rounds", "--max-feature-tokens", "--budget-tokens", "--concurrency",
                 "--in-flight", "--topk-images", "--judge-retries", "--judge-max-tokens", "--max-new-tokens",
                 "--batch-size"):
        cases += [[*run, flag, v] for v in BAD_POSITIVE_INTS]
    for flag in ("--max-new-tokens", "--batch-size", "--samples"):
        cases += [[*probe, flag, v] for v in BAD_POSITIVE_INTS]
    cases += [["--features", v, *w, *store] for v in BAD_RANGES]
    cases += [["run", *w, "--features", v, *store] for v in BAD_RANGES]
    for flag in ("--max-new-tokens", "--batch-size"):
        cases += [[*evals, flag, v] for v in BAD_POSITIVE_INTS]
    cases += [["export", *store, "--out", "-", "--features", v] for v in ("0-999999999", "x", "3-1", "")]
    cases += [[*evals, "--features", v] for v in ("0-999999999", "0-500", "x", "3-1")]
    cases += [[*run, "--strengths", v] for v in BAD_STRENGTHS] + [[*probe, "--strengths", v] for v in BAD_STRENGTHS]
    cases += [[*run, "--kl-targets", v, "--calibrate"] for v in ("0", "-1", "x", "")]
    cases += [[*run, "--judge-price", v] for v in ("1", "1,2,3", "x,y", "-1,2")]
    cases += [[*run, "--hybrid-strength", v] for v in ("0", "-1", "nan", "x")]
    cases += [[*run, "--judge-base-url", v] for v in BAD_URLS] + [[*evals, "--judge-base-url", v] for v in BAD_URLS]
    for base in (run, probe):
        cases += [[*base, "--device", v] for v in BAD_DEVICES]
        cases += [[*base, "--dtype", v] for v in BAD_DTYPES]
        cases += [[*base, "--layer", v] for v in ("99", "-1", "x", "3")]
        cases += [[*base, "--base-image", str(p)] for p in ("/nope.png", files["text_png"], files["bomb"], out)]
    for name in ("empty", "truncated", "config_list", "config_garbage", "config_no_type", "config_text_only",
                 "no_weights", "a_file"):
        cases += [["--features", "0-3", "--model", str(files[name]), "--sae", sae, *store],
                  ["probe", "--feature", "1", "--model", str(files[name]), "--sae", sae]]
    cases += [["--features", "0-3", "--model", "/no/such/model", "--sae", sae, *store]]
    for name in ("sae_empty", "sae_garbage_pt", "sae_cfg_list", "sae_layer_text", "sae_layer_big", "saelens_trunc",
                 "dec_garbage", "not_safetensors"):
        cases += [["--features", "0-3", "--model", model, "--sae", str(files[name]), *store],
                  ["probe", "--feature", "1", "--model", model, "--sae", str(files[name])]]
    cases += [["--features", "0-3", "--model", model, "--sae", "./no/such/sae", *store]]
    cases += [[*probe, "--feature", v] for v in ("-1", "x", "64", str(10**12), "")]
    cases += [[*run, "--export", v] for v in (str(out), "/no/such/folder/x.jsonl")]
    cases += [["export", *store, "--out", v] for v in (str(out), "/no/such/folder/x.jsonl")]
    cases += [["export", "--store", "/no/such/store", "--out", "-"]]
    cases += [[*topk, "--k", v] for v in BAD_POSITIVE_INTS] + [[*topk, "--limit", v] for v in BAD_POSITIVE_INTS]
    cases += [[*topk, "--images", "/no/such/images"], [*topk, "--images", str(out), "--dataset", "d"]]
    cases += [[*evals, "--modes", v] for v in ("nope", "oneshot,nope", "")]
    for typo in TYPOS:
        cases += [["--features", "0-3", typo, "1"], ["probe", "--feature", "1", typo, "1"], [*evals, typo],
                  [*topk, typo], [*export, typo]]
    cases += [["--features"], ["probe"], ["export"], ["nosuchcommand", "--x"], ["run", "--features", "0", "extra"]]
    return cases


def test_a_few_hundred_bad_inputs_end_in_one_line_exit_2(tiny_world, bad_files, tmp_path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    cases = bad_argvs(tiny_world, bad_files, out)
    assert len(cases) >= 300
    bad: list[str] = []
    for argv in cases:
        rc = main(list(argv))
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        written = sorted(p.name for p in tmp_path.iterdir()) != ["out"] or any(out.iterdir())
        if rc != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or captured.out or written:
            bad.append(f"{argv} -> rc {rc}, wrote {written}: {captured.err.strip()[-300:]!r} {captured.out[:80]!r}")
        for p in [*tmp_path.iterdir(), *out.iterdir()]:  # judge the next case on its own
            if p != out:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert not bad, f"{len(bad)} of {len(cases)} bad inputs misbehaved:\n" + "\n".join(bad[:20])


def test_the_model_loader_refuses_broken_folders_in_one_line(bad_files) -> None:
    from steering.errors import SteeringError
    from steering.models import load_vlm

    for name in ("empty", "truncated", "config_list", "config_garbage", "no_weights"):
        with pytest.raises(SteeringError) as exc:
            load_vlm(str(bad_files[name]), device="cpu")
        assert "\n" not in str(exc.value), name


SUBPROCESS_CASES = [
    (["--featurs", "0-3"], "did you mean --features?"),
    (["--features", "0", "--strengths", "-1"], "--strengths"),
    (["probe", "--feature", "1", "--max-new-tokens", "-5"], "--max-new-tokens"),
]


@pytest.mark.parametrize("argv, message", SUBPROCESS_CASES)
def test_a_bad_command_line_is_one_line_in_a_real_process(argv: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "agent.cli", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "STEER_INTERP_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and message in done.stderr
    assert "usage:" not in done.stderr and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_the_sweep_in_real_processes(tiny_world, bad_files, tmp_path: Path) -> None:
    """Every tenth generated case as its own `python -m agent.cli` process (warnings, logging, exit paths)."""
    out = tmp_path / "out"
    out.mkdir()
    root = str(Path(__file__).resolve().parents[3])  # this checkout's code, whatever the cwd
    env = {**os.environ, "STEER_INTERP_CACHE": str(tmp_path / "cache"), "PYTHONPATH": root}
    for argv in bad_argvs(tiny_world, bad_files, out)[::10]:
        done = subprocess.run([sys.executable, "-m", "agent.cli", *argv], capture_output=True, text=True,
                              timeout=120, env=env, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), \
            (argv, done.stderr[-500:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
