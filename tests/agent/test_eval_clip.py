"""CLIP similarity on a tiny random CLIP built from a config (the real transformers code path)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image

from agent.eval.clip_score import clip_similarity, load_clip

WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "blue", "circle", "square", "field", "striped"]


def tiny_clip(out: Path) -> Path:
    """A random CLIPModel + CLIPProcessor (word-level tokenizer) saved under ``out``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                       special_tokens=[("<bos>", 1), ("<eos>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(out)
    CLIPProcessor(image_processor=images, tokenizer=fast).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    return load_clip(str(tiny_clip(tmp_path_factory.mktemp("tiny-clip"))))


def image(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (40, 40), colour)


def test_clip_similarity_is_the_mean_cosine_over_a_features_images(clip) -> None:
    model, processor = clip
    sets = [[image((220, 30, 30)), image((30, 30, 220))], [image((0, 0, 0))], []]
    texts = ["a red circle", "a blue striped field", "a red circle"]
    got = clip_similarity(model, processor, sets, texts, batch_size=2)
    assert got[2] is None  # no image
    assert all(-1.0 <= g <= 1.0 for g in got[:2])
    # By hand, through the model's own feature functions.
    with torch.no_grad():
        enc = processor.tokenizer(["a red circle"], return_tensors="pt")
        t = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        t = getattr(t, "pooler_output", t)
        pv = processor.image_processor(images=sets[0], return_tensors="pt")["pixel_values"]
        v = model.get_image_features(pixel_values=pv)
        v = getattr(v, "pooler_output", v)
    sims = torch.nn.functional.cosine_similarity(v, t.expand_as(v), dim=-1)
    assert got[0] == pytest.approx(float(sims.mean()), abs=1e-5)


def test_clip_truncates_long_texts_and_skips_empty_ones(clip) -> None:
    model, processor = clip
    long = " ".join(["red"] * 100)
    got = clip_similarity(model, processor, [[image((200, 0, 0))], [image((200, 0, 0))]], [long, ""])
    assert got[0] is not None and got[1] is None


def test_load_clip_refuses_a_model_without_both_towers(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=8)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a CLIP-like model"):
        load_clip(str(tmp_path))
