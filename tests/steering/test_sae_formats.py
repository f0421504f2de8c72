"""One registry of SAE formats (issue 28 part 2): the checks before loading and the loader accept exactly its
formats, read the same facts from them, and a format registered once is seen by both."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steering.errors import SAELoadError
from steering.preflight import inspect_sae
from steering.sae import load_sae
from steering.sae_formats import SAE_FORMATS, SAEFacts, SAEFormat, SAEParts, sae_format
from tests.steering.test_sae import D, K, N, _weights, _write_dictionary_learning, _write_saelens

ROOT = Path(__file__).resolve().parents[2]


def _refused_both_ways(folder: Path, match: str) -> str:
    """The message ``inspect_sae`` and ``load_sae`` both refuse ``folder`` with (the same one line)."""
    with pytest.raises(SAELoadError, match=match) as early:
        inspect_sae(str(folder))
    with pytest.raises(SAELoadError, match=match) as late:
        load_sae(folder)
    assert str(early.value) == str(late.value) and "\n" not in str(early.value)
    return str(early.value)


def _decoder_file(tmp_path: Path) -> Path:
    save_file({"W_dec": _weights()["W_dec"]}, str(tmp_path / "dec.safetensors"))
    return tmp_path / "dec.safetensors"


EXAMPLES: dict[str, tuple[Callable[[Path], Path], str, tuple[int | None, int | None]]] = {
    "decoder_file": (_decoder_file, "", (None, None)),
    "dictionary_learning": (lambda tmp: _write_dictionary_learning(tmp / "dl", _weights()), "ae.pt", (K, 16)),
    "saelens": (lambda tmp: _write_saelens(tmp / "sl", _weights()), "sae_weights.safetensors", (K, 6)),
}
"""Per format: (write an example SAE, its weight file inside the path, its (k, layer))."""


def test_every_registered_format_has_an_example_here() -> None:
    assert list(EXAMPLES) == list(SAE_FORMATS)  # the order too: detection tries the formats in turn


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_checks_and_the_loader_read_each_format_alike(name: str, tmp_path: Path) -> None:
    write, weights, (k, layer) = EXAMPLES[name]
    path = write(tmp_path)
    assert sae_format(path) == name
    facts, sae = inspect_sae(str(path)), load_sae(path)
    assert facts is not None
    assert (facts.d_in, facts.d_sae, facts.k, facts.layer) == (sae.d_in, sae.d_sae, sae.k, sae.layer) == (D, N, k, layer)
    assert facts.n_bytes == (path / weights).stat().st_size > 0
    assert inspect_sae(str(path), layer=2).layer == load_sae(path, layer=2).layer == 2


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_format_left_out_of_the_registry_is_refused_by_both(name: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = EXAMPLES[name][0](tmp_path)
    gone = SAE_FORMATS[name]
    monkeypatch.delitem(SAE_FORMATS, name)
    message = _refused_both_ways(path, "is not a .safetensors file" if path.is_file() else "holds no SAE")
    assert gone.holds is None or gone.holds not in message


def test_a_folder_with_no_sae_is_told_every_folder_format(tmp_path: Path) -> None:
    message = _refused_both_ways(tmp_path, "holds no SAE")
    assert message == (f"{tmp_path} holds no SAE: expected ae.pt + config.json (dictionary_learning) or "
                       "cfg.json + sae_weights.safetensors (SAELens)")


def _numpy_format() -> SAEFormat:
    """A decoder saved by numpy as decoder.npy [d_in, d_sae] in a folder: a format neither module names."""

    def facts(folder: Path) -> SAEFacts:
        d_in, d_sae = np.load(folder / "decoder.npy", mmap_mode="r").shape  # header only
        return SAEFacts(d_sae, None, d_in, n_bytes=(folder / "decoder.npy").stat().st_size)

    def load(folder: Path, d_in: int | None) -> SAEParts:
        return {"W_dec": torch.from_numpy(np.load(folder / "decoder.npy", allow_pickle=False))}

    return SAEFormat(detect=lambda path: (path / "decoder.npy").is_file(), facts=facts, load=load,
                     holds="decoder.npy (numpy)")


def test_a_format_registered_once_is_seen_by_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, empty = tmp_path / "npy", tmp_path / "empty"
    folder.mkdir(), empty.mkdir()
    W_dec = _weights()["W_dec"]  # [d_in, d_sae]
    np.save(folder / "decoder.npy", W_dec.numpy())
    _refused_both_ways(folder, "holds no SAE")

    monkeypatch.setitem(SAE_FORMATS, "numpy", _numpy_format())
    facts, sae = inspect_sae(str(folder), layer=3), load_sae(folder, layer=3)
    assert facts is not None and sae_format(folder) == "numpy"
    assert (facts.d_in, facts.d_sae, facts.layer) == (sae.d_in, sae.d_sae, sae.layer) == (D, N, 3)
    assert torch.equal(sae.W_dec, W_dec)
    assert _refused_both_ways(empty, "holds no SAE").endswith(" or decoder.npy (numpy)")

    np.save(folder / "decoder.npy", np.full((D, N), np.nan, dtype=np.float32))  # the loader's own checks still run
    with pytest.raises(SAELoadError, match="NaN or infinite"):
        load_sae(folder)


def test_preflight_and_the_loader_import_no_private_names() -> None:
    """Both go through the registry's public names, not each other's internals."""
    for module in ("preflight", "sae", "sae_formats"):
        tree = ast.parse((ROOT / "steering" / f"{module}.py").read_text(encoding="utf-8"))
        private = [f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("steering") for alias in node.names
                   if alias.name.startswith("_")]
        assert private == [], module
