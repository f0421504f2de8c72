"""`steer-tui` takes steer-agent's judge flags (one definition, agent.cli.args) and the setup form keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from agent.cli.args import judge_config
from agent.judges import JudgeConfig
from tests.tui.test_app import wait_until
from tui.cli import build_parser


def test_steer_tui_takes_the_judge_flags_of_steer_agent_and_checks_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = judge_config(build_parser().parse_args(["--judge-base-url", "http://127.0.0.1:8000/v1", "--judge-timeout",
                                                  "5", "--judge-max-tokens", "300"]))
    assert (cfg.kind, cfg.base_url, cfg.timeout, cfg.max_tokens) == ("openai", "http://127.0.0.1:8000/v1", 5.0, 300)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--judge-base-url", "http://127.0.0.1:99999/v1"])
    assert exc.value.code == 2 and "bad judge URL 'http://127.0.0.1:99999/v1'" in capsys.readouterr().err


async def test_the_setup_form_keeps_the_judge_policy_steer_tui_was_started_with(store: Any, make_app: Any) -> None:
    from textual.widgets import Select

    from tui.screens.setup import SetupScreen

    app = make_app(store, judge_spec=JudgeConfig(kind="openai", base_url="http://127.0.0.1:9/v1", timeout=5.0,
                                                 retries=2, api_key="sk-test"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen) and len(app.screen.query("#judge"))
                         and app.screen.query_one("#judge", Select).value == "openai")
        app.screen.query_one("#judge_model").value = "m2"
        judge = app.screen.request().judge
        assert (judge.kind, judge.model, judge.base_url) == ("openai", "m2", "http://127.0.0.1:9/v1")
        assert (judge.timeout, judge.retries, judge.api_key) == (5.0, 2, None)  # the key is read from its variable
