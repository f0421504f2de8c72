"""The feature page of the detail screen, through Textual's pilot at 80x24 and 120x36: the answer with its
review, scores, activations, probes numbered as the judge cites them, citations that jump to their probe, and
first-token KL beside the answer change."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.site.feature import Activation, TopImage
from tests.tui.fakes import CONCEPTS, fill_store
from tests.tui.test_app import open_detail, wait_until

pytestmark = pytest.mark.asyncio

SIZES = [(80, 24), (120, 36)]


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text (the screen's cells, as the SVG screenshot draws them)."""
    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), force_terminal=True, color_system=None, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


CITED = (2, 3)


def citing_judge() -> Any:
    """A scripted LLM judge whose final verdict on feature f names CONCEPTS[f % 8] and cites probes #2 and #3."""
    from agent.judges import LLMJudge
    from agent.judges.scripted import ScriptedChat, final_reply

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        feature = int(re.findall(r"Feature (\d+)\.", " ".join(m["content"] for m in messages))[-1])
        concept = CONCEPTS[feature % len(CONCEPTS)]
        return final_reply(explanation=f"Steering makes the model describe something {concept}.",
                           label=f"{concept} mentions", confidence=0.8, evidence=CITED)

    return LLMJudge(ScriptedChat(reply, model="script"))


@pytest.fixture
def filled(store: Any, engine: Any) -> Any:
    """Features 0-7 explained by a judge that cites its evidence."""
    fill_store(store, engine, range(8), judge=citing_judge())
    return store


def fake_activation(feature: int) -> Activation:
    return Activation(n_images=200, density=0.125, patch_density=0.0723, max_activation=97.9,
                      histogram=[(0.0, 50.0, 3), (50.0, 100.0, 12)],
                      top=[TopImage(1, 7, "scene_7.png", 77.2, 91.9)], k=10)


def with_activations(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app.services.topk_dir = tmp_path
    monkeypatch.setattr(app.services, "activation", fake_activation)


def visible(app: Any, widget: Any) -> bool:
    """The widget's first line is on screen, inside its scrolling container."""
    box = widget.parent.region
    return box.height > 0 and box.y <= widget.region.y < box.bottom


@pytest.mark.parametrize("size", SIZES)
async def test_the_overview_shows_answer_scores_and_activations(filled: Any, make_app: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                size: tuple[int, int]) -> None:
    app = make_app(filled)
    with_activations(app, tmp_path, monkeypatch)
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, app)
        await wait_until(pilot, lambda: "fires on 12.50%" in str(app.screen.query_one("#activation").render()))
        assert app.screen.query_one("TabbedContent").active == "overview"
        text = screen_text(app)
        assert "#0" in text and "confidence 0.80" in text and "unreviewed" in text
        assert "The final verdict cites #" in text and "simulation" in text and "not computed" in text
        activation = str(app.screen.query_one("#activation").render())
        assert "of the collection's 200 images" in activation and "█" in activation  # the histogram's bars
        assert all(len(line) <= size[0] for line in text.splitlines())


@pytest.mark.parametrize("size", SIZES)
async def test_g_jumps_to_the_cited_probe(filled: Any, make_app: Any, size: tuple[int, int]) -> None:
    app = make_app(filled)
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, app)
        page = app.screen.page
        assert page.cited == list(CITED) and len(page.probes) >= 6
        target = max(e.id for e in page.probes)  # the last: far down the list, so it must scroll there
        await pilot.press("g", *str(target), "enter")
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "evidence")
        widget = app.screen.query_one(f"#evidence-list > .probe-{target}")
        await wait_until(pilot, lambda: visible(app, widget))
        assert widget.has_class("-cited")
        assert f"#{target} " in screen_text(app)
        await pilot.press("g", "9", "9", "9", "enter")  # not a number of this feature: said so, dialog stays
        await wait_until(pilot, lambda: "is not in this feature's evidence" in screen_text(app))


async def test_clicking_a_citation_shows_its_probe(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_detail(pilot, app)
        first = app.screen.page.cited[0]
        prefix = "The final verdict cites "
        await pilot.click("#overview-body", offset=(len(prefix) + 1, 0))
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "evidence")
        widget = app.screen.query_one(f"#evidence-list > .probe-{first}")
        assert widget.has_class("-cited")
        await wait_until(pilot, lambda: visible(app, widget))


@pytest.mark.parametrize("size", SIZES)
async def test_descriptions_number_each_answer_with_first_token_kl_and_answer_change(
        filled: Any, make_app: Any, size: tuple[int, int]) -> None:
    app = make_app(filled)
    async with app.run_test(size=size) as pilot:
        await open_detail(pilot, app)
        await pilot.press("1")
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "descriptions")
        grid = screen_text(app)
        assert re.search(r"first-token KL [\d.]+ · answer", grid) and "#1 " in grid  # "change" may wrap at 80
        page = app.screen.page
        controls = [r for sw in page.sweeps for r in sw.rows if r.controls]
        assert controls and all(e.change is not None for r in controls for e in r.controls)
        await pilot.press("3")  # the judge's citations are numbered links there too
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "judge")
        assert "evidence: #2, #3" in screen_text(app)


async def test_the_header_shows_a_rejection_and_its_reason(filled: Any, make_app: Any) -> None:
    filled.set_review(0, "reject", reviewer="ann", note="names the wrong colour")
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot, app)
        text = screen_text(app)
        assert "rejected by ann" in text and "names the wrong colour" in text
