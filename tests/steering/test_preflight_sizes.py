"""Absurd model sizes in config.json are refused in one line before any weights load (issue 27 item 7).

A vision depth of 10^6 used to load for minutes and gigabytes until killed; widths that the weight files
cannot hold, and models larger than the machine's memory, are refused from the config alone too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.cli.main import main
from steering import preflight
from steering.errors import ModelLoadError
from steering.preflight import inspect_model


def _edited(tiny_world, tmp_path: Path, edit) -> Path:
    """A copy of the tiny world's model folder with ``edit(config)`` applied to its config.json."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_world[0], folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _set(section: str, key: str, value):
    return lambda config: config[section].__setitem__(key, value)


ABSURD = [
    (_set("vision_config", "num_hidden_layers", 10**6),
     "vision_config.num_hidden_layers = 1000000, expected a whole number of layers from 1 to 1024"),
    (_set("text_config", "num_hidden_layers", 10**6), "text_config.num_hidden_layers = 1000000"),
    (_set("vision_config", "num_hidden_layers", 0), "vision_config.num_hidden_layers = 0"),
    (_set("vision_config", "num_hidden_layers", "3"), "vision_config.num_hidden_layers = '3'"),
    (_set("vision_config", "hidden_size", 10**9), "describes at least 6,000,000.4 trillion parameters but its "
                                                  "weight files hold"),
    (_set("vision_config", "intermediate_size", 10**7), "describes at least 1.9 billion parameters"),
    (_set("text_config", "vocab_size", 10**8), "the config does not match the weights"),
]


@pytest.mark.parametrize("edit, message", ABSURD, ids=["vision-depth", "text-depth", "no-depth", "text-depth-value",
                                                       "vision-width", "vision-mlp", "vocab"])
def test_absurd_sizes_are_refused_from_the_config(edit, message: str, tiny_world, tmp_path) -> None:
    folder = _edited(tiny_world, tmp_path, edit)
    with pytest.raises(ModelLoadError, match="fix config.json or download the model again") as info:
        inspect_model(str(folder))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_million_layer_encoder_is_refused_by_the_cli_before_loading(tiny_world, tmp_path, capsys,
                                                                      no_loading) -> None:
    folder = _edited(tiny_world, tmp_path, _set("vision_config", "num_hidden_layers", 10**6))
    assert main(["probe", "--model", str(folder), "--sae", str(tiny_world[1]), "--feature", "0",
                 "--strengths", "0,50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_hidden_layers = 1000000" in err[0], err


def test_a_model_larger_than_memory_is_refused(tiny_world, monkeypatch) -> None:
    monkeypatch.setattr(preflight, "_physical_memory", lambda: 10_000)
    with pytest.raises(ModelLoadError, match=r"more than this machine's 10.0 kB of memory: pick a smaller model"):
        inspect_model(str(tiny_world[0]))
    monkeypatch.setattr(preflight, "_physical_memory", lambda: None)  # an OS that does not say: no check
    assert inspect_model(str(tiny_world[0])).n_layers == 3


# Real checkpoints' configs (sizes only) and their parameter counts: the estimate must stay below them,
# or a real model would be refused.
REAL = [
    ("paligemma2-3b", {"vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27},
                       "text_config": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                                       "vocab_size": 257216}}, 3.0e9),
    ("gemma-3-4b", {"vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27},
                    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
                                    "vocab_size": 262208}}, 4.3e9),
    ("qwen2.5-vl-7b", {"vision_config": {"hidden_size": 1280, "intermediate_size": 3420, "depth": 32},
                       "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                       "vocab_size": 152064}, 8.3e9),
    ("qwen2-vl-7b", {"vision_config": {"embed_dim": 1280, "hidden_size": 3584, "depth": 32},
                     "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                     "vocab_size": 152064}, 8.3e9),
]


@pytest.mark.parametrize("name, config, real", REAL, ids=[r[0] for r in REAL])
def test_the_estimate_is_a_lower_bound_on_real_models(name: str, config: dict, real: float) -> None:
    from steering.preflight import min_parameters

    text = config.get("text_config", config)
    estimate = min_parameters(config["vision_config"], text)
    assert 0.3 * real < estimate < real
