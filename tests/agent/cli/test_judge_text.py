"""What a judge, a store or a model wrote reaches the terminal literally (issue 27 item 2): never read as Rich
markup or emoji codes, never as escape sequences or control characters."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

from agent.cli.progress import RichProgress, summary_table
from agent.run.events import FeatureFinished, RunError, RunStats
from agent.judges.scripted import final_reply
from agent.store.records import FeatureRecord
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, Reply

MARKUP = "[/] red thing"
"""A label the verdict schema accepts that Rich would refuse as markup (MarkupError)."""
SWALLOWED = "[bold]red[/] thing"
"""A label Rich would show as 'red thing'."""
ESCAPES = "red \x1b[31m thing\x1b[2J"
"""A label that would colour the terminal and clear the screen."""


def terminal(width: int = 120) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, color_system="standard"), buf


def test_the_summary_table_shows_labels_and_errors_literally() -> None:
    records = [FeatureRecord(0, "done", label=MARKUP, confidence=0.8), FeatureRecord(1, "done", label=SWALLOWED),
               FeatureRecord(2, "done", label=ESCAPES), FeatureRecord(3, "failed", error="no verdict: \x1b]0;pwned\x07")]
    console, buf = terminal()
    console.print(summary_table(records, None))
    out = buf.getvalue()
    assert MARKUP in out and SWALLOWED in out and "red \ufffd thing\ufffd" in out
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x1b[31m thing" not in out


@pytest.mark.parametrize("live", [True, False])
def test_verbose_lines_and_errors_are_literal_on_a_terminal_and_in_a_pipe(live: bool) -> None:
    console, buf = terminal() if live else (Console(file=io.StringIO(), width=120), None)
    buf = buf or console.file
    with RichProgress(console, enabled=True, verbose=True) as progress:
        assert progress.live_display is live
        for i, label in enumerate((MARKUP, SWALLOWED, ESCAPES)):
            progress(FeatureFinished(stats=RunStats(), feature=i, record=FeatureRecord(i, "done", label=label),
                                     written=True))
        progress(RunError(stats=RunStats(), message=f"judge said {SWALLOWED} \x1b[2J", fatal=True))
    out = buf.getvalue()
    assert f"feature 0: done {MARKUP}" in out and f"feature 1: done {SWALLOWED}" in out
    assert "feature 2: done red \ufffd thing\ufffd" in out and f"judge said {SWALLOWED} \ufffd" in out
    assert "\x1b[2J" not in out and "\x1b[31m thing" not in out


def test_log_lines_lose_escape_sequences_and_query_values() -> None:
    from agent.judges.redact import _FILTER, install_log_redaction

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_log_redaction()
        logging.getLogger("agent.judges.test").warning("reply \x1b[2J\x1b]0;t\x07 at http://h/v1?t=SECRETVALUE")
    finally:
        root.removeHandler(handler)
        handler.removeFilter(_FILTER)
    line = buf.getvalue()
    assert "\x1b" not in line and "SECRETVALUE" not in line and "reply \ufffd\ufffd at http://h/v1?t=" in line


def test_a_run_shows_judge_text_literally_and_so_does_every_later_run(tiny_world: tuple[Path, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the run stored and exported, then died on MarkupError, and so did every run on that store."""
    from agent.cli.main import main

    monkeypatch.setenv("HOSTILE_JUDGE_KEY", TEST_KEY)
    label = "[/] red \x1b[2Jthing"
    reply = json.dumps({**final_reply(), "label": label})
    model, sae = tiny_world
    with ChatServer(lambda payload: Reply(content=reply)) as server:
        args = ["--features", "0-1", "--model", str(model), "--sae", str(sae), "--max-new-tokens", "4",
                "--strengths", "4,8", "--judge-base-url", server.url, "--judge-model", "m", "--judge-api-key-env",
                "HOSTILE_JUDGE_KEY", "--store", str(tmp_path / "store"), "--export", str(tmp_path / "out.jsonl"),
                "--no-progress"]
        assert main(["-v", *args]) == 0
        first = capsys.readouterr()
        assert main(args) == 0  # resumed: the labels are read back from the store and shown again
        second = capsys.readouterr()
    for out, calls in ((first, 2), (second, 0)):
        assert "[/] red \ufffdthing" in out.out and "\x1b" not in out.out + out.err
        assert f"judge openai:m: {calls} calls" in out.out  # not an emoji code (":m:")
    assert "feature 0: done [/] red \ufffdthing" in first.err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [label, label], "the export keeps the judge's words as data"


def test_judge_check_prints_what_the_server_says_without_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    body = {"error": {"message": "bad \x1b[2J request \x1b]0;pwned\x07", "type": "invalid_request_error"}}
    with ChatServer(lambda payload: Reply(status=400, body=body)) as server:
        server.models = ["evil\x1b[2Jmodel"]
        assert main(["judge-check", "--judge-base-url", server.url, "--judge-model", "m"]) == 2  # no format works
    out = capsys.readouterr().out
    assert "evil\ufffdmodel" in out and "bad \ufffd request \ufffd" in out and "\x1b" not in out


def test_probe_prints_the_model_s_words_literally(tiny_world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`steer-agent probe` on the tiny world, its engine's answers replaced by hostile text (a random model
    cannot be made to write it): the table shows them literally, no MarkupError, no escape sequence."""
    from agent import world
    from agent.cli.main import main

    real_load = world.load_engine

    def hostile_engine(spec):  # type: ignore[no-untyped-def]
        engine = real_load(spec)
        real_run = engine.run

        def run(probes):  # type: ignore[no-untyped-def]
            return [dataclasses.replace(r, texts=(MARKUP, ESCAPES)) for r in real_run(probes)]

        engine.run = run
        return engine

    monkeypatch.setattr(world, "load_engine", hostile_engine)  # the session's engines load with it
    model, sae = tiny_world
    rc = main(["probe", "--model", str(model), "--sae", str(sae), "--feature", "1", "--strengths", "0,4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert MARKUP in out and "red \ufffd thing\ufffd" in out and "\x1b[2J" not in out


def test_the_summary_table_shows_review_state_and_a_rejected_explanation_names_nothing() -> None:
    from agent.store.records import Review

    truth = {f: {"family": "colour", "value": "red", "purity": 1.0} for f in range(3)}
    said = "Steering this feature makes the model describe red."
    records = [FeatureRecord(f, "done", explanation=said, label="the colour red", confidence=0.8) for f in range(3)]
    records[1].review = Review("reject", "tester", "2026-12-07T00:00:00Z", note="red is filled in")
    records[2].review = Review("edit", "tester", "2026-12-07T00:00:00Z", explanation="Red things.", label="red things")
    console, out = terminal(160)
    console.print(summary_table(records, truth))
    rows = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()}
    assert "rejected" in rows["1"] and rows["1"].rstrip().endswith("no")
    assert "edited" in rows["2"] and "red things" in rows["2"] and rows["2"].rstrip().endswith("yes")
    assert rows["0"].rstrip().endswith("yes")
    assert "named: whether the explanation" in out.getvalue()
