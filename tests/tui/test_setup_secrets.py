"""The setup screen never shows the judge URL's password or token, yet runs with them (issue 27 item 10)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.judges import JudgeConfig
from agent.judges.redact import MASK
from tests.tui.test_app import setup_error, start, wait_until

PASSWORD, TOKEN = "hunter2pw", "TOPSECRET123"
URL = f"http://user:{PASSWORD}@127.0.0.1:9/v1?token={TOKEN}"


async def test_the_judge_url_is_shown_masked_and_used_whole(store: Any, make_app: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.screens.setup import SetupScreen

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    app = make_app(store, judge_spec=JudgeConfig(kind="openai", base_url=URL))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen) and len(app.screen.query("#judge_url")))
        field = app.screen.query_one("#judge_url")
        assert field.value == f"http://{MASK}@127.0.0.1:9/v1?token={MASK}"
        assert app.screen.request().judge.base_url == URL, "left as shown, the real URL is used"
        field.value = "http://127.0.0.1:9/v2"
        assert app.screen.request().judge.base_url == "http://127.0.0.1:9/v2", "a URL typed in is used as typed"
        await start(app, pilot, judge_url=f"http://user:{PASSWORD}@127.0.0.1:99999/v1?token={TOKEN}")
        await wait_until(pilot, lambda: "bad judge URL" in setup_error(app))
        shown = setup_error(app)
        assert f"//{MASK}@127.0.0.1:99999/v1?token={MASK}" in shown, "the mask is shown literally, not as markup"
        assert PASSWORD not in shown and TOKEN not in shown
