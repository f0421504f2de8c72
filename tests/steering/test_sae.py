"""SAE formats round-trip, encode/decode follow the method's equations, bad input is named."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from steering.errors import FeatureOutOfRangeError, LayerOutOfRangeError, SAELoadError, ShapeMismatchError
from steering.sae import SAE, load_sae
from steering.tiny import write_tiny_sae

D, N, K = 16, 48, 5


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(D, N, generator=g)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    return {"W_dec": W_dec, "W_enc": torch.randn(N, D, generator=g), "b_enc": torch.randn(N, generator=g),
            "b_dec": torch.randn(D, generator=g)}


def _write_dictionary_learning(folder, w, layer=16, extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    state = {"encoder.weight": w["W_enc"], "encoder.bias": w["b_enc"], "decoder.weight": w["W_dec"],
             "b_dec": w["b_dec"], "k": torch.tensor(K), "threshold": torch.tensor(0.1)}
    state.update(extra or {})
    torch.save(state, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {
        "dict_class": "AutoEncoderTopK", "activation_dim": D, "dict_size": N, "k": K,
        "layer": layer, "submodule_name": f"enc_res_out_layer_{layer}"}}))
    return folder


def _write_saelens(folder, w, layer=6):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"W_enc": w["W_enc"].T.contiguous(), "b_enc": w["b_enc"], "W_dec": w["W_dec"].T.contiguous(),
               "b_dec": w["b_dec"]}, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"d_in": D, "d_sae": N, "architecture": "topk",
                                                 "activation_fn_kwargs": {"k": K},
                                                 "hook_name": f"vision.blocks.{layer}.hook_resid_post"}))
    return folder


def test_dictionary_learning_round_trip(tmp_path) -> None:
    w = _weights()
    sae = load_sae(_write_dictionary_learning(tmp_path / "dl", w))
    assert torch.equal(sae.W_dec, w["W_dec"]) and torch.equal(sae.W_enc, w["W_enc"])
    assert torch.equal(sae.b_enc, w["b_enc"]) and torch.equal(sae.b_dec, w["b_dec"])
    assert (sae.k, sae.layer, sae.d_in, sae.d_sae) == (K, 16, D, N)
    assert torch.equal(sae.direction(7), w["W_dec"][:, 7])


def test_saelens_round_trip_matches_dictionary_learning(tmp_path) -> None:
    w = _weights()
    a = load_sae(_write_dictionary_learning(tmp_path / "dl", w))
    b = load_sae(_write_saelens(tmp_path / "sl", w))
    assert torch.equal(a.W_dec, b.W_dec) and torch.equal(a.W_enc, b.W_enc)
    assert (b.k, b.layer) == (K, 6)
    x = torch.randn(3, D)
    assert torch.equal(a.encode(x), b.encode(x))


@pytest.mark.parametrize("stored", ["[d, n]", "[n, d]"])
def test_plain_decoder_file_either_orientation(tmp_path, stored) -> None:
    w = _weights()
    matrix = w["W_dec"] if stored == "[d, n]" else w["W_dec"].T.contiguous()
    save_file({"decoder": matrix}, str(tmp_path / "dec.safetensors"))
    sae = load_sae(tmp_path / "dec.safetensors", layer=3, d_in=D)
    assert torch.equal(sae.W_dec, w["W_dec"]) and sae.layer == 3
    guessed = load_sae(tmp_path / "dec.safetensors")  # no width hint: overcomplete side is d_sae
    assert guessed.d_in == D
    with pytest.raises(SAELoadError, match="only a decoder"):
        sae.encode(torch.zeros(1, D))


def test_encode_decode_follow_the_equations(tmp_path) -> None:
    w = _weights(1)
    sae = load_sae(_write_dictionary_learning(tmp_path / "dl", w))
    x = torch.randn(4, D)
    pre = torch.relu((x - w["b_dec"]) @ w["W_enc"].T + w["b_enc"])
    f = sae.encode(x)
    assert ((f != 0).sum(-1) <= K).all()
    top = pre.topk(K, dim=-1)
    expected = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    torch.testing.assert_close(f, expected)
    torch.testing.assert_close(sae.decode(f), f @ w["W_dec"].T + w["b_dec"])


def test_layer_override(tmp_path) -> None:
    assert load_sae(_write_dictionary_learning(tmp_path / "dl", _weights()), layer=2).layer == 2


def test_layer_from_submodule_name_when_config_has_no_layer(tmp_path) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights())
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["trainer"]["layer"]
    (folder / "config.json").write_text(json.dumps(cfg))
    assert load_sae(folder).layer == 16


def test_missing_path(tmp_path) -> None:
    with pytest.raises(SAELoadError, match="does not exist"):
        load_sae(tmp_path / "missing")


def test_empty_folder(tmp_path) -> None:
    with pytest.raises(SAELoadError, match="holds no SAE"):
        load_sae(tmp_path)


def test_missing_key(tmp_path) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights())
    state = torch.load(folder / "ae.pt", weights_only=True)
    del state["b_dec"]
    torch.save(state, folder / "ae.pt")
    with pytest.raises(SAELoadError, match=r"lacks keys \['b_dec'\]"):
        load_sae(folder)


def test_unexpected_key(tmp_path) -> None:
    folder = _write_dictionary_learning(tmp_path / "dl", _weights(), extra={"mystery": torch.zeros(1)})
    with pytest.raises(SAELoadError, match=r"unexpected keys \['mystery'\]"):
        load_sae(folder)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # the hostile file is a plain pickle
def test_pickled_code_is_refused(tmp_path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "evil"
    folder.mkdir()
    with open(folder / "ae.pt", "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(SAELoadError, match="cannot load .* safely"):
        load_sae(folder)


def test_saelens_without_cfg(tmp_path) -> None:
    folder = _write_saelens(tmp_path / "sl", _weights())
    (folder / "cfg.json").unlink()
    with pytest.raises(SAELoadError, match="no cfg.json"):
        load_sae(folder)


def test_feature_out_of_range(tmp_path) -> None:
    sae = load_sae(write_tiny_sae(tmp_path / "t", d_in=D, d_sae=N))
    with pytest.raises(FeatureOutOfRangeError, match=f"features 0-{N - 1}"):
        sae.direction(N)
    with pytest.raises(FeatureOutOfRangeError):
        sae.direction(-1)


def test_width_and_layer_checks() -> None:
    sae = SAE(W_dec=torch.zeros(D, N), layer=1)
    with pytest.raises(ShapeMismatchError, match=f"SAE width {D} != vision encoder width 32"):
        sae.check_fits(32, 3, 1)
    with pytest.raises(LayerOutOfRangeError, match="layers 0-2"):
        sae.check_fits(D, 3, 5)


def test_hub_spec_offline_gives_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SAELoadError, match="cannot download SAE"):
        load_sae("javifer/google_gemma-3-4b-it-saes/enc_res_out_layer_16_top_k_8192_25_1.0_HF_22191080")
