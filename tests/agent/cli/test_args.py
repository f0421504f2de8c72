"""Shared model options: --decode and --no-compile reach the engine's generation settings."""

from __future__ import annotations

import argparse

import pytest

from agent.cli.args import add_model_options, world_spec
from agent.world import load_engine


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_model_options(p)
    return p.parse_args(list(argv))


def test_decode_options_reach_the_engine(tiny_world) -> None:
    model, sae = tiny_world
    defaults = load_engine(world_spec(_parse("--model", str(model), "--sae", str(sae), "--device", "cpu")))
    assert defaults.settings.decode == "auto" and defaults.settings.compile_decode is None
    chosen = load_engine(world_spec(_parse("--model", str(model), "--sae", str(sae), "--device", "cpu",
                                           "--decode", "hf", "--no-compile")))
    assert chosen.settings.decode == "hf" and chosen.settings.compile_decode is False


def test_unknown_decode_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse("--decode", "turbo")
    assert exc.value.code == 2 and "invalid choice: 'turbo'" in capsys.readouterr().err
