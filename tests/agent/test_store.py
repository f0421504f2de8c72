"""The diskcache store: records whole, reviews protected, clear errors, two processes at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.probes import Probe, ProbeResult
from agent.store.records import SCHEMA_VERSION, FeatureRecord
from agent.store.store import RecordUnreadable, Store, StoreError, default_store_path


def rec(f: int, **kw) -> FeatureRecord:
    fields = {"status": "done", "explanation": f"explains {f}", "label": "red colour", "confidence": 0.7, **kw}
    return FeatureRecord(feature=f, **fields)


def test_record_round_trip_and_listing(store: Store) -> None:
    store.put_record(rec(3, transcript=[{"round": 1, "kind": "verdict"}]))
    store.put_record(rec(1, status="failed", raw_reply="{oops", error="bad"))
    got = store.get_record(3)
    assert got is not None and got.explanation == "explains 3" and got.transcript[0]["round"] == 1
    assert got.schema == SCHEMA_VERSION and got.review is None
    assert store.features() == [1, 3]
    assert [r.feature for r in store.list_records()] == [1, 3]
    assert store.get_record(2) is None
    failed = store.get_record(1)
    assert failed.status == "failed" and failed.explanation == "explains 1" and failed.raw_reply == "{oops"


def test_probe_and_judge_caches(store: Store) -> None:
    r = ProbeResult(Probe(2, strength=5.0), ("a red thing",), (4,), 0.5)
    store.put_probe("k1", r)
    assert store.get_probe("k1") == r and store.get_probe("nope") is None
    store.put_judge_call("h", {"text": "{}", "usage": {}})
    assert store.get_judge_call("h")["text"] == "{}"


def test_reviews_are_kept_and_protect_records(store: Store) -> None:
    store.put_record(rec(5))
    with pytest.raises(StoreError, match="no record for feature 6"):
        store.set_review(6, "accept")
    with pytest.raises(StoreError, match="unknown review decision"):
        store.set_review(5, "maybe")
    store.set_review(5, "accept", reviewer="ann")
    store.set_review(5, "edit", explanation="It is about red.", label="red", reviewer="bob", note="sharper")
    r = store.get_record(5)
    assert r.review.decision == "edit" and r.review.reviewer == "bob" and r.final_explanation == "It is about red."
    assert r.explanation == "explains 5"  # the judge's own answer is kept
    assert [h["reviewer"] for h in store.review_history(5)] == ["ann"]
    # An automatic run does not overwrite a reviewed record...
    assert store.put_record(rec(5, explanation="new run")) is False
    assert store.get_record(5).explanation == "explains 5"
    # ...unless asked; the review then moves to the history, never lost.
    assert store.put_record(rec(5, explanation="new run", run_id="r2"), overwrite_reviewed=True) is True
    r = store.get_record(5)
    assert r.explanation == "new run" and r.review is None
    assert [h["reviewer"] for h in store.review_history(5)] == ["ann", "bob"]
    assert store.review_history(5)[-1]["superseded_by"] == "r2"


def test_unreadable_record_names_store_and_key(store: Store) -> None:
    store.put_record(rec(1))
    store._main.set("record/2", "{not json")
    store._main.set("record/3", '{"schema": 99, "feature": 3, "status": "done"}')
    with pytest.raises(RecordUnreadable) as info:
        store.get_record(2)
    assert str(store.path) in str(info.value) and "'record/2'" in str(info.value)
    errors: list[RecordUnreadable] = []
    assert [r.feature for r in store.list_records(errors=errors)] == [1]
    assert [e.key for e in errors] == ["record/2", "record/3"]


def test_values_are_json_text_not_pickles(store: Store) -> None:
    store.put_record(rec(1))
    assert isinstance(store._main.get("record/1"), str)


def test_newer_schema_and_other_world_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as s:
        s.bind_world({"model": "a", "revision": None, "sae": "x", "layer": 1})
        s.bind_world({"model": "a", "revision": None, "sae": "x", "layer": 1})
        with pytest.raises(StoreError, match="holds records of model 'a', SAE 'x', layer 1, not of model 'b'"):
            s.bind_world({"model": "b", "revision": None, "sae": "x", "layer": 1})
        s._main.set("meta/schema", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this steer-interp"):
        Store(tmp_path / "s")


def test_default_store_path_is_per_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path))
    a = default_store_path("google/gemma-3-4b-it", "javifer/x/layer_16", 16)
    b = default_store_path("google/gemma-3-4b-it", "javifer/x/layer_16", 6)
    assert a.parent == tmp_path and a != b and "gemma-3-4b-it" in a.name


WRITER = textwrap.dedent("""
    import sys
    from agent.store.store import Store
    from agent.store.records import FeatureRecord
    path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Store(path) as s:
        for f in range(start, start + n):
            s.put_record(FeatureRecord(feature=f, status="done", explanation="x" * 5000, label="a b"))
            if f % 2:
                s.set_review(f, "accept", reviewer=f"proc{start}")
            s.put_probe(f"p{f}", __import__("agent.probes", fromlist=["x"]).ProbeResult(
                __import__("agent.probes", fromlist=["x"]).Probe(f), ("t",)))
