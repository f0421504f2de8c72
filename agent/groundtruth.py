"""Ground truth where the world knows it (the bundled toy world), and whether a text names it."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from steering.revisions import content_revision, is_local_revision

log = logging.getLogger(__name__)

PURE = 0.9
"""Purity at or above which a feature counts as pure (stands for one attribute value)."""


def ground_truth_for(world: dict[str, Any]) -> dict[int, dict[str, Any]] | None:
    """feature -> {family, value, purity, ...} when ``world`` runs the toy world's SAE at its layer, else None."""
    try:
        from steering import toy

        if not toy.is_available() or not is_toy_sae(world):
            return None
        return {int(k): dict(v) for k, v in toy.ground_truth().items()}
    except Exception as exc:  # noqa: BLE001 - the toy world is optional and may be mid-build
        log.debug("no ground truth: %s", exc)
        return None


def is_toy_sae(world: dict[str, Any]) -> bool:
    """Whether ``world`` (model, sae, sae_revision, layer) steers with the toy SAE at the layer its truth is for.

    The SAE is recognised by the fingerprint of its files (steering.revisions), so a copy in another folder
    counts and a retrained one at the toy path does not; a world recorded before fingerprints existed is
    matched by its path. Another layer gets no truth: the toy SAE's features were measured at its own.
    """
    from steering import toy

    layer, truth_layer = world.get("layer"), toy.ground_truth_meta().get("layer")
    if not isinstance(layer, int) or isinstance(layer, bool) or layer != truth_layer:
        return False
    revision = world.get("sae_revision")
    if is_local_revision(revision):
        return revision == _toy_sae_revision(str(toy.sae_dir()))
    sae = world.get("sae")
    return bool(sae) and Path(str(sae)).expanduser().resolve() == toy.sae_dir().resolve()


@lru_cache(maxsize=2)
def _toy_sae_revision(path: str) -> str:
    return content_revision(path)


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
