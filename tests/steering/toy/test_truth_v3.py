"""Truth version 3 (issue 29): Wilson-bound true claims over 50 top scenes, support, the scene-kind family
in the vocabulary and the parser, and the shipped file."""

from __future__ import annotations

import pytest
import torch

from steering import toy
from steering.toy import scenes, truth
from steering.toy.claims import (CLAIM_FAMILIES, KIND_MIX_SCENES, MIN_SUPPORT, TOP_SCENES_V3, comparable, parse_claims,
                                 score_text, scored_features, truth_claims, why_excluded, wilson_lower)

FIELD_RED = scenes.Scene("field", "red", pattern="solid").caption()
FIELD_STRIPED = scenes.Scene("field", "red", pattern="striped").caption()
OBJECT = scenes.Scene("object", "red", "cross", "dotted", "small").caption()


def v3(counts: dict[str, dict[str, int]], n_top: int = 50, n_active: int = 400, **old: object) -> dict:
    """A version-3 record (old keys only where a test needs them)."""
    return {"n_active_scenes": n_active, "n_top": n_top, "counts": counts, **old}


def test_wilson_lower_bound() -> None:
    assert wilson_lower(50, 50) == pytest.approx(50 / (50 + 1.96**2))
    assert wilson_lower(46, 50) >= 0.8 > wilson_lower(45, 50)  # of 50 top scenes, 46 make a true claim
    assert wilson_lower(20, 20) >= 0.8 > wilson_lower(19, 20)  # of 20, all of them
    assert wilson_lower(10, 10) < 0.8  # ten of ten is not enough evidence
    assert wilson_lower(0, 10) == 0.0 and wilson_lower(0, 0) == 0.0
    with pytest.raises(ValueError):
        wilson_lower(3, 2)


def test_v3_true_claims_take_the_wilson_bound_over_the_counts() -> None:
    t = v3({"colour": {"red": 50}, "pattern": {"solid": 46, "striped": 4}, "size": {"small": 45, "large": 5},
            "kind": {"field": 48, "empty": 2}},
           # the old keys would say otherwise: version 3 reads only counts and n_top
           shares={"colour": {"blue": 1.0}}, family="colour", value="blue", purity=1.0)
    assert truth_claims(t) == {("colour", "red"), ("pattern", "solid"), ("kind", "field")}
    # An empty image is counted but never a claim; a handful of top scenes supports nothing.
    assert truth_claims(v3({"kind": {"empty": 50}})) == frozenset()
    assert truth_claims(v3({"colour": {"red": 10}}, n_top=10, n_active=10)) == frozenset()
    assert truth_claims(v3({}, n_top=0, n_active=0, family=None, value=None)) == frozenset()


def test_older_records_keep_their_rules() -> None:
    assert truth_claims({"claims": [["colour", "red"]], "counts": {"colour": {"blue": 50}}, "n_top": 50}) == {
        ("colour", "red")}
    old = {"family": "colour", "value": "red", "purity": 0.9,
           "shares": {"colour": {"red": 0.9}, "size": {"small": 0.85}}}
    assert truth_claims(old) == {("colour", "red")}


def test_scored_features_need_support_and_a_true_claim() -> None:
    red = {"colour": {"red": 50}}
    recs = {
        0: v3(red),                                              # scored
        1: {"claims": [["shape", "cross"]], "kind": "single"},   # planted: no support needed
        2: v3({"colour": {"red": 20}}, n_top=20, n_active=20, shares={"colour": {"red": 1.0}}),  # too few scenes
        3: v3({"colour": {"red": 45}}, shares={"colour": {"red": 0.95}}, family="colour", value="red", purity=0.95),
        4: v3({"colour": {"red": 20}}, shares={"colour": {"red": 0.4}}, family="colour", value="red", purity=0.4),
        5: v3({}, n_top=0, n_active=0, shares={}, family=None, value=None, purity=0.0),
        6: v3(red, n_active=MIN_SUPPORT - 1),                    # a true claim, one scene short
        7: v3({"kind": {"object": 50}, "colour": {"red": 30}}),  # "an object", nothing more
    }
    scored, excluded = scored_features(recs, [7, 6, 5, 4, 3, 2, 1, 0, 99])
    assert scored == [1, 0]
    # Excluded: too little support, a truth of scene kind alone, or pure under the 90% rule but not under
    # the bound; 4 (impure under both), 5 (never active) and 99 (no record) are neither.
    assert excluded == [7, 6, 3, 2]
    assert [why_excluded(recs[f]) for f in excluded] == ["kind only", "support", "bound", "support"]
    assert scored_features(recs, [6], min_support=MIN_SUPPORT - 1) == ([6], [])


def test_the_vocabulary_gains_a_kind_family_the_renderer_does_not() -> None:
    assert CLAIM_FAMILIES["kind"] == ("field", "object")
    assert {f: CLAIM_FAMILIES[f] for f in scenes.FAMILIES} == scenes.FAMILIES
    assert "kind" not in scenes.FAMILIES


@pytest.mark.parametrize("text", [FIELD_RED, FIELD_STRIPED, "It fills the whole image.", "a plain red background",
                                  "red everywhere", "a blue colour field", "The feature covers the entire picture."])
