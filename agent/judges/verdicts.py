"""The judge's structured verdicts (pydantic), their wire JSON schema, and parsing of raw replies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from agent.probes import BASE_IMAGES
from steering.image_names import named_bases
from agent.run.strengths import MAX_STRENGTH
from steering.activation_tests import EDITS, RENDER_FAMILIES, family_values

LABEL_WORDS = (2, 5)
MAX_EXPLANATION_CHARS = 400
MAX_QUESTION_CHARS = 200
"""Longest question a probe may put to the steered model (a judge's request, a reviewer's note)."""
SHOWN_CHARS = 60
"""Characters of a judge-written value quoted back in a note on a dropped request."""


class ProbeRequest(BaseModel):
    """One more steering probe the judge asks for (a request out of bounds never becomes one: see
    request_problem and Verdict.dropped)."""

    model_config = ConfigDict(extra="ignore")

    strength: float = Field(ge=0, description="L2 norm of the added direction")
    samples: int = Field(default=1, ge=1, description="descriptions to draw (1 = greedy)")
    question: str | None = Field(default=None, description="ask the steered model this instead of describing")
    base_image: Literal[BASE_IMAGES] = "white"  # type: ignore[valid-type]
    control: bool = Field(default=False, description="steer a norm-matched random direction instead")
    reason: str = ""

    @field_validator("question")
    @classmethod
    def _question(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.strip()
            if not v:
                return None
            if len(v) > MAX_QUESTION_CHARS:
                raise ValueError(f"a question must be at most {MAX_QUESTION_CHARS} characters")
        return v

    @field_validator("samples")
    @classmethod
    def _samples(cls, v: int, info: ValidationInfo) -> int:
        cap = (info.context or {}).get("max_samples")
        if cap is not None and v > cap:
            raise ValueError(f"at most {cap} samples per probe")
        return v


class TestRequest(BaseModel):
    """One activation test the judge asks for (steering.activation_tests): ``render`` scenes where
    ``family`` takes each of its values, the ``hold`` values fixed (worlds that render their scenes), or
    ``edit`` the feature's top images and read its activation before and after."""

    model_config = ConfigDict(extra="ignore")
    __test__ = False  # not a pytest class

    kind: Literal["render", "edit"] = "render"
    family: Literal[RENDER_FAMILIES] | None = None  # type: ignore[valid-type]
    hold: list[tuple[str, str]] = Field(default_factory=list,
                                        description="render: [family, value] pairs held fixed while family varies")
    edit: Literal[EDITS] | None = None  # type: ignore[valid-type]
    reason: str = ""

    @field_validator("hold", mode="before")
    @classmethod
    def _hold(cls, v: Any) -> Any:
        """``{"colour": "red"}``, ``[["colour", "red"]]`` or ``[{"family": "colour", "value": "red"}]``."""
        if v is None:
            return []
        if isinstance(v, dict):
            return sorted(v.items())
        if isinstance(v, list):
            return [(x.get("family"), x.get("value")) if isinstance(x, dict) else x for x in v]
        return v


def bad_test_request(request: dict[str, Any]) -> str | None:
    """Why a test request cannot run, in one line meant for the judge, or None (wrong types are left to the
    schema)."""
    kind = request.get("kind", "render")
    if kind == "edit":
        edit = request.get("edit")
        return None if edit in EDITS else f"edit {_shown(edit)} is not one of {', '.join(EDITS)}"
    if kind != "render":
        return f"test kind {_shown(kind)} is not render or edit"
    family = request.get("family")
    if family not in RENDER_FAMILIES:
        return f"family {_shown(family)} is not one of {', '.join(RENDER_FAMILIES)}"
    try:
        hold = TestRequest._hold(request.get("hold"))
    except (AttributeError, TypeError):
        return "hold must be a list of [family, value] pairs"
    for pair in hold or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return "hold must be a list of [family, value] pairs"
        f, v = pair
        if f not in RENDER_FAMILIES or f == family or v not in family_values(str(f)):
            return f"cannot hold {_shown(f)} = {_shown(v)} while {family} varies"
    return None


