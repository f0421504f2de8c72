"""The offline judge: deterministic, names the consensus, refines thin evidence, says it is no LLM."""

from __future__ import annotations

import asyncio

from agent.run.config import RunConfig, SweepConfig
from agent.judges.evidence import Evidence
from agent.judges import NOT_AN_LLM, JudgeContext, OfflineJudge
from agent.judges.offline import OfflineParams
from agent.probes import Probe, ProbeResult
from agent.run import run_features
from agent.store.store import Store
from tests.agent.fakes import BASELINE, CONCEPTS, FakeEngine


def ctx(steered: dict[float, str], controls: tuple[str, ...] = ("a grey blob",), **kw) -> JudgeContext:
    ev = Evidence()
    results = [ProbeResult(Probe(None), (BASELINE,))]
    results += [ProbeResult(Probe(7, strength=s), (t,), kl_first=s / 10) for s, t in steered.items()]
    results += [ProbeResult(Probe(7, strength=80.0, direction="random"), (t,)) for t in controls]
    ev.add(results, round=1)
    base = dict(feature=7, round=1, max_rounds=4, evidence=ev, strengths=sorted(steered), probes_left=10)
    return JudgeContext(**{**base, **kw})


def decide(c: JudgeContext, transfer: bool = False):
    """The offline judge's verdict; without the transfer test (its object-image round) unless asked."""
    return asyncio.run(OfflineJudge(OfflineParams(transfer=transfer)).decide(c)).verdict


def test_names_the_consensus_not_category_words() -> None:
    v = decide(ctx({10: "the colour red filling the whole image", 20: "a red circle",
                    40: "the colour red filling the whole image", 80: "red red red red"}))
    assert v.action == "final" and "describe red:" in v.explanation
    assert v.label == "the colour red" and v.confidence >= 0.5
    assert NOT_AN_LLM in v.hypothesis and NOT_AN_LLM in v.notes
    assert v.evidence == [2, 3, 4, 5]


def test_words_that_random_directions_also_produce_are_discounted() -> None:
    v = decide(ctx({10: "a large black circle", 20: "a large black circle", 40: "a large green circle",
                    80: "a large blue circle"}, controls=("a large black square", "a large black cross")))
    assert "describe circle" in v.explanation


def test_thin_evidence_asks_for_a_refining_sweep() -> None:
    v = decide(ctx({10: BASELINE, 20: BASELINE, 40: "a striped thing", 80: "dotted noise"}))
    assert v.action == "probe" and v.probes
    assert any(20 < p.strength < 80 and p.strength not in (40, 80) for p in v.probes)
    assert any(p.samples > 1 for p in v.probes)
    assert NOT_AN_LLM in v.hypothesis


def test_no_change_asks_for_stronger_steering_then_gives_up() -> None:
    steered = {10: BASELINE, 20: BASELINE}
    v = decide(ctx(steered))
    assert v.action == "probe" and sorted(p.strength for p in v.probes) == [40, 80]
    v = decide(ctx(steered, force_final=True))
    assert v.action == "final" and v.label == "no clear concept" and v.confidence < 0.1


def test_offline_runs_are_deterministic_and_name_each_concept(tmp_path) -> None:
    cfg = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 40.0, 80.0), background=2))
    outs = []
    for name in ("a", "b"):
        with Store(tmp_path / name) as store:
            run_features(FakeEngine(), OfflineJudge(), store, list(range(8)), cfg)
            outs.append([(r.explanation, r.label, r.confidence) for r in store.list_records()])
    assert outs[0] == outs[1]
    for f, (explanation, _label, _conf) in enumerate(outs[0]):
        assert f"describe {CONCEPTS[f]}" in explanation


def panel(texts_by_feature: dict[int, list[str]]) -> list[ProbeResult]:
    return [ProbeResult(Probe(f, strength=20.0 * (i + 1)), (t,)) for f, texts in texts_by_feature.items()
            for i, t in enumerate(texts)]


def test_words_many_features_bring_up_are_discounted() -> None:
    # Every reference feature says "large": a size word in every caption names nothing.
    reference = panel({f: [f"a large {c} thing"] for f, c in zip(range(20, 26), CONCEPTS)})
    steered = {10: "a large cross", 20: "a large cross", 40: "a large striped cross", 80: "a large cross"}
    v = decide(ctx(steered, background=reference))
    assert "describe cross" in v.explanation and "large" not in v.label


def test_a_specific_sentence_frame_is_quoted() -> None:
    reference = panel({f: [f"a {c} striped pattern filling the whole image"] for f, c in zip(range(20, 26), CONCEPTS)})
    steered = {10: BASELINE, 20: "the colour green filling the whole image", 40: "the colour red filling the whole image",
               80: "the colour blue filling the whole image"}
    v = decide(ctx(steered, background=reference))
    assert v.action == "final" and 'describe "the colour green filling the whole image"' in v.explanation
    assert v.label.startswith("colour")


