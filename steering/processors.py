"""Load a VLM's processor (for images only where its video processor needs a missing package, such as
torchvision) and check its chat template before the weights load."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
from pathlib import Path
from typing import Any

from steering.errors import ChatTemplateError, ModelLoadError

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
    packages = _packages(missing, model_type)
    verb = "is" if len(packages) == 1 else "are"
    raise ModelLoadError(
        f"the {model_type} processor of {model_id!r} needs {' and '.join(packages)}, which {verb} not installed: "
        f"pip install {' '.join(packages)}"
    ) from missing


PROBE_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]},
]
"""A conversation shaped as every probe's is (one image, then text): what ``check_chat_template`` renders."""

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json", "tokenizer_config.json")
"""Where a model folder keeps its chat template, in the order transformers prefers them."""


def render_chat(processor: Any, messages: list[dict[str, Any]], model_id: str) -> str:
    """``messages`` rendered by the processor's chat template, with the generation prompt.

    A template is data from the model folder, run in jinja2's sandbox: whatever it raises there (a
    SecurityError for an unsafe attribute, an OverflowError for a huge ``range()``, a syntax error, a
    ``raise_exception``) is the template's fault and becomes a ChatTemplateError naming where it lives.
    """
    try:
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the template's code
        what, fix = _template(model_id)
        raise ChatTemplateError(f"{what} fails ({type(exc).__name__}: {_first_line(exc)[:200]}): {fix}") from exc


def check_chat_template(processor: Any, model_id: str) -> None:
    """Render the processor's chat template once on a probe-shaped prompt and encode it with a blank image,
    so a broken template is refused before the weights load rather than at every probe (no template:
    nothing to check; the processor then places the image tokens itself)."""
    from steering.images import DEFAULT_SIZE, base_image

    if not getattr(processor, "chat_template", None):
        return
    text = render_chat(processor, PROBE_MESSAGES, model_id)
    try:
        processor(text=[text], images=[[base_image("white", DEFAULT_SIZE)]], return_tensors="pt")
    except ValueError as exc:  # e.g. a template that leaves out the image: the placeholder count is off
        what, fix = _template(model_id)
        raise ChatTemplateError(f"the processor refuses the prompt {what} writes ({_first_line(exc)[:200]}): "
                                f"{fix}") from exc


def _template(model_id: str) -> tuple[str, str]:
    """(the chat template of ``model_id``, with the file of a local folder that holds it; how to mend it)."""
    folder = Path(model_id).expanduser()
    for name in TEMPLATE_FILES if folder.is_dir() else ():
        path = folder / name
        try:
            if path.is_file() and (name.endswith(".jinja") or "chat_template" in path.read_text()):
                return f"the chat template of {model_id!r} ({path})", f"fix {path} or download the model again"
        except (OSError, ValueError):
            continue
    return f"the chat template of {model_id!r}", "fix the model's chat template or download the model again"


def _image_only_class(model_type: str) -> type | None:
    """The family's processor class with its video processor left out (None if it has none to leave out)."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    try:
        # A processor that needs a missing package is a placeholder that raises on first use (Mistral3's
        # PixtralProcessor without torchvision): it has no image-only form either.
        base = getattr(transformers, name, None) if isinstance(name, str) else None
        attributes = base.get_attributes() if base is not None else []
    except ImportError:
        return None
    if base is None or not any("video" in a for a in attributes):
        return None
    video = inspect.signature(base.__init__).parameters.get("video_processor")
    if video is not None and video.default is inspect.Parameter.empty:
        return None  # a video processor its __init__ cannot do without (SmolVLM's)
    kept = [a for a in attributes if "video" not in a]
    # ProcessorMixin builds and type-checks exactly the sub-processors get_attributes names; the
    # family's own __init__ passes video_processor=None through, and video code runs only for videos.
    return type(f"{base.__name__}ImagesOnly", (base,), {"get_attributes": classmethod(lambda _cls: list(kept))})


_ALSO_NEEDS: dict[str, tuple[str, ...]] = {"smolvlm": ("num2words",)}
"""Packages a family's processor needs besides the one its first ImportError names (transformers' processor
code checks them one at a time, so a user would otherwise install them one failed load at a time)."""


def _package(exc: ImportError) -> str:
    """The pip package an ImportError asks for (transformers says "requires the Torchvision library", or
    "Package `num2words` is required")."""
    match = re.search(r"requires the (\S+) librar|[Pp]ackage `([^`]+)` is required|pip install (\S+)", str(exc))
    if match:
        return next(g for g in match.groups() if g).strip("`'\".").lower()
    return (getattr(exc, "name", None) or "the missing package").split(".")[0]


def _packages(exc: ImportError, model_type: str) -> list[str]:
    """Every package to install: the one ``exc`` names, then the family's others that are not importable."""
    first = _package(exc)
    others = [p for p in _ALSO_NEEDS.get(model_type, ()) if p != first and importlib.util.find_spec(p) is None]
    return [first, *others]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
