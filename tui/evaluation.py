"""An evaluation report loaded for the TUI (no textual): its metrics, headline and per-feature verdicts.

``load_report`` reads the ``metrics.json`` that ``steer-agent eval --report DIR`` writes, and
``EvalReport.verdict`` gives one feature's ground truth and which modes named it (tui.eval_tables
turns the rest into tables). Every key of the metrics is treated as optional: files written by older
versions lack the newer ones, and a file without ground truth has no bar, modes or families.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.eval.report import METRICS, MODE_ORDER, bundled_world, planted_seeds, short_path
from agent.world import world_differences
from tui.services import display_path


class ReportError(ValueError):
    """A path that holds no readable evaluation metrics; the message is one line for the user."""


def ordered(keys: Iterable[str]) -> list[str]:
    """Modes in the report's order, then any others (newer modes, older names) alphabetically."""
    keys = list(keys)
    return [k for k in MODE_ORDER if k in keys] + sorted(k for k in keys if k not in MODE_ORDER)


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


@dataclass(eq=False)
class EvalReport:
    """The metrics of one evaluation and where they were read from."""

    path: Path
    metrics: dict[str, Any]
    _per_feature: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for entry in self.metrics.get("per_feature") or []:
            if isinstance(entry, dict) and isinstance(entry.get("feature"), int):
                self._per_feature[entry["feature"]] = entry

    @property
    def world(self) -> dict[str, Any]:
        return _d(self.metrics.get("world"))

    def header_lines(self) -> list[str]:
        """Where the numbers come from: the file with the seed and digest, the world, the features."""
        m, w, feats = self.metrics, self.world, _d(self.metrics.get("features"))
        first = [display_path(self.path)]
        cfg = _d(m.get("config"))
        if "seed" in cfg:
            first.append(f"seed {cfg['seed']}")
        if m.get("digest"):
            first.append(f"digest {m['digest']}")
        lines = [" · ".join(first)]
        if w:  # the report's own names for the world: never the absolute paths of the machine that ran it
            lines.append(bundled_world(w, planted_seeds(m), code="")
                         or f"model {short_path(w.get('model'))}, SAE {short_path(w.get('sae'))}, "
                            f"layer {w.get('layer', '?')}")
        if feats:
            fams = _d(feats.get("by_family"))
            fam = f" ({', '.join(f'{k} {v}' for k, v in fams.items())})" if fams else ""
            lines.append(f"{feats.get('n', '?')} of {feats.get('requested', '?')} features evaluated{fam}")
        return lines

    def verdict(self, feature: int) -> dict[str, Any] | None:
        """The feature's ground truth and the modes that named it, or None when the report lacks it."""
        entry = self._per_feature.get(feature)
        if entry is None or "family" not in entry:
            return None
        modes = [k for k in ordered(set(_d(entry.get("word"))) | set(_d(entry.get("embedding"))))
                 if not k.startswith("random")]
        return {"family": entry.get("family"), "value": entry.get("value"), "purity": entry.get("purity"),
                "words": [k for k in modes if _d(entry.get("word")).get(k)],
                "embedding": [k for k in modes if _d(entry.get("embedding")).get(k)],
                "has_embedding": any(v is not None for v in _d(entry.get("embedding")).values()),
                "modes": modes}

    def verdict_line(self, feature: int) -> str | None:
        v = self.verdict(feature)
        if v is None:
            return None
        purity = f" (purity {v['purity']:g})" if isinstance(v["purity"], (int, float)) else ""
        line = f"eval: truth {v['family']}={v['value']}{purity} · by words: {', '.join(v['words']) or 'none'}"
        if v["has_embedding"]:
            same = v["embedding"] == v["words"]
            line += f" · by embedding: {'same' if same else ', '.join(v['embedding']) or 'none'}"
        return line


def load_report(path: str | Path) -> EvalReport:
    """Read a report folder's ``metrics.json`` (or that file itself); raises ReportError."""
    p = Path(path).expanduser()
    if not str(path).strip():
        raise ReportError("give a report folder or a metrics.json file")
    if p.is_dir():
        p = p / METRICS
        if not p.is_file():
            raise ReportError(f"{path} has no {METRICS} (write one with steer-agent eval --report {path})")
    elif not p.exists():
        raise ReportError(f"{path}: no such file or folder")
    try:
        metrics = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not isinstance(metrics, dict) or not any(k in metrics for k in ("modes", "forced_choice", "bar")):
        raise ReportError(f"{p} holds no evaluation metrics (no modes, bar or forced choice)")
    return EvalReport(p, metrics)


def same_world(report: dict[str, Any] | None, store: dict[str, Any] | None) -> bool:
    """Whether a report and a store are about the same SAE (unknown counts as the same), by the rule
    agent.world.same_world and Store.bind_world apply (world_differences), over what both record.

    A report names a local SAE without its machine's absolute path (relative to the repository, or by its last
    folders; older reports kept the path): where both record the SAE's content fingerprint (``sae_revision``)
    that decides, else an SAE folder of the same name counts as the store's. What the report does not record
    is left open.
    """
    if not report or not store:
        return True
    want = {k: report.get(k) if store.get(k) is not None else None
            for k in ("sae", "sae_revision", "revision", "layer")}
    if want["sae"] is not None and Path(str(want["sae"])).name == Path(str(store["sae"])).name:
        want["sae"] = store["sae"]
    return not world_differences(store, want, wildcards=True)
