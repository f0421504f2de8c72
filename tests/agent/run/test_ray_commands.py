"""`steer-agent topk`, `steer-agent eval` and a run with image evidence with --ray on a local Ray cluster (CPU):
the same files, figures and export as one process; bad Ray options refused in one line; no ray import
without --ray."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main
from tests.agent.cli.test_eval import eval_argv, truth_file  # noqa: F401 (fixture)
from tests.agent.cli.test_topk import image_dir  # noqa: F401 (fixture)
from tests.agent.run.test_ray_pool import ROOT, cluster, cluster_test, needs_ray  # noqa: F401 (fixture)

TIMINGS = ("seconds", "images_per_second")
"""topk.json fields that differ between any two collections."""
RAY = ["--ray", "--ray-workers", "2"]


def collection(out: Path) -> dict[str, Any]:
    """Every file of a collection folder, as bytes; topk.json parsed, its timings left out."""
    files: dict[str, Any] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                             if p.is_file()}
    meta = json.loads(files.pop("topk.json"))
    files["topk.json"] = {k: v for k, v in meta.items() if k not in TIMINGS}
    return files


def topk(store: Path, *extra: str) -> Path:
    """Run `steer-agent topk` into ``store``; the collection folder it recorded."""
    from agent.store.store import Store

    assert main(["topk", "--store", str(store), "--no-progress", *extra]) == 0
    with Store(store) as s:
        return store / s.get_meta("topk")


@cluster_test
def test_toy_topk_on_two_actors_is_byte_identical_to_one_process(cluster: Any, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Toy scenes, then a folder of images: collected on 2 CPU actors (pieces merged on the driver), the
    files equal one process's byte for byte (timings aside); an interrupted Ray collection resumes to
    the same bytes."""
    from agent.run.ray.actor import RayOptions
    from agent.run.ray.topk import TOY_ENCODER, collect_on_ray
    from agent.world import WorldSpec
    from steering.topk import FolderSource, TopKConfig, load_topk

    store, toy = tmp_path / "store", ["--toy-scenes", "128"]
    out = topk(store, *toy)
    one = collection(out)
    assert topk(store, *toy, "--restart", *RAY) == out  # the same folder: the same run identity
    assert collection(out) == one
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ray worker")]
    assert len(lines) == 2 and all(" 0 images" not in x for x in lines), lines  # both actors collected

    # Interrupted after 4 of 8 batches (a checkpoint at image 64), then the same command resumes it.
    assert collect_on_ray(WorldSpec(), RayOptions(workers=2), FolderSource(out / "images"), out, TopKConfig(k=10),
                          loader=TOY_ENCODER, restart=True, progress=False, max_batches=4) is None
    assert (out / "checkpoint.safetensors").is_file() and not (out / "topk.json").exists()
    assert topk(store, *toy, *RAY) == out
    assert collection(out) == one

    # The folder path (on the toy model): each image twice, so scores tie across the actors' pieces and the
    # merge must order them as one pass does (the lower id first).
    twice = tmp_path / "twice"
    twice.mkdir()
    for i, scene in enumerate(sorted((out / "images").glob("*.png"))[:24]):
        for copy in "ab":
            (twice / f"{copy}{i:02d}.png").write_bytes(scene.read_bytes())
    images = ["--images", str(twice), "--k", "4"]
    folder = topk(store, *images)
    serial = collection(folder)
    assert topk(store, *images, "--restart", *RAY) == folder
    assert collection(folder) == serial
    result = load_topk(folder)
    tied = (result.scores[:, 1:] == result.scores[:, :-1]) & (result.ids[:, 1:] >= 0)
    assert tied.any(), "the test has ties"