def test_field_phrases_claim_a_field(text: str) -> None:
    got = parse_claims(text)
    assert ("kind", "field") in got and ("kind", "object") not in got


@pytest.mark.parametrize("text", [OBJECT, "a red circle on a white background", "large things", "some object",
                                  "shapes with dots"])
def test_shapes_sizes_and_object_words_claim_an_object(text: str) -> None:
    got = parse_claims(text)
    assert ("kind", "object") in got and ("kind", "field") not in got


@pytest.mark.parametrize("text", [scenes.EMPTY_CAPTION, scenes.ANSWER_PREFIX, scenes.Scene("empty").answer("colour"),
                                  "The highlighted element is red."])
def test_the_unsteered_caption_and_the_prefix_claim_no_kind(text: str) -> None:
    assert not {c for c in parse_claims(text) if c[0] == "kind"}
    if "red" not in text:
        assert parse_claims(text) == frozenset()


def test_the_toy_captions_parse_fully() -> None:
    assert parse_claims(FIELD_RED) == {("colour", "red"), ("pattern", "solid"), ("kind", "field")}
    assert parse_claims(OBJECT) == {("size", "small"), ("colour", "red"), ("pattern", "dotted"), ("shape", "cross"),
                                    ("kind", "object")}
    assert toy.names_value(FIELD_STRIPED, "field") and not toy.names_value(OBJECT, "field", "kind")


def test_kind_claims_count_only_against_a_truth_that_counted_kinds() -> None:
    planted = {"claims": [["colour", "red"], ["pattern", "solid"]], "kind": "conjunction"}
    said = parse_claims(FIELD_RED)
    assert comparable(said, planted) == {("colour", "red"), ("pattern", "solid")}
    assert score_text(FIELD_RED, planted).exact == 1.0
    sae = v3({"colour": {"red": 50}, "pattern": {"solid": 50}, "kind": {"object": 50}})
    assert comparable(said, sae) == said
    s = score_text(FIELD_RED, sae)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)


def test_derive_counts_the_top_scenes_and_their_kinds() -> None:
    # 60 active scenes for feature 0: the 50 best are 40 red fields and 10 blue objects; feature 1 never fires.
    sc = ([scenes.Scene("field", "red", pattern="solid")] * 40
          + [scenes.Scene("object", "blue", "circle", "solid", "large")] * 10
          + [scenes.Scene("empty")] * 10 + [scenes.Scene("field", "green", pattern="dotted")] * 5)
    codes = torch.zeros(len(sc), 2, 2)
    codes[:60, :, 0] = torch.linspace(10.0, 1.0, 60)[:, None]
    gt = truth.derive(codes, sc, top=20, top_v3=50)
    t = gt[0]
    assert t["n_active_scenes"] == 60 and t["n_top"] == 50
    assert t["counts"]["colour"] == {"red": 40, "blue": 10} and t["counts"]["kind"] == {"field": 40, "object": 10}
    assert t["counts"]["shape"] == {"circle": 10}
    assert t["kind_mix"] == {"field": 0.8, "object": 0.2, "empty": 0.0}
    assert (t["value"], t["purity"]) == ("red", 1.0)  # the version-2 keys stay over the 20 best
    assert truth_claims(t) == {("pattern", "solid")}
    assert (gt[1]["n_top"], gt[1]["counts"], gt[1]["kind_mix"]) == (0, {}, {}) and not truth_claims(gt[1])
    assert truth.kind_mix(codes.mean(dim=1)[:, 0], sc, top=10) == {"field": 1.0, "object": 0.0, "empty": 0.0}
    assert truth.kind_mix(codes.mean(dim=1)[:, 1], sc) == {}
    default = truth.derive(codes, sc, top=20)[0]  # claims over the 20 best (red solid fields), mix over 50
    assert default["n_top"] == TOP_SCENES_V3 == 20 and default["counts"]["kind"] == {"field": 20}
    assert default["kind_mix"] == t["kind_mix"]
    assert truth_claims(default) == {("colour", "red"), ("pattern", "solid"), ("kind", "field")}


@pytest.mark.skipif(not toy.is_available(), reason="toy world not built")
def test_the_shipped_truth_is_version_3() -> None:
    meta, gt = toy.ground_truth_meta(), toy.ground_truth()
    assert meta["truth_version"] == 3 and meta["top_scenes_v3"] == TOP_SCENES_V3 and meta["top_scenes"] == 20
    assert meta["kind_mix_scenes"] == KIND_MIX_SCENES
    for t in gt.values():
        assert t["n_top"] == min(TOP_SCENES_V3, t["n_active_scenes"])
        if t["n_top"]:
            assert all(sum(vals.values()) <= t["n_top"] for vals in t["counts"].values())
            assert sum(t["counts"]["kind"].values()) == t["n_top"]
            assert sum(t["kind_mix"].values()) == pytest.approx(1.0, abs=1e-3)
    scored, excluded = scored_features(gt, sorted(gt))
    assert len(scored) > 100 and all(gt[f]["n_active_scenes"] >= MIN_SUPPORT for f in scored)
    assert 161 in excluded  # one active scene: four "true" claims under the 90% rule
