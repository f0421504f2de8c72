"""The LLM judge and activation tests (issue 30, item 5): the prompt offers the kinds the world has and shows
the results, a reply's tests parse and the loop runs them, and every fake server quirk still gets a verdict."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prompts
from agent.judges.base import JudgeContext, PastTurn
from agent.judges.evidence import Evidence
from agent.judges.examples import example_for, load_examples
from agent.judges.llm import LLMJudge, build_messages
from agent.judges.scripted import ScriptedChat, final_reply
from agent.judges.verdicts import VERDICT_SCHEMA, constrained_schema, parse_verdict
from agent.probes import Probe, ProbeResult
from steering.activation_tests import ActivationTest, ActivationTestResult

RENDER_LINE = "render colour over 14 scenes, peak 3: red 2 (top 100%, wins 100%); blue 0 (top 0%, wins 0%)"


def asking_tests(*tests: dict[str, Any], hypothesis: str = "H1: red vs H2: red circles") -> dict[str, Any]:
    """A valid probe verdict asking for activation tests only."""
    return {"hypothesis": hypothesis, "confidence": 0.4, "action": "probe", "probes": [],
            "tests": [{"kind": "render", "family": None, "hold": [], "edit": None, "reason": "check", **t}
                      for t in tests],
            "explanation": None, "label": None, "evidence": []}


def grammar(reply: dict[str, Any]) -> dict[str, Any]:
    """A probe reply as a constrained decoder writes it (no explanation, label or evidence keys)."""
    return {k: v for k, v in reply.items() if k not in ("explanation", "label", "evidence")}


def context(kinds: list[str], *, round: int = 1, force_final: bool = False, **world: Any) -> JudgeContext:
    ev = Evidence()
    ev.add([ProbeResult(Probe(None), ("nothing, the image is empty and white.",)),
            ProbeResult(Probe(3, strength=50.0), ("a red circle",), kl_first=0.25)], round=1)
    return JudgeContext(feature=3, round=round, max_rounds=4, evidence=ev, strengths=[50.0], probes_left=5,
                        force_final=force_final,
                        world={"model": "toy", "sae": "toy-sae", "layer": 3, "tests": kinds, "tests_left": 16,
                               **world})


def render_result(feature: int = 3) -> ActivationTestResult:
    return ActivationTestResult(ActivationTest(feature, "render", "colour"), values={"red": 2.0, "blue": 0.0},
                                top_share={"red": 1.0, "blue": 0.0}, wins={"red": 1.0, "blue": 0.0},
                                n_images=14, n_top=3, peak=3.0)


# ----------------------------------------------------------------------------- a small JSON-schema checker

_TYPES: dict[str, Any] = {"string": str, "null": type(None), "boolean": bool, "array": list, "object": dict,
                          "integer": int, "number": (int, float)}


def schema_errors(value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the keywords the verdict schemas use; jsonschema is no dependency)."""
    if "oneOf" in schema:
        fits = [b for b in schema["oneOf"] if not schema_errors(value, b, at)]
        return [] if len(fits) == 1 else [f"{at}: matches {len(fits)} of the oneOf branches"]
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        ok = any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                 for t in types)
        if not ok:
            return [f"{at}: {value!r} is not {types}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{at}: length {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{at}: does not match {schema['pattern']}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{at}: {value} out of range")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{at}: {len(value)} items")
        for n, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{at}[{n}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{at}: lacks {k}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{at}: has {k}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{at}.{k}")
    return errors


def fits(value: Any, schema: dict[str, Any]) -> bool:
    return not schema_errors(value, schema)


# ----------------------------------------------------------------------------- the prompt


def test_prompts_are_bumped_and_the_examples_are_part_of_the_judge_identity() -> None:
    assert prompts.load("judge_system").ref == "judge_system@v6" and prompts.load("judge_round").ref == "judge_round@v4"
    refs = LLMJudge(ScriptedChat([])).describe()["prompts"]
    assert refs[:2] == ["judge_system@v6", "judge_round@v4"] and refs[-1].startswith("judge_examples@v1:")


@pytest.mark.parametrize("mode", ["schema", "text"])
def test_the_system_prompt_offers_only_the_test_kinds_the_world_has(mode: str) -> None:
    none = build_messages(context([]), mode)[0]["content"]
    render = build_messages(context(["render"]), mode)[0]["content"]
    edit = build_messages(context(["edit"]), mode)[0]["content"]
    forced = build_messages(context(["render", "edit"], force_final=True), mode)[0]["content"]
    assert 'No activation tests are available for this feature: leave "tests" empty.' in none
    assert 'No activation tests are available' in forced, "a forced final round offers none"
    for text in (none, forced):
        assert '- "render":' not in text and '- "edit":' not in text and "An example" not in text
    assert '- "render": scenes of this world' in render and '- "edit":' not in render
    assert '- "edit": the feature\'s top-activating images edited' in edit and '- "render":' not in edit
    assert "blur: blurred (fine texture and pattern removed)" in edit
    assert "at most 16 more for this feature" in render and "No activation tests" not in render
    if mode == "text":  # the key list names only the kinds offered
        assert '"tests": [{"kind": "render", "family": one of the families or null' in render
        assert '"tests": [{"kind": "edit", "family": null' in edit
        assert '"tests": [],' in none


def test_the_examples_come_from_the_dev_split_and_match_the_kind_offered() -> None:
    from agent.judges.examples import dev_features

    examples = load_examples()["examples"]
    assert set(examples) == {"render", "edit"}
    dev, _ = dev_features()
    for kind, ex in examples.items():
        assert ex["split"] == "dev" and ex["feature"] in dev, "never a test-split feature"
        assert ex["ask"]["tests"] and all(t["kind"] == kind for t in ex["ask"]["tests"])
        ask, final = parse_verdict(json.dumps(ex["ask"])), parse_verdict(json.dumps(ex["final"]))
        assert ask.action == "probe" and len(ask.tests) == len(ex["results"]) and final.action == "final"
        cited = {int(line.split()[0][1:]) for line in ex["results"]}
        assert set(final.evidence) <= cited and final.evidence
    assert example_for(["render", "edit"]) == examples["render"] and example_for(["edit"]) == examples["edit"]
    assert example_for([]) is None
    system = build_messages(context(["edit"]), "schema")[0]["content"]
    assert examples["edit"]["results"][0] in system and examples["render"]["results"][0] not in system


def test_a_round_shows_the_test_results_by_number_with_the_reason_and_what_is_left() -> None:
    ctx = context(["render"], round=2, tests_left=11)
    ctx.evidence.add_tests([render_result()], round=2, reasons=["which colour makes it fire"])
    raw = json.dumps(asking_tests({"family": "colour"}))
    ctx.history.append(PastTurn(round=1, verdict=parse_verdict(raw), raw=raw))
    messages = build_messages(ctx, "text")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == (
        "Round 2 of 4. Here are the results of the tests you asked for.\n"
        "\n"
        f"#3 {RENDER_LINE} [you asked: which colour makes it fire]\n"
        "\n"
        "You may ask for up to 5 more probes and 11 activation tests, or give your final answer. Round 2 of 4.")
    shrunk = build_messages(ctx, "text", shrink=2)[2]["content"]
    assert json.loads(shrunk)["tests"] == "(asked for render colour)"


def test_a_round_with_probes_and_tests_heads_the_tests() -> None:
    ctx = context(["edit"], round=2)
    ctx.evidence.add([ProbeResult(Probe(3, strength=80.0), ("a red field",), kl_first=0.5)], round=2)
    ctx.evidence.add_tests([render_result()], round=2)
    ctx.history.append(PastTurn(round=1, verdict=parse_verdict(json.dumps(asking_tests({"family": "colour"}))),
                                raw="{}"))
    text = build_messages(ctx, "schema")[-1]["content"]
    assert text.startswith("Round 2 of 4. Here are the results of the probes and tests you asked for.")
    assert '"a red field"\n\nActivation tests:\n#4 render colour' in text


# ----------------------------------------------------------------------------- the replies


def test_a_reply_asking_for_tests_only_is_a_valid_probe_verdict() -> None:
    v = parse_verdict(json.dumps(asking_tests({"family": "shape", "hold": [["colour", "red"]]},
                                             {"kind": "edit", "edit": "blur"})))
    assert v.action == "probe" and not v.probes
    assert [(t.kind, t.family, t.hold, t.edit) for t in v.tests] == [("render", "shape", [("colour", "red")], None),
                                                                     ("edit", None, [], "blur")]


def test_the_constrained_schema_offers_tests_only_when_the_world_has_them() -> None:
    only_tests = grammar(asking_tests({"family": "colour", "hold": [["shape", "circle"]]}))
    with_probe = {**only_tests, "probes": [{"strength": 20.0, "samples": 1, "question": None, "base_image": "white",
                                            "control": False, "reason": "x"}]}
    edit = grammar(asking_tests({"kind": "edit", "edit": "hue"}))
    final = {k: v for k, v in final_reply(evidence=[1]).items() if k != "probes"}
    render = constrained_schema(tests=["render"])
    for ok in (only_tests, with_probe, {**with_probe, "tests": []}, final):
        assert schema_errors(ok, render) == []
        parse_verdict(json.dumps(ok))
    for bad in (edit, {**only_tests, "tests": []}, grammar(asking_tests({"family": "colour", "hold": [["shape"]]})),
                {**final, "tests": only_tests["tests"]}):
        assert not fits(bad, render), bad
    assert fits(edit, constrained_schema(tests=["edit"])) and not fits(only_tests, constrained_schema(tests=["edit"]))
    assert not fits(with_probe, constrained_schema()), "no tests key where none are offered"
    assert fits({k: v for k, v in with_probe.items() if k != "tests"}, constrained_schema())
    assert constrained_schema(force_final=True, tests=["render"]) == constrained_schema(force_final=True)


def _strict_problems(schema: Any, where: str = "") -> list[str]:
    """What a strict JSON-schema server (OpenAI's structured outputs) refuses anywhere in ``schema``."""
    out: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            if schema.get("additionalProperties") is not False:
                out.append(f"{where or '/'}: additionalProperties is not false")
            if set(schema.get("required", [])) != set(schema.get("properties", {})):
                out.append(f"{where or '/'}: not every property is required")
        if "enum" in schema:
            types = schema.get("type")
            allowed = {"string": str, "null": type(None), "integer": int, "number": (int, float), "boolean": bool}
            types = [types] if isinstance(types, str) else types or []
            for value in schema["enum"]:
                if types and not any(isinstance(value, allowed[t]) for t in types):
                    out.append(f"{where}: enum value {value!r} is not of type {types}")
        for key, sub in schema.items():
            out += _strict_problems(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for n, sub in enumerate(schema):
            out += _strict_problems(sub, f"{where}/{n}")
    return out


def test_the_wire_schema_is_strict_all_the_way_down_and_admits_the_examples() -> None:
    assert _strict_problems(VERDICT_SCHEMA) == []
    for ex in load_examples()["examples"].values():
        for reply in (ex["ask"], ex["final"]):
            assert schema_errors(reply, VERDICT_SCHEMA) == []
        assert schema_errors(grammar(ex["ask"]), constrained_schema(tests=[ex["kind"]])) == []

# ----------------------------------------------------------------------------- the loop runs them


D_SAE = 64


def encode(images: list[Any], features: Any) -> np.ndarray:
    """A tiny encoder: one patch per image; feature 0 reads how red the image is, feature 1 how blue."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255 for im in images])  # [n, h, w, 3]
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    codes = np.zeros((len(images), 1, D_SAE), dtype=np.float32)
    codes[:, 0, 0] = np.clip(r - np.maximum(g, b), 0, None).mean(axis=(1, 2))
    codes[:, 0, 1] = np.clip(b - np.maximum(r, g), 0, None).mean(axis=(1, 2))
    return codes if features is None else codes[..., list(features)]


def test_the_loop_runs_the_tests_an_llm_judge_asks_for_and_shows_their_results(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.run import run_features, scheduler
    from agent.run.config import RunConfig, SweepConfig
    from agent.store.store import Store
    from steering.activation_tests import Tester
    from tests.agent.fakes import FakeEngine

    tester = Tester(encode, can_render=True, image_side=16, base_scenes_n=12)
    monkeypatch.setattr(scheduler, "engine_tester", lambda engine, topk=None, pool_dir=None: tester)
    engine = FakeEngine()
    engine.vlm = object()  # a local model: the run may test activations

    def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
        system, last = messages[0]["content"], messages[-1]["content"]
        if sum(m["role"] == "user" for m in messages) == 1:
            assert '- "render": scenes of this world' in system and '- "edit":' not in system
            return asking_tests({"family": "colour", "reason": "which colour"},
                               {"family": "shape", "hold": [["colour", "red"]], "reason": "shape, red held"},
                               {"kind": "edit", "edit": "blur"})  # no top-k collection: answered with an error
        ids = [int(line.split()[0][1:]) for line in last.splitlines() if line.startswith("#")]
        assert "render colour over" in last and "render shape holding colour red over" in last
        assert "edit blur: not run (this world offers no edit tests" in last and "[you asked: which colour]" in last
        return final_reply(explanation="The feature fires on red things.", label="red things", evidence=ids)

    chat = ScriptedChat(script)
    cfg = RunConfig(sweep=SweepConfig(strengths=(20.0,)), max_rounds=3)
    with Store(tmp_path / "s") as store:
        summary = run_features(engine, LLMJudge(chat), store, [0], cfg)
        record = store.get_record(0)
    assert summary.stats.failed == 0 and record.status == "done" and len(chat.calls) == 2
    tests = [t["test"] for t in record.test_evidence]
    assert [(t["test"].get("family"), t["test"].get("hold"), t["error"] is None) for t in tests] == [
        ("colour", None, True), ("shape", {"colour": "red"}, True), (None, None, False)]
    colour = tests[0]
    assert max(colour["values"], key=colour["values"].get) == "red", "the tiny encoder's feature 0 reads red"
    first_test = record.test_evidence[0]["id"]
    assert f"#{first_test} render colour" in chat.calls[1][-1]["content"]


# ----------------------------------------------------------------------------- judge-check on every quirk


FINAL = json.dumps(final_reply())


class StrictOpenAI:
    """The openai quirk, with OpenAI's strict schema rules checked at every depth (the fake checks the top)."""

    def __init__(self) -> None:
        from tests.agent.fakes import Quirks

        self.quirks = Quirks("openai", lambda payload: FINAL)

    def __call__(self, payload: dict[str, Any]) -> Any:
        from tests.agent.fakes import Reply

        fmt = payload.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            problems = _strict_problems(fmt["json_schema"]["schema"])
            if problems:
                return Reply(status=400, body={"error": {"message": f"Invalid schema: {problems[0]}",
                                                         "type": "invalid_request_error"}})
        return self.quirks(payload)


QUIRKS = {  # server -> (its quirks, the formats judge-check must find working)
    "llama.cpp": ({"kind": "llama.cpp"}, ["json_object", "text"]),
    "llama.cpp-gemma": ({"kind": "llama.cpp", "drops_system": True}, ["json_object", "text"]),
    "vllm": ({"kind": "vllm"}, ["schema", "json_object", "text"]),
    "ollama": ({"kind": "ollama"}, ["schema", "json_object", "text"]),
    "openai": ({"kind": "openai"}, ["schema", "text"]),
    "openai-strict": (None, ["schema", "text"]),
    "small-context": ({"kind": "llama.cpp", "n_ctx": 2600}, ["json_object", "text"]),
}


@pytest.mark.parametrize("server", sorted(QUIRKS))
def test_judge_check_passes_on_every_quirk_mode(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main
    from tests.agent.fakes import ChatServer, Quirks

    opts, working = QUIRKS[server]
    quirks = StrictOpenAI() if opts is None else Quirks(answer=lambda payload: FINAL, **opts)
    with ChatServer(quirks) as chat:
        code = main(["judge-check", "--judge-base-url", chat.url, "--judge-model", "served-model",
                     "--judge-timeout", "5"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[0] in ("schema", "json_object", "text")}
    assert code == 0, out
    assert [f for f, line in lines.items() if "accepted: a valid verdict" in line] == working, out
    seen = (quirks.quirks if opts is None else quirks).seen
    assert any("#4 render colour over" in text for text in seen), "the check's prompt shows a test result"


def test_judge_check_prompt_offers_no_test_in_its_forced_round() -> None:
    from agent.cli.judge_check import tiny_context

    ctx = tiny_context()
    system = build_messages(ctx, "json_object")[0]["content"]
    assert ctx.force_final and "No activation tests are available" in system
    assert asyncio.run(LLMJudge(ScriptedChat([FINAL])).decide(ctx)).verdict is not None
