"""The seam between the agent and the engine: Probe and ProbeResult, EvidenceRequest (no torch)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from steering.image_names import DRAWN_BASES

SWEEP_MULTIPLES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
"""A run's default sweep ladder, as multiples of the hidden-state norm at the layer (agent.run.config.SweepConfig's
``multiples``; the world's gates sweep it too, steering.toy.gates); `steer-agent probe` has its own shorter
default (agent.cli.probe.PROBE_MULTIPLES)."""
# Kinds of direction a probe can steer along.
DIRECTIONS = ("feature", "random")
# Ways to describe a feature from its top images: masked images only, or steered at the active patches too.
EVIDENCE_MODES = ("topk", "hybrid")


class _Keyed:
    """A frozen dataclass that round-trips through a plain dict and names its cache entries by a hash of
    itself plus the engine fingerprint (under ``_KEY_NAME``: "probe" or "request", as stores hold them)."""

    _KEY_NAME = "item"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        return cls(**d)

    def key(self, fingerprint: dict[str, Any]) -> str:
        """Cache key: this item plus everything about the engine (and the top-k) that changes its answer."""
        payload: dict[str, Any] = {self._KEY_NAME: self.to_dict(), "engine": fingerprint}
        payload.update(self._key_extra())
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _key_extra(self) -> dict[str, Any]:
        return {}


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def image_identity(spec: str) -> str | None:
    """What a base image's pixels depend on beyond its name, for cache keys: None for ``white``, ``black``
    and ``noise`` (fixed by the name and the seed); a digest of the drawn pixels for a built-in object or
    outline (a changed drawing is a new image); a digest of the file's bytes for a path (a file rewritten in place is
    a new image; the digest is kept while its size and modification time stay)."""
    if spec in ("white", "black", "noise"):
        return None
    if spec in DRAWN_BASES:
        from steering.images import object_digest

        return object_digest(spec)
    from pathlib import Path

    path = Path(spec).expanduser()
    try:
        st = path.stat()
    except OSError:
        return "unreadable"  # the engine refuses the probe with its own error; nothing is cached for it
    memo = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if memo not in _FILE_DIGESTS:
        try:
            _FILE_DIGESTS[memo] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return "unreadable"
    return _FILE_DIGESTS[memo]


@dataclass(frozen=True)
class Probe(_Keyed):
    """One request to the steered VLM."""

    feature: int | None
    """SAE feature whose decoder direction is added; None means the unsteered baseline."""
    strength: float = 0.0
    """L2 norm of the added vector (decoder columns are unit norm)."""
    samples: int = 1
    """Number of descriptions to draw; 1 with ``greedy`` gives the deterministic answer."""
    seed: int = 0
    """Seed for sampling and for the random control direction."""
    prompt: str = "describe"
    """Prompt template id: ``describe`` or ``ask`` (then ``question`` is required)."""
    question: str | None = None
    """Free-form question about the highlighted element, for ``prompt == 'ask'``."""
    base_image: str = "white"
    """``white``, ``black``, ``noise``, ``object-a``/``-b``/``-c`` (plain drawn objects), ``outline-<shape>-<size>``
    (colourless outlines, steering.image_names.OUTLINE_BASES) or a path to an image file."""
    direction: str = "feature"
    """``feature`` (the SAE decoder column) or ``random`` (a norm-matched random control)."""
    greedy: bool = True
    """Greedy decoding; when False the engine samples ``samples`` texts with ``seed``."""

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.strength < 0:
            raise ValueError(f"strength must be >= 0, got {self.strength}")
        if self.prompt not in ("describe", "ask"):
            raise ValueError(f"unknown prompt id {self.prompt!r}: use 'describe' or 'ask'")
        if self.prompt == "ask" and not self.question:
            raise ValueError("prompt 'ask' needs a question")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}: use one of {DIRECTIONS}")
        if self.greedy and self.samples > 1:
            # Greedy samples would all be identical; make the request honest.
            object.__setattr__(self, "greedy", False)

    @property
    def is_baseline(self) -> bool:
        return self.feature is None or self.strength == 0.0

    _KEY_NAME = "probe"

    def _key_extra(self) -> dict[str, Any]:
        pixels = image_identity(self.base_image)
        return {} if pixels is None else {"image": pixels}


@dataclass(frozen=True)
class ProbeResult:
    """What the engine saw for one probe."""

    probe: Probe
    texts: tuple[str, ...]
    """The model's answers, prefix stripped, one per sample."""
    n_tokens: tuple[int, ...] = ()
    """Generated token count per sample."""
    kl_first: float = 0.0
    """KL(steered || unsteered) of the next-token distribution at the first answer token."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Cheap extras the engine may record (timings, raw texts)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["texts"] = list(self.texts)
        d["n_tokens"] = list(self.n_tokens)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        return cls(
            probe=Probe.from_dict(d["probe"]),
            texts=tuple(d["texts"]),
            n_tokens=tuple(d.get("n_tokens", ())),
            kl_first=float(d.get("kl_first", 0.0)),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True)
class EvidenceRequest(_Keyed):
    """One top-k or hybrid description of one feature."""

    feature: int
    mode: str = "topk"
    """``topk``: masked top images only; ``hybrid``: the same, steered at the active patches."""
    strength: float = 0.0
    """L2 norm of the vector added at active patches (hybrid only; 0 for topk)."""
    n_images: int = 5
    """Top images shown (fewer when the feature fired on fewer images)."""

    def __post_init__(self) -> None:
        if self.mode not in EVIDENCE_MODES:
            raise ValueError(f"unknown mode {self.mode!r}: use one of {EVIDENCE_MODES}")
        if self.strength < 0:
            raise ValueError(f"strength must be >= 0, got {self.strength}")
        if self.mode == "topk" and self.strength != 0:
            raise ValueError("mode 'topk' does not steer: use mode 'hybrid' for a strength")
        if self.n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {self.n_images}")
        object.__setattr__(self, "strength", float(self.strength))  # 50 and 50.0 key alike

    _KEY_NAME = "request"
