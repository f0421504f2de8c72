"""Judge text cannot break a batch: special tokens are stripped, a failing probe fails alone (issue 17 item 4)."""

from __future__ import annotations

import asyncio

import pytest
import torch

from steering.errors import ProbeError
from steering.probes import Probe, ProbeResult

HOSTILE = "<image_soft_token> what <start_of_image>colour is<end_of_image> it?"


def test_special_tokens_in_a_question_are_stripped(tiny_engine) -> None:
    text, _ = tiny_engine.prompt_text(Probe(0, 8.0, prompt="ask", question=HOSTILE))
    assert "<image_soft_token>" not in text and text.count("<start_of_image>") == 1 and "<end_of_image>" not in text
    assert "what colour is it?" in text
    (result,) = tiny_engine.run([Probe(0, 8.0, prompt="ask", question=HOSTILE)])
    assert len(result.texts) == 1


def _failing_above(engine, monkeypatch, limit: float) -> None:
    """generate raises whenever a batch holds a row steered harder than ``limit``."""
    real = engine.generate

    def generate(text, image_spec, vectors, **kw):
        if bool((vectors.norm(dim=-1) > limit).any()):
            raise RuntimeError("simulated failure\nwith a second line")
        return real(text, image_spec, vectors, **kw)

    monkeypatch.setattr(engine, "generate", generate)


def test_a_probe_that_breaks_its_batch_fails_alone(tiny_engine, monkeypatch) -> None:
    probes = [Probe(0, 8.0), Probe(1, 900.0), Probe(2, 8.0), Probe(3, 16.0, samples=2, greedy=False, seed=3)]
    alone = tiny_engine.run([p for p in probes if p.strength < 100])
    _failing_above(tiny_engine, monkeypatch, 100.0)
    seen: list[ProbeResult] = []
    out = tiny_engine.run_isolated(probes, on_result=seen.append)
    assert isinstance(out[1], ProbeError) and "simulated failure" in str(out[1]) and "\n" not in str(out[1])
    assert [r.texts for r in (out[0], out[2], out[3])] == [r.texts for r in alone]
    assert sorted(r.probe.feature for r in seen) == [0, 2, 3]
    with pytest.raises(RuntimeError, match="simulated failure"):  # the strict run still raises
        tiny_engine.run(probes)


def test_a_prompt_the_processor_refuses_fails_only_its_probes(tiny_engine, monkeypatch) -> None:
    import steering.engine as engine_module

    monkeypatch.setattr(engine_module, "special_tokens", lambda _processor: ())  # a token we did not know of
    monkeypatch.setattr(tiny_engine, "_prompts", {})
    probes = [Probe(0, 8.0), Probe(1, 8.0, prompt="ask", question="<image_soft_token> why?"), Probe(2, 8.0)]
    out = tiny_engine.run_isolated(probes)
    assert isinstance(out[1], ProbeError)
    assert all(isinstance(r, ProbeResult) for r in (out[0], out[2]))


def test_the_probe_service_fails_only_the_broken_probe(tiny_engine, monkeypatch) -> None:
    from agent.run.batcher import EngineFailed
    from agent.run.probes import ProbeService

    _failing_above(tiny_engine, monkeypatch, 100.0)

    async def main() -> list[object]:
        service = ProbeService(tiny_engine)
        try:
            return await asyncio.gather(service.run([Probe(0, 8.0)]), service.run([Probe(1, 900.0)]),
                                        service.run([Probe(2, 8.0)]), return_exceptions=True)
        finally:
            await service.close()

    good, bad, other = asyncio.run(main())
    assert isinstance(bad, EngineFailed) and "simulated failure" in str(bad)
    assert isinstance(good, list) and isinstance(other, list) and len(good[0].texts) == 1


def test_probe_cli_with_an_image_token_question(tiny_world, capsys) -> None:
    from agent.cli.main import main

    model, sae = map(str, tiny_world)
    code = main(["probe", "--model", model, "--sae", sae, "--feature", "0", "--strengths", "0,8", "--question",
                 "<image_soft_token>", "--max-new-tokens", "4", "--json"])
    out = capsys.readouterr()
    assert code == 0 and "Traceback" not in out.err, out.err


def test_vectors_are_what_the_hook_adds(tiny_engine) -> None:
    # The isolation test relies on vector norms equalling strengths.
    assert tiny_engine.vector(Probe(1, 900.0)).norm().item() == pytest.approx(900.0, rel=1e-4)
    assert torch.equal(tiny_engine.vector(Probe(None)), torch.zeros(tiny_engine.vlm.vision.width))
