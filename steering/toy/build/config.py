"""Typed configuration of the toy world: model sizes, training schedules, SAE, at two scales."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class VLMConfig:
    """Sizes of the toy Gemma-3 VLM."""

    image_size: int = 64
    """Side of the square input image in pixels."""
    patch_size: int = 8
    """Vision patch side; the grid is (image_size / patch_size)^2 patches."""
    mm_tokens_per_image: int = 16
    """Image tokens the language model sees (the projector average-pools the patch grid to this)."""
    vision_hidden: int = 128
    """Width of the SigLIP vision encoder's residual stream (the SAE's activation_dim)."""
    vision_layers: int = 6
    """Vision encoder layers."""
    vision_heads: int = 4
    """Attention heads per vision layer."""
    vision_mlp: int = 384
    """Hidden size of each vision MLP."""
    text_hidden: int = 128
    """Width of the Gemma-3 language model."""
    text_layers: int = 2
    """Language model layers."""
    text_heads: int = 4
    """Query heads per language model layer."""
    text_kv_heads: int = 2
    """Key/value heads per language model layer (grouped-query attention)."""
    text_mlp: int = 384
    """Hidden size of each language model MLP."""
    dc_scale: float = 0.0
    """Experiment (0: off): a constant vector this many times the mean patch-embedding norm at init is
    added to every patch (the patch embedding's bias, frozen). Real ViTs carry large constant components
    in the residual stream; steering far past a feature's size drowns them, which is one reason a real
    VLM's text breaks down there."""


@dataclass(frozen=True)
class TrainConfig:
    """Schedule of the VLM's training run."""

    steps: int = 2000
    """Optimiser steps; every step draws a fresh batch of scenes."""
    batch_size: int = 32
    """Scenes per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to 5%)."""
    warmup: int = 60
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices (not on embeddings, norms and biases)."""
    ask_share: float = 0.2
    """Share of examples that are targeted questions (vlm_ask) instead of the describe prompt."""
    aux_weight: float = 0.5
    """Weight of the training-only attribute heads on the vision output (deep supervision)."""
    topk_share: float = 0.15
    """Share of steps that train on the top-k prompt (sets of masked images sharing a value)."""
    topk_sets: int = 8
    """Top-k examples per top-k step (each shows ``topk_data.N_IMAGES`` images)."""


@dataclass(frozen=True)
class SAEConfig:
    """The TopK SAE on the vision encoder's residual stream."""

    layer: int = 3
    """Hooked vision encoder layer: the SAE reads the output of ``encoder.layers[layer]``."""
    dict_size: int = 256
    """Number of latents."""
    k: int = 4
    """Latents kept per activation (TopK)."""
    n_scenes: int = 6000
    """Scenes whose patch activations train the SAE."""
    steps: int = 1500
    """Optimiser steps."""
    batch_size: int = 2048
    """Patch activations per step."""
    lr: float = 1e-3
    """Adam learning rate (on activations scaled to unit mean norm)."""
    aux_k: int = 64
    """Dead latents used by the auxiliary loss that revives them."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss."""
    dead_after: int = 200
    """A latent that has not fired for this many steps counts as dead (AuxK loss, re-seeding)."""
    centre: str = "white"
    """Decoder bias: ``white`` (frozen at the white image's mean patch state) or ``median`` (learned)."""


@dataclass(frozen=True)
class ToyConfig:
    """Everything ``python -m steering.toy.build`` needs, besides the seed."""

    vlm: VLMConfig = field(default_factory=VLMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    top_scenes: int = 20
    """Top-activating scenes per feature used to derive its ground truth."""
    gt_scenes: int = 3000
    """Scenes scanned for each feature's top-activating ones."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToyConfig:
        return cls(vlm=VLMConfig(**d["vlm"]), train=TrainConfig(**d["train"]), sae=SAEConfig(**d["sae"]),
                   top_scenes=d["top_scenes"], gt_scenes=d["gt_scenes"])


def scale_config(scale: str) -> ToyConfig:
    """``full``: the shipped world; ``tiny``: the same pipeline in seconds, for tests."""
    if scale == "full":
        return ToyConfig()
    if scale == "tiny":
        return ToyConfig(
            vlm=replace(VLMConfig(), vision_hidden=32, vision_layers=2, vision_heads=2, vision_mlp=64,
                        text_hidden=32, text_layers=1, text_heads=2, text_kv_heads=1, text_mlp=64),
            train=replace(TrainConfig(), steps=3, batch_size=4, warmup=1),
            sae=replace(SAEConfig(), layer=0, dict_size=64, k=4, n_scenes=32, steps=5, batch_size=256),
            top_scenes=5,
            gt_scenes=40,
        )
    raise ValueError(f"unknown scale {scale!r}: use 'tiny' or 'full'")
