"""Vision-encoder discovery by structure, and loader errors."""

from __future__ import annotations

import pytest

from steering import tiny
from steering.errors import ModelLoadError, UnsupportedModelError
from steering.models import inspect_vision, load_vlm

EXPECTED = {  # family: (has a class token, flat token layout)
    "gemma3": (False, False), "paligemma": (False, False), "internvl": (True, False),
    "llava": (True, False), "llava_onevision": (False, False), "qwen2_5_vl": (False, True),
}


def test_inspect_vision_finds_layers_width_grid_and_cls(family_model) -> None:
    family, model, vision = family_model
    assert vision.n_layers == 3
    assert vision.width == 32
    assert (vision.has_cls, vision.flat) == EXPECTED[family]
    if not vision.flat:
        assert vision.grid == (4, 4)


def test_text_only_model_is_unsupported() -> None:
    import transformers as T

    model = T.LlamaForCausalLM(T.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, vocab_size=50))
    with pytest.raises(UnsupportedModelError, match="supported families: Gemma-3"):
        inspect_vision(model)


def test_text_only_folder_is_unsupported(tmp_path) -> None:
    import transformers as T

    T.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  vocab_size=50).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="not a vision-language model"):
        load_vlm(tmp_path)


def test_missing_folder_names_the_fix(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_vlm(str(tmp_path / "nope"))


def test_unknown_dtype(tiny_world) -> None:
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_vlm(tiny_world[0], dtype="int3")


def test_loads_tiny_world_through_auto_classes(tiny_world) -> None:
    vlm = load_vlm(tiny_world[0], dtype="bf16")
    assert vlm.vision.n_layers == 3 and str(vlm.dtype) == "torch.bfloat16"
    assert vlm.revision and vlm.revision.startswith("local-")


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_tiny_models_load_back_from_disk(tmp_path, family) -> None:
    """Every family round-trips through save_pretrained and AutoModelForImageTextToText."""
    from transformers import AutoModelForImageTextToText

    tiny.tiny_model(family).save_pretrained(tmp_path)
    vision = inspect_vision(AutoModelForImageTextToText.from_pretrained(tmp_path))
    assert vision.width == 32


def test_content_revision_follows_content_not_timestamps(tmp_path) -> None:
    import os
    import shutil

    from steering.revisions import content_revision

    tiny.tiny_model("gemma3").save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for f in (tmp_path / "b").iterdir():
        os.utime(f, (0, 0))
    assert content_revision(tmp_path / "a") == content_revision(tmp_path / "b")
    tiny.tiny_model("gemma3", seed=1).save_pretrained(tmp_path / "b")
    assert content_revision(tmp_path / "a") != content_revision(tmp_path / "b")


def _tiny_qwen2_vl():
    import transformers as T
    from transformers import AutoModelForImageTextToText

    config = T.Qwen2VLConfig(
        text_config=dict(tiny._TEXT, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         bos_token_id=1, eos_token_id=2),
        # Qwen2-VL: the blocks run at embed_dim; hidden_size is the merger's output width.
        vision_config=dict(embed_dim=32, hidden_size=48, depth=3, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2),
        image_token_id=tiny.IMAGE_TOKEN, video_token_id=tiny.VOCAB - 2, vision_start_token_id=tiny.VOCAB - 3,
    )
    return AutoModelForImageTextToText.from_config(config)


def test_qwen2_vl_is_refused_in_one_line_not_taken_for_qwen2_5_vl() -> None:
    # Issue 17 item 2: it was taken for Qwen2.5-VL with the merger's width (48) as the encoder's.
    with pytest.raises(UnsupportedModelError, match=r"\(qwen2_vl\) is not supported.*supported families") as info:
        inspect_vision(_tiny_qwen2_vl())
    assert "\n" not in str(info.value)


def test_width_is_read_from_the_blocks_not_the_config(family_model) -> None:
    family, model, _ = family_model
    vision_config = model.config.vision_config
    saved = vision_config.hidden_size
    vision_config.hidden_size = 48  # a config that names another width (as Qwen2-VL's does)
    try:
        assert inspect_vision(model).width == 32
    finally:
        vision_config.hidden_size = saved