""")


def test_two_processes_share_a_store(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start), "40"]) for start in (0, 40)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with Store(path) as s:
        records = s.list_records()
        assert [r.feature for r in records] == list(range(80))
        assert all(r.explanation == "x" * 5000 for r in records)
        assert s.reviewed_features() == {f for f in range(80) if f % 2}
        assert s.probe_count() == 80


def test_manual_probes_are_kept_with_the_feature_across_reruns(store: Store) -> None:
    store.put_record(rec(2))
    baseline = ProbeResult(Probe(None), ("an empty white image",))
    probe = ProbeResult(Probe(2, strength=30.0, prompt="ask", question="what colour?"), ("It is red.",), kl_first=1.5)
    entry = store.add_manual_probe(2, probe, baseline=baseline, reviewer="ann")
    store.add_manual_probe(2, ProbeResult(Probe(2, strength=60.0), ("red everywhere",)), reviewer="bob")
    assert entry["by"] == "ann" and entry["baseline"] == ["an empty white image"]
    got = store.get_record(2)
    assert [ProbeResult.from_dict(e["result"]) for e in got.manual] == [
        probe, ProbeResult(Probe(2, strength=60.0), ("red everywhere",))]
    store.put_record(rec(2, explanation="a later run"))  # an automatic re-run keeps them
    assert len(store.get_record(2).manual) == 2 and "manual" not in store.get_record(2).to_dict()
    assert store.manual_probes(7) == [] and store.add_manual_probe(7, probe)["result"]["texts"] == ["It is red."]


def test_export_lists_manual_probes_and_image_descriptions(store: Store, tmp_path: Path) -> None:
    import json

    from agent.store.export import export_records

    image = {"id": 5, "round": 1, "role": "topk", "image": {
        "feature": 1, "mode": "topk", "strength": 0.0, "n_images": 5, "texts": ["red shapes"], "image_ids": [3],
        "image_names": ["scene_3.png"], "note": ""}}
    store.put_record(rec(1, image_evidence=[image]))
    store.add_manual_probe(1, ProbeResult(Probe(1, strength=9.0, direction="random"), ("grey",), kl_first=0.5),
                           reviewer="ann")
    export_records(store, tmp_path / "x.jsonl")
    row = json.loads((tmp_path / "x.jsonl").read_text())
    assert row["image_descriptions"] == [{"id": 5, "mode": "topk", "strength": 0.0, "texts": ["red shapes"],
                                          "images": ["scene_3.png"]}]
    (m,) = row["manual_probes"]
    assert (m["by"], m["strength"], m["control"], m["texts"], m["kl_first"]) == ("ann", 9.0, True, ["grey"], 0.5)
