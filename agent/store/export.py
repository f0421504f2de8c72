"""Export the store's records as JSON lines, one object per feature."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.groundtruth import ground_truth_for, names_truth
from agent.store.records import FeatureRecord
from agent.store.store import RecordUnreadable, Store


def judge_name(judge: dict[str, Any]) -> str:
    if judge.get("kind") == "offline":
        return f"offline-v{judge.get('version', '?')} (not an LLM)"
    backend = judge.get("backend") if isinstance(judge.get("backend"), dict) else {}
    return f"{backend.get('kind', judge.get('kind', '?'))}:{backend.get('model', '?')}"


def export_row(rec: FeatureRecord, truth: dict[int, dict[str, Any]] | None,
               store_id: str | None = None) -> dict[str, Any]:
    world = rec.world or {}
    gt = truth.get(rec.feature) if truth else None
    rejected = rec.review is not None and rec.review.decision == "reject"
    valid = rec.status == "done" and not rejected  # a rejected answer stays only as judge_explanation/label
    explanation = rec.final_explanation if valid else None
    return {
        "feature": rec.feature,
        "explanation": explanation,
        "label": rec.final_label if valid else None,
        "rejected": rejected,
        "confidence": rec.confidence,
        "status": rec.status,
        "review": rec.review.to_dict() if rec.review else None,
        "note": rec.note,
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
        "raw_reply": rec.raw_reply if rec.status == "failed" else None,
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
        "activation_tests": [test_row(i) for i in getattr(rec, "test_evidence", []) if isinstance(i, dict) and "test" in i],
        "manual_probes": [manual_row(m) for m in rec.manual],
        "store_id": store_id,
    }


def test_row(item: dict[str, Any]) -> dict[str, Any]:
    """An activation test the judge asked for: what it varied and the activations it read."""
    t = item["test"]
    return {"id": item.get("id"), "round": item.get("round"), **t.get("test", {}), "values": t.get("values"),
            "top_share": t.get("top_share"), "wins": t.get("wins"), "n_images": t.get("n_images"),
            "n_top": t.get("n_top"), "peak": t.get("peak"),
            "error": t.get("error"), "reason": item.get("reason", "")}


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


@dataclass
class ExportResult:
    """What an export wrote and what it could not."""

    written: int
    corrupt: list[RecordUnreadable] = field(default_factory=list)
    """Requested records that exist but are corrupt (each names its key and the fix)."""
    missing: list[int] = field(default_factory=list)
    """Requested features the store holds no record for (only when features were named)."""
    requested: int | None = None
    """How many features were named (None: the whole store)."""
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop the export (a corrupt world entry: no ground truth)."""

    def summary(self, out: str) -> str:
        """One line: 'exported 1 records to x.jsonl; 127 of the 128 requested features are not in the store'."""
        line = f"exported {self.written} records" + ("" if out == "-" else f" to {out}")
        if self.corrupt:
            line += f"; {len(self.corrupt)} corrupt (named above)"
        if self.missing and self.requested is not None:
            line += f"; {len(self.missing)} of the {self.requested} requested features are not in the store"
        return line


class ExportRefused(Exception):
    """The output file exists and holds something the export would drop (one line naming the fix)."""


def spans(features: Iterable[int]) -> str:
    """Feature ids as ranges, e.g. ``4-63,70``."""
    out: list[str] = []
    for f in sorted(set(features)):
        if out and out[-1].split("-")[-1] == str(f - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{f}"
        else:
            out.append(str(f))
    return ",".join(out)


def replace_problem(out: str | Path, store: Store | None, features: Iterable[int] | None) -> str | None:
    """Why an export to ``out`` may not replace the file there (None: nothing there, or nothing it would lose).

    A file may be replaced only when it is an export of ``store`` (every row stamped with its id) holding no
    feature outside ``features`` (what the new export writes; None: the store's). ``store`` None: only the
    file's form and its features are checked (before the store is open).
    """
    path = Path(out).expanduser()
    if str(out) == "-" or not path.exists():
        return None
    if not path.is_file():
        return f"{out} exists and is not a file"
    held: set[int] = set()
    stores: set[Any] = set()
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                feature = row.get("feature") if isinstance(row, dict) else None
                if not isinstance(feature, int) or isinstance(feature, bool):
                    return f"{out} exists and is not a steer-agent export"
                held.add(feature)
                stores.add(row["store_id"] if isinstance(row.get("store_id"), str) else None)
    except (OSError, UnicodeDecodeError, ValueError):
        return f"{out} exists and is not a steer-agent export"
    if not held:
        return None
    if None in stores:  # an export older than store ids, or not ours
        return f"{out} exists and holds {len(held)} records that do not say which store they came from"
    if store is not None and stores != {store.id}:
        return f"{out} exists and holds {len(held)} records of another store than {store.path}"
    if features is None and store is None:
        return None
    dropped = held - set(store.features() if features is None and store is not None else features or ())
    if dropped:
        return f"{out} exists and holds {len(dropped)} records this export would drop (features {spans(dropped)})"
    return None


def refuse_replacing(out: str | Path, store: Store | None, features: Iterable[int] | None, flag: str) -> None:
    """Raise ExportRefused (naming --overwrite and ``flag``, the option giving the file) when an export to
    ``out`` would lose something of the file there (replace_problem)."""
    problem = replace_problem(out, store, features)
    if problem:
        raise ExportRefused(f"{problem}: pass --overwrite to replace it, or another {flag}")


def export_records(store: Store, out: str | Path, features: Iterable[int] | None = None,
                   errors: list[RecordUnreadable] | None = None, *, keep: str | None = None) -> int:
    """Write one JSON object per readable record to ``out`` (``-`` for stdout); returns the count.

    The file is replaced atomically, so a reader never sees half an export. keep: the option naming ``out``
    (e.g. ``--export``) when a file there may be replaced only if the export loses nothing of it (raises
    ExportRefused); None: replace it.
    """
    result = export_store(store, out, features, keep=keep)
    if errors is not None:
        errors.extend(result.corrupt)
    return result.written


def export_store(store: Store, out: str | Path, features: Iterable[int] | None = None, *,
                 keep: str | None = None) -> ExportResult:
    """Export like export_records, reporting corrupt and missing features instead of dropping them silently."""
    wanted = None if features is None else sorted(set(features))
    result = ExportResult(written=0, requested=None if wanted is None else len(wanted))
    if wanted is not None:
        held = set(store.features())
        result.missing = [f for f in wanted if f not in held]
    records = store.list_records(wanted, errors=result.corrupt)
    if keep is not None:
        refuse_replacing(out, store, [r.feature for r in records], keep)
    try:
        truth = ground_truth_for(store.world() or {})
    except RecordUnreadable as exc:
        result.warnings.append(f"store {store.path}: entry {exc.key!r} is corrupt ({exc.why}); "
                               "exported without ground truth")
        truth = None
    store_id = store.id
    lines = [json.dumps(export_row(r, truth, store_id), ensure_ascii=False) for r in records]
    _write_atomic(out, "".join(line + "\n" for line in lines))
    result.written = len(lines)
    return result


def _write_atomic(out: str | Path, text: str) -> None:
    if str(out) == "-":
        sys.stdout.write(text)
        return
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
