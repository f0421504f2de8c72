"""The offline judge: deterministic word statistics over the steered texts, no LLM anywhere.

It reads which words steering brings into the descriptions that are absent from the unsteered
baseline and rare under random directions of the same norm, asks for a refining sweep when the
evidence is thin, and names the consensus.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.judges.evidence import Evidence, words
from agent.judges.labels import make_label
from agent.judges.base import JudgeContext, JudgeTurn, Usage
from agent.judges.notes import answered_line, asked, note_questions
from agent.probes import OBJECT_BASES, ProbeResult
from agent.judges import hypotheses
from agent.judges.verdicts import MAX_EXPLANATION_CHARS, ProbeRequest, TestRequest, Verdict
from steering.activation_tests import EDITS, RENDER_FAMILIES
from steering.text import degenerate

VERSION = 4
NOT_AN_LLM = "offline judge (deterministic word statistics, not an LLM)"
QUOTE_CHARS = 120
"""Longest description quoted in an explanation (the Verdict schema caps explanations)."""

# Words that name a kind of thing rather than a thing: "the colour red" is about red, "a striped
# pattern" about stripes. They can stand beside the concept but never be the concept.
CATEGORY_WORDS = frozenset(
    ["colour", "color", "colours", "colors", "coloured", "colored", "pattern", "patterns", "patterned", "texture", "textures", "textured", "shape", "shapes", "shaped", "object", "objects", "thing", "things", "something", "area", "region", "part", "field", "background", "foreground", "surface", "filling", "fills", "filled", "fill", "covering", "covers", "covered", "whole", "entire", "full", "everywhere", "across", "centre", "center", "middle", "side", "sides", "edge", "edges", "top", "bottom", "left", "right"]
)


FIELD_WORDS = frozenset(["filling", "fills", "filled", "fill", "whole", "entire", "full", "everywhere", "covering",
                         "covers", "covered", "background", "field"])
"""Frame words that say the concept covers the image (its label reads "red fill", not "the colour red")."""


# Words the masked top-k views make the model say whatever the feature: the mask and the framing.
IMAGE_FRAME_WORDS = frozenset(["visible", "regions", "region", "black", "blacked", "dark", "darkness", "mask",
                               "masked", "images", "common", "parts", "portions", "areas", "small", "various"])


def image_words(texts: list[str]) -> dict[str, float]:
    """Content word -> share of the image descriptions that contain it (frame and category words dropped)."""
    if not texts:
        return {}
    seen: dict[str, float] = defaultdict(float)
    for t in texts:
        for w in set(words(t)) - IMAGE_FRAME_WORDS - CATEGORY_WORDS:
            seen[w] += 1 / len(texts)
    return dict(seen)


def _image_share(shares: dict[str, float], word: str) -> float:
    """Share of the image descriptions that use ``word`` or its plural / singular ("circle", "circles")."""
    forms = {word, word + "s", word + "es"}
    if word.endswith("s"):
        forms.add(word[:-1])
    if word.endswith("es"):
        forms.add(word[:-2])
    return max((shares.get(f, 0.0) for f in forms), default=0.0)


@dataclass(frozen=True)
class WordScore:
    word: str
    share: float
    """Share of the changed steered probes whose texts contain the word (samples averaged), or of
    the strongest of them where that is higher."""
    background: float
    """Share of control and random-direction probes at the strengths where the feature says it (same
    base image) whose texts contain it too."""
    panel: float
    """Share of the reference features whose steered texts contain it (how generic it is)."""
    score: float
    onset: float
    """Lowest strength at which it appears."""
    count: float
    """Steered probes containing it (samples averaged)."""
    image: float = 0.0
    """Share of the top-k / hybrid descriptions that contain it (0 without image evidence)."""


EDIT_NEEDS = {"desaturate": "colour", "hue": "their hue", "blur": "fine texture", "rescale": "their size",
              "mask": "the context around where it fires"}
"""What an edit removes, as the explanation says it."""


@dataclass
class OfflineParams:
    """Thresholds of the offline judge (part of its identity in records)."""

    background_weight: float = 0.75
    """How strongly a word's share under random directions (at the same strength) counts against it.
    On the benchmark's dev split (SAE features, seed 0) 1.0 gave agent F1 72.2, 0.75 gave 73.0, 0.5 and 0
    gave 73.3; 0.75 is the lowest that still drops a word every same-strength control says as well."""
    panel_weight: float = 0.4
    """How strongly a word's share among the reference features discounts it."""
    max_panel: float = 0.8
    """A word that at least this share of the reference features brings up names nothing (a size
    word in every caption); it is never named."""
    dominant_fraction: float = 0.4
    """Share of the changed steered probes, the strongest, whose consensus counts on its own: a word
    in every one of them counts as fully consistent."""
    min_score: float = 0.34
    """A word below this score is no consensus."""
    confident_score: float = 0.6
    """A top word at or above this score, clear of the runner-up, needs no refining sweep."""
    margin: float = 0.2
    """Lead over the runner-up a confident answer needs (category words aside)."""
    frame_max_panel: float = 0.34
    """A frame word must be rarer than this among the reference features to count as specific."""
    tie_share: float = 0.15
    """Specific words whose share is within this of the leading word's are named with it."""
    max_named: int = 4
    """Most words named in an explanation."""
    refine_samples: int = 3
    """Samples of the refining probe at the strength where the top word first appears."""
    image_weight: float = 0.25
    """Bonus for a steering word that the top-k / hybrid descriptions also use (all of them: the full bonus)."""
    image_confidence: float = 0.35
    """Confidence of an answer that rests on the top-k / hybrid descriptions alone (steering named nothing)."""
    transfer: bool = True
    """Test each word of the consensus on the built-in object images (a follow-up round): steer the feature
    on each at the word's onset strength and the next one, and keep the words it causes there."""
    transfer_pool: float = 0.3
    """Words of at least this share of the changed steered descriptions go into the transfer test (however
    generic: the test, not the word's frequency, decides)."""
    transfer_keep: float = 0.3
    """A word is kept when its transfer (share of the object images whose steered description gains it,
    less the share of random directions at the same strength and image that do) is above zero and at least
    this share of the best word's. Chosen with ``transfer_pool`` on the dev splits of both benchmark worlds,
    equal weight (agent F1 on SAE / planted features; one-shot 75.2 / 36.2, no transfer test 73.0 / 37.3):
    keep 0.3 pool 0.3: 71.5 / 48.7 (chosen); keep 0.15: 71.0 / 46.7 and keep 0.5: 68.8 / 47.5 (pool as the
    consensus); keep 0.5 pool 0.3: 69.5 / 50.2; keep 0.7: 66.6 / 44.0; pool 0.6: 70.4 / 47.7."""
    tests: bool = True
    """Ask for activation tests where the world offers them (agent.judges.hypotheses): render tests decide the
    claims, edit tests add what the top images need."""
    test_rule: hypotheses.TestRule = field(default_factory=hypotheses.TestRule)
    edit_drop: float = 0.5
    """An edit that takes away at least this share of the top images' activation says the feature needs what it
    removed."""


