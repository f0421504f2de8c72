"""agent.topk and the engine-backed describer on a real tiny collection: the wrapper the TUI uses for
pictures, and cache keys that agree with steering.topk.describe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.run.images import TopKDescriber
from agent.store.store import Store
from agent.topk import base_image, feature_stats, feature_views, open_topk, record_topk, require_topk, topk_dir


@pytest.fixture(scope="module")
def collection(tiny_engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from steering.topk import EncoderSpec, FolderSource, TopKConfig, collect_topk

    images = tmp_path_factory.mktemp("views-images")
    rng = np.random.default_rng(3)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(images / f"pic_{i}.png")
    out = tmp_path_factory.mktemp("views-topk")
    spec = EncoderSpec.from_vlm(tiny_engine.vlm, tiny_engine.sae)
    collect_topk(spec, tiny_engine.sae, FolderSource(images), out, TopKConfig(k=3, batch_size=4), progress=False)
    return out


def fired(root: Path) -> int:
    topk = open_topk(root)
    return next(f for f in range(topk.d_sae) if int(topk.ids[f, 0]) >= 0)


def test_views_captions_and_stats(collection: Path) -> None:
    f = fired(collection)
    views = feature_views(collection, f, n=2)
    assert 1 <= len(views) <= 2 and views[0].score >= views[-1].score
    assert views[0].image.size == (56, 56) and views[0].caption.endswith(".png")
    assert [v.image_id for v in feature_views(collection, f, n=2, kind="heatmap")] == [v.image_id for v in views]
    assert open_topk(collection) is open_topk(collection), "a loaded collection is reused"
    stats = feature_stats(collection, f)
    assert 0 < stats["image_frequency"] <= 1 and stats["max_activation"] > 0
    with pytest.raises(ValueError, match="unknown view"):
        feature_views(collection, f, kind="sepia")
    assert base_image("black", size=8).getpixel((0, 0)) == (0, 0, 0)


def test_store_location_relative_inside_absolute_outside(tmp_path: Path, collection: Path) -> None:
    with Store(tmp_path / "s") as s:
        assert topk_dir(s) is None
        assert record_topk(s, collection) == str(collection.absolute())
        assert require_topk(s) == collection.absolute()
        inside = s.path / "topk" / "x"
        assert record_topk(s, inside) == "topk/x" and topk_dir(s) == inside


def test_describer_keys_match_steering_and_pictures_are_png(tiny_engine, collection: Path) -> None:
    from steering.probes import EvidenceRequest

    describer = TopKDescriber(tiny_engine, collection)
    fp = describer.prepare()
    assert EvidenceRequest(2, "hybrid", 8, 3).key(fp) == EvidenceRequest(2, "hybrid", 8.0, 3).key(fp)
    f = fired(collection)
    seen = []
    out = describer.describe([EvidenceRequest(f, "topk", 0.0, 2), EvidenceRequest(f, "hybrid", 8.0, 2)],
                             on_result=lambda r, e: seen.append((r.mode, e.mode)))
    assert [e.mode for e in out] == ["topk", "hybrid"] and sorted(seen) == [("hybrid", "hybrid"), ("topk", "topk")]
    assert out[0].image_ids == out[1].image_ids and out[0].image_names[0].startswith("pic_")
    pngs = describer.pictures(f, 2)
    assert pngs and all(p.startswith(b"\x89PNG") for p in pngs)
