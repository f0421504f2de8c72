"""Ground truth where the world knows it (the bundled toy world), and whether a text names it."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PURE = 0.9
"""Purity at or above which a feature counts as pure (stands for one attribute value)."""


def ground_truth_for(world: dict[str, Any]) -> dict[int, dict[str, Any]] | None:
    """feature -> {family, value, purity, ...} when ``world``'s SAE is the toy world's, else None."""
    try:
        from steering import toy

        if not toy.is_available():
            return None
        sae = world.get("sae")
        if not sae or Path(str(sae)).expanduser().resolve() != toy.sae_dir().resolve():
            return None
        return {int(k): dict(v) for k, v in toy.ground_truth().items()}
    except Exception as exc:  # noqa: BLE001 - the toy world is optional and may be mid-build
        log.debug("no ground truth: %s", exc)
        return None


def names_truth(text: str | None, truth: dict[str, Any] | None) -> bool | None:
    """Whether ``text`` names the ground-truth value (None when there is no value to name)."""
    if not truth or truth.get("value") is None:
        return None
    if not text:
        return False
    value, family = str(truth["value"]), truth.get("family")
    try:
        from steering.toy import names_value

        return bool(names_value(text, value, family))
    except ImportError:
        return re.search(rf"\b{re.escape(value.lower())}\b", text.lower()) is not None


def score(records: list[Any], truth: dict[int, dict[str, Any]], pure: float = PURE) -> dict[str, Any]:
    """How many explanations name their feature's ground truth, over all and over pure features."""
    hits = total = pure_hits = pure_total = 0
    for r in records:
        t = truth.get(r.feature)
        hit = names_truth(r.final_explanation if r.status == "done" else None, t)
        if hit is None:
            continue
        total += 1
        hits += hit
        if float(t.get("purity", 0)) >= pure:
            pure_total += 1
            pure_hits += hit
    return {"named": hits, "known": total, "pure_named": pure_hits, "pure_known": pure_total, "purity": pure}
