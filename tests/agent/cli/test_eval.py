"""`steer-agent eval` end to end on the tiny random world with a synthetic ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.eval.embeddings import minilm_available

VALUES = [("colour", "red"), ("colour", "blue"), ("shape", "circle"), ("pattern", "striped"), ("colour", "green"),
          ("size", "large")]


@pytest.fixture(scope="module")
def truth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("truth") / "ground_truth.json"
    features = {str(f): {"family": fam, "value": val, "purity": 1.0} for f, (fam, val) in enumerate(VALUES)}
    features["6"] = {"family": "colour", "value": "red", "purity": 0.4}  # impure: not scored
    path.write_text(json.dumps({"features": features}))
    return path


def eval_argv(tiny_world: tuple[Path, Path], truth: Path, tmp: Path, report: str, *extra: str) -> list[str]:
    model, sae = tiny_world
    return ["eval", "--model", str(model), "--sae", str(sae), "--ground-truth", str(truth), "--features", "0-6",
            "--strengths", "4,16", "--hybrid-multiples", "0.5", "--max-new-tokens", "4", "--topk-scenes", "12",
            "--max-rounds", "2", "--max-probes", "2", "--eval-store", str(tmp / "cache"), "--report", str(tmp / report),
            *extra]


def test_eval_on_the_tiny_world_writes_a_report_and_reproduces(tiny_world, truth_file: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "rep", "--json", "--seed", "1")) == 0
    out, err = capsys.readouterr()
    m = json.loads(out)
    assert m["features"]["n"] == 6 and m["strengths"] == [4.0, 16.0]
    assert set(m["modes"]) >= {"offline", "offline-images", "oneshot-best", "topk", "hybrid-best"}
    # The loop that also reads top-k and hybrid descriptions ran on every feature (--evidence all).
    assert m["cost"]["offline-images"]["done"] == 6 and m["timings"]["images"] > 0
    assert {"random-offline", "oneshot-random-max", "permuted"} <= set(m["controls"])
    assert m["forced_choice"]["n_trials"] == 6 if minilm_available() else "forced_choice" not in m
    assert [r["strength"] for r in m["by_strength"]["oneshot"]] == [4.0, 16.0]
    assert "bar" in m and "report:" in err
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## The bar" in report and "steer-agent eval" in report
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["digest"] == m["digest"]
    # A rerun answers from the cache and gives the same figures.
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "rep2", "--json", "--seed", "1", "--no-plots")) == 0
    again = json.loads(capsys.readouterr()[0])
    assert again["digest"] == m["digest"]
    assert not (tmp_path / "rep2" / "accuracy_vs_strength.png").exists()


def test_eval_refuses_bad_options(tiny_world, truth_file: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "r", "--features", "40-50")) == 2
    assert "no features to evaluate" in capsys.readouterr()[1]
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "r", "--features", "0-999")) == 2
    assert "out of range" in capsys.readouterr()[1]
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "r", "--modes", "clip")) == 2
    assert "needs --clip" in capsys.readouterr()[1]
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "r", "--modes", "oneshot,nope")) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(eval_argv(tiny_world, bad, tmp_path, "r")) == 2
    assert "not valid JSON" in capsys.readouterr()[1]


def test_eval_with_a_judge_endpoint_runs_the_llm_modes(tiny_world, truth_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenAI-compatible server on 127.0.0.1 answers the LLM judge and the forced-choice reader."""
    from tests.agent.fakes import ChatServer, Reply

    def script(payload: dict) -> Reply:
        text = payload["messages"][-1]["content"]
        if "Which set comes from the feature" in text:
            return Reply(content=json.dumps({"choice": 1, "reason": "first"}))
        return Reply(content=json.dumps({
            "hypothesis": "red", "confidence": 0.7, "action": "final", "probes": [], "evidence": [],
            "explanation": "Steering makes the model describe a red field.", "label": "red colour field"}))

    monkeypatch.setenv("EVAL_TEST_KEY", "sk-test-not-a-real-key")
    with ChatServer(script) as server:
        argv = eval_argv(tiny_world, truth_file, tmp_path, "rep", "--json", "--modes", "llm,permuted,forced-choice",
                         "--judge-base-url", server.url, "--judge-model", "test-model",
                         "--judge-api-key-env", "EVAL_TEST_KEY")
        assert main(argv) == 0
    m = json.loads(capsys.readouterr()[0])
    assert m["cost"]["llm"]["done"] == 6 and m["cost"]["llm"]["tokens"]["total"] == 6 * 150
    assert m["modes"]["llm"]["word"]["hits"] == 1  # feature 0, the one pure red feature
    fc = m["forced_choice"]
    assert fc["llm"]["llm"]["accuracy"]["n"] == 6 and fc["llm_reader"]["backend"]["model"] == "test-model"
    assert "sk-test" not in json.dumps(m) and "sk-test" not in (tmp_path / "rep" / "report.md").read_text()
    assert any("Which set comes from the feature" in r["json"]["messages"][-1]["content"] for r in server.requests)


def test_eval_takes_the_run_judge_flags_and_scores_that_judge(tiny_world, truth_file: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge flags of a run (here --judge-max-tokens, --judge-temperature) reach the endpoint, and the
    benchmark scores that judge's agent loop beside the offline one, with paired differences."""
    from tests.agent.fakes import ChatServer, Reply

    def script(payload: dict) -> Reply:
        return Reply(content=json.dumps({
            "hypothesis": "red", "confidence": 0.7, "action": "final", "probes": [], "evidence": [],
            "explanation": "Steering makes the model describe a red field.", "label": "red colour field"}))

    monkeypatch.setenv("EVAL_TEST_KEY", "sk-test-not-a-real-key")
    with ChatServer(script) as server:
        argv = eval_argv(tiny_world, truth_file, tmp_path, "rep", "--json", "--no-plots", "--split", "dev",
                         "--modes", "oneshot,offline,llm", "--judge-base-url", server.url,
                         "--judge-model", "test-model", "--judge-api-key-env", "EVAL_TEST_KEY",
                         "--judge-max-tokens", "123", "--judge-temperature", "0.25")
        assert main(argv) == 0
    m = json.loads(capsys.readouterr()[0])
    sent = [r["json"] for r in server.requests]
    assert sent and all(p.get("max_tokens", p.get("max_completion_tokens")) == 123 for p in sent)
    assert all(p["temperature"] == 0.25 for p in sent)
    row = m["modes"]["agent_llm"]
    assert row["applicable"] and {"mean", "ci"} <= set(row["f1"])
    assert m["diffs"]["agent_llm_vs_agent"]["f1"]["mean"] is not None
    assert m["diffs"]["agent_llm_vs_best_baseline"]["baseline"] == m["diffs"]["agent_vs_best_baseline"]["baseline"]
    assert "your LLM judge" in (tmp_path / "rep" / "report.md").read_text()