def _said(result: ProbeResult) -> list[set[str]]:
    """Each text's words (none for a repetition loop), the texts of one probe result."""
    return [set() if degenerate(t) else set(words(t)) for t in (result.texts or ("",))]


def _nearest(r: ProbeResult, controls: list[ProbeResult]) -> list[ProbeResult]:
    """The controls at ``r``'s strength and base image (the nearest strength's where none ran at that one)."""
    same_base = [c for c in controls if c.probe.base_image == r.probe.base_image] or controls
    gaps = [abs(math.log(max(c.probe.strength, 1e-9) / max(r.probe.strength, 1e-9))) for c in same_base]
    return [c for c, g in zip(same_base, gaps) if g <= min(gaps) + 1e-9]


class _Background:
    """How often a random direction brings a word up where the feature does: per steered probe that says
    it, the share of controls at the same strength and base image that say it too, averaged. A word that
    random vectors bring up only at 4x does not count against a feature that says it at 1x. Texts are read
    and controls matched once per judge turn, not once per word."""

    def __init__(self, changed: list[ProbeResult], controls: list[ProbeResult]) -> None:
        self.said = {id(r): _said(r) for r in [*changed, *controls]}
        self.near = {id(r): _nearest(r, controls) for r in changed} if controls else {}
        self.changed = changed

    def presence(self, r: ProbeResult, word: str) -> float:
        texts = self.said[id(r)]
        return sum(word in ws for ws in texts) / len(texts)

    def __call__(self, word: str) -> float:
        carriers = [r for r in self.changed if self.presence(r, word) > 0]
        if not self.near or not carriers:
            return 0.0
        return sum(sum(self.presence(c, word) for c in self.near[id(r)]) / len(self.near[id(r)])
                   for r in carriers) / len(carriers)


