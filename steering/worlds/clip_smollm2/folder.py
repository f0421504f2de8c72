"""The LLaVA folder: CLIP's tower and SmolLM2 joined by a LLaVA projector, with a processor and chat template,
written the way ``LlavaForConditionalGeneration.save_pretrained`` writes it.

Resolution and image tokens: by default CLIP's own 224 px and all 14 x 14 = 196 patch tokens of the
penultimate layer (``vision_feature_layer=-2``; ``vision_feature_select_strategy='default'`` drops the class
token), as LLaVA-1.5 uses CLIP: the size the encoder was trained at, and 196 tokens before a 135M language
model still run on a CPU. ``image_size=112`` (49 tokens, position embeddings resampled once in
clip_onnx.at_resolution) cuts the language model's prefill and a projector's training about threefold, at
some cost to CLIP's features; a trained projector records the size it was trained at.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from steering.worlds.clip_smollm2.errors import WorldError

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
FEATURE_LAYER = -2
SELECT_STRATEGY = "default"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}<|im_start|>system\n" + SYSTEM + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}" + IMAGE_TOKEN + "\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""SmolLM2-Instruct's ChatML (with its default system turn), an image part written as ``<image>`` and a line break."""
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def image_tokens(image_size: int, patch_size: int) -> int:
    """Image tokens per image: the patch grid (the class token is dropped by the 'default' strategy)."""
    return (image_size // patch_size) ** 2


def llava_config(clip: dict[str, Any], text: dict[str, Any], image_token_id: int) -> Any:
    """The LlavaConfig joining ``clip`` (CLIPVisionConfig fields) and ``text`` (LlamaConfig fields)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(**clip)
    language = LlamaConfig(**{**text, "vocab_size": image_token_id + 1})
    return LlavaConfig(
        vision_config=vision.to_dict(), text_config=language.to_dict(), image_token_index=image_token_id,
        image_seq_length=image_tokens(vision.image_size, vision.patch_size), projector_hidden_act="gelu",
        vision_feature_layer=FEATURE_LAYER, vision_feature_select_strategy=SELECT_STRATEGY,
        multimodal_projector_bias=True, tie_word_embeddings=bool(text.get("tie_word_embeddings")),
    )


def image_processor(size: int) -> Any:
    """CLIP's preprocessing at ``size`` px: shortest side resized (bicubic), centre crop, CLIP mean/std (the
    PIL implementation: no torchvision needed)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True,
        do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True, image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def build_processor(tokenizer: Any, clip: dict[str, Any]) -> Any:
    """A LlavaProcessor: CLIP's image processor (PIL: no torchvision needed) and the SmolLM2 tokenizer with
    ``<image>`` added as a special token after its vocabulary."""
    from tokenizers import AddedToken
    from transformers import LlavaProcessor

    images = image_processor(clip["image_size"])
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    # Saved from init_kwargs: batched generation appends after the prompt; the model reads 8192 positions.
    tokenizer.init_kwargs.update(padding_side="left", model_max_length=8192)
    for junk in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(junk, None)
    tokenizer.padding_side, tokenizer.model_max_length = "left", 8192
    tokenizer.chat_template = CHAT_TEMPLATE
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=clip["patch_size"],
                          vision_feature_select_strategy=SELECT_STRATEGY, chat_template=CHAT_TEMPLATE,
                          image_token=IMAGE_TOKEN, num_additional_image_tokens=1)


def llava_state(clip: dict[str, torch.Tensor], text: dict[str, torch.Tensor],
                projector: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LlavaForConditionalGeneration's parameters under its module names, the embedding grown by one zero row
    for ``<image>`` (its input embedding is always replaced by image features; a zero row as output logit
    leaves the image token at logit 0, far below any word the model would write)."""
    state = {f"model.vision_tower.{k.removeprefix('vision_model.')}": v
             for k, v in clip.items() if k.startswith("vision_model.")}
    state.update({f"model.multi_modal_projector.{k}": v for k, v in projector.items()})
    for k, v in text.items():
        if k == "model.embed_tokens.weight":
            v = torch.cat([v, v.new_zeros(1, v.shape[1])])  # [vocab + 1, hidden]
        state[k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k] = v
    return state


def write_folder(out: Path, clip_state: dict[str, torch.Tensor], clip_config: dict[str, Any], lm: Any,
                 projector: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write the LLaVA folder into ``out`` (config, safetensors, generation config, processor, chat template);
    returns the facts the manifest records."""
    from transformers import GenerationConfig, LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    processor = build_processor(lm.tokenizer, clip_config)
    image_token_id = processor.image_token_id
    vocab = lm.state["model.embed_tokens.weight"].shape[0]
    if image_token_id != vocab:
        raise WorldError(f"the tokenizer put {IMAGE_TOKEN} at id {image_token_id}, not after its {vocab} words")
    config = llava_config(clip_config, lm.config, image_token_id)
    state = llava_state(clip_state, lm.state, projector)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if k not in ("lm_head.weight",)]  # tied to the embedding
    if missing or unexpected:
        raise WorldError(f"the joined weights do not fit LlavaForConditionalGeneration (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    model.tie_weights()
    tokenizer = processor.tokenizer
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
        else tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"image_token_id": image_token_id, "image_seq_length": config.image_seq_length,
            "vision_feature_layer": FEATURE_LAYER, "parameters": sum(v.numel() for v in state.values())}
