"""Typos get "did you mean" (issue 31, item 7): a misspelt subcommand is named as one, not as an option of run;
a misspelt built-in base image gets its nearest name."""

from __future__ import annotations

from pathlib import Path

import pytest

from steering.errors import SteeringError
from steering.images import check_base_image


@pytest.mark.parametrize(("argv", "line"), [
    (["exprot", "--out", "x"], "error: unknown command 'exprot': did you mean export?"),
    (["-v", "judgecheck"], "error: unknown command 'judgecheck': did you mean judge-check?"),
    (["reveiw", "3", "accept"], "error: unknown command 'reveiw': did you mean review?"),
    (["zzz"], "error: unknown command 'zzz' (commands: run, probe, export, review, eval, topk, judge-check, world; "
              "see steer-agent --help)"),
])
def test_a_misspelt_command_is_named_with_the_nearest_command(argv: list[str], line: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_options_without_a_command_still_run_the_agent_and_option_typos_still_say_so(
        capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    assert main(["--featurs", "0-3"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown option --featurs: did you mean --features?"


def test_a_misspelt_base_image_gets_the_nearest_built_in_name() -> None:
    with pytest.raises(SteeringError, match=r"base image 'whit' .*: did you mean white\?$"):
        check_base_image("whit")
    with pytest.raises(SteeringError, match=r"did you mean outline-circle-small\?$"):
        check_base_image("outline-circel-small")
    with pytest.raises(SteeringError, match="neither one of white, black, noise"):
        check_base_image("a-file-that-is-not-there.png")


def test_the_run_refuses_a_misspelt_base_image_in_one_line_before_anything_is_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    assert main(["--features", "0", "--base-image", "whit", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: base image 'whit' is neither a built-in base image nor an existing image "
                                "file: did you mean white?"]
    assert not (tmp_path / "store").exists()