class _Transfer:
    """The transfer test: which words steering the feature adds to the built-in object images, beyond what
    random directions of the same norm add to the same image."""

    def __init__(self, evidence: Evidence, background: list[ProbeResult]) -> None:
        self.base: dict[str, set[str]] = {}
        self.steered: dict[str, list[ProbeResult]] = {}
        for i in evidence.items:
            b = i.probe.base_image
            if b not in OBJECT_BASES or i.probe.prompt != "describe":
                continue
            if i.role == "baseline":
                self.base.setdefault(b, set()).update(w for t in i.result.texts for w in words(t))
            elif i.role == "steered":
                self.steered.setdefault(b, []).append(i.result)
        self.controls: dict[str, list[ProbeResult]] = {}
        for r in background:
            if r.probe.direction == "random" and r.probe.base_image in OBJECT_BASES and r.probe.prompt == "describe":
                self.controls.setdefault(r.probe.base_image, []).append(r)
        self.done = any(b in self.base for b in self.steered)

    def score(self, word: str) -> float | None:
        """Mean over the object images whose unsteered description lacks ``word``: the share of steered
        descriptions there that say it, less the controls' share at the same strengths (None: every image
        already says it)."""
        gains = []
        for b, results in self.steered.items():
            if b not in self.base or word in self.base[b]:
                continue
            said = [sum(word in _said_words(t) for t in r.texts) / len(r.texts) for r in results]
            here = self.controls.get(b, [])
            controls = [c for r in results for c in _nearest(r, here)] if here else []
            noise = [sum(word in _said_words(t) for t in c.texts) / len(c.texts) for c in controls]
            gains.append(sum(said) / len(said) - (sum(noise) / len(noise) if noise else 0.0))
        return sum(gains) / len(gains) if gains else None

    def keep(self, candidates: list[str], share: float) -> list[str]:
        """The candidates the feature causes: transfer above zero and at least ``share`` of the best one's
        (a word no object image can show, as each already says it, stays). Empty: none transfers."""
        scores = {w: self.score(w) for w in candidates}
        best = max((v for v in scores.values() if v is not None), default=0.0)
        if best <= 0:
            return []
        return [w for w, v in scores.items() if v is None or (v > 0 and v >= share * best)]


def _sweep(evidence: Evidence, role: str) -> list[Any]:
    """The evidence items of ``role`` on the sweep's own base image (the transfer test's object images apart)."""
    return [i for i in evidence.by_role(role) if i.probe.base_image not in OBJECT_BASES]


def _said_words(text: str) -> set[str]:
    return set() if degenerate(text) else set(words(text))


