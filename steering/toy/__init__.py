"""The bundled toy world: a small Gemma-3 VLM and a TopK SAE trained on synthetic scenes, with ground truth.

Everything here is shipped under ``steering/toy/data/`` and rebuilt by
``python -m steering.toy.build --seed 0``. Importing this package does not import torch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from steering.toy.naming import named_values, names_value

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_ID = "steer-interp/toy-gemma3"
"""Name the toy model goes by in configs and cache keys (``lm_name`` of the SAE)."""

__all__ = [
    "DATA_DIR",
    "MODEL_ID",
    "ground_truth",
    "ground_truth_meta",
    "is_available",
    "model_dir",
    "named_values",
    "names_value",
    "sae_dir",
]


def model_dir() -> Path:
    """Folder holding the toy VLM and its processor (``AutoModelForImageTextToText`` / ``AutoProcessor``)."""
    return DATA_DIR / "model"


def sae_dir() -> Path:
    """Folder holding the toy SAE (``ae.pt`` + ``config.json``) and ``ground_truth.json``."""
    return DATA_DIR / "sae"


def is_available() -> bool:
    """True when the shipped model, SAE and ground truth are all present."""
    m, s = model_dir(), sae_dir()
    return (
        (m / "config.json").is_file()
        and (m / "model.safetensors").is_file()
        and (m / "processor_config.json").is_file()
        and (s / "ae.pt").is_file()
        and (s / "config.json").is_file()
        and (s / "ground_truth.json").is_file()
    )


@lru_cache(maxsize=4)
def _ground_truth(path: str) -> dict[int, dict]:
    from steering.toy import truth as gt

    return gt.load(Path(path))


def ground_truth(path: Path | None = None) -> dict[int, dict]:
    """feature -> {"family", "value", "purity", ...} for the toy SAE (or the SAE folder ``path``).

    The dict is cached and shared: copy it before changing it.
    """
    return _ground_truth(str(path or sae_dir()))


def ground_truth_meta(path: Path | None = None) -> dict:
    """What the build recorded beside the ground truth: layer, hidden-state norm, strength schedule."""
    from steering.toy import truth as gt

    return gt.load_meta(Path(path or sae_dir()))
