"""Ground truth shipped with an SAE (a ``ground_truth.json`` in its folder): the one lookup that run, export, the
TUI (through agent.groundtruth.ground_truth_for) and eval share."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from steering.revisions import content_revision, is_local_revision

log = logging.getLogger(__name__)

GROUND_TRUTH_FILE = "ground_truth.json"


class TruthError(ValueError):
    """A ground-truth file is missing or malformed."""


def load_truth(path: str | Path) -> dict[int, dict[str, Any]]:
    """feature -> {family, value, purity, ...} from a ground-truth file (or a folder holding one).

    The format is the toy world's: ``{"features": {"12": {"family": "colour", "value": "red",
    "purity": 0.95}, ...}}`` (a bare ``{"12": {...}}`` mapping works too).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / GROUND_TRUTH_FILE
    try:
        payload = json.loads(p.read_text())
    except FileNotFoundError:
        raise TruthError(f"no ground truth at {p}") from None
    except json.JSONDecodeError as exc:
        raise TruthError(f"{p} is not valid JSON ({exc})") from None
    table = payload.get("features", payload) if isinstance(payload, dict) else None
    if not isinstance(table, dict):
        raise TruthError(f"{p}: expected an object of feature -> {{family, value, purity}}")
    out: dict[int, dict[str, Any]] = {}
    for k, v in table.items():
        try:
            f = int(k)
        except ValueError:
            raise TruthError(f"{p}: feature id {k!r} is not a whole number") from None
        if not isinstance(v, dict) or "value" not in v or "family" not in v:
            raise TruthError(f"{p}: feature {k} needs 'family' and 'value'")
        out[f] = {**v, "purity": float(v.get("purity", 1.0))}
    return out


def truth_for_sae(sae: str | None, layer: int | None = None,
                  sae_revision: str | None = None) -> dict[int, dict[str, Any]] | None:
    """feature -> {family, value, purity, ...} for the SAE ``sae`` run at ``layer``, else None.

    The truth is the ``ground_truth.json`` in the SAE's folder (the toy world and planted dictionaries ship one).
    ``sae_revision``: the fingerprint of the files that ran (steering.revisions; None: whatever is at ``sae``
    now). Files that no longer match it (retrained since) get none, and files with the toy SAE's fingerprint get
    the toy world's truth wherever they are. ``layer``: the layer the SAE runs at (None: its own); truth
    measured at another layer is refused.
    """
    folder = _truth_folder(sae, sae_revision)
    if folder is None:
        return None
    try:
        measured_at = truth_layer(folder)
        if layer is not None and measured_at is not None and layer != measured_at:
            log.warning("no ground truth: the SAE's truth was measured at layer %s, not %s", measured_at, layer)
            return None
        return load_truth(folder)
    except TruthError as exc:
        log.warning("ignoring ground truth beside the SAE: %s", exc)
        return None


def _truth_folder(sae: str | None, sae_revision: str | None) -> Path | None:
    """The folder whose ground-truth file describes the SAE files that ran, if any."""
    folder = Path(str(sae)).expanduser() if sae else None
    fingerprinted = is_local_revision(sae_revision)
    try:
        if folder is not None and (folder / GROUND_TRUTH_FILE).is_file() \
                and (not fingerprinted or content_revision(folder) == sae_revision):
            return folder
        if fingerprinted:
            from steering import toy

            toy_dir = toy.sae_dir()
            if (toy_dir / GROUND_TRUTH_FILE).is_file() and sae_revision == _toy_sae_revision(str(toy_dir)):
                return toy_dir
    except OSError as exc:  # a folder mid-build or unreadable: no truth rather than no run
        log.debug("no ground truth for %s: %s", sae, exc)
    return None


@lru_cache(maxsize=2)
def _toy_sae_revision(path: str) -> str:
    return content_revision(path)


def truth_layer(path: str | Path) -> int | None:
    """The layer a ground-truth file (or the folder holding one) says its features were measured at."""
    p = Path(path).expanduser()
    p = p / GROUND_TRUTH_FILE if p.is_dir() else p
    try:
        meta = json.loads(p.read_text()).get("meta")
    except (OSError, ValueError, AttributeError) as exc:
        raise TruthError(f"{p} is not a ground-truth object ({exc.__class__.__name__})") from None
    layer = meta.get("layer") if isinstance(meta, dict) else None
    return layer if isinstance(layer, int) and not isinstance(layer, bool) else None


def families_of(truth: dict[int, dict[str, Any]]) -> dict[str, list[str]]:
    """Every value of each attribute family: the toy world's full lists, plus any value the truth names."""
    out: dict[str, list[str]] = {}
    try:
        from steering.toy.scenes import FAMILIES

        out = {fam: list(vals) for fam, vals in FAMILIES.items()}
    except ImportError:  # pragma: no cover
        pass
    for v in truth.values():
        fam, val = v.get("family"), v.get("value")
        if fam is None or val is None:
            continue
        vals = out.setdefault(str(fam), [])
        if str(val) not in vals:
            vals.append(str(val))
    return out
