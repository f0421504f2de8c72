"""What the detail screen shows, computed from a stored record: the description grid, the response
series against strength and the judge transcript (rich renderables; no textual)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agent.judges.evidence import STOPWORDS, words
from agent.site.feature import (
    CHANGE_HELP,
    KL_HELP,
    TEST_HELP,
    Activation,
    FeaturePage,
    ImageEntry,
    ProbeEntry,
    TestEntry,
    feature_page,
    test_entries,
)

CHANGED = "bold #ff9e3d"
"""Style of a word the baseline does not have."""
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass
class GridRow:
    """Everything described at one strength (on one base image)."""

    strength: float
    texts: list[str] = field(default_factory=list)
    """Steered answers, one per sample (greedy first)."""
    controls: list[str] = field(default_factory=list)
    """Answers under a random direction of the same norm."""
    kls: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def kl(self) -> float | None:
        return sum(self.kls) / len(self.kls) if self.kls else None


@dataclass
class Question:
    question: str
    strength: float
    texts: list[str]
    control: bool = False


@dataclass
class Grid:
    """The grid of one base image: its baseline and the rows by strength."""

    base_image: str
    baseline: list[str] = field(default_factory=list)
    rows: list[GridRow] = field(default_factory=list)


def _items(record: Any) -> list[dict[str, Any]]:
    return [e for e in (record.evidence or []) if isinstance(e, dict) and "result" in e]


def sweep_base_image(record: Any) -> str:
    sweep = (record.fingerprint or {}).get("sweep") or {}
    return str(sweep.get("base_image") or "white")


def grids(record: Any) -> list[Grid]:
    """Described evidence grouped by base image (the sweep's first), rows by strength."""
    by_image: dict[str, Grid] = {}
    rows: dict[tuple[str, float], GridRow] = {}
    first = sweep_base_image(record)
    for item in _items(record):
        res = item["result"]
        probe = res["probe"]
        if probe.get("prompt") != "describe":
            continue
        image = str(probe.get("base_image", "white"))
        grid = by_image.setdefault(image, Grid(image))
        texts = [str(t) for t in res.get("texts", [])]
        if item.get("role") == "baseline":
            grid.baseline.extend(t for t in texts if t not in grid.baseline)
            continue
        s = float(probe.get("strength", 0.0))
        row = rows.get((image, s))
        if row is None:
            row = rows[(image, s)] = GridRow(s)
            grid.rows.append(row)
        if item.get("role") == "control":
            row.controls.extend(texts)
        else:
            row.texts.extend(texts)
            row.kls.append(float(res.get("kl_first", 0.0)))
            if item.get("reason"):
                row.reasons.append(str(item["reason"]))
    for grid in by_image.values():
        grid.rows.sort(key=lambda r: r.strength)
    order = sorted(by_image, key=lambda k: (k != first, k))
    return [by_image[k] for k in order]


def questions(record: Any) -> list[Question]:
    out = []
    for item in _items(record):
        probe = item["result"]["probe"]
        if probe.get("prompt") == "ask":
            out.append(Question(str(probe.get("question") or ""), float(probe.get("strength", 0.0)),
                                [str(t) for t in item["result"].get("texts", [])],
                                control=probe.get("direction") == "random"))
    return out


def highlight(text: str, baseline_words: set[str]) -> Text:
    """``text`` with every content word the baseline lacks styled as changed."""
    out = Text(text)
    for m in _WORD.finditer(text):
        w = m.group().lower()
        if len(w) > 1 and w not in STOPWORDS and w not in baseline_words:
            out.stylize(CHANGED, m.start(), m.end())
    return out


def _cell(texts: list[str], base: set[str], numbered: bool) -> Text:
    if not texts:
        return Text("—", style="dim")
    lines = [Text(f"{i}. ", style="dim") + highlight(t, base) if numbered and len(texts) > 1 else highlight(t, base)
             for i, t in enumerate(texts, 1)]
    return Text("\n").join(lines)


def cite(number: int) -> Text:
    """``#N`` as a link: clicking it shows probe N in the Evidence tab."""
    return Text.from_markup(f"[@click=screen.show_probe({number})]#{number}[/]", style="underline cyan")


def measures(e: ProbeEntry) -> Text:
    """The probe's first-token KL and how much its whole answer changed."""
    kl = "—" if e.kl_first is None else f"{e.kl_first:.2f}"
    change = "—" if e.change is None else f"{e.change:.2f}"
    return Text(f"first-token KL {kl} · answer change {change}", style="dim")


def _answers(entries: list[ProbeEntry], base: set[str]) -> Text:
    if not entries:
        return Text("—", style="dim")
    parts = []
    for e in entries:
        head = cite(e.id) + Text(" ") + _cell(e.texts, base, True)
        parts.append(head if e.role == "baseline" else head + Text("\n") + measures(e))
    return Text("\n").join(parts)


def sweep_table(sweep: Any) -> Table:
    """strength | steered | random-direction control, the baseline on top; every answer under its probe number."""
    base = {w for e in sweep.baseline for t in e.texts for w in words(t)}
    table = Table(expand=True, show_lines=True, pad_edge=False, title_justify="left",
                  title=None if sweep.base_image == "white" else f"on a {sweep.base_image} image")
    table.add_column("strength", justify="right", no_wrap=True, width=8)
    table.add_column("steered", ratio=3)
    table.add_column("random control", ratio=2)
    table.add_row(Text("baseline", style="bold"), _answers(sweep.baseline, base), Text("—", style="dim"))
    for row in sweep.rows:
        table.add_row(Text(f"{row.strength:g}"), _answers(row.steered, base), _answers(row.controls, base))
    return table


def grid_table(grid: Grid) -> Table:
    """strength | steered samples | random-direction control, the baseline on top (no probe numbers)."""
    base = {w for t in grid.baseline for w in words(t)}
    table = Table(expand=True, show_lines=True, pad_edge=False, title_justify="left",
                  title=None if grid.base_image == "white" else f"on a {grid.base_image} image")
    table.add_column("strength", justify="right", no_wrap=True, width=9)
    table.add_column("steered (samples)", ratio=3)
    table.add_column("random control", ratio=2)
    table.add_row(Text("baseline", style="bold"), _cell(grid.baseline, base, True), Text("—", style="dim"))
    for row in grid.rows:
        head = Text(f"{row.strength:g}")
        if row.kl is not None:
            head.append(f"\nfirst-token KL {row.kl:.2f}", style="dim")
        table.add_row(head, _cell(row.texts, base, True), _cell(row.controls, base, True))
    return table


def descriptions(record: Any) -> RenderableType:
    page = feature_page(record)
    if not page.sweeps:
        return Text("No steered descriptions were stored for this feature.", style="dim")
    parts: list[RenderableType] = [Text.assemble(
        ("Words not in the baseline are ", "dim"), ("highlighted", CHANGED),
        ("; #N is the probe's number as the judge cites it (click it, or press g).", "dim"))]
    parts.extend(sweep_table(s) for s in page.sweeps)
    if page.questions:
        table = Table(expand=True, show_lines=True, title="questions", title_justify="left")
        table.add_column("probe", width=10)
        table.add_column("question", ratio=2)
        table.add_column("answers", ratio=3)
        base_answers: dict[str, set[str]] = defaultdict(set)
        for q in page.questions:
            if q.role == "baseline":
                base_answers[q.question or ""].update(w for t in q.texts for w in words(t))
        for q in page.questions:
            head = cite(q.id) + Text(" baseline" if q.role == "baseline" else f" s={q.strength:g}"
                                     + (" ctrl" if q.role == "control" else ""))
            table.add_row(head, Text(q.question or ""), _cell(q.texts, base_answers[q.question or ""], True))
        parts.append(table)
    parts.append(Text(f"{KL_HELP}.\n{CHANGE_HELP}.", style="dim"))
    return Group(*parts)


# ----------------------------------------------------------------------------- the overview and the evidence


def overview(page: FeaturePage) -> RenderableType:
    """Scores, the explanations side by side and what the final verdict cites (the answer itself is in the
    screen's header)."""
    out: list[RenderableType] = []
    if page.cited:
        line = Text("The final verdict cites ", style="bold")
        for i, n in enumerate(page.cited):
            line += (Text(", ") if i else Text()) + cite(n)
        out.append(line + Text("  (click one, or press g and its number)", style="dim"))
    scores = Table(title="scores", title_justify="left", expand=True, box=None, pad_edge=False)
    scores.add_column("score", no_wrap=True, style="bold")
    scores.add_column("value", no_wrap=True)
    scores.add_column("note", style="dim", ratio=1)
    for s in page.scores:
        scores.add_row(s.name, s.value, s.note)
    out.append(scores)
    side = Table(title="explanations side by side", title_justify="left", expand=True, show_lines=True)
    side.add_column("by", no_wrap=True, width=12)
    side.add_column("explanation", ratio=1)
    side.add_row("steering", Text(page.judge_explanation or "—"))
    for i in page.images:
        side.add_row(Text(f"{i.mode}{f' s={i.strength:g}' if i.mode == 'hybrid' else ''} ") + cite(i.id),
                     Text(i.text))
    out.append(side)
    if not page.images:
        out.append(Text("No top-k or hybrid description in this store: run with --evidence all after "
                        "steer-agent topk.", style="dim"))
    if page.tests:
        out.append(Text("activation tests", style="italic"))
        out.extend(test_line(e) for e in page.tests)
    return Group(*out)


def evidence_legend(page: FeaturePage) -> Text:
    """What the Evidence tab's numbers and measures mean (the tests' words only where there are tests)."""
    helps = [KL_HELP, CHANGE_HELP] + ([TEST_HELP] if page.tests else [])
    return Text("\n".join(["Numbered as the judge cites them (g jumps to one).", *(f"{h}." for h in helps)]),
                style="dim")


def test_line(e: TestEntry) -> Text:
    """``#6 render colour: highest on red: mean 0.25, top 100%, wins 100%`` (the overview's line of a test)."""
    return cite(e.id) + Text(f" {e.name}: ") + Text(e.summary, style="red" if e.error else "")


def activation_view(act: Activation | None, why: str = "") -> RenderableType:
    """Density and a histogram of the patch activations on the kept top images, as text bars."""
    if act is None:
        return Text(why or "no top-k collection", style="dim")
    lines = [Text("activations ", style="bold") + Text(act.density_line)]
    top = max((c for _, _, c in act.histogram), default=0)
    if top:
        lines.append(Text(f"histogram of the patch activations > 0 on the {len(act.top)} top images kept "
                          f"(the collection keeps no others):", style="dim"))
        lines += [Text(f"{lo:>7.3g}–{hi:<7.3g} ") + Text("█" * round(30 * c / top), style="cyan") + Text(f" {c}")
                  for lo, hi, c in act.histogram]
    else:
        lines.append(Text("it never fired on the collection's images", style="dim"))
    return Text("\n").join(lines)


def test_table(e: TestEntry) -> RenderableType:
    """A render test's values (mean activation with a bar, top share, wins), or an edit's before and after."""
    if e.error:
        return Text(f"  not run: {e.error}", style="red")
    if e.kind == "edit":
        change = "n/a" if e.change is None else f"{e.change:+.0%}"
        before = "—" if e.before is None else f"{e.before:.3g}"
        after = "—" if e.after is None else f"{e.after:.3g}"
        return Text.assemble(f"  mean activation {before} -> {after} ", (f"({change})", "bold"),
                             (f" {e.scope}\n  edit: {e.meaning}", "dim"))
    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False)
    table.add_column("  value", no_wrap=True)
    table.add_column("mean act.", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("top", justify="right", no_wrap=True)
    table.add_column("wins", justify="right", no_wrap=True)
    top = max((v.mean for v in e.values), default=0.0)
    for v in e.values:
        bar = "█" * round(10 * v.mean / top) if top > 0 else ""
        table.add_row(f"  {v.value}", f"{v.mean:.3g}", Text(bar, style="cyan"),
                      "—" if v.top_share is None else f"{v.top_share:.0%}", f"{v.wins:.0%}")
    return Group(Text(f"  {e.scope}", style="dim"), table)


def evidence_entry(e: ProbeEntry | ImageEntry | TestEntry) -> RenderableType:
    """One numbered item of the judge's evidence, as the Evidence tab lists it."""
    if isinstance(e, TestEntry):
        head = Text(f"{e.title} (activation test)", style="bold")
        if e.reason:
            head += Text(f"\n  why: {e.reason}", style="italic dim")
        return Group(head, test_table(e))
    if isinstance(e, ImageEntry):
        head = Text(f"#{e.id} {e.mode} description of the top images", style="bold")
        return head + Text("\n  ") + Text(e.text)
    out = Text(e.title, style="bold")
    if e.role != "baseline":
        out += Text("  ") + measures(e)
    if e.reason:
        out += Text(f"\n  why: {e.reason}", style="italic dim")
    for t in e.texts or ["(no answer)"]:
        out += Text(f"\n  {t}")
    return out


# ----------------------------------------------------------------------------- response vs strength


@dataclass
class Series:
    """Response of the feature's steered descriptions against strength (the sweep's base image)."""

    strengths: list[float]
    kl: list[float]
    label_share: list[float]
    """Share of the answers at each strength that contain a word of the current label."""
    label_words: list[str]


def label_words(label: str | None) -> list[str]:
    return [w for w in words(label or "") if w not in ("mentions", "mention", "concept", "clear")]


def series(record: Any) -> Series:
    lw = set(label_words(record.final_label))
    gs = grids(record)
    if not gs:
        return Series([], [], [], sorted(lw))
    grid = gs[0]

    def share(texts: list[str]) -> float:
        if not texts or not lw:
            return 0.0
        return sum(bool(lw & set(words(t))) for t in texts) / len(texts)

    xs, kl, sh = [0.0], [0.0], [share(grid.baseline)]
    for row in grid.rows:
        if not row.texts:
            continue
        xs.append(row.strength)
        kl.append(row.kl or 0.0)
        sh.append(share(row.texts))
    return Series(xs, kl, sh, sorted(lw))


def series_table(s: Series) -> Table:
    """The series as numbers with bars (the fallback where no plot library is installed)."""
    table = Table(expand=True, title_justify="left")
    table.add_column("strength", justify="right")
    table.add_column("first-token KL", justify="right")
    table.add_column("label words", ratio=1)
    top = max(s.kl, default=0.0) or 1.0
    for x, k, f in zip(s.strengths, s.kl, s.label_share):
        table.add_row(f"{x:g}", f"{k:.2f} " + "█" * round(6 * k / top), f"{f:.0%} " + "█" * round(10 * f))
    return table


# ----------------------------------------------------------------------------- the judge transcript


def _probe_request(p: dict[str, Any]) -> Text:
    bits = [f"s={float(p.get('strength', 0)):g}"]
    if int(p.get("samples", 1)) > 1:
        bits.append(f"x{p['samples']}")
    if p.get("control"):
        bits.append("control")
    if p.get("base_image", "white") != "white":
        bits.append(f"on {p['base_image']}")
    if p.get("question"):
        bits.append(f"asks {p['question']!r}")
    out = Text("    → " + " ".join(bits), style="cyan")
    if p.get("reason"):
        out.append(f"  {p['reason']}", style="italic")
    return out


def _test_request(q: dict[str, Any]) -> Text:
    """A test the judge asked for, as the transcript lists it under its round."""
    if q.get("kind") == "edit":
        what = f"edit {q.get('edit')}"
    else:
        held = ", ".join(f"{p[0]} {p[1]}" for p in q.get("hold") or [] if isinstance(p, (list, tuple)) and len(p) == 2)
        what = f"render {q.get('family')}" + (f" holding {held}" if held else "")
    out = Text(f"    → test {what}", style="cyan")
    if q.get("reason"):
        out.append(f"  {q['reason']}", style="italic")
    return out


def _ran_tests(tests: list[TestEntry], rnd: Any) -> Text:
    """``  tests: #6 render colour, #7 edit desaturate``: the tests that ran after round ``rnd``, numbered."""
    out = Text("  tests: ", style="dim")
    for i, e in enumerate(t for t in tests if t.round == (rnd or 0) + 1):
        out += (Text(", ") if i else Text()) + cite(e.id) + Text(f" {e.name}", style="dim")
    return out


def transcript(record: Any) -> RenderableType:
    lines: list[Text] = []
    tests = test_entries(record)
    if getattr(record, "note", None):
        lines.append(Text.assemble(("reviewer's note to the judge: ", "bold magenta"), str(record.note)))
    for e in record.transcript or []:
        rnd, kind = e.get("round"), e.get("kind")
        if kind == "sweep":
            strengths = ", ".join(f"{float(s):g}" for s in e.get("strengths", []))
            how = "calibrated" if e.get("calibrated") else "fixed"
            lines.append(Text.assemble(("opening sweep", "bold"),
                                       f" ({how} strengths {strengths}; {len(e.get('probes', []))} probes)"))
        elif kind == "verdict":
            final = e.get("action") == "final"
            head = Text(f"round {rnd} ", style="bold")
            head.append("FINAL" if final else "asks for probes", style="bold green" if final else "bold yellow")
            head.append(f"  confidence {float(e.get('confidence', 0)):.2f}")
            meta = [f"{e['tokens']} tok" if e.get("tokens") else "", "cached" if e.get("cached") else "",
                    f"{e['attempts']} tries" if int(e.get("attempts", 1)) > 1 else "", call_meta(e)]
            if any(meta):
                head.append("  (" + ", ".join(m for m in meta if m) + ")", style="dim")
            lines.append(head)
            lines.append(Text("  hypothesis: ", style="dim") + Text(str(e.get("hypothesis", ""))))
            for p in e.get("probes") or []:
                lines.append(_probe_request(p))
            for q in e.get("tests") or []:
                lines.append(_test_request(q))
            if final:
                lines.append(Text("  label: ", style="dim") + Text(str(e.get("label", "")), style="bold"))
                lines.append(Text("  explanation: ", style="dim") + Text(str(e.get("explanation", ""))))
                if e.get("evidence"):
                    cited = Text("  evidence: ", style="dim")
                    for i, n in enumerate(e["evidence"]):
                        cited += (Text(", ") if i else Text()) + cite(int(n))
                    lines.append(cited)
        elif kind == "images":
            lines.append(Text("top-activating images", style="bold"))
            lines.extend(image_lines(record))
        elif kind == "probes":
            if e.get("probes"):
                lines.append(Text(f"  ran: {'; '.join(e.get('probes', []))}", style="dim"))
            if e.get("tests"):
                lines.append(_ran_tests(tests, rnd))
        elif kind == "invalid":
            extra = f" ({call_meta(e)})" if call_meta(e) else ""
            lines.append(Text(f"round {rnd} invalid reply after {e.get('attempts', 1)} tries{extra}: {e.get('error')}",
                              style="bold red"))
            raw = e.get("raw") or (record.raw_reply if e is record.transcript[-1] else None)
            if raw:  # a failing reply is stored once, as the record's raw_reply
                lines.append(Text("  raw reply: ", style="dim") + Text(shorten(str(raw), 400)))
        elif kind == "error":
            lines.append(Text(f"round {rnd} judge call failed: {e.get('error')}", style="bold red"))
        else:
            lines.append(Text(f"round {rnd} {kind}: {e}", style="dim"))
    if record.error:
        lines.append(Text(f"failed: {record.error}", style="bold red"))
    if not lines:
        return Text("No judge transcript was stored for this feature.", style="dim")
    return Group(*lines)


def image_lines(record: Any) -> list[Text]:
    """The top-k / hybrid descriptions the judge read, one line each, numbered as it saw them."""
    out = []
    for item in getattr(record, "image_evidence", None) or []:
        r = item.get("image") if isinstance(item, dict) else None
        if not isinstance(r, dict):
            continue
        mode = str(r.get("mode", "?"))
        head = f"  #{item.get('id')} {mode}"
        if mode == "hybrid":
            head += f" s={float(r.get('strength', 0)):g}"
        head += f" ({len(r.get('image_ids') or [])} images): "
        texts = [str(t) for t in r.get("texts") or [] if str(t).strip()]
        if texts:
            body = " / ".join(texts)
        elif r.get("texts"):
            body = "(the model's answer was empty)"
        else:
            body = f"no description ({r.get('note') or 'the feature never fired on the collection'})"
        out.append(Text(head, style="cyan") + Text(body))
    return out


def manual_probes(entries: list[dict[str, Any]]) -> RenderableType:
    """Probes run by hand (stored with the feature), oldest first, changed words highlighted."""
    lines: list[Text] = []
    for e in entries:
        r = e.get("result") or {}
        p = r.get("probe") or {}
        base = {w for t in (e.get("baseline") or []) for w in words(str(t))}
        q = f" {p['question']!r}" if p.get("question") else ""
        ctrl = " control" if p.get("direction") == "random" else ""
        kl = r.get("kl_first")
        kl_text = f" (first-token KL {float(kl):.2f})" if kl is not None else ""
        head = Text(f"s={float(p.get('strength', 0)):g}{ctrl} on {p.get('base_image', 'white')}{q}{kl_text}",
                    style="bold")
        head.append(f"  {e.get('by', '?')}, {when(e.get('at'))}", style="dim")
        lines.append(head)
        lines.extend(Text(f"  {i}. ") + highlight(str(t), base) for i, t in enumerate(r.get("texts") or [], 1))
    if not lines:
        return Text("No manual probes of this feature yet: press p.", style="dim")
    return Text("\n").join(lines)


def when(at: str | None) -> str:
    """An ISO time as ``2026-01-31 14:05 UTC`` (seconds and offset dropped)."""
    if not at:
        return "?"
    text = at.replace("T", " ")[:16]
    return text + " UTC" if at.endswith(("+00:00", "Z")) else text


def summary(record: Any) -> Text:
    """The final answer in a few lines: label, confidence, explanation, status and review."""
    out = Text()
    label = record.final_label or ("(no label)" if record.status == "done" else "(failed)")
    out.append(f"#{record.feature} ", style="bold")
    out.append(label, style="bold")
    if record.confidence is not None:
        out.append(f"  confidence {record.confidence:.2f}")
    out.append(f"  {record.status}", style="green" if record.status == "done" else "red")
    if record.forced:
        out.append(" (forced)", style="dim")
    if record.review:
        rv = record.review
        word = {"accept": "accepted", "edit": "edited", "reject": "rejected"}.get(rv.decision, rv.decision)
        out.append(f"  {word} by {rv.reviewer} at {when(rv.at)}", style="bold magenta")
        if rv.note:  # the reviewer's reason, where the decision is shown
            out.append(": ", style="bold magenta")
            out.append(f"“{rv.note}”", style="magenta")
    elif record.status == "done":
        out.append("  unreviewed", style="dim")
    out.append("\n")
    if record.status == "done":
        out.append(record.final_explanation or "")
        if record.review and record.review.decision == "edit" and record.explanation != record.final_explanation:
            out.append(f"\njudge said: {record.explanation}", style="dim")
    else:
        out.append(record.error or "no explanation", style="red")
    return out


def call_meta(entry: dict[str, Any]) -> str:
    """A judge turn's HTTP calls in a few words: the endpoint's latency per call and the response format
    (cached calls cost nothing and are left out)."""
    live = [c for c in entry.get("calls") or [] if not c.get("cached")]
    if not live:
        return ""
    seconds = sum(float(c.get("seconds") or 0.0) for c in live) / len(live)
    formats = sorted({str(c["format"]) for c in live if c.get("format")})
    return f"{seconds:.1f} s/call" + (f", format {'/'.join(formats)}" if formats else "")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
