"""`steer-agent topk` and `--evidence` on the tiny world: collection into the store, the real describer,
top-k evidence reaching the offline and the OpenAI-compatible judge, and one-line errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.judges.scripted import final_reply
from agent.store.store import Store
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, Reply
from tests.agent.cli.test_run import steer_agent, world_args


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("topk-images")
    rng = np.random.default_rng(7)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(root / f"img_{i:02d}.png")
    return root


def model_args(tiny_world: tuple[Path, Path]) -> list[str]:
    return ["--model", str(tiny_world[0]), "--sae", str(tiny_world[1])]


def test_collect_into_the_store_then_explain_with_all_evidence(tiny_world, image_dir: Path, tmp_path: Path) -> None:
    store_dir, out = tmp_path / "store", tmp_path / "out.jsonl"
    first = steer_agent("topk", "--images", str(image_dir), *model_args(tiny_world), "--store", str(store_dir),
                        "--k", "4", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "top-4 images of 64 features over 12 images" in first.stdout and "images/s" in first.stdout
    with Store(store_dir) as s:
        recorded = s.get_meta("topk")
        assert recorded.startswith("topk/images-") and (store_dir / recorded / "topk.json").is_file()
        assert s.world()["model"] == str(tiny_world[0]) and s.get_meta("n_features") == 64
    collected = (store_dir / recorded / "topk.json").stat().st_mtime_ns
    again = steer_agent("topk", "--images", str(image_dir), *model_args(tiny_world), "--store", str(store_dir),
                        "--k", "4")
    assert again.returncode == 0 and "already collected" in again.stdout
    assert (store_dir / recorded / "topk.json").stat().st_mtime_ns == collected  # nothing encoded again

    args = ["--features", "0-5", *world_args(tiny_world), "--store", str(store_dir), "--evidence", "all",
            "--topk-images", "3", "--no-progress", "--export", str(out)]
    run = steer_agent(*args)
    assert run.returncode == 0, run.stderr
    assert "top-k evidence: topk, hybrid of 3 images, hybrid at strength" in run.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(range(6))
    fired = [r for r in rows if r["image_descriptions"][0]["images"]]
    assert fired and all([d["mode"] for d in r["image_descriptions"]] == ["topk", "hybrid"] for r in rows)
    assert all(len(d["texts"]) == 1 and 1 <= len(d["images"]) <= 3 for r in fired for d in r["image_descriptions"])
    with Store(store_dir) as s:
        rec = s.get_record(fired[0]["feature"])
        assert rec.fingerprint["evidence"]["n_images"] == 3 and "vlm_topk@v1" in rec.prompt_versions
    rerun = steer_agent(*args[:-2], "--rejudge")  # descriptions come from the store
    assert rerun.returncode == 0 and "6 done" in rerun.stdout


@pytest.mark.slow
def test_judge_images_reach_an_openai_compatible_judge(tiny_world, image_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    assert steer_agent("topk", "--images", str(image_dir), *model_args(tiny_world), "--store", str(store_dir),
                       "--k", "3", "--no-progress").returncode == 0
    with ChatServer(lambda payload: Reply(content=json.dumps(final_reply()))) as server:
        result = steer_agent("--features", "0-1", *world_args(tiny_world), "--store", str(store_dir),
                             "--evidence", "hybrid", "--hybrid-strength", "7", "--judge-images",
                             "--judge-base-url", server.url, "--judge-api-key-env", "IMG_TEST_KEY", "--no-progress",
                             env={"IMG_TEST_KEY": TEST_KEY})
        assert result.returncode == 0, result.stderr
        assert "hybrid at strength 7 (given)" in result.stdout and "images attached" in result.stdout
        # the first user message (a local server gets the instructions there, not as a system message)
        firsts = [next(m for m in r["json"]["messages"] if m["role"] == "user")["content"] for r in server.requests]
    with_images = [c for c in firsts if isinstance(c, list)]
    assert with_images, "no request carried image content parts"
    for content in with_images:
        assert content[0]["type"] == "text" and "steered at strength 7 where the feature fires" in content[0]["text"]
        for part in content[1:]:
            url = part["image_url"]["url"]
            assert part["type"] == "image_url" and url.startswith("data:image/png;base64,")
            assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")


@pytest.mark.parametrize("args, message", [
    (["topk", "--images", "/no/such/folder"], "image folder /no/such/folder does not exist"),
    pytest.param(["topk"], "pass --images DIR or --dataset NAME", marks=pytest.mark.slow),
    pytest.param(["topk", "--images", ".", "--split", "test"], "--split and --image-column go with --dataset",
                 marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--evidence", "topk"], "`steer-agent topk --store", marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--evidence", "steering", "--judge-images"], "--judge-images needs top-k evidence",
                 marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--evidence", "topk", "--judge-images"], "--judge-images needs an LLM judge",
                 marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--evidence", "topk", "--hybrid-strength", "5"], "--hybrid-strength goes with",
                 marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--judge-base-url", "http://127.0.0.1:9/v1"], "cannot reach the judge at 127.0.0.1:9",
                 marks=pytest.mark.slow),
])
def test_bad_input_is_one_line_and_exit_2(tiny_world, tmp_path: Path, args: list[str], message: str) -> None:
    result = steer_agent(*args, *model_args(tiny_world), "--store", str(tmp_path / "s"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
