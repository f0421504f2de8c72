"""Build the toy Gemma-3 VLM from a VLMConfig and the toy processor's vocabulary."""

from __future__ import annotations

import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3Processor,
    Gemma3TextConfig,
    GenerationConfig,
    SiglipVisionConfig,
)

from steering.toy.build.config import VLMConfig
from steering.toy.build.processor import END_TURN


def gemma3_config(cfg: VLMConfig, processor: Gemma3Processor) -> Gemma3Config:
    """A small Gemma3Config whose token ids match ``processor``'s tokenizer."""
    tok = processor.tokenizer
    vision = SiglipVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_mlp,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        vision_use_head=False,
    )
    text = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_mlp,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_kv_heads,
        head_dim=cfg.text_hidden // cfg.text_heads,
        query_pre_attn_scalar=cfg.text_hidden // cfg.text_heads,
        max_position_embeddings=512,
        sliding_window=512,
        layer_types=["full_attention"] * cfg.text_layers,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=cfg.mm_tokens_per_image,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
        image_token_index=tok.image_token_id,
    )


def build_model(cfg: VLMConfig, processor: Gemma3Processor, seed: int) -> Gemma3ForConditionalGeneration:
    """A freshly initialised toy VLM.

    Gemma-3 initialises the multimodal projector to zeros, which would hide the image from the
    language model until the projector gets gradient through an all-zero path; give it a small
    random start instead.
    """
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(gemma3_config(cfg, processor))
    proj = model.model.multi_modal_projector.mm_input_projection_weight  # [d_vision, d_text]
    with torch.no_grad():
        proj.normal_(0.0, cfg.vision_hidden**-0.5)
    if cfg.dc_scale > 0:
        _add_constant_component(model, cfg, seed)
    tok = processor.tokenizer
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=24,
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids(END_TURN)],
    )
    return model


def _add_constant_component(model: Gemma3ForConditionalGeneration, cfg: VLMConfig, seed: int) -> None:
    """Set the patch embedding's bias to a fixed random vector ``dc_scale`` times the mean patch-embedding
    norm at init, and freeze it (see VLMConfig.dc_scale)."""
    import numpy as np

    from steering.toy import activations, scenes

    emb = model.model.vision_tower.embeddings.patch_embedding
    rng = np.random.default_rng(seed)
    px = activations.pixels([scenes.render(scenes.sample_scene(rng), cfg.image_size) for _ in range(16)])
    with torch.no_grad():
        content = (emb(px) - emb.bias[None, :, None, None]).flatten(2).norm(dim=1).mean()
        gen = torch.Generator().manual_seed(seed + 17)
        direction = torch.randn(emb.bias.shape, generator=gen)
        emb.bias.copy_(direction / direction.norm() * content * cfg.dc_scale)
    emb.bias.requires_grad_(False)
