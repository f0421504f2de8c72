"""Views: masked images and heatmaps at the model's resolution, patch-aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from steering.topk.views import colormap, heatmap, masked_image, model_view, montage, upsample


@pytest.fixture()
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(1, 256, (30, 45, 3), dtype=np.uint8))


def amap() -> torch.Tensor:
    m = torch.zeros(4, 4)
    m[0, 0], m[1, 2], m[3, 3] = 2.0, 0.5, 1.0
    return m


def test_upsample_is_patch_blocks() -> None:
    up = upsample(amap(), (56, 56))
    assert up.shape == (56, 56)
    assert (up[:14, :14] == 2.0).all() and (up[14:28, 28:42] == 0.5).all() and (up[42:, 42:] == 1.0).all()
    assert (up[14:28, :28] == 0).all()


def test_masked_image_blacks_out_silent_patches(image) -> None:
    out = masked_image(image, amap(), (56, 56))
    assert out.size == (56, 56) and out.mode == "RGB"
    px, ref = np.asarray(out), np.asarray(model_view(image, (56, 56)))
    active = upsample(amap(), (56, 56)) > 0
    assert (px[~active] == 0).all()
    assert np.array_equal(px[active], ref[active])


def test_heatmap_marks_only_active_patches(image) -> None:
    out = heatmap(image, amap(), (56, 56))
    px, ref = np.asarray(out), np.asarray(model_view(image, (56, 56)))
    active = upsample(amap(), (56, 56)) > 0
    assert out.size == (56, 56)
    assert np.array_equal(px[~active], ref[~active])
    assert not np.array_equal(px[active], ref[active])


def test_colormap_ends() -> None:
    c = colormap(np.array([0.0, 0.5, 1.0, 2.0]))
    assert c.dtype == np.uint8 and c.shape == (4, 3)
    assert tuple(c[0]) == (0, 0, 4) and tuple(c[2]) == tuple(c[3]) == (252, 255, 164)


def test_model_view_keeps_size_and_montage(image) -> None:
    v = model_view(image, (20, 30))
    assert v.size == (30, 20)
    sheet = montage([v] * 7, cols=5, gap=2)
    assert sheet.size == (5 * 30 + 4 * 2, 2 * 20 + 2)
    with pytest.raises(ValueError):
        upsample(torch.zeros(3), (4, 4))
