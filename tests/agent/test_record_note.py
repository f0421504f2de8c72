"""A record's reviewer note: optional, so records written before it existed still read."""

from __future__ import annotations

from agent.store.records import FeatureRecord, record_problem


def test_a_record_without_a_note_reads_and_one_with_a_note_round_trips() -> None:
    rec = FeatureRecord(feature=3, status="done", explanation="Red things.", label="red")
    old = rec.to_dict()
    old.pop("note")
    assert record_problem(old) is None and FeatureRecord.from_dict(old).note is None
    noted = FeatureRecord(feature=3, status="done", explanation="Red things.", label="red", note="look at colour")
    assert FeatureRecord.from_dict(noted.to_dict()).note == "look at colour"
