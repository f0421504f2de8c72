"""Tiny random VLMs and SAEs built from configs, for tests and for trying the CLI without downloads.

`python -m steering.tiny --out DIR` writes DIR/model (a tiny Gemma-3 with a word-level tokenizer
and a real Gemma3Processor) and DIR/sae (a random TopK SAE in the dictionary_learning format).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

import prompts

FAMILIES = ("gemma3", "paligemma", "internvl", "llava", "llava_onevision", "qwen2_5_vl")
VOCAB = 320
IMAGE_TOKEN = VOCAB - 1
GEMMA3_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                   "<start_of_image>", "<image_soft_token>", "<end_of_image>"]
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, vocab_size=VOCAB)
_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2)


def tiny_config(family: str) -> Any:
    """A config of ``family`` small enough to run in milliseconds on a CPU.

    Weights start wider than the default (std 0.1): at std 0.02 a tiny random model's attention is
    nearly uniform, the few image tokens barely move the next-token distribution, and steering
    would hardly show in the words.
    """
    config = _family_config(family)
    for c in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        if c is not None:
            c.initializer_range = 0.1
    return config


def _family_config(family: str) -> Any:
    import transformers as T

    if family == "gemma3":
        return T.Gemma3Config(
            text_config=dict(_TEXT, head_dim=16, sliding_window=64),
            vision_config=dict(_VISION, image_size=56, patch_size=14),
            mm_tokens_per_image=4, image_token_index=IMAGE_TOKEN, boi_token_index=6, eoi_token_index=8,
            pad_token_id=0, eos_token_id=1, bos_token_id=2,
        )
    if family == "paligemma":
        return T.PaliGemmaConfig(
            text_config=dict(_TEXT, model_type="gemma2", head_dim=16),
            vision_config=dict(_VISION, image_size=56, patch_size=14, projection_dim=32),
            image_token_index=IMAGE_TOKEN, projection_dim=32,
        )
    if family == "internvl":
        return T.InternVLConfig(
            text_config=dict(_TEXT, model_type="qwen2"),
            vision_config=dict(_VISION, image_size=[56, 56], patch_size=[14, 14]),
            image_token_id=IMAGE_TOKEN,
        )
    if family == "llava":
        return T.LlavaConfig(
            text_config=dict(_TEXT, model_type="llama"),
            vision_config=dict(_VISION, model_type="clip_vision_model", image_size=56, patch_size=14, projection_dim=32),
            image_token_index=IMAGE_TOKEN,
        )
    if family == "llava_onevision":
        return T.LlavaOnevisionConfig(
            text_config=dict(_TEXT, model_type="qwen2"),
            vision_config=dict(_VISION, model_type="siglip_vision_model", image_size=56, patch_size=14),
            image_token_index=IMAGE_TOKEN, image_grid_pinpoints=[[56, 56]],
        )
    if family == "qwen2_5_vl":
        return T.Qwen2_5_VLConfig(
            text_config=dict(_TEXT, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                             bos_token_id=1, eos_token_id=2),
            vision_config=dict(hidden_size=32, intermediate_size=64, depth=3, num_heads=2, out_hidden_size=32,
                               fullatt_block_indexes=[2], window_size=56, patch_size=14, spatial_merge_size=2),
            image_token_id=IMAGE_TOKEN, video_token_id=VOCAB - 2, vision_start_token_id=VOCAB - 3,
        )
    raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES}")


def tiny_model(family: str, seed: int = 0) -> nn.Module:
    """A random tiny VLM whose image path is live (a fresh Gemma-3 projector is all zeros)."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(tiny_config(family)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "projector" in name and p.ndim >= 2 and p.abs().sum() == 0:
                p.normal_(0.0, 0.5)
    return model


