"""PaliGemma 2 through its own processor, loaded from a folder as a user's is (issue 27 item 1).

Its processor returns ``labels`` with every prompt; given to the forward they made it compute a loss
that fails under ``logits_to_keep=1``. The family tests build PaliGemma inputs by hand and missed it.
"""

from __future__ import annotations

import json

import pytest

from agent.cli.main import main
from steering import tiny
from steering.engine import GenerationSettings, SteeringEngine
from steering.models import load_vlm
from steering.probes import Probe
from steering.sae import load_sae


@pytest.fixture(scope="module")
def paligemma_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paligemma")
    model = tiny.write_tiny_paligemma(root / "model")
    sae = tiny.write_tiny_sae(root / "sae", d_in=tiny.tiny_config("paligemma").vision_config.hidden_size)
    return model, sae


def test_the_saved_processor_returns_labels(paligemma_world) -> None:
    from PIL import Image

    vlm = load_vlm(paligemma_world[0])
    enc = vlm.processor(text=["a\n"], images=[[Image.new("RGB", (56, 56), "white")]], return_tensors="pt")
    assert {"labels", "token_type_ids"} <= set(enc)  # what the fix must leave out, and keep
    assert int((enc["input_ids"] == tiny.IMAGE_TOKEN).sum()) == 16


@pytest.mark.parametrize("decode", ["fast", "hf"])
def test_paligemma_probes_on_both_decode_paths(paligemma_world, decode: str) -> None:
    model, sae = paligemma_world
    engine = SteeringEngine(load_vlm(model), load_sae(sae),
                            settings=GenerationSettings(max_new_tokens=6, decode=decode))
    assert engine._fast(1) == (decode == "fast")
    results = engine.run([Probe(feature=0, strength=s) for s in (0.0, 50.0)])
    assert [r.kl_first == 0.0 for r in results] == [True, False]
    assert all(r.texts and all(isinstance(t, str) for t in r.texts) for r in results)


def test_the_fast_path_gives_hf_generate_s_answers(paligemma_world) -> None:
    model, sae = paligemma_world
    vlm, steered = load_vlm(model), load_sae(sae)
    answers = {}
    for decode in ("fast", "hf"):
        engine = SteeringEngine(vlm, steered, settings=GenerationSettings(max_new_tokens=6, decode=decode))
        answers[decode] = [r.texts for r in engine.run([Probe(feature=1, strength=s) for s in (0.0, 30.0)])]
    assert answers["fast"] == answers["hf"]


def test_steer_agent_probe_on_a_paligemma_folder(paligemma_world, capsys) -> None:
    model, sae = paligemma_world
    assert main(["probe", "--model", str(model), "--sae", str(sae), "--feature", "0", "--strengths", "0,50",
                 "--decode", "fast", "--max-new-tokens", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["strength"] for r in rows] == [0.0, 50.0] and rows[0]["kl_first"] == 0.0 < rows[1]["kl_first"]
