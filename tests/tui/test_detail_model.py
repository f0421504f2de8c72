"""The detail screen's content, computed from a stored record."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from tests.tui.fakes import BASELINE, STRENGTHS
from tui import detail_model as dm


def render(renderable: Any, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_grid_groups_by_strength_with_baseline_and_control(filled: Any) -> None:
    rec = filled.get_record(0)
    (grid,) = dm.grids(rec)
    assert grid.baseline == [BASELINE]
    assert [r.strength for r in grid.rows][: len(STRENGTHS)] == list(STRENGTHS)
    top = next(r for r in grid.rows if r.strength == max(STRENGTHS))
    assert top.controls == ["a grey blob"] and "red" in top.texts[0]
    text = render(dm.descriptions(rec))
    assert "baseline" in text and "random control" in text and "a red shape" in text


def test_changed_words_are_highlighted() -> None:
    out = dm.highlight("the colour red filling", {"colour"})
    styled = {out.plain[s.start:s.end] for s in out.spans}
    assert styled == {"red", "filling"}


def test_series_counts_label_words_against_strength(filled: Any) -> None:
    s = dm.series(filled.get_record(0))
    assert s.strengths[0] == 0 and s.label_words == ["red"]
    assert s.label_share[0] == 0.0 and s.label_share[-1] == 1.0
    assert s.kl == sorted(s.kl)
    assert "label words" in render(dm.series_table(s))


def test_transcript_and_summary_name_the_verdict(filled: Any) -> None:
    rec = filled.get_record(0)
    text = render(dm.transcript(rec))
    assert "opening sweep" in text and "FINAL" in text and "red mentions" in text
    assert "red mentions" in render(dm.summary(rec))


def test_transcript_shows_requested_probes_and_why(store: Any, engine: Any) -> None:
    from agent.judges import LLMJudge
    from agent.judges.scripted import ScriptedChat, final_reply, probe_reply
    from tests.tui.fakes import fill_store

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        if "Round 2" in messages[-1]["content"]:
            return final_reply(label="red colour", evidence=[])
        return probe_reply([15.0], hypothesis="maybe red", question="what colour is it?")

    fill_store(store, engine, [0], judge=LLMJudge(ScriptedChat(reply)))
    rec = store.get_record(0)
    text = render(dm.transcript(rec), width=140)
    assert "asks for probes" in text and "maybe red" in text and "asks 'what colour is it?'" in text
    assert "ran: " in text and "FINAL" in text
    (q,) = dm.questions(rec)
    assert (q.question, q.strength, q.texts) == ("what colour is it?", 15.0, ["It is red."])


def test_half_blocks_draw_two_pixels_a_cell() -> None:
    from PIL import Image

    from tui.pixels import HalfBlocks

    img = Image.new("RGB", (4, 4), (255, 0, 0))
    img.paste((0, 0, 255), (0, 2, 4, 4))  # bottom half blue
    console = Console(width=20, color_system="truecolor", record=True)
    segments = list(console.render(HalfBlocks(img, width=4, caption="red over blue")))
    cells = [s for s in segments if s.text == "▀"]
    assert len(cells) == 8  # 4 columns x 2 rows
    assert cells[0].style.color.triplet == (255, 0, 0) and cells[-1].style.bgcolor.triplet == (0, 0, 255)
    assert "blue" in "".join(s.text for s in segments)  # the caption, wrapped to the picture


def test_transcript_lists_the_top_k_descriptions_the_judge_read(store: Any, engine: Any) -> None:
    from agent.run.config import RunConfig, SweepConfig
    from agent.judges.evidence import ImageEvidence
    from agent.run import run_features
    from tests.tui.fakes import scripted_judge

    class Describer:
        def prepare(self) -> dict[str, Any]:
            return {"topk": "t", "prompts": ["vlm_topk@v1"]}

        def describe(self, requests: Any, on_result: Any = None) -> list[ImageEvidence]:
            texts = {0: ("red blobs",), 1: ("",), 2: ()}
            return [ImageEvidence(r.feature, r.mode, r.strength, r.n_images, texts[r.feature],
                                  (4,) if texts[r.feature] else (), note="" if texts[r.feature] else "no active images")
                    for r in requests]

        def pictures(self, feature: int, n: int) -> list[bytes]:
            return []

    config = RunConfig(sweep=SweepConfig(strengths=STRENGTHS, background=2), evidence="all", hybrid_strength=20.0)
    run_features(engine, scripted_judge(), store, [0, 1, 2], config, describer=Describer())
    text = render(dm.transcript(store.get_record(0)), width=140)
    assert "top-activating images" in text and "topk (1 images): red blobs" in text
    assert "hybrid s=20 (1 images): red blobs" in text
    assert "(the model's answer was empty)" in render(dm.transcript(store.get_record(1)), width=140)
    assert "no description (no active images)" in render(dm.transcript(store.get_record(2)), width=140)


def test_manual_probes_render_oldest_first_with_who_and_when() -> None:
    from agent.probes import Probe, ProbeResult

    entries = [{"at": "2026-01-31T14:05:09+00:00", "by": "ann", "baseline": [BASELINE],
                "result": ProbeResult(Probe(0, strength=30.0, question="what colour?", prompt="ask"),
                                      ("It is red.",), kl_first=1.25).to_dict()}]
    text = render(dm.manual_probes(entries))
    assert "s=30 on white 'what colour?' (first-token KL 1.25)  ann, 2026-01-31 14:05 UTC" in text and "1. It is red." in text
    assert "No manual probes" in render(dm.manual_probes([]))


def test_transcript_shows_each_turn_latency_format_and_a_failed_turn_raw_reply() -> None:
    from agent.store.records import FeatureRecord

    calls = [{"cached": False, "seconds": 1.0, "format": "schema", "tokens": 10},
             {"cached": False, "seconds": 3.0, "format": "json_object", "tokens": 20},
             {"cached": True, "seconds": 0.0, "format": "json_object", "tokens": 0}]
    rec = FeatureRecord(feature=3, status="failed", error="no valid verdict", transcript=[
        {"round": 1, "kind": "verdict", "action": "probe", "confidence": 0.4, "hypothesis": "red", "tokens": 30,
         "attempts": 2, "calls": calls, "probes": []},
        {"round": 2, "kind": "invalid", "attempts": 3, "error": "probes: at least 1 item", "raw": '{"action": "probe"',
         "calls": calls[1:2]}])
    text = render(dm.transcript(rec), width=140)
    assert "(30 tok, 2 tries, 2.0 s/call, format json_object/schema)" in text
    assert "round 2 invalid reply after 3 tries (3.0 s/call, format json_object): probes: at least 1 item" in text
    assert 'raw reply: {"action": "probe"' in text


def test_a_failed_turn_s_reply_stored_once_as_raw_reply_is_shown() -> None:
    """The loop keeps a failing reply once, as the record's raw_reply (issue 27, defect 12): still shown."""
    from agent.store.records import FeatureRecord

    rec = FeatureRecord(feature=3, status="failed", error="no valid verdict", raw_reply='{"action": "probe"',
                        transcript=[{"round": 1, "kind": "invalid", "attempts": 3, "error": "bad"}])
    assert 'raw reply: {"action": "probe"' in render(dm.transcript(rec), width=140)
