"""A reviewer's re-run note as targeted questions the offline judge can ask ("look at colour" -> a colour question)."""

from __future__ import annotations

import re
from collections import Counter

from agent.judges.evidence import Evidence, words
from agent.judges.verdicts import MAX_QUESTION_CHARS

ASPECT_QUESTIONS = {
    "colour": "What colour is the highlighted element?",
    "shape": "What shape is the highlighted element?",
    "pattern": "What pattern does the highlighted element have?",
    "size": "How large is the highlighted element?",
}
"""The questions the toy world was trained on (steering/toy/scenes.py); any VLM understands them."""

ASPECT_WORDS = {"colour": "colour", "color": "colour", "colours": "colour", "colors": "colour", "hue": "colour",
                "shade": "colour", "shape": "shape", "shapes": "shape", "form": "shape", "pattern": "pattern",
                "patterns": "pattern", "texture": "pattern", "textures": "pattern", "size": "size", "sizes": "size",
                "big": "size", "large": "size", "small": "size"}
MAX_QUESTIONS = 3


def note_questions(note: str | None) -> list[str]:
    """The questions a note asks for: a question written out ("ask: is it round?"), then one per
    aspect it names ("look at colour", "ask about pattern"), at most MAX_QUESTIONS. A question written out
    longer than a probe may ask (MAX_QUESTION_CHARS) is left out: the aspects it names still count."""
    if not note or not note.strip():
        return []
    out: list[str] = []
    for part in re.findall(r"[^.?!;]*\?", note):
        question = re.sub(r"^\s*(?:and\s+)?(?:please\s+)?(?:ask(?:\s+(?:it|the model))?\s*[:,]?\s*)?", "", part,
                          flags=re.I).strip()
        if 3 < len(question) <= MAX_QUESTION_CHARS:
            out.append(question[0].upper() + question[1:])
    for word in re.findall(r"[a-z]+", note.lower()):
        aspect = ASPECT_WORDS.get(word)
        if aspect is not None and ASPECT_QUESTIONS[aspect] not in out:
            out.append(ASPECT_QUESTIONS[aspect])
    return out[:MAX_QUESTIONS]


def asked(evidence: Evidence) -> set[str]:
    """The questions already asked of the steered model for this feature."""
    return {i.probe.question for i in evidence.by_role("steered") if i.probe.prompt == "ask" and i.probe.question}


def answers(evidence: Evidence, question: str) -> list[str]:
    """The words the steered model answers ``question`` with, beyond the unsteered answer, most common first."""
    base = {w for t in evidence.baseline_texts("ask", question) for w in words(t)}
    counts: Counter[str] = Counter()
    for item in evidence.by_role("steered"):
        if item.probe.prompt == "ask" and item.probe.question == question:
            for text in item.result.texts:
                counts.update(w for w in set(words(text)) - base)
    return [w for w, _ in counts.most_common(3)]


def answered_line(evidence: Evidence, note: str | None) -> str:
    """One sentence on what the note's questions got ('' when it asked none)."""
    parts = []
    for q in note_questions(note):
        got = answers(evidence, q)
        if q in asked(evidence):
            parts.append(f"{q!r}: {' '.join(got) if got else 'nothing beyond the unsteered answer'}")
    return ("Asked as the reviewer's note requested, the steered model answers " + "; ".join(parts) + ".") if parts \
        else ""
