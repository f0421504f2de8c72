"""Decide whether a description names a ground-truth attribute value (word level, with synonyms)."""

from __future__ import annotations

import re

from steering.toy import scenes

# Words that name each value. "solid" also matches a plain colour field ("the colour red filling
# the whole image"), which is how the toy model describes a solid texture covering everything.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "colour": {c: (c,) for c in scenes.COLOURS} | {"purple": ("purple", "violet")},
    "shape": {
        "circle": ("circle", "circles", "round", "disc", "disk"),
        "square": ("square", "squares"),
        "triangle": ("triangle", "triangles", "triangular"),
        "cross": ("cross", "crosses", "plus"),
    },
    "pattern": {
        "solid": ("solid", "plain", "uniform"),
        "striped": ("striped", "stripes", "stripe", "stripy", "lines"),
        "dotted": ("dotted", "dots", "dot", "spotted", "spots", "polka"),
        "checkered": ("checkered", "chequered", "checks", "checkerboard", "chessboard", "checked"),
    },
    "size": {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")},
}
_PLAIN_COLOUR = re.compile(r"\bthe colou?r \w+ filling\b")
_WORD = re.compile(r"[a-z]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def names_value(text: str, value: str, family: str | None = None) -> bool:
    """True when ``text`` names ``value`` (of ``family``; any family when None) by a word for it.

    Only the value's own words count: "red" names colour=red in "a red circle"; the answer prefix
    and the words every caption shares ("highlighted", "element", "image") never do.
    """
    families = [family] if family else [f for f, vals in SYNONYMS.items() if value in vals]
    text_words = words(text)
    for fam in families:
        names = SYNONYMS.get(fam, {}).get(value)
        if names is None:
            continue
        if text_words & set(names):
            return True
        if fam == "pattern" and value == "solid" and _PLAIN_COLOUR.search(text.lower()):
            return True
    return False


def named_values(text: str) -> dict[str, list[str]]:
    """Every attribute value ``text`` names, per family."""
    return {
        fam: [v for v in vals if names_value(text, v, fam)]
        for fam, vals in SYNONYMS.items()
    }
