"""The Judge protocol, what it is given (JudgeContext) and what it returns (JudgeTurn), and its errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent.judges.evidence import Evidence
from agent.probes import ProbeResult
from agent.judges.verdicts import Verdict


class JudgeError(Exception):
    """A judge could not produce a verdict."""


class JudgeCallError(JudgeError):
    """One call failed for good (retries spent, or a request the server refuses): the feature fails."""


class JudgeFatalError(JudgeError):
    """The run cannot go on with this judge (bad key, unknown model): stop cleanly, keep finished work."""


class JudgeQuotaError(JudgeFatalError):
    """The endpoint says the account's quota or credit is exhausted."""


class JudgeUnreachable(JudgeFatalError):
    """The judge's endpoint cannot be reached, or its URL cannot work (found by ``check`` before a run)."""


@dataclass
class Usage:
    """Tokens spent on judge calls, and their estimated cost where the price is known."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        return cls(prompt_tokens=int(d.get("prompt_tokens", 0)), completion_tokens=int(d.get("completion_tokens", 0)),
                   cost_usd=d.get("cost_usd"), calls=int(d.get("calls", 0)))


class JudgeCache(Protocol):
    """Where judge calls are remembered: request hash -> response (the store implements it)."""

    def get_judge_call(self, key: str) -> dict[str, Any] | None: ...

    def put_judge_call(self, key: str, value: dict[str, Any]) -> None: ...


@dataclass
class PastTurn:
    """A verdict given in an earlier round, with the raw reply it came from."""

    round: int
    verdict: Verdict
    raw: str


@dataclass
class JudgeContext:
    """Everything a judge may read for one decision about one feature."""

    feature: int
    round: int
    """1-based round of this decision."""
    max_rounds: int
    evidence: Evidence
    history: list[PastTurn] = field(default_factory=list)
    background: list[ProbeResult] = field(default_factory=list)
    """Shared random-direction results (the same for every feature of the run)."""
    strengths: list[float] = field(default_factory=list)
    """The opening sweep's strengths for this feature."""
    force_final: bool = False
    """The budget is spent: the verdict must be final."""
    probes_left: int = 0
    max_samples: int = 4
    note: str | None = None
    """A human's note for this feature (a re-run request)."""
    world: dict[str, Any] = field(default_factory=dict)
    """model, sae and layer, for the prompt."""
    cache: JudgeCache | None = None
    read_cache: bool = True
    """False when the user asked to re-judge: calls are made again (and the cache refreshed)."""
    pictures: list[str] = field(default_factory=list)
    """Data URLs (PNG) of the feature's masked top images, for judges that read images; empty: none."""

    def validation_context(self) -> dict[str, Any]:
        return {"force_final": self.force_final, "max_probes": self.probes_left,
                "max_samples": self.max_samples, "evidence_ids": self.evidence.ids}


@dataclass
class JudgeTurn:
    """One decision: a valid verdict, or none with the last raw reply and the reason."""

    verdict: Verdict | None
    raw: str
    attempts: int = 1
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    error: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    replayed: Usage = field(default_factory=Usage)
    """What the replies served from the store cost when they were first asked (not spent again)."""


@runtime_checkable
class Judge(Protocol):
    """Reads the evidence for one feature and returns a structured verdict."""

    name: str
    """Short name for displays, e.g. ``offline`` or ``openai:gpt-4o-mini``."""
    is_llm: bool

    def describe(self) -> dict[str, Any]:
        """Identity for records and cache keys (never secrets)."""
        ...

    async def decide(self, ctx: JudgeContext) -> JudgeTurn:
        ...


def check_judge(judge: Any, timeout: float = 3.0) -> None:
    """Fail fast, before a run starts, when a judge cannot work: a URL with no host, an endpoint that
    cannot be reached within ``timeout``, or one that fails a minimal chat request (an OpenAI judge sends
    one of a few tokens; the server's own words are in the message). Judges without a ``check(timeout=)``
    method pass. Raises JudgeFatalError (JudgeUnreachable for the endpoint) with a message naming the fix."""
    check = getattr(judge, "check", None)
    if callable(check):
        check(timeout=timeout)