class OfflineJudge:
    """Deterministic, LLM-free judge; the default when no judge endpoint is configured."""

    is_llm = False
    name = "offline"

    def __init__(self, params: OfflineParams | None = None) -> None:
        self.params = params or OfflineParams()

    def describe(self) -> dict[str, Any]:
        return {"kind": "offline", "version": VERSION, "note": NOT_AN_LLM, "params": asdict(self.params)}

    async def decide(self, ctx: JudgeContext) -> JudgeTurn:
        t0 = time.perf_counter()
        verdict = self.assess(ctx)
        return JudgeTurn(verdict=verdict, raw=verdict.model_dump_json(), attempts=1, usage=Usage(),
                         cached=False, seconds=time.perf_counter() - t0)

    # ------------------------------------------------------------------ statistics

    def scores(self, evidence: Evidence, background: list[ProbeResult],
               feature: int | None = None) -> tuple[list[WordScore], int, int]:
        """Word scores, the number of steered probes that changed the text, and of steered probes."""
        p = self.params
        base_words: set[str] = set()
        for t in (t for i in _sweep(evidence, "baseline") if i.probe.prompt == "describe" and i.probe.question is None
                  for t in i.result.texts):
            base_words.update(words(t))
        steered = [i.result for i in _sweep(evidence, "steered") if i.probe.prompt == "describe"]
        controls = [i.result for i in _sweep(evidence, "control") if i.probe.prompt == "describe"]
        controls += [r for r in background if r.probe.direction == "random" and r.probe.prompt == "describe"
                     and r.probe.base_image not in OBJECT_BASES]
        # The panel: which words steering *other* features brings up (how generic a word is).
        panel: dict[int, set[str]] = defaultdict(set)
        for r in background:
            if r.probe.direction == "feature" and r.probe.prompt == "describe" and r.probe.feature != feature:
                for t in r.texts:
                    panel[r.probe.feature or 0].update(set(words(t)) - base_words)
        # A loop ("small small small small.") is no description: its words never count as the concept.
        changed = sorted((r for r in steered if any(set(words(t)) - base_words for t in r.texts if not degenerate(t))),
                         key=lambda r: r.probe.strength)
        # The strongest changed probes: where the feature dominates, a concept that weaker steering
        # only hints at (the model filling in a default texture meanwhile) comes through.
        k = math.ceil(len(changed) * p.dominant_fraction)
        dominant = changed[-k:] if k >= 2 else []
        support: dict[str, float] = defaultdict(float)
        top_support: dict[str, float] = defaultdict(float)
        onset: dict[str, float] = {}
        for j, r in enumerate(changed):
            seen: dict[str, float] = defaultdict(float)
            for t in r.texts:
                if degenerate(t):
                    continue
                for w in set(words(t)) - base_words:
                    seen[w] += 1 / len(r.texts)
            for w, share in seen.items():
                support[w] += share
                if j >= len(changed) - len(dominant):
                    top_support[w] += share
                onset[w] = min(onset.get(w, math.inf), r.probe.strength)
        image = image_words(evidence.image_texts())
        background = _Background(changed, controls)
        out = []
        for w, count in support.items():
            share = count / len(changed)
            if dominant and top_support[w] >= len(dominant) - 1e-9:  # in every one of the strongest
                share = max(share, 1.0)
            bg = background(w)
            generic = sum(w in ws for ws in panel.values()) / len(panel) if panel else 0.0
            score = share * (1 - p.panel_weight * generic) - p.background_weight * bg
            in_images = _image_share(image, w)
            score += p.image_weight * in_images
            out.append(WordScore(w, round(share, 4), round(bg, 4), round(generic, 4), round(score, 4), onset[w],
                                 round(count, 3), round(in_images, 4)))
        # Ties go to the word that appears later: the feature's own attribute tends to emerge as the
        # strength grows, while the words present from the first change are the frame it fills.
        out.sort(key=lambda s: (-s.score, s.word in CATEGORY_WORDS, -s.onset, s.word))
        return out, len(changed), len(steered)

    # ------------------------------------------------------------------ decisions

    def assess(self, ctx: JudgeContext) -> Verdict:
        """The verdict on the evidence; a reviewer's note is first asked as targeted questions, and
        the final explanation says what they answered."""
        asking = self._note_probes(ctx)
        if asking is not None:
            return asking
        kinds = ctx.world.get("tests") or []
        if self.params.tests and ("render" in kinds or any(i.result.test.kind == "render" for i in ctx.evidence.tests)):
            # The tests decide; steering's own answer (no follow-up probes) is the fallback and the anchor of a
            # feature no rendered scene activates.
            verdict = self._test_verdict(ctx, self._assess_evidence(replace(ctx, force_final=True)))
        elif self.params.tests and ("edit" in kinds or ctx.evidence.tests):
            verdict = self._edit_verdict(ctx, self._assess_evidence(replace(ctx, force_final=True)))
        else:
            verdict = self._assess_evidence(ctx)
        extra = answered_line(ctx.evidence, ctx.note)
        if verdict.action != "final" or not extra or not verdict.explanation:
            return verdict
        room = MAX_EXPLANATION_CHARS - len(extra) - 1
        explanation = f"{_clip(verdict.explanation, room)} {extra}" if room > 80 else verdict.explanation
        return verdict.model_copy(update={"explanation": explanation,
                                          "notes": f"{verdict.notes} | reviewer's note: {ctx.note}. {extra}"})

    # ------------------------------------------------------------------ hypothesis tests

    def _test_verdict(self, ctx: JudgeContext, steering: Verdict) -> Verdict:
        """Render tests (agent.judges.hypotheses): open, then the anchor held, then the claims they support."""
        reading = hypotheses.read_tests(ctx.evidence)
        can_ask = (not ctx.force_final and ctx.round < ctx.max_rounds
                   and "render" in (ctx.world.get("tests") or []))
        if not reading.open:
            if not can_ask:
                return steering
            return Verdict(hypothesis=f"{steering.hypothesis}; testing which values make it fire",
                           confidence=min(steering.confidence, 0.5), action="probe", notes=NOT_AN_LLM,
                           tests=[TestRequest(kind="render", family=f, reason=f"which {f} makes it fire, nothing held")
                                  for f in RENDER_FAMILIES])
        anchor = (hypotheses.steering_anchor(steering.explanation) if reading.silent
                  else hypotheses.strongest(reading.open))
        held_families = [f for f in self.params.test_rule.held_families if f != anchor[0]] if anchor else []
        opened = hypotheses.TestReading(open=reading.open, held={}, anchor=None, items=[])
        if ("kind", "field") in hypotheses.claims(opened, self.params.test_rule):
            held_families = []  # a field has no shape or size to hold a value for (the same dev scores, fewer pools)
        if reading.anchor is None and held_families and can_ask:
            held = f"{anchor[0]} {anchor[1]}"
            return Verdict(hypothesis=f"{steering.hypothesis}; anchor: {held}", confidence=min(steering.confidence, 0.6),
                           action="probe", notes=NOT_AN_LLM,
                           tests=[TestRequest(kind="render", family=f, hold=[anchor],
                                              reason=f"what else it needs, {held} held")
                                  for f in held_families])
        found = hypotheses.claims(reading, self.params.test_rule, hypotheses.steering_claims(steering.explanation))
        if not found:
            return steering
        what = hypotheses.phrase(found)
        figures = hypotheses.evidence_line(reading.items, found)
        explanation = _clip(f"This feature fires on {what}: in rendered scenes that differ in one attribute only, "
                            f"{figures}.", MAX_EXPLANATION_CHARS)
        values = [v for fam, v in found if fam != "kind"]
        field = ("kind", "field") in found
        label = make_label(values, explanation, field=field) if values else ("fills the image" if field else "objects")
        shares = [min(r.top_share.get(v, 0.0), r.wins.get(v, 0.0)) for fam, v in found
                  for r in [reading.held.get(fam) or reading.open.get(fam)] if r is not None]
        confidence = round(min(0.95, sum(shares) / len(shares)), 2) if shares else 0.5
        cited = sorted({i.id for i in reading.items if any(i.result.test.family == fam for fam, _ in found)})[:12]
        return Verdict(hypothesis=f"tests: {what}; steering: {steering.hypothesis}"[:600], confidence=confidence,
                       action="final", explanation=explanation, label=label, evidence=cited,
                       notes=f"{NOT_AN_LLM}; steering alone said: {steering.explanation}")

    def _edit_verdict(self, ctx: JudgeContext, steering: Verdict) -> Verdict:
        """Edit tests on the feature's top images (worlds that cannot render): which kind of information its
        activation needs, said beside steering's answer."""
        edits = [i for i in ctx.evidence.tests if i.result.test.kind == "edit" and i.result.error is None]
        can_ask = not ctx.force_final and ctx.round < ctx.max_rounds and "edit" in (ctx.world.get("tests") or [])
        if not edits:
            if not can_ask:
                return steering
            return Verdict(hypothesis=f"{steering.hypothesis}; testing what its top images need",
                           confidence=min(steering.confidence, 0.5), action="probe", notes=NOT_AN_LLM,
                           tests=[TestRequest(kind="edit", edit=e, reason="does its activation need this?")
                                  for e in EDITS])
        needed = []
        for i in edits:
            before, after = i.result.values.get("before", 0.0), i.result.values.get("after", 0.0)
            if before > 0 and after < (1 - self.params.edit_drop) * before:
                needed.append(f"{EDIT_NEEDS[str(i.result.test.edit)]} ({(after - before) / before:+.0%}, #{i.id})")
        if not needed or steering.explanation is None:
            return steering
        extra = f" Its top images lose most of their activation without {', '.join(needed)}."
        room = MAX_EXPLANATION_CHARS - len(extra)
        if room < 80:
            return steering
        return steering.model_copy(update={"explanation": _clip(steering.explanation, room) + extra,
                                           "evidence": steering.evidence + [i.id for i in edits][:4]})

    def _note_probes(self, ctx: JudgeContext) -> Verdict | None:
        """Probes asking the questions of the reviewer's note not asked yet (None: nothing to ask)."""
        pending = [q for q in note_questions(ctx.note) if q not in asked(ctx.evidence)]
        strengths = sorted({i.probe.strength for i in _sweep(ctx.evidence, "steered")})
        if not pending or not strengths or ctx.force_final or ctx.round >= ctx.max_rounds or ctx.probes_left <= 0:
            return None
        why = f"the reviewer's note: {ctx.note}"
        steered = [ProbeRequest(strength=strengths[-1], question=q, reason=why) for q in pending]
        unsteered = [ProbeRequest(strength=0.0, question=q, reason=f"{why} (unsteered answer)") for q in pending]
        return Verdict(hypothesis=f"[{NOT_AN_LLM}] asking what the reviewer's note asks: {'; '.join(pending)}",
                       confidence=0.1, action="probe", probes=(steered + unsteered)[: ctx.probes_left],
                       notes=f"{NOT_AN_LLM}; reviewer's note: {ctx.note}")

    def _assess_evidence(self, ctx: JudgeContext) -> Verdict:
        """The verdict the steered texts support: final, or a follow-up probe request. One decision list
        read top to bottom (ranked concepts, then each way to conclude or ask); the issue that rewrites
        this judge's strategy (hypothesis tests instead of votes) replaces it as a whole."""
        p = self.params
        ranked, n_changed, n_steered = self.scores(ctx.evidence, ctx.background, ctx.feature)
        concepts = [s for s in ranked
                    if s.word not in CATEGORY_WORDS and s.score >= p.min_score and s.panel < p.max_panel]
        can_probe = not ctx.force_final and ctx.round < ctx.max_rounds and ctx.probes_left > 0
        top_line = ", ".join(f"{s.word} {s.score:+.2f}" for s in ranked[:6]) or "none"
        head = f"[{NOT_AN_LLM}] {n_changed}/{n_steered} steered probes change the description"
        steered_strengths = sorted({i.probe.strength for i in _sweep(ctx.evidence, "steered")})
        # The lead: the most specific concept word, else a specific frame word ("the colour X filling
        # the whole image" with X varying is still a consistent change).
        lead = concepts[0] if concepts else self._frame(ranked, None)

        if lead is None:
            strongest = max(steered_strengths, default=0.0)
            if can_probe and ctx.round == 1 and strongest > 0:
                wanted = [strongest * 2, strongest * 4][: ctx.probes_left]
                return Verdict(
                    hypothesis=f"{head}; no word stands out (top: {top_line})", confidence=0.1,
                    action="probe", notes=NOT_AN_LLM,
                    probes=[ProbeRequest(strength=s, reason="no consistent change yet: try stronger steering")
                            for s in wanted],
                )
            what = "leaves the description unchanged" if n_changed == 0 else "changes the description inconsistently"
            from_images = self._from_images(ctx, head, top_line, strongest, what)
            if from_images is not None:
                return from_images
            return Verdict(
                hypothesis=f"{head}; no consensus (top: {top_line})", confidence=0.05, action="final",
                explanation=f"No clear concept: steering this feature up to strength {strongest:g} {what}, "
                            "no more than random directions of the same norm do.",
                label="no clear concept", evidence=self._cite(ctx.evidence, None), notes=NOT_AN_LLM,
            )

        # Name the consensus: every specific word about as consistent as the lead, in the order the
        # model says them (a feature that steers to "small blue dotted cross" at every strength gets
        # exactly that; words that vary across strengths are left out).
        named_scores = [s for s in concepts if s.share >= lead.share - p.tie_share][: p.max_named]
        named = [s.word for s in named_scores]
        quote = self._representative(ctx.evidence, lead.word)
        order = {w: i for i, w in enumerate(words(quote))}
        named.sort(key=lambda w: (order.get(w, len(order)), w))
        runner_up = max((s.score for s in concepts if s.word not in named), default=0.0)
        confidence = self._confidence(lead, runner_up, n_changed)
        agree = [w for w in named if any(s.word == w and s.image > 0 for s in named_scores)]
        if agree:  # the top-activating images name it too
            confidence = round(min(0.95, confidence + 0.1), 2)
        confident = lead.score >= p.confident_score and lead.score - runner_up >= p.margin and lead.count >= 2
        transfer = _Transfer(ctx.evidence, ctx.background) if p.transfer else None
        tested = transfer is not None and transfer.done
        if transfer is not None and not tested and can_probe:
            probes = self._transfer_probes(ctx, lead, steered_strengths)
            if probes:
                return Verdict(hypothesis=f"{head}; leading words: {top_line}; which of them does the feature cause? "
                                          "steering it on three object images tells", confidence=confidence,
                               action="probe", probes=probes, notes=NOT_AN_LLM)
        if tested:
            # Candidates: every specific word about as consistent as the lead, background not subtracted
            # (the object images are the background test now); kept: those the feature causes there.
            pool = [s for s in ranked if s.word not in CATEGORY_WORDS and s.share >= p.transfer_pool]
            kept = transfer.keep([s.word for s in pool], p.transfer_keep)
            if kept:
                named = [w for w in named if w in kept] + [w for w in kept if w not in named]
                named = named[: p.max_named]
                named.sort(key=lambda w: (order.get(w, len(order)), w))
        if not confident and can_probe and ctx.round <= 2 and not tested:
            probes = self._refine(ctx, lead, steered_strengths)
            if probes:
                return Verdict(hypothesis=f"{head}; leading words: {top_line}", confidence=confidence,
                               action="probe", probes=probes, notes=NOT_AN_LLM)

        frame = lead if lead.word in CATEGORY_WORDS else self._frame(ranked, lead)
        if frame is not None:
            # The sentence frame itself is specific: quote the description that carries it.
            phrase = f'"{_clip(self._representative(ctx.evidence, frame.word).rstrip(". "), QUOTE_CHARS)}"'
            label_words = named
        else:
            phrase = " ".join(named)
            label_words = named
        n_words = max(1, len(named))
        explanation = (f"Steering this feature makes the model describe {phrase}: "
                       f"{'these words recur' if n_words > 1 else 'the word recurs'} in {lead.count:g} of "
                       f"{n_changed} changed steered descriptions (from strength {lead.onset:g}), never in the "
                       "unsteered baseline, and seldom for random directions or other features"
                       + (f"; the descriptions of its top-activating images say {' '.join(agree)} too." if agree
                          else "."))
        explanation = _clip(explanation, MAX_EXPLANATION_CHARS)
        label = (make_label(label_words, explanation, field=frame is not None and frame.word in FIELD_WORDS)
                 if label_words else f"{frame.word if frame is not None else lead.word} frame")
        examples = "; ".join(f"s={i.probe.strength:g}: {i.result.texts[0]!r}" for i in _sweep(ctx.evidence, "steered")
                             if i.probe.prompt == "describe" and lead.word in words(i.result.texts[0]))[:600]
        cited = self._cite(ctx.evidence, lead.word) + [
            i.id for i in ctx.evidence.images if any(_image_share(image_words(list(i.result.texts)), w) > 0 for w in agree)]
        return Verdict(
            hypothesis=f"{head}; consensus: {phrase} (top: {top_line})", confidence=confidence,
            action="final", explanation=explanation, label=label, evidence=cited,
            notes=f"{NOT_AN_LLM}. Examples: {examples}",
        )

    def _from_images(self, ctx: JudgeContext, head: str, top_line: str, strongest: float,
                     what: str) -> Verdict | None:
        """Steering named nothing: name what every top-k / hybrid description shares, if anything."""
        texts = ctx.evidence.image_texts()
        shares = image_words(texts)
        shared = [w for w, share in shares.items() if share >= 1 - 1e-9]
        if not shared:
            return None
        first = texts[0]
        order = {w: i for i, w in enumerate(words(first))}
        shared.sort(key=lambda w: (order.get(w, len(order)), w))
        named = shared[: self.params.max_named]
        phrase = " ".join(named)
        quote = _clip(first.rstrip(". "), QUOTE_CHARS)
        return Verdict(
            hypothesis=f"{head}; no steering consensus (top: {top_line}); the top-activating images share: {phrase}",
            confidence=self.params.image_confidence, action="final",
            explanation=_clip(f"The images that most activate this feature show {phrase} in the regions where it fires "
                              f"(\"{quote}\"); steering it up to strength {strongest:g} {what}.", MAX_EXPLANATION_CHARS),
            label=make_label(named, phrase), evidence=[i.id for i in ctx.evidence.images if i.result.texts][:8], notes=NOT_AN_LLM,
        )

    def _transfer_probes(self, ctx: JudgeContext, lead: WordScore, strengths: list[float]) -> list[ProbeRequest]:
        """Each object image unsteered, and steered at the lead's onset and the next strength of the sweep."""
        above = [s for s in strengths if s > lead.onset]
        at = [lead.onset] + above[:1]
        wanted = [ProbeRequest(strength=0.0, base_image=b, reason=f"what the model says about {b} unsteered")
                  for b in OBJECT_BASES]
        wanted += [ProbeRequest(strength=s, base_image=b, reason=f"which words steering adds to {b}")
                   for b in OBJECT_BASES for s in at]
        return wanted if len(wanted) <= ctx.probes_left else []

    def _frame(self, ranked: list[WordScore], top: WordScore | None) -> WordScore | None:
        """A category word ("colour", "filling") as consistent as the leading concept word and rare
        among other features: then the sentence frame itself is part of what steering changes."""
        p = self.params
        for s in ranked:
            if (s.word in CATEGORY_WORDS and s.score >= p.confident_score and s.panel <= p.frame_max_panel
                    and (top is None or s.share >= top.share - p.tie_share)):
                return s
        return None

    @staticmethod
    def _representative(evidence: Evidence, word: str) -> str:
        """The steered description containing ``word`` that the model gives most often (lowest strength first)."""
        from collections import Counter

        counts: Counter[str] = Counter()
        first: dict[str, float] = {}
        for i in _sweep(evidence, "steered"):
            if i.probe.prompt != "describe":
                continue
            for t in i.result.texts:
                if word in words(t):
                    counts[t] += 1
                    first[t] = min(first.get(t, math.inf), i.probe.strength)
        if not counts:
            return word
        return min(counts, key=lambda t: (-counts[t], first[t], t))

    def _confidence(self, top: WordScore, runner_up: float, n_changed: int) -> float:
        clarity = max(0.0, min(1.0, top.score)) * (0.5 + 0.5 * min(1.0, (top.score - runner_up) / 0.5))
        amount = min(1.0, n_changed / 3)
        return round(max(0.05, min(0.95, clarity * amount)), 2)

    def _refine(self, ctx: JudgeContext, top: WordScore, strengths: list[float]) -> list[ProbeRequest]:
        """Strengths between those already probed around the top word's onset, plus sampled answers there."""
        done = {(i.probe.strength, i.probe.samples) for i in _sweep(ctx.evidence, "steered")}
        wanted: list[ProbeRequest] = []
        below = [s for s in strengths if s < top.onset]
        above = [s for s in strengths if s > top.onset]
        if below:
            mid = math.sqrt(max(below[-1], top.onset / 4) * top.onset)
            wanted.append(ProbeRequest(strength=round(mid, 3), reason=f"where does {top.word!r} start?"))
        if above:
            mid = math.sqrt(top.onset * above[0])
            wanted.append(ProbeRequest(strength=round(mid, 3), reason=f"does {top.word!r} hold between strengths?"))
        samples = min(self.params.refine_samples, ctx.max_samples)
        if samples > 1:
            wanted.append(ProbeRequest(strength=top.onset, samples=samples,
                                       reason=f"is {top.word!r} stable across sampled answers?"))
        wanted = [w for w in wanted if (w.strength, w.samples) not in done and w.strength > 0]
        return wanted[: ctx.probes_left]

    @staticmethod
    def _cite(evidence: Evidence, word: str | None) -> list[int]:
        items = _sweep(evidence, "steered")
        if word is None:
            return [i.id for i in items][:8]
        return [i.id for i in items if any(word in words(t) for t in i.result.texts)][:8]


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, marked with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0] or text[: limit - 3]
    return cut.rstrip(" ,;:") + "..."
