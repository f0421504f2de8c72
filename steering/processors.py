"""Load a VLM's processor for images only, so video-processor dependencies (torchvision) stay optional."""

from __future__ import annotations

import logging
import re
from typing import Any

from steering.errors import ModelLoadError

log = logging.getLogger(__name__)

_LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)
"""What a processor folder that is missing, malformed or of an unknown kind raises while loading."""


def load_processor(model_id: str, model_type: str, revision: str | None = None) -> Any:
    """The model's processor; where a video processor cannot be built, the same processor without it.

    Qwen2.5-VL, InternVL 3 and LLaVA-OneVision build a video processor that needs torchvision; steering
    only ever feeds images, so the image processor and tokenizer are all it needs.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_id, revision=revision)
    except ImportError as exc:
        missing = exc
    except _LOAD_ERRORS as exc:
        raise ModelLoadError(f"cannot load the processor for {model_id!r}: {_first_line(exc)}") from exc
    cls = _image_only_class(model_type)
    if cls is not None:
        try:
            processor = cls.from_pretrained(model_id, revision=revision)
        except ImportError as exc:
            missing = exc
        except _LOAD_ERRORS as exc:
            raise ModelLoadError(f"cannot load the processor for {model_id!r}: {_first_line(exc)}") from exc
        else:
            log.info("loaded the %s processor without its video processor (%s)", model_type, _package(missing))
            return processor
    package = _package(missing)
    raise ModelLoadError(
        f"the processor of {model_id!r} needs {package}, which is not installed: pip install {package}"
    ) from missing


def _image_only_class(model_type: str) -> type | None:
    """The family's processor class with its video processor left out (None if it has none to leave out)."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    base = getattr(transformers, name, None) if isinstance(name, str) else None
    if base is None or not any("video" in a for a in base.get_attributes()):
        return None
    kept = [a for a in base.get_attributes() if "video" not in a]
    # ProcessorMixin builds and type-checks exactly the sub-processors get_attributes names; the
    # family's own __init__ passes video_processor=None through, and video code runs only for videos.
    return type(f"{base.__name__}ImagesOnly", (base,), {"get_attributes": classmethod(lambda _cls: list(kept))})


def _package(exc: ImportError) -> str:
    """The pip package an ImportError asks for (transformers says "requires the Torchvision library")."""
    match = re.search(r"requires the (\S+) librar", str(exc))
    if match:
        return match.group(1).lower()
    return (getattr(exc, "name", None) or "the missing package").split(".")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
