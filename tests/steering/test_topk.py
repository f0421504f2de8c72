"""Top-k collection: one streaming pass equals brute force, resumes exactly, loads safely."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from steering import tiny
from steering.sae import SAE
from steering.topk import (
    ChunkedCodes, EncoderSpec, FolderSource, TopKConfig, TopKError, collect_topk, layer_output, load_topk,
    vision_tower, write_toy_scenes,
)

N_IMAGES = 23


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random images of assorted sizes, some plain (so some latents fire on few images)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        if i % 5 == 0:
            arr = np.full((48, 64, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        else:
            arr = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"img_{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def world(tiny_world):
    from steering.models import load_vlm
    from steering.sae import load_sae

    model_dir, sae_dir = tiny_world
    vlm = load_vlm(model_dir)
    sae = load_sae(sae_dir)
    return vlm, sae, EncoderSpec.from_vlm(vlm, sae)


def brute_force(spec: EncoderSpec, sae: SAE, source: FolderSource, k: int):
    """All codes of all images at once, the full tower with hidden states, one global stable sort."""
    pv = spec.preprocess([source.load(i) for i in range(len(source))])
    with torch.no_grad():
        hidden = spec.tower(pixel_values=pv, output_hidden_states=True).hidden_states[spec.layer + 1]
    if spec.has_cls:
        hidden = hidden[:, 1:]
    codes = sae.encode(hidden)  # [images, P, d_sae]
    scores = codes.mean(1).T  # [d_sae, images]
    scores = torch.where(scores > 0, scores, -math.inf)
    order = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    top = scores.gather(1, order)
    ids = torch.where(top > -math.inf, order, -1)
    maps = codes.permute(2, 0, 1).gather(1, order[..., None].expand(-1, -1, codes.shape[1]))
    maps = maps * (ids >= 0)[..., None]
    return top.clamp_min(0), ids, maps, (codes > 0).any(1).float().mean(0), codes.amax((0, 1))


def assert_matches(result, expected) -> None:
    scores, ids, maps, freq, max_act = expected
    assert torch.equal(result.ids, ids)
    torch.testing.assert_close(result.scores, scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.maps.flatten(2).float(), maps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.image_frequency, freq)
    torch.testing.assert_close(result.max_activation, max_act, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_elements", [1, 200, 1 << 24])
def test_single_pass_equals_brute_force(world, image_dir, tmp_path, chunk_elements) -> None:
    _, sae, spec = world
    source = FolderSource(image_dir)
    cfg = TopKConfig(k=6, batch_size=4, chunk_elements=chunk_elements, map_dtype="float32")
    result = collect_topk(spec, sae, source, tmp_path, cfg, progress=False)
    assert result.meta["n_images"] == N_IMAGES and result.grid == (4, 4) and result.image_size == (56, 56)
    assert (result.ids < 0).any(), "the set should leave some latents with fewer than k images"
    assert_matches(result, brute_force(spec, sae, source, 6))


def test_relu_sae_and_class_token(image_dir, tmp_path) -> None:
    """A ReLU SAE (no top-k) on an encoder with a class token (CLIP, as in LLaVA)."""
    model = tiny.tiny_model("llava")
    tower = vision_tower(model)
    d = model.config.vision_config.hidden_size
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(d, 40, generator=gen)
    sae = SAE(W_dec=W / W.norm(dim=0), W_enc=torch.randn(40, d, generator=gen) * 0.3,
              b_enc=torch.full((40,), -1.0), b_dec=torch.zeros(d), sae_id="relu")

    def preprocess(images):
        arr = np.stack([np.asarray(im.resize((56, 56))) for im in images])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1

    spec = EncoderSpec(tower, tower.encoder.layers, 1, True, preprocess, {"model": "tiny-llava"})
    source = FolderSource(image_dir)
    result = collect_topk(spec, sae, source, tmp_path, TopKConfig(k=4, batch_size=5, chunk_elements=100,
                                                                  map_dtype="float32"), progress=False)
    assert_matches(result, brute_force(spec, sae, source, 4))


def test_chunked_topk_codes_equal_encode(world) -> None:
    _, sae, _ = world
    x = torch.randn(50, sae.d_in) * 3
    for chunk in (1, 7, sae.d_sae):
        c = ChunkedCodes(sae, x, chunk)
        dense = torch.cat([c.codes(c0, min(c0 + chunk, sae.d_sae)) for c0 in range(0, sae.d_sae, chunk)], 1)
        torch.testing.assert_close(dense, sae.encode(x))


def test_encoder_stops_after_layer(world) -> None:
    from steering.hooks import capture, hook_count

    vlm, sae, spec = world
    before = hook_count(vlm.model)
    with capture(spec.layers[spec.layer + 1]) as ran:
        out = layer_output(spec.tower, spec.layers, spec.layer, torch.randn(2, 3, 56, 56))
    assert out.shape == (2, 16, vlm.vision.width) and not ran
    assert hook_count(vlm.model) == before


def test_resume_after_interruption_is_identical(world, image_dir, tmp_path) -> None:
    _, sae, spec = world
    source = FolderSource(image_dir)
    cfg = TopKConfig(k=5, batch_size=3, checkpoint_every=2, map_dtype="float32")
    full = collect_topk(spec, sae, source, tmp_path / "full", cfg, progress=False)
    assert collect_topk(spec, sae, source, tmp_path / "cut", cfg, progress=False, max_batches=3) is None
    state = json.loads(__import__("safetensors").safe_open(str(tmp_path / "cut" / "checkpoint.safetensors"), "pt")
                       .metadata()["state"])
    assert state["run"]["k"] == 5
    assert not (tmp_path / "cut" / "topk.json").exists()
    resumed = collect_topk(spec, sae, source, tmp_path / "cut", cfg, progress=False)
    assert not (tmp_path / "cut" / "checkpoint.safetensors").exists()
    for name in ("scores", "ids", "maps", "image_frequency", "patch_frequency", "max_activation"):
        assert torch.equal(getattr(full, name), getattr(resumed, name)), name
    # a finished run is returned as is; a different k in the same folder is refused
    assert collect_topk(spec, sae, source, tmp_path / "cut", cfg, progress=False).meta == resumed.meta
    with pytest.raises(TopKError, match="another run"):
        collect_topk(spec, sae, source, tmp_path / "cut", TopKConfig(k=4), progress=False)
    again = collect_topk(spec, sae, source, tmp_path / "cut", TopKConfig(k=4), progress=False, restart=True)
    assert again.k == 4


def test_checkpoint_of_another_run_is_refused(world, image_dir, tmp_path) -> None:
    _, sae, spec = world
    cfg = TopKConfig(k=5, batch_size=3, checkpoint_every=1)
    collect_topk(spec, sae, FolderSource(image_dir), tmp_path, cfg, progress=False, max_batches=1)
    with pytest.raises(TopKError, match="another run"):
        collect_topk(spec, sae, FolderSource(image_dir, limit=10), tmp_path, cfg, progress=False)


def test_result_accessors(world, image_dir, tmp_path) -> None:
    _, sae, spec = world
    result = collect_topk(spec, sae, FolderSource(image_dir), tmp_path, TopKConfig(k=3), progress=False)
    f = int(result.image_frequency.argmax())
    top = result.top(f)
    assert len(top) == 3 and top[0].score >= top[1].score >= top[2].score > 0
    assert top[0].map.shape == (4, 4) and top[0].name.startswith("img_")
    assert result.image(top[0].id).size == Image.open(image_dir / top[0].name).size
    assert result.maps.dtype == torch.float16
    with pytest.raises(TopKError, match="out of range"):
        result.top(result.d_sae)
    assert len(result.fingerprint()) == 16


def test_loading_is_safe(world, image_dir, tmp_path) -> None:
    _, sae, spec = world
    out = tmp_path / "run"
    collect_topk(spec, sae, FolderSource(image_dir), out, TopKConfig(k=3), progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["images.json", "topk.json", "topk.safetensors"]
    with pytest.raises(TopKError, match="no finished top-k"):
        load_topk(tmp_path / "nothing")
    (out / "topk.safetensors").write_bytes(b"\x80\x04not safetensors")  # e.g. a pickle in disguise
    with pytest.raises(TopKError, match="cannot read"):
        load_topk(out)
    (out / "topk.json").write_text("{not json")
    with pytest.raises(TopKError, match="corrupt JSON"):
        load_topk(out)
    (out / "topk.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(TopKError, match="is not a"):
        load_topk(out)


def test_folder_and_dataset_errors(tmp_path) -> None:
    with pytest.raises(TopKError, match="does not exist"):
        FolderSource(tmp_path / "missing")
    with pytest.raises(TopKError, match="no images"):
        FolderSource(tmp_path)
    try:
        import datasets  # noqa: F401
    except ImportError:
        from steering.topk import DatasetSource

        with pytest.raises(TopKError, match="datasets"):
            DatasetSource("whatever")


def test_toy_scenes_folder(tmp_path) -> None:
    folder = write_toy_scenes(tmp_path / "scenes", 6, seed=3)
    source = FolderSource(folder)
    assert len(source) == 6 and source.load(0).size == (64, 64)
    records = json.loads((folder / "scenes.json").read_text())["scenes"]
    assert [r["name"] for r in records] == source.names


def test_cli_on_tiny_world(tiny_world, image_dir, tmp_path, capsys) -> None:
    from steering.topk import main

    model_dir, sae_dir = tiny_world
    args = ["--images", str(image_dir), "--limit", "9", "--k", "2", "--out", str(tmp_path), "--model",
            str(model_dir), "--sae", str(sae_dir), "--device", "cpu", "--batch-size", "4", "--quiet"]
    assert main(args) == 0
    assert "over 9 images" in capsys.readouterr().out
    assert load_topk(tmp_path).k == 2
    assert main(["--images", str(tmp_path / "nope"), "--out", str(tmp_path), "--model", str(model_dir),
                 "--sae", str(sae_dir)]) == 2


def test_cli_renders_toy_scenes(tiny_world, tmp_path) -> None:
    from steering.topk import main

    model_dir, sae_dir = tiny_world
    assert main(["--toy-scenes", "6", "--out", str(tmp_path), "--model", str(model_dir), "--sae", str(sae_dir),
                 "--device", "cpu", "--quiet", "--k", "2"]) == 0
    result = load_topk(tmp_path)
    assert len(result.names) == 6 and (tmp_path / "images" / "scenes.json").is_file()
    assert result.image_size == (56, 56) and result.image(0).size == (64, 64)


@pytest.mark.skipif(not __import__("steering.toy", fromlist=["x"]).is_available(), reason="toy world not built")
def test_toy_world_topk(tmp_path) -> None:
    from steering.topk import build_toy_topk

    result = build_toy_topk(tmp_path, n_scenes=64, k=5)
    assert result.meta["n_images"] == 64 and result.k == 5


class FixedCodes:
    """ChunkedCodes' interface over codes given outright [rows, d_sae]."""

    def __init__(self, codes: torch.Tensor, chunk: int) -> None:
        self.all, self.chunk = codes, chunk

    def codes(self, c0: int, c1: int) -> torch.Tensor:
        return self.all[:, c0:c1]


