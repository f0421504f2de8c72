"""Activation tests through the real scheduler: a scripted judge asks for them, their results join the record's
numbered evidence after the probes, a second run reads them from the store, --force recomputes them, and a test
that cannot run comes back as a one-line error instead of failing the feature."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent.judges import LLMJudge
from agent.judges.scripted import ScriptedChat, final_reply
from agent.run import run_features
from agent.run.config import RunConfig, SweepConfig
from agent.store.store import Store
from steering import activation_tests as at
from steering.toy import scenes
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=0))
OPENING = 5
"""Evidence items of the opening sweep: baseline, three strengths, one control."""
RED = np.array(scenes.COLOURS["red"])
RED_FIELD = Image.fromarray(scenes.render(scenes.Scene(kind="field", colour="red", pattern="solid")))


def cfg(**kw: Any) -> RunConfig:
    return RunConfig(**{**CFG.__dict__, **kw})


class ModelEngine(FakeEngine):
    """The fake engine with a model and an SAE of its own, as the scheduler asks of an engine that runs
    activation tests (a pool of remote engines has neither)."""

    vlm = object()


class Counter:
    """Counts the testers made, the tests they ran and the images they encoded."""

    def __init__(self) -> None:
        self.testers = 0
        self.tests: list[str] = []
        self.images = 0
        self.can_render = True
        """Whether the testers made next can render scenes."""


def red_encoder(counter: Counter, d_sae: int) -> Any:
    """Feature 0 is the share of red pixels in each quadrant of the image; the others never fire."""

    def encode(images: list[Image.Image], features: Sequence[int] | None) -> np.ndarray:
        counter.images += len(images)
        out = np.zeros((len(images), 4, d_sae), dtype=np.float32)
        for i, im in enumerate(images):
            a = np.asarray(im.convert("RGB")).astype(int)
            red = (np.abs(a - RED).sum(-1) < 30).astype(np.float32)
            h = a.shape[0] // 2
            out[i, :, 0] = red.reshape(2, h, 2, h).mean(axis=(1, 3)).reshape(-1)
        return out if features is None else out[..., list(features)]

    return encode


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Make the scheduler's tester a small counting one: renders (unless told it cannot), and has top images
    for feature 0 only."""
    counter = Counter()

    def engine_tester(engine: Any, topk: Any = None, pool_dir: Any = None) -> at.Tester:
        counter.testers += 1
        tester = at.Tester(red_encoder(counter, engine.sae.d_sae), can_render=counter.can_render,
                           top_images=lambda f: ([RED_FIELD] * 2, [np.ones((2, 2))] * 2) if f == 0 else ([], []),
                           base_scenes_n=8)
        run = tester.run

        def counted(tests: Sequence[at.ActivationTest]) -> list[at.ActivationTestResult]:
            counter.tests.extend(t.name() for t in tests)
            return run(tests)

        tester.run = counted  # type: ignore[method-assign]
        return tester

    monkeypatch.setattr("agent.run.scheduler.engine_tester", engine_tester)
    return counter


TESTS = [{"kind": "render", "family": "colour", "reason": "which colour makes it fire"},
         {"kind": "edit", "edit": "desaturate", "reason": "does it need colour"}]


def asking_judge(tests: list[dict[str, Any]] = TESTS, cite: Sequence[int] = (OPENING + 1,)) -> LLMJudge:
    """Asks for ``tests`` in round 1, then answers citing ``cite``."""

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return {"hypothesis": "red", "confidence": 0.4, "action": "probe", "probes": [], "tests": tests,
                    "explanation": None, "label": None, "evidence": []}
        return final_reply(evidence=list(cite))

    return LLMJudge(ScriptedChat(reply))


