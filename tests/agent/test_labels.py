"""Labels from the final claims (issue 30, item 4): 2-5 words a reviewer would write, only words the
explanation names, never "mentions of ..." or "colour purple"."""

from __future__ import annotations

import pytest

from agent.judges.labels import contradicts, make_label
from agent.judges.verdicts import Verdict

CASES = [
    (["red"], "describe red", False, "the colour red"),
    (["red"], "describe the colour red filling the whole image", True, "red fill"),
    (["striped", "red"], "describe red striped things", False, "red striped pattern"),
    (["circle", "red", "small"], "a small red circle", False, "small red circle"),
    (["cross"], "a cross", False, "cross shapes"),
    (["small", "solid"], "small solid", False, "small solid objects"),
    (["red", "blue"], "red and blue", False, "red or blue"),
    (["dog"], "a dog", False, "dog concept"),
    (["dog", "park"], "a dog in a park", False, "dog park"),
]


@pytest.mark.parametrize("named,explanation,field,want", CASES)
def test_a_label_reads_as_a_reviewer_would_write_it(named, explanation, field, want) -> None:
    label = make_label(named, explanation, field)
    assert label == want
    assert 2 <= len(label.split()) <= 5 and not label.startswith("mentions of") and not label.startswith("colour ")
    assert not contradicts(label, explanation)
    # every label is one the verdict schema takes (2-5 words)
    Verdict(hypothesis="h", confidence=0.5, action="final", explanation=explanation, label=label)


def test_a_label_never_names_what_the_explanation_does_not() -> None:
    # the lead word "red" was dropped by the transfer test; the explanation names "striped" only
    assert make_label(["red", "striped"], "Steering this feature makes the model describe striped") == "striped pattern"
    assert contradicts("mentions of red", "Steering this feature makes the model describe striped")
    assert make_label(["red"], "describe striped") == "no clear concept"
