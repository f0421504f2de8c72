"""Prompt templates: versioned, strict, and their rendered form pinned."""

from __future__ import annotations

import pytest

import prompts

# Pinned renders: changing a prompt's text must come with a version bump (and a new pin here).
PINNED = {
    "vlm_describe": (1, (
        "One element of this image is highlighted. In a single sentence, say what that highlighted element is. "
        "It can be anything from a low-level pattern, texture or colour to an object, a scene or an abstract "
        'concept. Begin your answer with "The highlighted element is".'
    )),
    "vlm_ask": (1, (
        "One element of this image is highlighted. What colour is the highlighted element? "
        "Answer in a single short sentence."
    )),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_vlm_prompts_are_pinned(name: str) -> None:
    template = prompts.load(name)
    rendered = template.render(question="What colour is the highlighted element?")
    assert (template.version, rendered) == PINNED[name]


def test_describe_prompt_states_the_method() -> None:
    t = prompts.load("vlm_describe")
    text = t.render()
    assert "single sentence" in text and "highlighted" in text
    assert text.endswith(f'"{t.meta["answer_prefix"]}".')


def test_strict_rendering_names_the_missing_variable() -> None:
    with pytest.raises(prompts.PromptError, match="question"):
        prompts.load("vlm_ask").render()


def test_unknown_template() -> None:
    with pytest.raises(prompts.PromptError, match="no prompt template"):
        prompts.load("nope")


def test_every_template_has_a_version() -> None:
    for name in prompts.available():
        assert prompts.load(name).version >= 1
