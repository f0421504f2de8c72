"""Pilot tests: every action of the app, checked against the store afterwards."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select

from agent.probes import Probe
from tests.tui.conftest import REVIEWER

pytestmark = pytest.mark.asyncio


async def wait_until(pilot: Any, check: Any, timeout: float = 10.0) -> None:
    """Pause until ``check()`` holds (workers run in threads; their messages need the loop)."""
    import time

    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {getattr(check, '__name__', check)}")
        await pilot.pause(0.05)


async def open_detail(pilot: Any, app: Any, *keys: str) -> None:
    """Wait for the 8-row table, press ``keys`` (then enter) and wait until the detail screen shows its record."""
    from tui.screens.detail import DetailScreen

    await wait_until(pilot, lambda: len(table_ids(app)) == 8)
    await pilot.press(*keys, "enter")
    await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record is not None)


async def palette_then_help(pilot: Any, app: Any, typed: str, modal: type) -> str:
    """Run the palette command matching ``typed`` (it must open ``modal``), close it, open the help
    screen and return the key table as text."""
    from rich.console import Console

    from tui.screens.help import HelpScreen, key_table

    await pilot.press("ctrl+p")
    await pilot.press(*typed)
    await pilot.pause(0.5)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, modal))
    await pilot.press("escape")
    await pilot.press("question_mark")
    await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
    console = Console(width=100, record=True)
    console.print(key_table(app))
    return console.export_text()


def table_ids(app: Any) -> list[int]:
    table = app.main_screen.table
    return [int(k.value) for k in table.rows]


async def start(app: Any, pilot: Any, **fields: str) -> None:
    """Fill the setup screen's inputs and press Start."""
    from tui.screens.setup import SetupScreen

    # The screen may be current before its widgets are mounted (a busy machine shows it): wait for them.
    await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen)
                     and all(len(app.screen.query(f"#{name}")) for name in (*fields, "start")))
    for name, value in fields.items():
        widget = app.screen.query_one(f"#{name}")
        widget.value = value
    await pilot.pause()
    await pilot.click("#start")


async def start_held_run(app: Any, pilot: Any, features: range) -> None:
    """On the 8-row table, start a run of ``features`` from the setup screen and wait until one is
    running (the engine's gate holds it there)."""
    await wait_until(pilot, lambda: len(app.rows) == 8)
    await pilot.press("s")
    await start(app, pilot, features=f"{features[0]}-{features[-1]}")
    await wait_until(pilot, lambda: any(app.rows.get(f) and app.rows[f].status == "running" for f in features))


def setup_error(app: Any) -> str:
    return str(app.screen.query_one("#setup-error").render())


# ----------------------------------------------------------------------------- run


async def test_run_from_setup_fills_the_store_and_table(store: Any, make_app: Any) -> None:
    from tests.tui.fakes import scripted_judge

    app = make_app(store, judge=scripted_judge())
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot, features="0-3")
        await wait_until(pilot, lambda: not app.running and len(app.rows) == 4
                         and all(r.status == "done" for r in app.rows.values()))
        assert table_ids(app) == [0, 1, 2, 3]
        assert app.main_screen.query_one("#run-panel").stats.done == 4
    assert [r.status for r in store.list_records()] == ["done"] * 4
    assert store.get_record(2).label == "striped mentions"


async def test_run_progress_is_live_and_can_be_cancelled(filled: Any, make_app: Any, engine: Any) -> None:
    engine.gate = threading.Event()
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(app, pilot, range(8, 12))
        assert app.running
        # The UI stays responsive while the engine is busy: filter the table.
        await pilot.press("slash", *"triangle")
        await wait_until(pilot, lambda: table_ids(app) == [4])
        await pilot.press("escape")
        await pilot.press("c")
        engine.gate.set()
        await wait_until(pilot, lambda: not app.running)
        assert all(app.rows[f].status == "pending" for f in range(8, 12))
    assert filled.features() == list(range(8))


async def test_a_run_finishes_while_the_detail_screen_is_open(filled: Any, make_app: Any, engine: Any) -> None:
    """The home screen and its run line own the run: they follow it from under another screen."""
    from tui.screens.detail import DetailScreen

    engine.gate = threading.Event()
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(app, pilot, range(8, 10))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        engine.gate.set()
        await wait_until(pilot, lambda: not app.running and all(app.rows[f].status == "done" for f in (8, 9)))
        assert isinstance(app.screen, DetailScreen)
        assert app.main_screen.run_panel.state == "idle"
    assert filled.features() == list(range(10))