def test_merging_shards_equals_one_pass_ties_included() -> None:
    """Shards collected apart and merged (in order, or not) leave the state one pass leaves, tensor for tensor;
    the codes repeat images exactly, so ties on the score decide the order (the lower id first)."""
    from steering.topk import RunningTopK

    d_sae, k, P, B, n_batches = 6, 4, 4, 3, 8
    gen = torch.Generator().manual_seed(0)
    base = torch.relu(torch.randn(5, P, d_sae, generator=gen))  # 5 distinct images...
    images = base[torch.randint(0, 5, (B * n_batches,), generator=gen)]  # ...repeated: many exact ties

    def collect(batches: range) -> RunningTopK:
        state = RunningTopK(d_sae, k, P, torch.float32)
        for b in batches:
            state.update(FixedCodes(images[b * B:(b + 1) * B].reshape(B * P, d_sae), 2), torch.arange(b * B, b * B + B))
        return state

    one = collect(range(n_batches))
    for cuts in ([0, 3, 8], [0, 1, 5, 6, 8]):
        shards = [collect(range(a, b)) for a, b in zip(cuts, cuts[1:])]
        for order in (shards, shards[::-1]):
            merged = RunningTopK.from_state_dict(order[0].state_dict())
            for shard in order[1:]:
                merged.merge(shard)
            for name, tensor in one.state_dict().items():
                assert torch.equal(merged.state_dict()[name], tensor), (cuts, name)
    assert (one.scores[:, :-1] == one.scores[:, 1:]).any(), "the test has ties"
