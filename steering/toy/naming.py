"""Decide whether a description names a ground-truth attribute value (word level, with synonyms)."""

from __future__ import annotations

import re

from steering.toy import scenes

KIND_VALUES = ("field", "object")
"""The scene-kind family's values a claim can name (an empty image is never a claim)."""

# Words that name each value. "solid" also matches a plain colour field ("the colour red filling
# the whole image"), which is how the toy model describes a solid texture covering everything.
# The "kind" family says whether the colour or pattern fills the whole image (a field) or sits on an
# object; besides these words, a phrase names a field (_FIELD) and any shape or size value an object.
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
    "kind": {"field": ("field", "fields", "everywhere"), "object": ("object", "objects", "shape", "shapes")},
}
_PLAIN_COLOUR = re.compile(r"\bthe colou?r \w+ filling\b")
# "filling the whole image", "fills the image", "a red background" (not the white one objects sit on).
# "the image" alone never counts: the unsteered caption says "the image is empty and white".
_FIELD = re.compile(
    r"\b(?:whole|entire|full)\s+(?:image|picture|frame|canvas|scene)\b"
    r"|\b(?:fill|fills|filling|filled|cover|covers|covering|covered)\s+(?:the\s+)?(?:image|picture|frame|canvas)\b"
    r"|(?<!white )(?<!blank )(?<!empty )(?<!plain )\bbackground\b"
)
_WORD = re.compile(r"[a-z]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _names(low: str, text_words: set[str], value: str, fam: str) -> bool:
    """``value`` of ``fam`` named in the lower-cased text ``low`` (its words: ``text_words``)."""
    names = SYNONYMS.get(fam, {}).get(value)
    if names is None:
        return False
    if text_words & set(names):
        return True
    if fam == "pattern" and value == "solid":
        return _PLAIN_COLOUR.search(low) is not None
    if fam == "kind" and value == "field":
        return _FIELD.search(low) is not None
    if fam == "kind" and value == "object":  # a shape or a size is an object's
        return any(text_words & set(n) for f in ("shape", "size") for n in SYNONYMS[f].values())
    return False


def names_value(text: str, value: str, family: str | None = None) -> bool:
    """True when ``text`` names ``value`` (of ``family``; any family when None) by a word for it.

    Only the value's own words count: "red" names colour=red in "a red circle"; the answer prefix
    and the words every caption shares ("highlighted", "element", "image") never do. The kind family:
    "field" by a word or a phrase saying the colour fills the whole image, "object" by a word for an
    object or any shape or size value.
    """
    families = [family] if family else [f for f, vals in SYNONYMS.items() if value in vals]
    low = text.lower()
    text_words = words(low)
    return any(_names(low, text_words, value, fam) for fam in families)


def named_values(text: str) -> dict[str, list[str]]:
    """Every attribute value ``text`` names, per family (the kind family included)."""
    low = text.lower()
    text_words = words(low)
    return {fam: [v for v in vals if _names(low, text_words, v, fam)] for fam, vals in SYNONYMS.items()}