async def test_setup_shows_bad_input_inline(store: Any, make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from steering.errors import ShapeMismatchError

    def bad_sae(spec: Any) -> Any:
        raise ShapeMismatchError("SAE width 32 != vision encoder width 64: use an SAE trained on this model")

    app = make_app(store, engine_factory=bad_sae)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot, features="")
        await wait_until(pilot, lambda: "empty feature list" in setup_error(app))
        await start(app, pilot, features="0-99")
        await wait_until(pilot, lambda: "out of range" in setup_error(app))
        assert app.screen.query_one("#features").has_class("-problem")
        await start(app, pilot, features="0-3", model="/nope/model")
        await wait_until(pilot, lambda: "model folder /nope/model does not exist" in setup_error(app))
        await start(app, pilot, model="org/model", sae="org/sae")
        await wait_until(pilot, lambda: "use an SAE trained on this model" in setup_error(app))
        assert app.screen.query_one("#sae").has_class("-problem")
        await start(app, pilot, model="", sae="", judge="openai")
        await wait_until(pilot, lambda: "no API key" in setup_error(app))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        await start(app, pilot, judge_url="http://127.0.0.1:9/v1")
        await wait_until(pilot, lambda: "cannot reach the judge" in setup_error(app))
        # The rest of the app keeps working.
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen)
        assert not app.running
    assert store.features() == []


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install -e '.[ray]'")
async def test_a_run_on_a_ray_address_gets_the_engines_steer_agent_ray_uses(store: Any, make_app: Any, engine: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The Ray fields reach the run request, which runs on agent.session.engines_on(address, workers), as
    steer-agent --ray does (faked here: no cluster); those engines close when the run ends."""
    from agent.world import Engines
    from tests.tui.fakes import scripted_judge

    made: list[tuple[Any, ...]] = []

    class PoolEngines(Engines):
        closed = False

        def close(self) -> None:
            self.closed = True

    def engines_on(address: str | None, workers: int | None = None) -> Engines:
        made.append((address, workers, PoolEngines(factory=lambda spec: engine)))
        return made[-1][2]

    monkeypatch.setattr("agent.session.engines_on", engines_on)
    app = make_app(store, judge=scripted_judge())
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot, features="0-3", ray_workers="2")  # workers alone: refused inline
        await wait_until(pilot, lambda: "the Ray workers field goes with a Ray address" in setup_error(app))
        assert app.screen.query_one("#ray").has_class("-problem") and not made
        await start(app, pilot, ray="local")
        await wait_until(pilot, lambda: not app.running and len(app.rows) == 4
                         and all(r.status == "done" for r in app.rows.values()))
        assert app.main_screen.run_panel.services.engines is not made[0][2]  # the app's own engines stay
    assert [m[:2] for m in made] == [("local", 2)] and made[0][2].closed
    assert [r.status for r in store.list_records()] == ["done"] * 4


# ----------------------------------------------------------------------------- table


async def test_filter_sort_and_jump(filled: Any, make_app: Any) -> None:
    from agent.store.records import FeatureRecord

    filled.put_record(FeatureRecord(feature=9, status="failed", error="judge timed out"))
    filled.set_review(3, "accept", reviewer="ann")
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 9)
        screen = app.main_screen
        screen.query_one("#search", Input).value = "triangle"
        await wait_until(pilot, lambda: table_ids(app) == [4])
        screen.query_one("#search", Input).value = ""
        screen.query_one("#status-filter", Select).value = "failed"
        await wait_until(pilot, lambda: table_ids(app) == [9])
        screen.query_one("#status-filter", Select).value = "any"
        screen.query_one("#review-filter", Select).value = "accepted"
        await wait_until(pilot, lambda: table_ids(app) == [3])
        screen.table.focus()
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(table_ids(app)) == 9)
        await pilot.press("o", "o")  # sort by confidence
        assert screen.sort_key == "confidence" and table_ids(app)[-1] == 9
        await pilot.press("g")
        await pilot.press(*"42", "enter")
        assert "not in this store" in str(app.screen.query_one(".error").render())
        app.screen.query_one(Input).value = "6"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current_feature == 6)


# ----------------------------------------------------------------------------- reviews


async def test_accept_reject_edit_and_undo_persist_at_once(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("a")  # accept moves on to the next undecided feature
        await wait_until(pilot, lambda: filled.get_review(0) is not None)
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen.query("#reason"))
        await pilot.press("enter")  # no reason given
        await wait_until(pilot, lambda: filled.get_review(1) is not None)
        await pilot.press("down", "e")
        await wait_until(pilot, lambda: app.screen.query("#explanation"))
        app.screen.query_one("#explanation").text = ""
        await pilot.press(*"Stripes,", "enter", *"drawn in any colour.")  # enter breaks the line
        app.screen.query_one("#label", Input).value = "striped pattern"
        await pilot.press("tab", "enter", "enter")  # tab to the label; enter to the reason; enter saves
        await wait_until(pilot, lambda: filled.get_review(2) is not None)
        await wait_until(pilot, lambda: app.rows[2].label == "striped pattern")
        await pilot.press("down", "a")
        await wait_until(pilot, lambda: filled.get_review(3) is not None)
        await pilot.press("up", "u")
        await wait_until(pilot, lambda: len(filled.review_history(3)) == 1)
    accept, reject, edit = (filled.get_review(f) for f in (0, 1, 2))
    assert (accept.decision, accept.reviewer) == ("accept", REVIEWER) and accept.at
    assert reject.decision == "reject"
    assert (edit.decision, edit.explanation, edit.label) == ("edit", "Stripes,\ndrawn in any colour.", "striped pattern")
    assert filled.get_record(2).final_label == "striped pattern"
    assert filled.get_review(3) is None and filled.review_history(3)[0]["withdrawn_by"] == REVIEWER


async def test_review_keys_work_on_the_detail_screen(filled: Any, make_app: Any) -> None:

    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app, "down")
        assert app.screen.feature == 1
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: app.screen.record is not None and app.screen.record.feature == 2)
        await pilot.press("a")  # accept, then on to the next undecided feature
        await wait_until(pilot, lambda: filled.get_review(2) is not None and app.screen.feature == 3)
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: app.screen.record is not None and app.screen.record.feature == 2
                         and app.screen.record.review is not None)
        assert "accepted by tester" in str(app.screen.query_one("#summary").render())
        for tab in "2345":
            await pilot.press(tab)
        await pilot.press("escape")
        assert app.screen is app.main_screen
    assert filled.get_review(2).decision == "accept"


async def test_rerun_with_a_note_reaches_the_judge(filled: Any, make_app: Any) -> None:
    from agent.judges import LLMJudge
    from agent.judges.scripted import ScriptedChat, final_reply

    chat = ScriptedChat(lambda messages: final_reply(explanation="The feature paints a crimson field.",
                                                     label="crimson field", confidence=0.7))
    filled.set_review(0, "accept", reviewer="ann")
    app = make_app(filled, judge=LLMJudge(chat))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("n")
        app.screen.query_one("#note", Input).value = "look at the shade of red"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.rows[0].label == "crimson field" and not app.running)
    rec = filled.get_record(0)
    assert (rec.explanation, rec.label, rec.review) == ("The feature paints a crimson field.", "crimson field", None)
    assert any("look at the shade of red" in m["content"] for call in chat.calls for m in call)
    assert filled.review_history(0)[0]["decision"] == "accept"


# ----------------------------------------------------------------------------- probes, export, help


async def test_manual_probe_shows_the_answer_and_caches_it(filled: Any, make_app: Any, engine: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("p")
        app.screen.query_one("#strength", Input).value = "-1"
        await pilot.press("enter")
        assert "strength must be" in str(app.screen.query_one(".error").render())
        app.screen.query_one("#strength", Input).value = "30"
        app.screen.query_one("#question", Input).value = "what colour is it?"
        await pilot.click("#go")
        await wait_until(pilot, lambda: "It is red." in str(app.screen.query_one("#answers-text").render()))
        await pilot.press("escape")
        stored = filled.manual_probes(0)
        assert [e["result"]["texts"] for e in stored] == [["It is red."]] and stored[0]["by"] == REVIEWER
    probe = Probe(feature=0, strength=30.0, prompt="ask", question="what colour is it?")
    cached = filled.get_probe(probe.key(engine.fingerprint()))
    assert cached is not None and cached.texts == ("It is red.",)


async def test_manual_probes_persist_across_sessions_and_show_in_export(filled: Any, make_app: Any,
                                                                        tmp_path: Path) -> None:

    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app)
        await pilot.press("p")
        app.screen.query_one("#strength", Input).value = "25"
        await pilot.click("#go")
        await wait_until(pilot, lambda: "red" in str(app.screen.query_one("#answers-text").render()))
        await pilot.press("escape")
    # A new session on the same store: the detail screen lists the probe, and the export carries it.
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_detail(pilot, app)
        await pilot.press("5")
        await wait_until(pilot, lambda: "s=25 on white" in str(app.screen.query_one("#manual").render()))
        assert "a red shape" in str(app.screen.query_one("#manual").render())
    out = tmp_path / "with-probes.jsonl"
    from agent.store.export import export_records

    export_records(filled, out)
    row = json.loads(out.read_text().splitlines()[0])
    assert row["manual_probes"][0]["strength"] == 25.0 and row["manual_probes"][0]["by"] == REVIEWER
    assert row["manual_probes"][0]["texts"] and row["manual_probes"][0]["baseline"]


async def test_export_writes_every_record_with_its_review(filled: Any, make_app: Any, tmp_path: Path) -> None:
    out = tmp_path / "out" / "review.jsonl"
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("a")
        await wait_until(pilot, lambda: app.rows[0].review == "accept")
        await pilot.press("x")
        app.screen.query_one("#path", Input).value = str(out)
        await pilot.press("enter")
        await wait_until(pilot, lambda: out.exists() and app.screen is app.main_screen)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(range(8))
    assert rows[0]["review"]["decision"] == "accept" and rows[0]["review"]["reviewer"] == REVIEWER


async def test_palette_has_every_action_and_runs_them(filled: Any, make_app: Any) -> None:
    from tui.screens.modals import ExportModal

    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Accept the explanation (feature 0)", "Reject the explanation (feature 0)",
                       "Edit the explanation and label (feature 0)", "Re-run the feature with a note to the judge",
                       "Probe the feature by hand", "Export every record as JSON lines", "New run", "Help: keys",
                       "Jump to feature", "Show failed features"):
            assert any(t.startswith(wanted) for t in titles), wanted
        text = await palette_then_help(pilot, app, "export every", ExportModal)
        for key in ("accept", "edit", "reject", "re-run", "probe", "export", "jump to a feature id", "new run"):
            assert key in text


async def test_resizes_cleanly(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.resize_terminal(140, 45)
        await pilot.press("enter")
        await wait_until(pilot, lambda: getattr(app.screen, "record", None) is not None)
        for width, height in ((140, 45), (80, 24), (60, 20)):
            await pilot.resize_terminal(width, height)
            await pilot.pause(0.2)
            # the detail screen is laid out anew for every size: full width, footer on the last line
            summary, footer = app.screen.query_one("#summary"), app.screen.query_one("Footer")
            assert app.screen.feature == 0 and app.screen.size == (width, height)
            assert summary.region.width == width and "#0" in str(summary.render())
            assert footer.region.y == height - 1 and footer.region.width == width


async def test_images_tab_draws_base_and_top_images(filled: Any, make_app: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from tui.widgets.picture import Picture

    app = make_app(filled)
    app.services.topk_dir = tmp_path
    views = [(Image.new("RGB", (8, 8), (200, 30, 30)), "0.91 scene_1.png")]
    monkeypatch.setattr(app.services, "topk_views", lambda feature, n=4: views)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app)
        await pilot.press("4")
        await wait_until(pilot, lambda: len(app.screen.query(Picture)) == 2)
        assert "top-activating" in str(app.screen.query_one("#topk-status").render())


async def test_without_top_k_the_images_tab_says_how_to_get_them(filled: Any, make_app: Any) -> None:

    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app)
        await pilot.press("4")
        await wait_until(pilot, lambda: "steer-agent topk" in str(app.screen.query_one("#topk-status").render()))