def _shown(value: Any) -> str:
    """A judge-written value quoted in a note, cut when long."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"
    return repr(value)


def _number(value: Any) -> float | None:
    """A JSON number as a float (an integer too large for one is infinite), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def request_problem(request: dict[str, Any], max_samples: int | None = None) -> str | None:
    """Why a probe request is out of bounds, in one line meant for the judge, or None.

    The bounds a user's flags are held to: a finite strength in 0..MAX_STRENGTH, 1..``max_samples`` samples,
    a question of at most MAX_QUESTION_CHARS characters, one of the built-in BASE_IMAGES (a judge never names
    a file). Values of the wrong type are left to the schema (the judge is asked again).
    """
    strength = _number(request.get("strength"))
    if strength is not None:
        if not math.isfinite(strength):
            return f"strength {strength} is not a finite number"
        if not 0 <= strength <= MAX_STRENGTH:
            return f"strength {strength:g} is outside 0..{MAX_STRENGTH:g}"
    samples = request.get("samples")
    if isinstance(samples, (int, float)) and not isinstance(samples, bool) and float(samples).is_integer():
        samples = int(samples)
        if samples < 1 or (max_samples is not None and samples > max_samples):
            return f"samples {samples} is outside 1..{max_samples}" if max_samples else f"samples {samples} is below 1"
    question = request.get("question")
    if isinstance(question, str) and len(question.strip()) > MAX_QUESTION_CHARS:
        return f"a question of {len(question.strip())} characters is longer than {MAX_QUESTION_CHARS}"
    base = request.get("base_image", "white")
    if isinstance(base, str) and base not in BASE_IMAGES:
        return f"base image {_shown(base)} is not one of {named_bases()}"
    return None


class DroppedProbe(BaseModel):
    """A probe the judge asked for that was not run because a value is out of bounds."""

    asked: str
    """The request as the judge wrote it, shortened."""
    problem: str
    """Which bound it breaks (request_problem)."""

    def line(self) -> str:
        """The note the judge reads in its next round."""
        return f"{self.asked}: {self.problem}"


def _asked(n: int, request: dict[str, Any]) -> str:
    """``request 2 (strength 1e+09, 10000 samples)``: the ``n``-th request (1-based) by the values a judge sets,
    defaults left out and long values cut."""
    parts = []
    strength = _number(request.get("strength"))
    if strength is not None:
        parts.append(f"strength {strength:g}")
    if request.get("samples") not in (None, 1):
        parts.append(f"{_shown(request['samples'])} samples")
    if request.get("question"):
        parts.append(f"question {_shown(request['question'])}")
    if request.get("base_image") not in (None, "white"):
        parts.append(f"on {_shown(request['base_image'])}")
    if request.get("control"):
        parts.append("control")
    return f"request {n}" + (f" ({', '.join(parts)})" if parts else "")


class Verdict(BaseModel):
    """What the judge says after reading the evidence: a hypothesis, and more probes or a final answer."""

    model_config = ConfigDict(extra="ignore")

    hypothesis: str = Field(min_length=1, description="current best guess of what the feature stands for")
    confidence: float = Field(ge=0.0, le=1.0)
    action: Literal["probe", "final"]

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence_scale(cls, v: Any) -> Any:
        """A confidence written as a whole percentage (80 for 0.8), as small models do, is read as one; other
        numbers outside 0..1 (1.5, 250) still fail validation and are asked again."""
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 < v <= 100 and float(v).is_integer():
            return v / 100
        return v
    probes: list[ProbeRequest] = Field(default_factory=list)
    tests: list[TestRequest] = Field(default_factory=list)
    """Activation tests asked for (the input side: what makes the feature fire)."""
    dropped: list[DroppedProbe] = Field(default_factory=list, exclude=True)
    """Requested probes left out because a value is out of bounds (set here, never read from a reply; not
    dumped, so a verdict's JSON is what the judge wrote): the loop runs the others and the judge reads why
    in its next round, instead of the whole reply failing."""
    explanation: str | None = Field(default=None, description="one sentence, required when final")
    label: str | None = Field(default=None, description="2-5 words, required when final")
    evidence: list[int] = Field(default_factory=list, description="numbers of the probes the answer rests on")
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_out_of_bounds(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k != "dropped"}  # ours to fill, whatever a reply says
        dropped: list[DroppedProbe] = []
        if isinstance(data.get("tests"), list):
            tests: list[Any] = []
            for n, item in enumerate(data["tests"], 1):
                request = item.model_dump() if isinstance(item, TestRequest) else item
                problem = bad_test_request(request) if isinstance(request, dict) else None
                if problem is None:
                    tests.append(item)
                else:
                    dropped.append(DroppedProbe(asked=f"test {n} ({_shown(request.get('kind', 'render'))})",
                                                problem=problem))
            data = {**data, "tests": tests}
        if not isinstance(data.get("probes"), list):
            return {**data, "dropped": dropped}
        cap = (info.context or {}).get("max_samples")
        kept: list[Any] = []
        for n, item in enumerate(data["probes"], 1):
            request = item.model_dump() if isinstance(item, ProbeRequest) else item
            problem = request_problem(request, cap) if isinstance(request, dict) else None
            if problem is None:
                kept.append(item)
            else:
                dropped.append(DroppedProbe(asked=_asked(n, request), problem=problem))
        return {**data, "probes": kept, "dropped": dropped}

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Verdict:
        ctx = info.context or {}
        if self.action == "probe":
            if ctx.get("force_final"):
                raise ValueError("the probe budget is spent: action must be 'final' with an explanation and label")
            if not self.probes and not self.tests and self.dropped:
                return self  # every request was out of bounds: the judge reads why next round
            if not self.probes and not self.tests:
                raise ValueError("action 'probe' needs at least one entry in 'probes' or 'tests'")
            cap = ctx.get("max_probes")
            if cap is not None and len(self.probes) > cap:
                raise ValueError(f"at most {cap} probes may be requested now, got {len(self.probes)}")
            return self
        if not self.explanation or not self.explanation.strip():
            raise ValueError("action 'final' needs a one-sentence 'explanation'")
        if not self.label or not self.label.strip():
            raise ValueError("action 'final' needs a 'label' of 2-5 words")
        self.explanation = " ".join(self.explanation.split())
        self.label = " ".join(self.label.split())
        if len(self.explanation) > MAX_EXPLANATION_CHARS:
            raise ValueError(f"'explanation' must be one sentence of at most {MAX_EXPLANATION_CHARS} characters")
        n = len(self.label.split())
        if not LABEL_WORDS[0] <= n <= LABEL_WORDS[1]:
            raise ValueError(f"'label' must have 2-5 words, got {n}: {self.label!r}")
        known = ctx.get("evidence_ids")
        if known is not None:
            bad = [e for e in self.evidence if e not in known]
            if bad:
                raise ValueError(f"'evidence' cites probes {bad} that do not exist; cite numbers from the evidence list")
        return self


