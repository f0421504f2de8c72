"""Processors load for images only where a video processor needs a missing package (issue 17 item 3)."""

from __future__ import annotations

import pytest

from steering import tiny
from steering.errors import ModelLoadError
from steering.models import load_vlm
from steering.processors import _image_only_class

NO_TORCHVISION = ImportError(
    "\nQwen2VLVideoProcessor requires the Torchvision library but it was not found in your environment. Check out\n"
)


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return tiny.write_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen2_5_vl"))


def _without(monkeypatch, auto_class_path: str) -> None:
    """Make ``auto_class_path``'s from_pretrained fail as transformers does without torchvision."""
    import importlib

    module, name = auto_class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)

    def refuse(*_args, **_kwargs):
        raise NO_TORCHVISION

    monkeypatch.setattr(cls, "from_pretrained", classmethod(lambda _cls, *a, **k: refuse()))


def test_qwen2_5_vl_loads_without_a_video_processor(qwen_folder, monkeypatch) -> None:
    _without(monkeypatch, "transformers.models.auto.video_processing_auto.AutoVideoProcessor")
    vlm = load_vlm(qwen_folder)
    assert not hasattr(vlm.processor, "video_processor")
    text = vlm.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}]}],
        add_generation_prompt=True, tokenize=False)
    from PIL import Image

    enc = vlm.processor(text=[text], images=[[Image.new("RGB", (56, 56), "white")]], return_tensors="pt")
    assert int((enc["input_ids"] == tiny.IMAGE_TOKEN).sum()) == 4 and tuple(enc["image_grid_thw"][0]) == (1, 4, 4)


def test_a_processor_that_cannot_load_at_all_names_the_package(qwen_folder, monkeypatch) -> None:
    _without(monkeypatch, "transformers.models.auto.video_processing_auto.AutoVideoProcessor")
    _without(monkeypatch, "transformers.models.auto.image_processing_auto.AutoImageProcessor")
    with pytest.raises(ModelLoadError, match=r"needs torchvision, which is not installed: pip install torchvision$"):
        load_vlm(qwen_folder)


def test_a_family_without_video_still_gives_one_line(tiny_world, monkeypatch) -> None:
    _without(monkeypatch, "transformers.models.auto.processing_auto.AutoProcessor")
    with pytest.raises(ModelLoadError, match="pip install torchvision") as info:
        load_vlm(tiny_world[0])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "internvl", "llava_onevision"])
def test_every_family_with_a_video_processor_has_an_image_only_form(model_type: str) -> None:
    cls = _image_only_class(model_type)
    assert cls is not None and cls.get_attributes() == ["image_processor", "tokenizer"]


@pytest.mark.parametrize("model_type", ["gemma3", "paligemma", "llava"])
def test_image_only_families_need_no_other_form(model_type: str) -> None:
    assert _image_only_class(model_type) is None
