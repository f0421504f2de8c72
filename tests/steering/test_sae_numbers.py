"""Every number an SAE config states is checked, before loading and by the loader (issue 27 item 14).

A config's ``k = -3`` was accepted (ae.pt's own k was read instead), and widths that contradict the
weights went unread: each is now refused in one line, by ``inspect_sae`` before any weights load and by
``load_sae`` itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agent.cli.main import main
from steering.preflight import inspect_sae
from steering.sae import load_sae
from tests.steering.test_sae import D, K, N, _weights, _write_dictionary_learning, _write_saelens
from tests.steering.test_sae_formats import _refused_both_ways


def _dictionary_learning(tmp_path: Path, **trainer) -> Path:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights())
    config = json.loads((folder / "config.json").read_text())
    config["trainer"].update(trainer)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _saelens(tmp_path: Path, **cfg) -> Path:
    folder = _write_saelens(tmp_path / "sl", _weights())
    (folder / "cfg.json").write_text(json.dumps({**json.loads((folder / "cfg.json").read_text()), **cfg}))
    return folder


@pytest.mark.parametrize("k", [-3, 0, 2.5, "4"])
def test_a_config_k_that_is_no_positive_whole_number_is_refused(tmp_path, k) -> None:
    message = _refused_both_ways(_dictionary_learning(tmp_path, k=k), r"config.json: k is .*, expected a whole "
                                                                      r"number >= 1")
    assert message.endswith("fix the SAE config")


def test_a_config_k_above_the_width_is_refused(tmp_path) -> None:
    _refused_both_ways(_dictionary_learning(tmp_path, k=N + 1), f"k={N + 1} exceeds the {N} features of this SAE")


def test_a_config_k_that_contradicts_the_weights_is_refused(tmp_path) -> None:
    _refused_both_ways(_dictionary_learning(tmp_path, k=K + 1), f"k in ae.pt is {K} but k in config.json is {K + 1}")


def test_a_bad_k_in_ae_pt_is_refused_before_loading(tmp_path) -> None:
    folder = _dictionary_learning(tmp_path)
    state = torch.load(folder / "ae.pt", weights_only=True)
    torch.save({**state, "k": torch.tensor(-3)}, folder / "ae.pt")
    _refused_both_ways(folder, "ae.pt: k is -3, expected a whole number >= 1")


@pytest.mark.parametrize("field, value, match", [
    ("dict_size", N + 8, f"dict_size is {N + 8} but the SAE's weights have {N}"),
    ("dict_size", -1, "dict_size is -1, expected a whole number >= 1"),
    ("activation_dim", D * 2, f"activation_dim is {D * 2} but the SAE's weights have {D}"),
    ("activation_dim", "wide", "activation_dim is 'wide'"),
    ("layer", -2, "layer is -2, expected a whole number >= 0"),
])
def test_dictionary_learning_widths_and_layer(tmp_path, field: str, value, match: str) -> None:
    _refused_both_ways(_dictionary_learning(tmp_path, **{field: value}), match)


@pytest.mark.parametrize("cfg, match", [
    ({"k": -3}, "cfg.json: k is -3, expected a whole number >= 1"),  # beside a valid activation_fn_kwargs.k
    ({"activation_fn_kwargs": {"k": -3}}, "activation_fn_kwargs.k is -3"),
    ({"activation_fn_kwargs": {"k": N + 1}}, f"k={N + 1} exceeds the {N} features"),
    ({"k": K + 1}, f"activation_fn_kwargs.k in cfg.json is {K} but k in cfg.json is {K + 1}"),
    ({"d_sae": N * 2}, f"d_sae is {N * 2} but the SAE's weights have {N}"),
    ({"d_in": 0}, "d_in is 0, expected a whole number >= 1"),
    ({"hook_layer": -1}, "hook_layer is -1"),
])
def test_saelens_numbers(tmp_path, cfg: dict, match: str) -> None:
    _refused_both_ways(_saelens(tmp_path, **cfg), match)


def test_consistent_configs_still_load(tmp_path) -> None:
    assert load_sae(_dictionary_learning(tmp_path, k=K, dict_size=N, activation_dim=D)).k == K
    sae = load_sae(_saelens(tmp_path, k=K, d_sae=N, d_in=D))
    assert (sae.k, sae.d_sae, sae.d_in) == (K, N, D)
    assert inspect_sae(str(tmp_path / "dl")).d_sae == N


def test_the_cli_refuses_a_negative_k_before_loading(tiny_world, tmp_path, capsys, monkeypatch) -> None:
    import shutil

    import steering.models

    monkeypatch.setattr(steering.models, "load_vlm", lambda *a, **k: pytest.fail("the model was loaded"))
    folder = tmp_path / "sae"
    shutil.copytree(tiny_world[1], folder)
    config = json.loads((folder / "config.json").read_text())
    config["trainer"]["k"] = -3
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["probe", "--model", str(tiny_world[0]), "--sae", str(folder), "--feature", "0",
                 "--strengths", "0,50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {folder / 'config.json'}: k is -3, expected a whole number >= 1: fix the SAE config"]