def test_the_concept_that_dominates_at_high_strength_is_named() -> None:
    # Weak steering fills in a default texture; the feature's own one takes over as it grows.
    steered = {10: "a large blue dotted cross", 20: "a large blue dotted cross", 40: "a large blue dotted cross",
               80: "a large blue checkered cross", 160: "a large blue checkered cross"}
    v = decide(ctx(steered, force_final=True))
    assert v.action == "final" and "checkered" in v.explanation and "dotted" not in v.explanation


def test_a_long_quoted_frame_still_gives_a_valid_verdict() -> None:
    # Issue 17 item 5: the frame branch quoted the whole description; past 400 characters the
    # Verdict failed validation and the feature ended with a traceback.
    tail = " ".join(f"then {w}" for w in ("sky sea hill tree road rock sand leaf wave snow rain wind cloud star moon "
                                          "lake pond reef dune cave field brook marsh glen ridge vale creek grove "
                                          "bay isle").split())  # long, and no loop
    reference = panel({f: [f"a {c} striped pattern filling the whole image"] for f, c in zip(range(20, 26), CONCEPTS)})
    steered = {10: BASELINE, 20: f"the colour green filling the whole image {tail}",
               40: f"the colour red filling the whole image {tail}", 80: f"the colour blue filling the whole image {tail}"}
    v = decide(ctx(steered, background=reference, force_final=True))
    assert v.action == "final" and 'describe "the colour green filling the whole image' in v.explanation
    assert len(v.explanation) <= 400 and "..." in v.explanation


def test_background_is_compared_at_the_same_strength() -> None:
    """Random vectors say "dotted" at 80 (where the model fills in a texture for any large vector), never at
    10-20 where this feature says it: no background counts against the feature's word there (issue 16: the
    agent named 0 of 5 dotted features because "dotted" was common over all random directions)."""
    ev = Evidence()
    results = [ProbeResult(Probe(None), (BASELINE,))]
    results += [ProbeResult(Probe(7, strength=s), (t,)) for s, t in
                ((10, "a small dotted square"), (20, "a small dotted square"), (80, "a small black square"))]
    results += [ProbeResult(Probe(7, strength=s, direction="random"), (t,)) for s, t in
                ((10, BASELINE), (80, "a large dotted circle"), (80, "a small dotted cross"), (80, "a dotted ring"))]
    ev.add(results, round=1)
    ranked, _, _ = OfflineJudge().scores(ev, [], 7)
    by_word = {w.word: w for w in ranked}
    assert by_word["dotted"].background == 0.0  # its carriers ran at 10 and 20; the nearest control says nothing
    assert by_word["black"].background == 0.0  # at 80 no control says black
    assert by_word["small"].background == round(1 / 9, 4)  # said at 10, 20, 80: one control of three at 80


def test_a_repetition_loop_is_never_the_concept() -> None:
    """Feature 90 of issue 16: "solid" at low strength, then "small small small small." from 2x on."""
    v = decide(ctx({10: "the colour red filling the whole image", 20: "small small small small.",
                    40: "small small small small.", 80: "small small small small."}, force_final=True))
    assert "small" not in v.label and "small" not in v.explanation.split(":")[0], (v.label, v.explanation)


def _transfer_ctx(red_controls: bool) -> tuple[JudgeContext, list[str]]:
    """A white sweep that always says "a small red striped triangle"; three object images, each of which the
    feature turns red while keeping its own size, texture and shape; random directions at the same strength
    and image leave them alone (or, with ``red_controls``, turn them red as well)."""
    from agent.probes import OBJECT_BASES

    c = ctx({10: "a small red striped triangle", 20: "a small red striped triangle",
             40: "a small red striped triangle", 80: "a small red striped triangle"}, probes_left=24)
    own = dict(zip(OBJECT_BASES, ("a small green dotted triangle", "a large yellow striped circle",
                                  "a large blue solid circle")))
    first = decide(c, transfer=True)
    assert first.action == "probe"
    asked = sorted({p.base_image for p in first.probes})
    results = []
    for p in first.probes:
        text = own[p.base_image] if p.strength == 0 else own[p.base_image].replace(own[p.base_image].split()[2], "red")
        results.append(ProbeResult(Probe(7, strength=p.strength, base_image=p.base_image), (text,)))
    c.evidence.add(results, round=2)
    for b in OBJECT_BASES:
        for s in (10.0, 20.0):
            text = own[b].replace(own[b].split()[2], "red") if red_controls else own[b]
            c.background.append(ProbeResult(Probe(0, strength=s, seed=10_000, base_image=b, direction="random"), (text,)))
    c.round = 2
    return c, asked


def test_transfer_test_keeps_only_the_words_the_feature_causes_on_object_images() -> None:
    from agent.probes import OBJECT_BASES

    c, asked = _transfer_ctx(red_controls=False)
    assert asked == sorted(OBJECT_BASES)
    v = decide(c, transfer=True)
    assert v.action == "final" and v.label == "the colour red", v.label  # size, texture, shape: filled in


def test_transfer_test_credits_nothing_that_random_directions_cause_too() -> None:
    c, _ = _transfer_ctx(red_controls=True)
    v = decide(c, transfer=True)
    # "red" no longer transfers beyond the controls: nothing is shown to be caused, the consensus stands.
    assert v.action == "final" and v.label == "small red striped triangle", v.label
