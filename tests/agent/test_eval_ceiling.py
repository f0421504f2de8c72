"""The evidence ceiling: a claim filter fitted on dev truth over the signals a judge can read."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.cli.ceiling import main
from agent.eval.ceiling import SWEEP, TRANSFER, Evidence, auroc_oracle, measure
from steering.image_names import OBJECT_BASES
from steering.toy.gates import split

COLOURS = ["red", "yellow", "green", "blue"]
SHAPES = ["circle", "square", "triangle", "cross"]


def _world() -> tuple[dict[int, dict], Evidence]:
    """Each feature is a colour; steering it names its colour and a filled-in shape. On the object images
    (black, with their own shapes) it brings in both, but random directions bring in shapes too: only
    the colour transfers beyond them."""
    # Four colours and four shapes, each in 12 features: no claim is more common than another.
    truth = {f: {"family": "colour", "value": COLOURS[f % 4], "purity": 1.0} for f in range(48)}
    said = {f: f"a {COLOURS[f % 4]} {SHAPES[(f // 4) % 4]}" for f in truth}
    sweep = {f: {m: ("nothing, the image is empty" if m < 1 else said[f]) for m in SWEEP} for f in truth}
    objects = {f: {(b, m): said[f] for b in OBJECT_BASES for m in TRANSFER} for f in truth}
    base = {b: "a black square" for b in OBJECT_BASES}
    noise = {(b, m): [f"a black {s}" for s in SHAPES] for b in OBJECT_BASES for m in TRANSFER}
    return truth, Evidence(sweep, objects, base, ["nothing, the image is empty"] * 8, noise)


def test_the_filter_keeps_what_transfers_beyond_random_directions() -> None:
    truth, ev = _world()
    r = measure(ev, truth, split(list(truth), truth))
    assert r["oneshot_f1"] == pytest.approx(2 / 3)  # the colour and a filled-in shape
    assert r["perfect_f1"] == 1.0
    assert r["signal_auroc_test"]["transfer"] == 1.0
    assert r["filter_f1"] == 1.0 and r["filter_minus_oneshot"]["verdict"] == "wins"
    assert r["bound_f1"] == 1.0


def test_without_a_signal_that_separates_the_filter_cannot_beat_one_shot() -> None:
    truth, ev = _world()
    # The object images now carry no claim of their own and steering brings in the filled-in shape as
    # surely as the colour: every signal reads the two alike.
    ev.object_base.update({b: "a black star" for b in OBJECT_BASES})
    for key in ev.random_objects:
        ev.random_objects[key] = ["a black star"] * 4
    r = measure(ev, truth, split(list(truth), truth))
    assert r["filter_f1"] <= r["oneshot_f1"] + 1e-9 and r["bound_f1"] <= r["oneshot_f1"] + 1e-9


def test_the_auroc_oracle_climbs_from_the_truth_to_the_claim_set_the_activations_prefer() -> None:
    # Feature 0 fires most on red circles: its truth (red) scores 0.7, red + circle 0.95, circle alone 0.8.
    # Feature 1's truth (blue) is already the best claim set there is.
    values = [("colour", c) for c in COLOURS] + [("shape", s) for s in SHAPES]
    table = {(0, frozenset({("colour", "red")})): 0.7, (0, frozenset({("shape", "circle")})): 0.8,
             (0, frozenset({("colour", "red"), ("shape", "circle")})): 0.95,
             (1, frozenset({("colour", "blue")})): 0.9}
    asked: list[tuple[int, frozenset]] = []

    def score(f: int, claims: frozenset) -> float:
        asked.append((f, claims))
        return table.get((f, claims), 0.5)
    truth = {0: {"family": "colour", "value": "red"}, 1: {"family": "colour", "value": "blue"}}
    r = auroc_oracle(score, [0, 1], truth, values)
    assert r["truth_auroc"] == pytest.approx(0.8) and r["oracle_auroc"] == pytest.approx((0.95 + 0.9) / 2)
    assert asked[0] == (0, frozenset({("colour", "red")}))  # each search starts from the truth
    # A truth no move improves on stays the oracle's answer: never below the truth, and an AUROC of 0 is a score.
    assert auroc_oracle(lambda f, c: 0.9 if c == frozenset({("colour", "blue")}) else 0.1, [1], truth,
                        values)["oracle_auroc"] == pytest.approx(0.9)
    assert auroc_oracle(lambda f, c: 0.0, [1], truth, values)["oracle_auroc"] == 0.0


@pytest.mark.parametrize("args, named", [(["--purity", "2"], "--purity"), (["--threads", "0"], "--threads"),
                                         (["--images", "no/such.json"], "no/such.json")])
def test_bad_input_is_refused_in_one_line_before_any_model_loads(
        args: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err


def test_images_must_be_an_eval_metrics_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"modes": {}}))
    assert main(["--images", str(bad)]) == 2
    assert "not an eval's metrics.json" in capsys.readouterr().err


def test_images_of_another_world_are_refused_before_probing(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"per_feature": [{"feature": 99999, "texts": {"topk": "a red thing"}}]}))
    assert main(["--images", str(other)]) == 2
    assert "no image descriptions for some of these features" in capsys.readouterr().err


def test_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0 and "python -m agent.cli.ceiling" in capsys.readouterr().out


@pytest.mark.slow
def test_ceiling_runs_on_planted_features() -> None:
    out = subprocess.run([sys.executable, "-m", "agent.cli.ceiling", "--planted-seed", "0", "--auroc-oracle", "--json"],
                         capture_output=True, text=True, timeout=600, check=True)
    r = json.loads(out.stdout)
    assert r["n_test"] > 0 and r["claims_test"] >= r["true_claims_test"] > 0
    assert r["perfect_f1"] >= max(r["oneshot_f1"], r["bound_f1"])
    # On planted features steering on the object images tells caused words from filled-in ones.
    assert r["signal_auroc_test"]["transfer"] > 0.6
    # The search starts from the true claims, so it never ends below them.
    oracle = r["auroc_oracle"]
    assert oracle["n"] == r["n_test"] and oracle["oracle_auroc"] >= oracle["truth_auroc"] > 0.5
