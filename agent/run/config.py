"""Typed configuration of a run: the opening sweep, the per-feature budgets and the scheduler."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from steering.probes import SWEEP_MULTIPLES

DEFAULT_KL_TARGETS = (0.1, 1.0, 4.0)
EVIDENCE_MODES: dict[str, tuple[str, ...]] = {"steering": (), "topk": ("topk",), "hybrid": ("hybrid",),
                                              "all": ("topk", "hybrid")}
"""``--evidence`` choice -> the image descriptions the judge gets on top of the steering sweep."""
HYBRID_MULTIPLE = 0.5
"""Default hybrid strength as a multiple of the hidden-state norm: the reference analysis used 50 for
its hybrid against 200 for plain steering, a quarter; a quarter of 2x the norm (the middle of the
default ladder) is 0.5x the norm."""


def plain_dict(obj: Any, sequences: tuple[str, ...] = ()) -> dict[str, Any]:
    """``asdict(obj)`` with the tuple fields named in ``sequences`` as lists (JSON has no tuples)."""
    d = asdict(obj)
    for k in sequences:
        d[k] = None if d[k] is None else list(d[k])
    return d


def known_fields(cls: type, d: dict[str, Any], sequences: dict[str, Any] | None = None) -> dict[str, Any]:
    """The items of ``d`` that are fields of dataclass ``cls`` (newer keys are ignored), with each
    field named in ``sequences`` passed through its converter (``tuple``, a float tuple...)."""
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in d.items() if k in names}
    for k, convert in (sequences or {}).items():
        if kw.get(k) is not None:
            kw[k] = convert(kw[k])
    return kw


def _floats(xs: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in xs)


@dataclass
class SweepConfig:
    """The opening sweep every feature gets before the judge reads anything."""

    strengths: tuple[float, ...] | None = None
    """Fixed strength schedule; None picks one for the world (see ``multiples``)."""
    multiples: tuple[float, ...] = SWEEP_MULTIPLES
    """With no fixed schedule: strengths as multiples of the median hidden-state norm at the hooked
    layer (the METHOD notes 0.8-3x the norm as the range where concepts get named; the ladder is
    dense there because a concept often shows at only some strengths)."""
    calibrate: bool = False
    """Find per-feature strengths by bisection on ``kl_targets`` instead of a fixed schedule."""
    kl_targets: tuple[float, ...] = DEFAULT_KL_TARGETS
    """First-token KL divergences (nats) to reach: from "barely changes" to "dominates"."""
    calibrate_steps: int = 5
    """Bisection steps per target (each step is one probe per target, all in one batch)."""
    samples: int = 1
    """Descriptions per strength: 1 is the greedy answer; more draws sampled answers."""
    controls: int = 1
    """Random-direction control probes per feature, at the top strengths of the schedule."""
    background: int = 12
    """Shared random directions probed once per run at every scheduled strength; the offline judge
    uses their words as the background of what any steering makes the model say. With ``panel``, chosen
    on the benchmark's dev splits (agent F1, SAE / planted features; panel/background): 16/4 71.5 / 48.7,
    64/4 71.0 / 48.7, 16/12 72.4 / 48.7, 64/12 73.9 / 48.7 (chosen), 128/12 73.6 / 48.7, 64/24 74.1 / 48.7
    (twice the random probes for +0.2)."""
    panel: int = 64
    """Reference features (evenly spaced over the SAE) probed once per run at every scheduled
    strength; the offline judge discounts words that steering many features brings up alike."""
    base_image: str = "white"
    """Base image of the sweep (white, black, noise, object-a/-b/-c, outline-<shape>-<size> or a file)."""
    seed: int = 0
    """Seed of sampled descriptions and of the control directions."""

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self, _SWEEP_SEQUENCES)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        return cls(**known_fields(cls, d, dict.fromkeys(_SWEEP_SEQUENCES, _floats)))


_SWEEP_SEQUENCES = ("strengths", "multiples", "kl_targets")
_EVIDENCE_FIELDS = ("evidence", "hybrid_strength", "topk_images", "judge_images")


@dataclass
class RunConfig:
    """Everything about a run besides the engine, the judge and the store."""

    sweep: SweepConfig = field(default_factory=SweepConfig)
    """The opening sweep."""
    max_rounds: int = 4
    """Judge rounds per feature; the last one must be a final answer."""
    max_probes: int = 24
    """Probes per feature the judge may request on top of the sweep."""
    max_probe_samples: int = 4
    """Cap on the samples of one requested probe."""
    max_tests: int = 16
    """Activation tests per feature the judge may request (steering.activation_tests); 0: none."""
    max_feature_tokens: int | None = 40_000
    """Judge tokens per feature; when spent the next round is a forced final."""
    budget_tokens: int | None = None
    """Judge tokens for the whole run; when spent no new feature starts (running ones finish)."""
    concurrency: int = 4
    """Judge calls in flight at once."""
    in_flight: int = 64
    """Feature loops in flight at once (their probes share engine batches)."""
    max_batch_probes: int = 256
    """Most probes handed to the engine in one call (it splits them into generate batches)."""
    force: bool = False
    """Recompute everything: ignore finished records, cached probes and cached judge replies."""
    rejudge: bool = False
    """Ask the judge again for finished features, reusing cached probe results."""
    overwrite_reviewed: bool = False
    """Let an automatic run replace a record that a human has reviewed."""
    note: str | None = None
    """A note from a human passed to the judge (e.g. when re-running one feature)."""
    evidence: str = "steering"
    """What the judge reads besides the steering sweep: ``steering`` (nothing more), ``topk`` (the
    explainer's description of the feature's masked top images), ``hybrid`` (the same, steered at the
    patches where it fired) or ``all``. Needs a top-k collection in the store (`steer-agent topk`)."""
    hybrid_strength: float | None = None
    """Strength of the hybrid description; None: the reference's 50 for its Gemma-3-4B layer-16 SAE,
    else HYBRID_MULTIPLE x the hidden-state norm at the layer."""
    topk_images: int = 5
    """Top images the explainer is shown per top-k or hybrid description."""
    judge_images: bool = False
    """Also attach the masked top images to an LLM judge's first message (OpenAI image content parts)."""

    def __post_init__(self) -> None:
        if self.evidence not in EVIDENCE_MODES:
            raise ValueError(f"unknown evidence {self.evidence!r}: use one of {', '.join(EVIDENCE_MODES)}")

    @property
    def image_modes(self) -> tuple[str, ...]:
        """The image descriptions (``topk``, ``hybrid``) each feature gets."""
        return EVIDENCE_MODES[self.evidence]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sweep"] = self.sweep.to_dict()
        # Evidence settings at their defaults are left out, so configs written before evidence modes
        # existed (and keys derived from them) stay the same.
        for f in fields(self):
            if f.name in _EVIDENCE_FIELDS and d[f.name] == f.default:
                d.pop(f.name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        kw = known_fields(cls, d)
        kw["sweep"] = SweepConfig.from_dict(d.get("sweep", {}))
        return cls(**kw)