# The wire schema for servers with structured output: every field required, optional ones nullable,
# so it also satisfies strict JSON-schema modes. Ranges are checked by the pydantic models above.
_PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "strength": {"type": "number"},
        "samples": {"type": "integer"},
        "question": {"type": ["string", "null"]},
        "base_image": {"type": "string", "enum": list(BASE_IMAGES)},
        "control": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["strength", "samples", "question", "base_image", "control", "reason"],
}
_TEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "enum": ["render", "edit"]},
        "family": {"type": ["string", "null"], "enum": [*RENDER_FAMILIES, None]},
        "hold": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "edit": {"type": ["string", "null"], "enum": [*EDITS, None]},
        "reason": {"type": "string"},
    },
    "required": ["kind", "family", "hold", "edit", "reason"],
}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hypothesis": {"type": "string"},
        "confidence": {"type": "number"},
        "action": {"type": "string", "enum": ["probe", "final"]},
        "probes": {"type": "array", "items": _PROBE_SCHEMA},
        "tests": {"type": "array", "items": _TEST_SCHEMA},
        "explanation": {"type": ["string", "null"]},
        "label": {"type": ["string", "null"]},
        "evidence": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["hypothesis", "confidence", "action", "probes", "tests", "explanation", "label", "evidence"],
}


# The same verdict for a constrained decoder (llama.cpp's grammar from ``response_format.schema``): a union
# discriminated on ``action``, so a probe request cannot have an empty list and a final answer always
# carries its explanation and label; string lengths and list sizes bounded so that the longest reply
# the grammar allows fits the default 600-token cap.
_TEXT = {"type": "string", "minLength": 1, "maxLength": 300}
_CONSTRAINED_PROBE: dict[str, Any] = {
    **_PROBE_SCHEMA,
    "properties": {**_PROBE_SCHEMA["properties"], "strength": {"type": "number", "minimum": 0},
                   "samples": {"type": "integer", "minimum": 1, "maximum": 8},
                   "question": {"type": ["string", "null"], "maxLength": 120},
                   "reason": {"type": "string", "maxLength": 120}},
}
_COMMON = {"hypothesis": _TEXT, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}
CONSTRAINED_SCHEMA: dict[str, Any] = {"oneOf": [
    {"type": "object", "additionalProperties": False,
     "properties": {**_COMMON, "action": {"const": "probe"},
                    "probes": {"type": "array", "items": _CONSTRAINED_PROBE, "minItems": 1, "maxItems": 3},
                    "tests": {"type": "array", "items": _TEST_SCHEMA, "maxItems": 5}},
     "required": ["hypothesis", "confidence", "action", "probes"]},
    {"type": "object", "additionalProperties": False,
     "properties": {**_COMMON, "action": {"const": "final"},
                    "explanation": {"type": "string", "minLength": 1, "maxLength": MAX_EXPLANATION_CHARS},
                    "label": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,20}( [A-Za-z0-9-]{1,20}){1,4}$"},
                    "evidence": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 12}},
     "required": ["hypothesis", "confidence", "action", "explanation", "label", "evidence"]},
]}
"""VERDICT_SCHEMA as a discriminated union with length bounds, for ``json_object`` + ``schema`` servers."""


MAX_ENUM_IDS = 256
"""Evidence numbers listed as an enum in the constrained schema up to this many (a longer list keeps a range)."""


