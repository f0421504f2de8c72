"""Ground truth where the world knows it (an SAE folder that ships it), and whether a text names it."""

from __future__ import annotations

import re
from typing import Any

from agent.eval.world import truth_for_sae

PURE = 0.9
"""Purity at or above which a feature counts as pure (stands for one attribute value)."""


def ground_truth_for(world: dict[str, Any]) -> dict[int, dict[str, Any]] | None:
    """feature -> {family, value, purity, ...} for the SAE and layer ``world`` (model, sae, sae_revision, layer)
    records, else None: eval's lookup (agent.eval.world.truth_for_sae), so run, export and the TUI show the
    truth eval scores against."""
    return truth_for_sae(world.get("sae"), world.get("layer"), world.get("sae_revision"))


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
