"""Bookkeeping of one engine run: answers gathered per probe and sample, and probes that failed alone."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from steering.errors import ProbeError
from steering.probes import Probe, ProbeResult

log = logging.getLogger(__name__)


def probe_result(probe: Probe, parts: dict[int, tuple[str, int]], logp: torch.Tensor, base: torch.Tensor,
                 seconds: float) -> ProbeResult:
    """A probe's result from its (text, tokens) per sample and its first-step log-probs [vocab] vs ``base``."""
    kl = float((logp.exp() * (logp - base)).sum().clamp_min(0.0))
    ordered = [parts[j] for j in range(probe.samples)]
    return ProbeResult(probe=probe, texts=tuple(t for t, _ in ordered), n_tokens=tuple(c for _, c in ordered),
                       kl_first=kl, extra={"seconds": round(seconds, 4)})


class RunState:
    """One run's answers by probe and sample, until every sample of a probe is in (or it failed)."""

    def __init__(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None) -> None:
        self.probes = probes
        self.on_result = on_result
        self.parts: dict[int, dict[int, tuple[str, int]]] = defaultdict(dict)
        self.first: dict[int, torch.Tensor] = {}
        self.seconds: dict[int, float] = defaultdict(float)
        self.results: list[ProbeResult | ProbeError | None] = [None] * len(probes)

    def add(self, i: int, sample: int, answer: tuple[str, int], logp: torch.Tensor, seconds: float,
            base: torch.Tensor) -> None:
        """Sample ``sample`` of probe ``i``: (text, token count), first-step log-probs [vocab], its time share."""
        if self.results[i] is not None:  # failed in another chunk
            return
        self.parts[i][sample] = answer
        self.first.setdefault(i, logp)
        self.seconds[i] += seconds
        if len(self.parts[i]) == self.probes[i].samples:
            result = probe_result(self.probes[i], self.parts.pop(i), self.first.pop(i), base, self.seconds.pop(i))
            self.results[i] = result
            if self.on_result is not None:
                self.on_result(result)

    def fail(self, i: int, exc: BaseException) -> None:
        """Probe ``i`` failed on its own: its entry becomes a one-line ProbeError caused by ``exc``."""
        probe = self.probes[i]
        if isinstance(self.results[i], ProbeError):
            return
        log.warning("probe of feature %s at strength %g failed alone: %s", probe.feature, probe.strength,
                    first_line(exc))
        self.parts.pop(i, None)
        self.first.pop(i, None)
        self.seconds.pop(i, None)
        error = ProbeError(f"probe of feature {probe.feature} at strength {probe.strength:g} failed: "
                           f"{first_line(exc)}")
        error.__cause__ = exc
        self.results[i] = error


def first_line(exc: BaseException) -> str:
    """First line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
