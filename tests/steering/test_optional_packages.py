"""A family whose processor needs a package that is not installed says which, in one line (issue 27 item 9).

Mistral3's PixtralProcessor needs torchvision as a whole (transformers hands out a placeholder class that
raises on first use); SmolVLM's needs torchvision for its video processor, which its __init__ cannot do
without, and num2words. Both used to end in a traceback or in "missing ... 'video_processor'".
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from agent.cli.main import main
from steering import tiny
from steering.errors import ModelLoadError
from steering.models import load_vlm
from steering.processors import _image_only_class, _package

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
HAS_NUM2WORDS = importlib.util.find_spec("num2words") is not None


def _write(family: str, out: Path) -> Path:
    """A tiny ``family`` folder (random weights, a word-level tokenizer, the PIL image processor) whose
    processor transformers cannot build without torchvision."""
    import transformers as T
    from tokenizers import Tokenizer, models, pre_tokenizers

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56,
                  patch_size=14)
    if family == "mistral3":
        config = T.Mistral3Config(text_config=dict(tiny._TEXT, model_type="mistral", head_dim=16),
                                  vision_config=dict(vision, head_dim=16), image_token_index=tiny.IMAGE_TOKEN)
        images, processor = T.PixtralImageProcessorPil(size={"longest_edge": 56}, patch_size=14), "PixtralProcessor"
    else:
        config = T.SmolVLMConfig(text_config=dict(tiny._TEXT, model_type="llama"), vision_config=vision,
                                 image_token_id=tiny.IMAGE_TOKEN, scale_factor=2)
        images = T.SmolVLMImageProcessorPil(size={"longest_edge": 56}, max_image_size={"longest_edge": 56})
        processor = "SmolVLMProcessor"
    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", "<image>", "a"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out.mkdir(parents=True)
    T.AutoModelForImageTextToText.from_config(config).save_pretrained(out)
    T.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                              unk_token="<unk>").save_pretrained(out)
    images.save_pretrained(out)
    (out / "processor_config.json").write_text(json.dumps({"processor_class": processor}))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("optional")
    return {family: _write(family, root / family) for family in ("mistral3", "smolvlm")}


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForImageTextToText

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)


def _refusal(folder: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_vlm(folder)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.skipif(HAS_TORCHVISION, reason="needs an environment without torchvision")
def test_mistral3_without_torchvision_names_it(folders, no_weights) -> None:
    assert _refusal(folders["mistral3"]) == (f"the mistral3 processor of {str(folders['mistral3'])!r} needs "
                                             "torchvision, which is not installed: pip install torchvision")


@pytest.mark.skipif(HAS_TORCHVISION or HAS_NUM2WORDS, reason="needs an environment without torchvision and num2words")
def test_smolvlm_names_every_package_it_lacks(folders, no_weights) -> None:
    assert _refusal(folders["smolvlm"]).endswith("needs torchvision and num2words, which are not installed: "
                                                 "pip install torchvision num2words")


@pytest.mark.skipif(HAS_TORCHVISION, reason="needs an environment without torchvision")
def test_the_cli_refuses_in_one_line(folders, capsys) -> None:
    sae = tiny.write_tiny_sae(folders["mistral3"].parent / "sae", d_in=32)
    assert main(["probe", "--model", str(folders["mistral3"]), "--sae", str(sae), "--feature", "0",
                 "--strengths", "0,50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the mistral3 processor of " + repr(str(folders["mistral3"])) +
                   " needs torchvision, which is not installed: pip install torchvision"]


def test_no_image_only_form_where_the_processor_cannot_be_one() -> None:
    assert _image_only_class("mistral3") is None  # without torchvision: a placeholder, read without raising
    assert _image_only_class("smolvlm") is None  # its __init__ needs a video processor


@pytest.mark.parametrize("message, package", [
    ("\nPixtralProcessor requires the Torchvision library but it was not found in your environment.", "torchvision"),
    ("Package `num2words` is required to run SmolVLM processor. Install it with `pip install num2words`.",
     "num2words"),
    ("This needs something else: pip install timm.", "timm"),
])
def test_the_package_is_read_off_transformers_messages(message: str, package: str) -> None:
    assert _package(ImportError(message)) == package