def test_requested_tests_join_the_numbered_evidence_after_the_probes(counter: Counter, store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.run.phases import PhaseCounts

    steps: list[tuple[int, str, int]] = []
    step = PhaseCounts.step
    monkeypatch.setattr(PhaseCounts, "step", lambda self, f, key, rnd=0: (steps.append((f, key, rnd)),
                                                                          step(self, f, key, rnd))[1])
    summary = run_features(ModelEngine(), asking_judge(), store, [0], CFG)
    r = store.get_record(0)
    assert summary.exit_code == 0 and r.status == "done" and r.rounds == 2
    assert [e["id"] for e in r.evidence] == list(range(1, OPENING + 1))
    assert [t["id"] for t in r.test_evidence] == [OPENING + 1, OPENING + 2]  # one numbering, after the probes
    assert [t["round"] for t in r.test_evidence] == [2, 2] and {t["role"] for t in r.test_evidence} == {"test"}
    assert [t["reason"] for t in r.test_evidence] == [t["reason"] for t in TESTS]
    render, edit = (at.ActivationTestResult.from_dict(t["test"]) for t in r.test_evidence)
    assert render.test == at.ActivationTest(0, "render", "colour") and render.error is None
    assert max(render.values, key=render.values.get) == "red" and render.wins["red"] == 1.0
    assert edit.values == {"before": 1.0, "after": 0.0}
    assert counter.tests == ["render colour", "edit desaturate"]
    assert r.transcript[2]["tests"] == ["render colour", "edit desaturate"]
    assert r.fingerprint["tests"] == ["render", "edit"]
    assert steps == [(0, "sweep", 0), (0, "judge", 1), (0, "followup", 1), (0, "tests", 1), (0, "judge", 2)]


def test_a_second_run_reads_the_tests_from_the_store_and_force_recomputes(counter: Counter, store: Store) -> None:
    run_features(ModelEngine(), asking_judge(), store, [0], CFG)
    first = store.get_record(0).test_evidence
    assert len(counter.tests) == 2 and counter.images > 0
    counter.tests.clear()
    encoded = counter.images

    run_features(ModelEngine(), asking_judge(), store, [0], cfg(rejudge=True))  # probes and tests cached
    again = store.get_record(0)
    assert again.status == "done" and counter.tests == [] and counter.images == encoded
    assert [t["test"] for t in again.test_evidence] == [t["test"] for t in first]

    run_features(ModelEngine(), asking_judge(), store, [0], cfg(force=True))
    assert counter.tests == ["render colour", "edit desaturate"] and counter.images > encoded
    assert counter.testers == 3  # each run has a tester of its own: the second one's answers came from the store
    assert [t["test"] for t in store.get_record(0).test_evidence] == [t["test"] for t in first]


def test_a_test_that_cannot_run_is_a_one_line_error_and_the_feature_still_ends(counter: Counter,
                                                                               store: Store) -> None:
    """Feature 3 has no top images: its edit test says so; the render test still runs; the answer stands."""
    summary = run_features(ModelEngine(), asking_judge(), store, [3], CFG)
    r = store.get_record(3)
    assert summary.exit_code == 0 and r.status == "done"
    render, edit = (at.ActivationTestResult.from_dict(t["test"]) for t in r.test_evidence)
    assert render.error is None and edit.error == "the feature has no top images"
    assert edit.line() == "edit desaturate: not run (the feature has no top images)"
    # an error is not cached: a later run tries again
    counter.tests.clear()
    run_features(ModelEngine(), asking_judge(), store, [3], cfg(rejudge=True))
    assert counter.tests == ["edit desaturate"]


def test_a_render_test_on_a_world_that_cannot_render_comes_back_as_an_error(counter: Counter,
                                                                             store: Store) -> None:
    """A world with top images but no renderer offers edit tests only; a render test asked anyway is answered
    with a one-line error the judge can read, and the feature still ends."""
    counter.can_render = False
    summary = run_features(ModelEngine(), asking_judge(), store, [0], CFG)
    r = store.get_record(0)
    assert summary.exit_code == 0 and r.status == "done" and r.fingerprint["tests"] == ["edit"]
    results = {t["test"]["test"]["kind"]: at.ActivationTestResult.from_dict(t["test"]) for t in r.test_evidence}
    assert results["edit"].error is None
    assert results["render"].error and "\n" not in results["render"].error
    assert re.search(r"render", results["render"].line())
