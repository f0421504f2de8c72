"""The report's benchmark section says plainly when the agent loses and marks inapplicable modes."""

from __future__ import annotations

from agent.eval.bench import Bench, run_bench
from agent.eval.report_bench import bench_section, headline
from steering.toy.gates import Sweep, split

CAPTION = "The highlighted element is nothing, the image is empty and white."


def _bench(agent_text: str) -> dict:
    colours = ["red", "blue", "green", "yellow"]
    truth = {f: {"family": "colour", "value": colours[f % 4], "purity": 1.0} for f in range(24)}
    right = {f: f"a {colours[f % 4]} thing" for f in truth}
    sweep = Sweep([1.0, 2.0], [{f: CAPTION for f in truth}, right], CAPTION)
    texts = {"agent": {f: agent_text.format(colours[f % 4]) for f in truth}, "topk": {f: "" for f in truth}}
    return run_bench(Bench(truth, split(list(truth), truth), sweep, texts), "test")


def test_a_losing_agent_is_reported_as_losing() -> None:
    b = _bench("a large black striped square")
    assert headline(b).startswith("**The agent loses**")
    text = "\n".join(bench_section({"bench": b}))
    assert "| top-k (masked top images) | not applicable" in text
    assert "| best baseline (" in text and "loses" in text
    assert ("| agent minus the best no-follow-up baseline (one-shot steering at the dev-chosen strength), "
            "F1 points |") in text
    assert "Bar met on this split: **no**." in text


def test_an_agent_that_ties_is_not_called_a_winner() -> None:
    b = _bench("{}")
    assert headline(b).startswith("The agent is not distinguishable")