def tiny_image_inputs(family: str, model: nn.Module, rows: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Kwargs for ``model.model.get_image_features`` for ``rows`` identical random images."""
    gen = torch.Generator().manual_seed(seed)
    if family == "qwen2_5_vl":
        # 56 px / patch 14 = 4x4 patches per image, each flattened to C*T*P*P values.
        patch = 3 * 2 * 14 * 14
        one = torch.randn(16, patch, generator=gen)
        return {"pixel_values": one.repeat(rows, 1), "image_grid_thw": torch.tensor([[1, 4, 4]] * rows)}
    one = torch.randn(1, 3, 56, 56, generator=gen)
    if family == "llava_onevision":
        return {"pixel_values": one[:, None].repeat(rows, 2, 1, 1, 1),  # base tile + one anyres tile
                "image_sizes": torch.tensor([[56, 56]] * rows)}
    return {"pixel_values": one.repeat(rows, 1, 1, 1)}


def image_features(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run the model's own image path and return its features as one float tensor."""
    out = model.model.get_image_features(**inputs)
    feats = getattr(out, "pooler_output", None)
    if feats is None:
        feats = out[0] if isinstance(out, tuple) else out
    if isinstance(feats, (list, tuple)):
        feats = torch.cat([f.reshape(-1) for f in feats])
    return feats.float()


# ----------------------------------------------------------------------------- a tiny Gemma-3 on disk


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for name in prompts.available():
        if not name.startswith("vlm_"):  # the VLM only ever reads its own prompts
            continue
        source = prompts.load(name).source
        words.update(re.findall(r"[A-Za-z]+", source))
    words.update("a an the red green blue yellow circle square striped dotted large small nothing image".split())
    return sorted(words)


def tiny_processor(image_size: int = 56, tokens_per_image: int = 4, image_token_id: int = IMAGE_TOKEN) -> Any:
    """A real Gemma3Processor over a word-level tokenizer (no download)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor, PreTrainedTokenizerFast

    tokens = GEMMA3_SPECIALS + _vocabulary() + list(".,:;!?\"'()-")
    # Fill the id space below the image token with filler words, so that whatever id a random
    # model emits decodes to visible text (steering then shows up in the words).
    tokens += [f"w{i}" for i in range(max(0, min(image_token_id, IMAGE_TOKEN) - len(tokens)))]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) <= image_token_id, "tiny vocabulary outgrew the tiny model"
    # Pin the image token to the id the model's config names.
    vocab.pop("<image_soft_token>")
    vocab["<image_soft_token>"] = image_token_id
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in GEMMA3_SPECIALS])
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                              "eoi_token": "<end_of_image>"},
    )
    fast.padding_side = "left"
    images = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size}, do_pan_and_scan=False)
    return Gemma3Processor(image_processor=images, tokenizer=fast, chat_template=GEMMA3_CHAT_TEMPLATE,
                           image_seq_length=tokens_per_image)


QWEN_SPECIALS = {"<|vision_start|>": VOCAB - 3, "<|video_pad|>": VOCAB - 2, "<|image_pad|>": IMAGE_TOKEN}
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_qwen2_5_vl(out: Path, seed: int = 0) -> Path:
    """A tiny Qwen2.5-VL folder (model, word-level tokenizer, PIL image processor, chat template).

    Written piecewise: Qwen2_5_VLProcessor itself cannot be built without torchvision (its video
    processor), which is exactly what loading it must cope with.
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_end|>", "<unk>"]
    tokens = specials + _vocabulary() + list(".,:;!?\"'()-")
    vocab = {t: i for i, t in enumerate(tokens[: min(QWEN_SPECIALS.values())])}
    vocab.update(QWEN_SPECIALS)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials + list(QWEN_SPECIALS)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   unk_token="<unk>")
    fast.padding_side = "left"
    out.mkdir(parents=True, exist_ok=True)
    tiny_model("qwen2_5_vl", seed).save_pretrained(out)
    fast.save_pretrained(out)
    # 56 px images stay 56 px: 4x4 patches of 14, merged 2x2 into 4 image tokens.
    Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56}).save_pretrained(out)
    (out / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE)
    return out


PALIGEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def write_tiny_paligemma(out: Path, seed: int = 0) -> Path:
    """A tiny PaliGemma 2 folder with a real PaliGemmaProcessor (word-level tokenizer, PIL SigLIP images).

    Its processor returns what a real checkpoint's does, ``token_type_ids`` and ``labels`` included.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PaliGemmaProcessor, PreTrainedTokenizerFast, SiglipImageProcessorPil

    tokens = PALIGEMMA_SPECIALS + _vocabulary() + list(".,:;!?\"'()-")
    tokens += [f"w{i}" for i in range(IMAGE_TOKEN - len(tokens))]  # every id a random model emits decodes
    vocab = {t: i for i, t in enumerate(tokens[:IMAGE_TOKEN])} | {"<image>": IMAGE_TOKEN}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in PALIGEMMA_SPECIALS + ["<image>"]])
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    fast.padding_side = "left"
    model = tiny_model("paligemma", seed)
    images = SiglipImageProcessorPil(size={"height": 56, "width": 56})
    images.image_seq_length = model.config.text_config.num_image_tokens  # 56 px / patch 14: 4 x 4 = 16
    model.generation_config.eos_token_id = 1  # <eos>
    model.generation_config.pad_token_id = 0
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    PaliGemmaProcessor(image_processor=images, tokenizer=fast).save_pretrained(out)
    return out


def write_tiny_sae(out: Path, d_in: int, d_sae: int = 64, k: int = 4, layer: int = 1, seed: int = 0) -> Path:
    """A random TopK SAE with unit-norm decoder columns, in the dictionary_learning format."""
    gen = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_in, d_sae, generator=gen)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    state = {
        "encoder.weight": W_dec.T.clone(), "encoder.bias": torch.zeros(d_sae),
        "decoder.weight": W_dec, "b_dec": torch.zeros(d_in), "k": torch.tensor(k), "threshold": torch.tensor(-1.0),
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "ae.pt")
    config = {"trainer": {"dict_class": "AutoEncoderTopK", "activation_dim": d_in, "dict_size": d_sae, "k": k,
                          "layer": layer, "lm_name": "tiny-gemma3", "submodule_name": f"enc_res_out_layer_{layer}"}}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def write_tiny_world(out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny Gemma-3 (model + processor) and a matching random SAE under ``out``."""
    model = tiny_model("gemma3", seed)
    model.generation_config.eos_token_id = [1, 5]  # <eos>, <end_of_turn>
    model.generation_config.pad_token_id = 0
    model_dir, sae_dir = out / "model", out / "sae"
    model.save_pretrained(model_dir)
    tiny_processor().save_pretrained(model_dir)
    write_tiny_sae(sae_dir, d_in=model.config.vision_config.hidden_size, seed=seed)
    return model_dir, sae_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write model/ and sae/ into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model_dir, sae_dir = write_tiny_world(args.out, args.seed)
    print(f"model: {model_dir}\nsae:   {sae_dir}")


if __name__ == "__main__":
    main()