MAX_TESTS_ASKED = 5
"""Activation tests one constrained reply may ask for (the offline judge asks for at most five a round)."""


def constrained_test(kinds: Sequence[str]) -> dict[str, Any]:
    """A test request a grammar can follow: only the ``kinds`` offered now, a held pair of two known words."""
    hold_words = [*RENDER_FAMILIES, *dict.fromkeys(v for f in RENDER_FAMILIES for v in family_values(f))]
    pair = {"type": "array", "items": {"type": "string", "enum": hold_words}, "minItems": 2, "maxItems": 2}
    props = {**_TEST_SCHEMA["properties"], "kind": {"type": "string", "enum": list(kinds)},
             "hold": {"type": "array", "items": pair, "maxItems": 2},
             "reason": {"type": "string", "maxLength": 80}}
    if "render" not in kinds:
        props["family"] = {"type": "null"}
    if "edit" not in kinds:
        props["edit"] = {"type": "null"}
    return {**_TEST_SCHEMA, "properties": props}


def constrained_schema(max_samples: int = 4, force_final: bool = False,
                       evidence_ids: Iterable[int] | None = None, tests: Sequence[str] = ()) -> dict[str, Any]:
    """CONSTRAINED_SCHEMA for one round: samples one of 1..``max_samples`` and cited evidence one of this
    round's ``evidence_ids``, both as enums (grammar converters honour enums everywhere; llama.cpp's ignores
    an integer's minimum and maximum, so a 270M model asked for 5 samples); only the final branch when forced.

    ``tests``: the activation test kinds offered now. None: a probe reply has no "tests" key. Some: a probe
    reply asks for probes (and perhaps tests), or for tests only (an empty or absent probe list), two
    branches that never overlap."""
    probe_branch, final_branch = (dict(b) for b in CONSTRAINED_SCHEMA["oneOf"])
    ids = sorted(set(evidence_ids or ()))
    if ids and len(ids) <= MAX_ENUM_IDS:
        evidence = {**final_branch["properties"]["evidence"], "items": {"type": "integer", "enum": ids}}
        final_branch["properties"] = {**final_branch["properties"], "evidence": evidence}
    if force_final:
        return final_branch
    item = {**_CONSTRAINED_PROBE, "properties": {**_CONSTRAINED_PROBE["properties"],
                                                 "samples": {"type": "integer",
                                                             "enum": list(range(1, max(1, max_samples) + 1))}}}
    probes = {**probe_branch["properties"]["probes"], "items": item}
    props = {k: v for k, v in probe_branch["properties"].items() if k != "tests"}
    probe_branch["properties"] = {**props, "probes": probes}
    kinds = [k for k in ("render", "edit") if k in tests]
    if not kinds:
        return {"oneOf": [probe_branch, final_branch]}
    asked = {"type": "array", "items": constrained_test(kinds), "maxItems": MAX_TESTS_ASKED}
    probe_branch["properties"] = {**probe_branch["properties"], "tests": asked}
    tests_only = {**probe_branch, "properties": {**probe_branch["properties"],
                                                 "probes": {**probes, "minItems": 0, "maxItems": 0},
                                                 "tests": {**asked, "minItems": 1}},
                  "required": ["hypothesis", "confidence", "action", "tests"]}
    return {"oneOf": [probe_branch, tests_only, final_branch]}

MINIMAL_EXAMPLE = ('{"hypothesis": "the colour red", "confidence": 0.8, "action": "final", "probes": [], '
                   '"explanation": "The feature makes the model describe red things.", "label": "the colour red", '
                   '"evidence": [1]}')
"""A minimal valid final verdict, shown to a model whose reply did not validate."""


class VerdictError(ValueError):
    """A raw reply is not a valid verdict; the message is written to be sent back to the model."""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> Any:
    """The JSON object in ``text``: the whole reply, a fenced block, or the outermost braces."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    error: json.JSONDecodeError | None = None
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as exc:
            error = error or exc
        try:  # a raw tab or newline inside a string (small models write them even under a grammar)
            return json.loads(c, strict=False)
        except json.JSONDecodeError:
            pass
    detail = f" ({error.msg} at line {error.lineno} column {error.colno})" if error else ""
    raise VerdictError(f"the reply is not a JSON object{detail}; reply with exactly one JSON object")


def parse_verdict(text: str, context: dict[str, Any] | None = None) -> Verdict:
    """Validate a raw reply; raises VerdictError with a message meant for the model."""
    if not text or not text.strip():
        raise VerdictError("the reply was empty; reply with exactly one JSON object")
    data = extract_json(text)
    if not isinstance(data, dict):
        raise VerdictError(f"the reply is JSON but a {type(data).__name__}, not an object; reply with one JSON object")
    try:
        return Verdict.model_validate(data, context=context or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise VerdictError(f"the reply does not match the verdict schema: {problems}") from None
