"""Strengths are finite and bounded; probe --json never prints NaN (issue 17 item 9)."""

from __future__ import annotations

import argparse
import json

import pytest

from agent.cli.args import parse_strengths
from agent.run.strengths import MAX_STRENGTH, finite_or_none


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e30", "0,50,nan", "10,Infinity", f"{MAX_STRENGTH * 2:g}"])
def test_non_finite_or_absurd_strengths_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="bad --strengths") as info:
        parse_strengths(text)
    assert "\n" not in str(info.value)


def test_sane_strengths_pass() -> None:
    assert parse_strengths("0,50,100.5") == [0.0, 50.0, 100.5]
    assert parse_strengths(f"{MAX_STRENGTH:g}") == [MAX_STRENGTH]


def test_the_cli_parser_exits_2_on_nan() -> None:
    from agent.cli.main import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["probe", "--feature", "0", "--strengths", "nan"])
    assert info.value.code == 2


def test_json_numbers_are_finite() -> None:
    rows = [{"kl_first": finite_or_none(v)} for v in (float("nan"), float("inf"), 0.25)]
    assert json.loads(json.dumps(rows, allow_nan=False)) == [{"kl_first": None}, {"kl_first": None}, {"kl_first": 0.25}]
