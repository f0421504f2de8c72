"""Broken and hostile SAE files (issue 17 items 9, 10): each is refused in one line, none loads silently."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from steering.errors import SAELoadError
from steering.sae import load_sae
from tests.steering.test_sae import D, N, _weights, _write_dictionary_learning, _write_saelens


def _refused(spec, match: str, **kw) -> str:
    with pytest.raises(SAELoadError, match=match) as info:
        load_sae(spec, **kw)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_truncated_saelens_weights(tmp_path) -> None:
    folder = _write_saelens(tmp_path / "sl", _weights())
    path = folder / "sae_weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    _refused(folder, "damaged or not safetensors")


@pytest.mark.parametrize("payload", [b"", b"garbage" * 40, b"\xff" * 8 + b"{}"])
def test_garbage_decoder_file(tmp_path, payload: bytes) -> None:
    path = tmp_path / "dec.safetensors"
    path.write_bytes(payload)
    _refused(path, "damaged or not safetensors")


@pytest.mark.parametrize("config", ["[1, 2]", '"a string"', "3", "\xff\xfe", '{"trainer": [1]}'])
def test_config_json_not_an_object(tmp_path, config: str) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights())
    (folder / "config.json").write_bytes(config.encode("latin-1"))
    _refused(folder, "config.json")


@pytest.mark.parametrize("field, value", [("layer", "sixteen"), ("layer", 2.5), ("layer", -1), ("layer", True),
                                          ("k", "five"), ("k", 0), ("k", N + 1)])
def test_config_numbers_that_are_not_whole_numbers(tmp_path, field: str, value) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights())
    config = json.loads((folder / "config.json").read_text())
    config["trainer"][field] = value
    (folder / "config.json").write_text(json.dumps(config))
    if field == "k":  # the state's own k wins over the config's: drop it so the config is read
        state = torch.load(folder / "ae.pt", weights_only=True)
        del state["k"]
        torch.save(state, folder / "ae.pt")
    _refused(folder, field)


def test_saelens_text_layer_and_k(tmp_path) -> None:
    folder = _write_saelens(tmp_path / "sl", _weights())
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "hook_layer": "six"}))
    _refused(folder, "hook_layer")
    (folder / "cfg.json").write_text(json.dumps({**cfg, "activation_fn_kwargs": {"k": "5"}}))
    _refused(folder, "k is '5'")


def test_b_dec_of_the_wrong_width(tmp_path) -> None:
    w = _weights()
    _refused(_write_dictionary_learning(tmp_path / "dl", {**w, "b_dec": torch.zeros(D + 1)}), "b_dec has shape")
    _refused(_write_saelens(tmp_path / "sl", {**w, "b_dec": torch.zeros(D - 1)}), "b_dec has shape")


def test_non_tensor_state_entry(tmp_path) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights(), extra={"b_dec": [0.0] * D})
    _refused(folder, "not a real-valued tensor")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad: float) -> None:
    w = _weights()
    W_dec = w["W_dec"].clone()
    W_dec[:, 7] = bad
    _refused(_write_dictionary_learning(tmp_path / "dl", {**w, "W_dec": W_dec}), "NaN or infinite")
    _refused(_write_saelens(tmp_path / "sl", {**w, "W_dec": W_dec}), "NaN or infinite")
    save_file({"W_dec": W_dec}, str(tmp_path / "dec.safetensors"))
    _refused(tmp_path / "dec.safetensors", "NaN or infinite")
    b_enc = w["b_enc"].clone()
    b_enc[0] = bad
    _refused(_write_saelens(tmp_path / "sl2", {**w, "b_enc": b_enc}), "b_enc holds 1")


def _saelens_with(folder, w, extra: dict[str, torch.Tensor]):
    _write_saelens(folder, w)
    save_file({"W_enc": w["W_enc"].T.contiguous(), "b_enc": w["b_enc"], "W_dec": w["W_dec"].T.contiguous(),
               "b_dec": w["b_dec"], **extra}, str(folder / "sae_weights.safetensors"))
    return folder


def test_all_ones_scaling_factor_is_accepted_any_other_refused(tmp_path) -> None:
    w = _weights()
    plain = load_sae(_write_saelens(tmp_path / "plain", w))
    ones = load_sae(_saelens_with(tmp_path / "ones", w, {"scaling_factor": torch.ones(N)}))
    assert torch.equal(ones.W_dec, plain.W_dec) and torch.equal(ones.W_enc, plain.W_enc)
    scaled = torch.ones(N)
    scaled[3] = 2.0
    _refused(_saelens_with(tmp_path / "scaled", w, {"scaling_factor": scaled}), "scaling_factor is not all ones")


def test_apply_b_dec_to_input_is_honoured(tmp_path) -> None:
    w = _weights()
    folder = _write_saelens(tmp_path / "sl", w)
    x = torch.randn(3, D)
    centred = load_sae(folder)
    assert torch.allclose(centred.pre_activations(x), (x - w["b_dec"]) @ w["W_enc"].T + w["b_enc"], atol=1e-5)
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "apply_b_dec_to_input": False}))
    raw = load_sae(folder)
    assert torch.allclose(raw.pre_activations(x), x @ w["W_enc"].T + w["b_enc"], atol=1e-5)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "apply_b_dec_to_input": "no"}))
    _refused(folder, "apply_b_dec_to_input")


def _mutations(blob: bytes, rng) -> list[bytes]:
    cuts = [blob[: int(rng.integers(0, len(blob)))] for _ in range(20)]
    flips = []
    for _ in range(30):
        b = bytearray(blob)
        for pos in rng.integers(0, len(b), size=int(rng.integers(1, 8))):
            b[pos] = int(rng.integers(0, 256))
        flips.append(bytes(b))
    return cuts + flips + [b"", bytes(rng.integers(0, 256, size=300, dtype="uint8"))]


CONFIG_VALUES = [None, "x", "12", -3, 2.5, 1e400, [], {}, True, "layer_99", 10**30]


def test_fuzzed_sae_files_end_in_one_line_errors_or_clean_loads(tmp_path) -> None:
    """A few hundred damaged files and configs: each loads cleanly or is one SAELoadError line."""
    import numpy as np

    rng = np.random.default_rng(17)
    w = _weights()
    cases = []
    sl = _write_saelens(tmp_path / "sl", w)
    dl = _write_dictionary_learning(tmp_path / "dl", w)
    for folder, name in ((sl, "sae_weights.safetensors"), (dl, "ae.pt"), (sl, "cfg.json"), (dl, "config.json")):
        for blob in _mutations((folder / name).read_bytes(), rng):
            cases.append((folder, name, blob))
    for value in CONFIG_VALUES:
        for key in ("hook_layer", "activation_fn_kwargs", "apply_b_dec_to_input"):
            cfg = json.loads((sl / "cfg.json").read_text())
            cases.append((sl, "cfg.json", json.dumps({**cfg, key: value}).encode()))
        for key in ("layer", "k", "submodule_name"):
            config = json.loads((dl / "config.json").read_text())
            config["trainer"][key] = value
            cases.append((dl, "config.json", json.dumps(config).encode()))
    assert len(cases) >= 200
    for n, (folder, name, blob) in enumerate(cases):
        case = tmp_path / f"case{n}"
        case.mkdir()
        for f in folder.iterdir():
            (case / f.name).write_bytes(blob if f.name == name else f.read_bytes())
        try:
            sae = load_sae(case)
        except SAELoadError as exc:
            assert "\n" not in str(exc), (name, str(exc))
        else:
            assert all(bool(torch.isfinite(t).all()) for t in (sae.W_dec, sae.W_enc, sae.b_dec, sae.b_enc))


def test_the_cli_exits_2_with_one_line_on_a_damaged_sae(tiny_world, tmp_path, capsys) -> None:
    from agent.cli.main import main

    bad = tmp_path / "dec.safetensors"
    bad.write_bytes(b"garbage")
    code = main(["probe", "--model", str(tiny_world[0]), "--sae", str(bad), "--feature", "0", "--strengths", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "damaged or not safetensors" in err, err
    assert err.strip().count("\n") == 0, err
