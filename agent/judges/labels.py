"""A feature's short label, made from the words its explanation names: 2-5 words a reviewer would write
("small red circle", "red striped pattern", "the colour red"), never a word the explanation lacks, never
"mentions of ...". Words of the toy world's vocabulary are ordered and given a head noun by their family;
any other word keeps the order it was named in."""

from __future__ import annotations

from collections.abc import Sequence

from agent.judges.evidence import words

FAMILY_ORDER = ("size", "colour", "pattern", "shape")
"""Adjective order in a label: "small red striped circle"."""
MAX_WORDS = 5


def _families() -> dict[str, str]:
    """word -> its attribute family (the toy world's vocabulary, synonyms included)."""
    from steering.toy.naming import SYNONYMS

    return {w: fam for fam, values in SYNONYMS.items() for names in values.values() for w in names}


def make_label(named: Sequence[str], explanation: str, field: bool = False) -> str:
    """The label for ``named`` (the concept words of the final verdict, in the order the model says them),
    keeping only those ``explanation`` names. ``field``: the descriptions say the concept fills the image."""
    said = set(words(explanation))
    kept = list(dict.fromkeys(w for w in named if w in said))
    if not kept:
        return "no clear concept"
    family = _families()
    known = [w for w in kept if w in family]
    other = [w for w in kept if w not in family]
    if other:  # outside the toy vocabulary: the words as named
        chosen = (known + other)[:4]
        return " ".join(chosen) if len(chosen) > 1 else f"{chosen[0]} concept"
    by_family: dict[str, list[str]] = {}
    for w in known:
        by_family.setdefault(family[w], []).append(w)
    if any(len(v) > 1 for v in by_family.values()):  # a union: "red or blue"
        return " or ".join(kept[:3])
    ordered = [by_family[f][0] for f in FAMILY_ORDER if f in by_family]
    if "shape" in by_family:
        return " ".join(ordered[:MAX_WORDS]) if len(ordered) > 1 else f"{ordered[0]} shapes"
    if "pattern" in by_family and "size" not in by_family:
        return " ".join(ordered + (["fill"] if field else ["pattern"]))
    if "size" in by_family:  # a size names an object, whatever else is said
        return " ".join(ordered + ["objects"])
    if "colour" in by_family:
        lead = " ".join(ordered)
        return f"{lead} fill" if field else f"the colour {lead}" if len(ordered) == 1 else f"{lead} things"
    return " ".join(ordered)  # pragma: no cover - every family is handled above


def contradicts(label: str | None, explanation: str | None) -> bool:
    """Whether ``label`` names a concept word that ``explanation`` does not (the check every export passes)."""
    if not label or not explanation:
        return False
    filler = {"the", "colour", "color", "fill", "pattern", "things", "objects", "shapes", "concept", "or", "no", "clear"}
    return any(w not in filler and w not in set(words(explanation)) for w in words(label))
