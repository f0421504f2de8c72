"""The stored top-k format: its name, version, tensors and map dtypes."""

from __future__ import annotations

import torch

FORMAT = "steer-interp/topk"
FORMAT_VERSION = 1
TENSORS = ("scores", "ids", "maps", "image_frequency", "patch_frequency", "max_activation")
MAP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
