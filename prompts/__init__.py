"""Versioned prompt templates, kept as data files and rendered strictly.

Each template is a Jinja2 file whose first line is a Jinja comment holding JSON metadata,
at least ``{"version": N}``. Rendering fails on any undefined variable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

_HEADER = re.compile(r"^\{#\s*(\{.*?\})\s*#\}\n", re.DOTALL)
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class PromptError(ValueError):
    """A template is missing, malformed, or was rendered with missing variables."""


@dataclass(frozen=True)
class Template:
    """One prompt template: its id, version, metadata and Jinja source."""

    name: str
    version: int
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """Stable reference for cache keys, e.g. ``vlm_describe@v1``."""
        return f"{self.name}@v{self.version}"

    def render(self, **variables: Any) -> str:
        try:
            return _ENV.from_string(self.source).render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise PromptError(f"prompt {self.ref}: {exc}; pass that variable to render()") from exc


def available() -> list[str]:
    """Names of every bundled template."""
    return sorted(p.name[:-3] for p in resources.files(__package__).iterdir() if p.name.endswith(".j2"))


@lru_cache(maxsize=None)
def load(name: str) -> Template:
    """Load the bundled template ``name`` (file ``prompts/<name>.j2``)."""
    path = resources.files(__package__) / f"{name}.j2"
    if not path.is_file():
        raise PromptError(f"no prompt template {name!r}; available: {', '.join(available())}")
    text = path.read_text(encoding="utf-8")
    match = _HEADER.match(text)
    if not match:
        raise PromptError(f"prompt {name!r} lacks its metadata line '{{# {{\"version\": N}} #}}'")
    meta = json.loads(match.group(1))
    if not isinstance(meta.get("version"), int):
        raise PromptError(f"prompt {name!r}: metadata needs an integer 'version'")
    return Template(name=name, version=meta["version"], source=text[match.end():], meta=meta)
