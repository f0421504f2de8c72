"""Typed configuration of an evaluation: which modes, which features, strengths, seeds and sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.run.config import known_fields, plain_dict

EXPLAINERS = ("oneshot", "offline", "images", "llm", "topk", "hybrid")
"""Modes that produce an explanation per feature."""
CONTROLS = ("random", "permuted")
"""The paper's controls: norm-matched random directions, and explanations scored against another feature."""
EXTRAS = ("forced-choice", "clip")
"""Measures that need no ground truth."""
ALL_MODES = EXPLAINERS + CONTROLS + EXTRAS
DEFAULT_MODES = ("oneshot", "offline", "images", "topk", "hybrid", "random", "permuted", "forced-choice")
"""What runs when ``--modes`` is not given (``llm`` joins when a judge endpoint is configured,
``clip`` when a CLIP model is given)."""


@dataclass
class EvalConfig:
    """Everything about an evaluation besides the engine, the judges and where it is stored."""

    modes: tuple[str, ...] = DEFAULT_MODES
    """Which modes and measures to run (see ALL_MODES)."""
    purity: float = 0.9
    """With ground truth: only features at least this pure are scored (they stand for one value)."""
    seed: int = 0
    """Seeds the sweep, the control directions, the permutation, distractors and held-out samples."""
    strengths: tuple[float, ...] | None = None
    """The strength schedule shared by one-shot steering and the multi-strength pipeline; None:
    the agent's default (multiples of the hidden-state norm at the hooked layer)."""
    hybrid_multiples: tuple[float, ...] = (0.25, 0.5, 1.0)
    """Hybrid strengths as multiples of the hidden-state norm (the reference's 50 against plain
    steering's 200 is a quarter); the best is reported beside each one."""
    n_images: int = 5
    """Top images shown to the explainer in top-k and hybrid mode."""
    topk_scenes: int = 1000
    """Toy world without ``--topk``: scenes rendered to collect the top-k from."""
    max_rounds: int = 4
    """Judge rounds per feature in the pipeline modes."""
    max_probes: int = 24
    """Probes per feature the judge may request in the pipeline modes."""
    fc_distractors: int = 2
    """Forced choice: other features whose descriptions stand beside the explained one's (chance is
    1 / (1 + this))."""
    fc_samples: int = 1
    """Forced choice: sampled (held-out) descriptions per strength of the schedule per feature."""
    split: str = "dev"
    """The benchmark's split its tables report (dev or test); everything tunable is chosen on dev."""
    split_seed: int = 0
    """Seed of the dev/test split of features (stratified by kind)."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in ALL_MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(ALL_MODES)}")
        if not 0.0 <= self.purity <= 1.0:
            raise ValueError(f"purity must lie in 0..1, got {self.purity}")
        if self.split not in ("dev", "test"):
            raise ValueError(f"split must be dev or test, got {self.split!r}")
        if self.fc_distractors < 1:
            raise ValueError("forced choice needs at least one distractor")

    def wants(self, mode: str) -> bool:
        return mode in self.modes

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self, _SEQUENCES)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        return cls(**known_fields(cls, d, dict.fromkeys(_SEQUENCES, tuple)))


_SEQUENCES = ("modes", "strengths", "hybrid_multiples")
