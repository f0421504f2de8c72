"""Judge prompts are versioned data rendered strictly; agent modules import without torch or textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

import prompts
from agent.judges.evidence import Evidence
from agent.judges.base import JudgeContext
from agent.judges.llm import build_messages
from agent.probes import Probe, ProbeResult


def test_judge_templates_are_versioned_and_strict() -> None:
    for name in ("judge_system", "judge_round", "judge_reask"):
        t = prompts.load(name)
        assert t.version >= 1 and t.ref == f"{name}@v{t.version}"
    with pytest.raises(prompts.PromptError):
        prompts.load("judge_reask").render()


def _ctx(**kw) -> JudgeContext:
    ev = Evidence()
    ev.add([ProbeResult(Probe(None), ("nothing, the image is empty and white.",)),
            ProbeResult(Probe(3, strength=50.0), ("a red circle",), kl_first=0.25),
            ProbeResult(Probe(3, strength=50.0, direction="random"), ("a grey blob",), kl_first=0.2)], round=1)
    return JudgeContext(feature=3, round=1, max_rounds=4, evidence=ev, strengths=[50.0], probes_left=5,
                        world={"model": "toy", "sae": "toy-sae", "layer": 3}, **kw)


def test_rendered_first_round_is_pinned() -> None:
    messages = build_messages(_ctx(), "text")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "layer 3" in messages[0]["content"] and "Reply with exactly one JSON object" in messages[0]["content"]
    assert messages[1]["content"] == (
        "Feature 3. Here is the opening sweep (strengths 50).\n"
        "\n"
        "#1 baseline (strength 0)\n"
        '  - "nothing, the image is empty and white."\n'
        "#2 steered, strength 50 (KL 0.250)\n"
        '  - "a red circle"\n'
        "#3 control: random direction, strength 50 (KL 0.200)\n"
        '  - "a grey blob"\n'
        "\n"
        "You may ask for up to 5 more probes, or give your final answer. Round 1 of 4."
    )


def test_forced_round_asks_for_a_final_answer() -> None:
    text = build_messages(_ctx(force_final=True, note="look at colour"), "schema")[-1]["content"]
    assert "Give your final answer now" in text and "look at colour" in text


def test_agent_imports_without_torch_or_textual() -> None:
    code = ("import sys, agent.cli, agent.run, agent.store.store, agent.run.loop, agent.judges, agent.judges.openai_chat, "
            "agent.store.export, agent.cli.progress, agent.cli.run, agent.cli.export, agent.session, agent.world\n"
            "bad = [m for m in ('torch', 'textual', 'transformers') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