@pytest.mark.slow
@needs_ray
def test_eval_on_two_actors_equals_one_process(cluster: Any, tiny_world: tuple[Path, Path], truth_file: Path,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The probes of an eval on 2 CPU actors (a fresh cache each, so both compute): the same metrics."""
    from agent.eval.runner import reproducible

    def evaluate(name: str, *extra: str) -> tuple[dict[str, Any], str]:
        argv = eval_argv(tiny_world, truth_file, tmp_path / name, "rep", "--json", "--no-plots", "--features", "0-3",
                         *extra)
        assert main(argv) == 0
        out, err = capsys.readouterr()
        return json.loads(out), err

    one, _ = evaluate("one")
    on_ray, err = evaluate("ray", *RAY)
    rows = [int(x.split(": ")[1].split(" rows")[0]) for x in err.splitlines() if x.startswith("ray worker")]
    assert len(rows) == 2 and sum(rows) > 0, err  # the probes ran on the actors
    assert reproducible(on_ray) == reproducible(one) and on_ray["digest"] == one["digest"]


@pytest.mark.parametrize("command", ["run", "topk", "eval"])
def test_bad_ray_options_are_one_line_errors(command: str, tiny_world: tuple[Path, Path], truth_file: Path,
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--ray-workers without --ray, and --ray without Ray installed: exit 2 and one line, before any work."""
    argv = {"run": ["--features", "0-3", "--store", str(tmp_path / "s")],
            "topk": ["topk", "--store", str(tmp_path / "s"), "--toy-scenes", "4"],
            "eval": eval_argv(tiny_world, truth_file, tmp_path, "rep")}[command]
    assert main([*argv, "--ray-workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --ray-workers goes with --ray [ADDRESS]"

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main([*argv, "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --ray needs Ray: pip install -e '.[ray]' (ray>=2.50)"
    assert not (tmp_path / "s").exists() and not (tmp_path / "rep").exists()  # nothing was started


def test_a_run_on_ray_takes_image_evidence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """agent.session lets image evidence go to Ray (the TUI's runs too): a store without a collection is refused
    as without --ray, before any cluster starts."""
    pytest.importorskip("ray")
    import ray

    argv = ["--features", "0-3", "--store", str(tmp_path / "s"), "--evidence", "topk", "--no-progress"]
    assert main(argv) == 2
    alone = capsys.readouterr().err.strip()
    assert main([*argv, "--ray"]) == 2
    assert capsys.readouterr().err.strip() == alone and "has no top-k collection" in alone
    assert not ray.is_initialized()


@pytest.mark.slow
@needs_ray
def test_image_evidence_on_two_actors_equals_one_process(cluster: Any, tiny_world: tuple[Path, Path],
                                                         image_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--evidence all on 2 CPU actors (a copy of one store with its collection each, so both compute): every
    top-k and hybrid description runs on the actors, and the export equals one process's. Features 12-15 at
    hybrid strength 50: a hybrid row unsteered, or steered at every patch, answers otherwise on the tiny world.
    A collection the actors cannot read is refused in one line."""
    import shutil

    from tests.agent.run.test_ray_pool import VOLATILE

    model, sae = (str(p) for p in tiny_world)
    world = ["--model", model, "--sae", sae]
    assert main(["topk", "--images", str(image_dir), *world, "--store", str(tmp_path / "base"), "--k", "4",
                 "--no-progress"]) == 0
    capsys.readouterr()

    def run(name: str, *extra: str) -> tuple[int, str, str]:
        shutil.copytree(tmp_path / "base", tmp_path / name)
        code = main(["--features", "12-15", *world, "--max-new-tokens", "6", "--strengths", "4,8,16,32",
                     "--store", str(tmp_path / name), "--evidence", "all", "--hybrid-strength", "50",
                     "--topk-images", "3", "--no-progress", "--export", str(tmp_path / f"{name}.jsonl"),
                     # edit tests need the model in the driver's process, which a run on Ray does not load
                     # (docs/scale-out.md): both runs go without them
                     "--max-tests", "0", *extra])
        out, err = capsys.readouterr()
        return code, out, err

    def exported(name: str) -> dict[int, dict[str, Any]]:
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        return {r["feature"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in rows}

    code, _, err = run("one")
    assert code == 0, err
    code, out, err = run("ray", *RAY)
    assert code == 0, err
    one, on_ray = exported("one"), exported("ray")
    assert on_ray == one
    assert sum(len(d["texts"]) for r in one.values() for d in r["image_descriptions"]) >= 4  # images were described
    # Each actor's rows: its probe rows and the 8 descriptions (4 features x topk, hybrid) between them.
    rows = [int(x.split(": ")[1].split(" rows")[0]) for x in err.splitlines() if x.startswith("ray worker")]
    probe_rows = int(re.search(r"probes: \d+ run \([\d.]+/s, (\d+) rows\)", out)[1])  # type: ignore[index]
    assert len(rows) == 2 and all(rows) and sum(rows) == probe_rows + 8, (rows, out)

    # The driver finds the collection, the actors cannot load it: one line naming shared storage.
    (next((tmp_path / "base").glob("topk/*")) / "topk.safetensors").unlink()
    code, _, err = run("unreadable", *RAY)
    error = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 2 and len(error) == 1, err
    assert "cannot read the top-k collection" in error[0] and "on shared storage" in error[0]


@pytest.mark.slow
def test_topk_and_eval_without_ray_never_import_it(tiny_world: tuple[Path, Path], truth_file: Path,
                                                   tmp_path: Path) -> None:
    argv = [["topk", "--store", str(tmp_path / "store"), "--toy-scenes", "16", "--no-progress"],
            eval_argv(tiny_world, truth_file, tmp_path, "rep", "--no-plots", "--features", "0-1")]
    code = ("import sys\n"
            "from agent.cli.main import main\n"
            f"codes = [main(a) for a in {argv!r}]\n"
            "print('RESULT', *codes, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.stdout.split()[-4:] == ["RESULT", "0", "0", "False"], out.stdout[-500:] + out.stderr[-2000:]
