"""The command that resumes a run the user quit in the middle of (printed when the app is gone)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.judges.config import DEFAULT_KEY_ENV
from agent.run.features import format_features

__all__ = ["resume_command", "stopped_message"]


def _path(path: str | Path) -> str:
    """``path`` relative to the working folder when inside it, else absolute (no ``~``: it would be quoted)."""
    p = Path(path).expanduser().absolute()
    try:
        return str(p.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(p)


def resume_command(features: Sequence[int], store: str | Path | None, world: Any = None, judge: Any = None,
                   extra: Sequence[str] = ()) -> str:
    """``steer-agent`` with the run's features, store, world and judge (the URL without credentials; the key
    stays in its environment variable), ready to paste: finished features are skipped."""
    from agent.judges.openai_chat import safe_url

    words = ["steer-agent", "--features", format_features(sorted(features)) or "all"]
    if store is not None:
        words += ["--store", _path(store)]
    for flag, value in (("--model", getattr(world, "model", None)), ("--sae", getattr(world, "sae", None)),
                        ("--layer", getattr(world, "layer", None)), ("--revision", getattr(world, "revision", None))):
        if value is not None:
            words += [flag, str(value)]
    kind = getattr(judge, "kind", None)
    if kind == "offline":
        words += ["--judge", "offline"]
    elif kind == "openai":
        words += ["--judge", "openai"]
        if judge.model:
            words += ["--judge-model", judge.model]
        if judge.base_url:
            words += ["--judge-base-url", str(safe_url(judge.base_url))]
        if judge.api_key_env != DEFAULT_KEY_ENV:
            words += ["--judge-api-key-env", judge.api_key_env]
    return " ".join(shlex.quote(w) for w in [*words, *extra])


def stopped_message(title: str, stats: Any, command: str | None) -> str:
    """What the app prints when the user quits during a run: how far it got, and the command that resumes it."""
    done = f"{stats.done + stats.failed} of {stats.to_run} features finished" if stats is not None else \
        "nothing finished yet"
    line = f"{title} stopped: {done}; finished features are stored."
    if command is None:
        return line + " Start the same run again in steer-tui (s) to resume: finished features are skipped."
    return f"{line} To resume (finished features are skipped):\n  {command}"
