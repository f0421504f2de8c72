"""Export the store's records as JSON lines, one object per feature."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.groundtruth import ground_truth_for, names_truth
from agent.records import FeatureRecord
from agent.store import RecordUnreadable, Store


def judge_name(judge: dict[str, Any]) -> str:
    if judge.get("kind") == "offline":
        return f"offline-v{judge.get('version', '?')} (not an LLM)"
    backend = judge.get("backend") or {}
    return f"{backend.get('kind', judge.get('kind', '?'))}:{backend.get('model', '?')}"


def export_row(rec: FeatureRecord, truth: dict[int, dict[str, Any]] | None) -> dict[str, Any]:
    world = rec.world or {}
    gt = truth.get(rec.feature) if truth else None
    explanation = rec.final_explanation if rec.status == "done" else None
    return {
        "feature": rec.feature,
        "explanation": explanation,
        "label": rec.final_label if rec.status == "done" else None,
        "confidence": rec.confidence,
        "status": rec.status,
        "review": rec.review.to_dict() if rec.review else None,
        "model": world.get("model"),
        "revision": world.get("revision"),
        "sae": world.get("sae"),
        "sae_revision": world.get("sae_revision"),
        "layer": world.get("layer"),
        "judge": judge_name(rec.judge),
        "prompt_version": ",".join(rec.prompt_versions),
        "judge_explanation": rec.explanation,
        "judge_label": rec.label,
        "hypothesis": rec.hypothesis,
        "forced": rec.forced,
        "error": rec.error,
        "rounds": rec.rounds,
        "n_probes": rec.n_probes,
        "tokens": rec.usage.get("total_tokens", 0),
        "cost_usd": rec.usage.get("cost_usd"),
        "seconds": rec.timings.get("total"),
        "created_at": rec.created_at,
        "run_id": rec.run_id,
        "ground_truth": ({k: gt.get(k) for k in ("family", "value", "purity")} if gt else None),
        "names_ground_truth": names_truth(explanation, gt) if gt else None,
        "image_descriptions": [image_row(i) for i in rec.image_evidence if isinstance(i, dict) and "image" in i],
        "manual_probes": [manual_row(m) for m in rec.manual],
    }


def image_row(item: dict[str, Any]) -> dict[str, Any]:
    """A top-k / hybrid description the judge read."""
    r = item["image"]
    return {"id": item.get("id"), "mode": r.get("mode"), "strength": r.get("strength"), "texts": r.get("texts"),
            "images": r.get("image_names")}


def manual_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A probe a person ran by hand (the TUI's p key)."""
    r = entry.get("result") or {}
    p = r.get("probe") or {}
    return {"at": entry.get("at"), "by": entry.get("by"), "strength": p.get("strength"), "samples": p.get("samples"),
            "question": p.get("question"), "base_image": p.get("base_image"),
            "control": p.get("direction") == "random", "texts": r.get("texts"), "kl_first": r.get("kl_first"),
            "baseline": entry.get("baseline")}


def export_records(store: Store, out: str | Path, features: Iterable[int] | None = None,
                   errors: list[RecordUnreadable] | None = None) -> int:
    """Write one JSON object per readable record to ``out`` (``-`` for stdout); returns the count.

    The file is replaced atomically, so a reader never sees half an export.
    """
    records = store.list_records(features, errors=errors)
    truth = ground_truth_for(store.world() or {})
    lines = [json.dumps(export_row(r, truth), ensure_ascii=False) for r in records]
    text = "".join(line + "\n" for line in lines)
    if str(out) == "-":
        sys.stdout.write(text)
        return len(lines)
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)
