"""A model folder's chat template that fails is refused in one line, before the weights load (issue 27 item 8).

The template is the folder's own code, run in jinja2's sandbox: a SecurityError for an unsafe attribute, an
OverflowError for ``range(10**12)``, a syntax error or a template that drops the image all used to end in
a traceback at the first probe.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.cli.main import main
from steering.errors import ChatTemplateError
from steering.models import load_vlm
from steering.probes import Probe

BAD_TEMPLATES = [
    ("{{ messages.__class__.__mro__ }}", "SecurityError: access to attribute '__class__' of 'list' object is unsafe"),
    ("{% for i in range(10**12) %}x{% endfor %}", "OverflowError: Range too big"),
    ("{% for %}", "TemplateSyntaxError"),
    ("{{ raise_exception('only text, please') }}", "TemplateError: only text, please"),
    ("{{ messages[0]['content'][1]['text'] }}", "the processor refuses the prompt the chat template of"),
]


def _with_template(tiny_world, tmp_path: Path, template: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_world[0], folder)
    (folder / "chat_template.jinja").write_text(template)
    return folder


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the model's weights start loading."""
    from transformers import AutoModelForImageTextToText

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)


@pytest.mark.parametrize("template, message", BAD_TEMPLATES, ids=["security", "range", "syntax", "raise", "no-image"])
def test_a_failing_template_is_refused_before_the_weights_load(template: str, message: str, tiny_world,
                                                               tmp_path, no_weights) -> None:
    folder = _with_template(tiny_world, tmp_path, template)
    with pytest.raises(ChatTemplateError) as info:
        load_vlm(folder)
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert text.endswith(f"fix {folder / 'chat_template.jinja'} or download the model again"), text


def test_the_cli_says_so_in_one_line(tiny_world, tmp_path, capsys) -> None:
    folder = _with_template(tiny_world, tmp_path, BAD_TEMPLATES[0][0])
    assert main(["probe", "--model", str(folder), "--sae", str(tiny_world[1]), "--feature", "0",
                 "--strengths", "0,50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SecurityError" in err[0] and "chat_template.jinja" in err[0], err


def test_a_template_that_fails_on_a_probe_s_own_prompt_fails_that_probe_in_one_line(tiny_engine,
                                                                                  monkeypatch) -> None:
    # Passes the load-time check (an image, then "Describe the image."), fails on a judge's question.
    template = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<start_of_image>"
                "{% elif 'colour' in c['text'] %}{{ raise_exception('no questions') }}{% else %}{{ c['text'] }}"
                "{% endif %}{% endfor %}{% endfor %}")
    monkeypatch.setattr(tiny_engine.vlm.processor, "chat_template", template)
    probe = Probe(feature=0, strength=8.0, prompt="ask", question="Which colour is it, template?")
    with pytest.raises(ChatTemplateError, match="fails \\(TemplateError: no questions\\)"):
        tiny_engine.prompt_text(probe)
    [failed] = tiny_engine.run_isolated([probe])
    assert "no questions" in str(failed) and "\n" not in str(failed)
