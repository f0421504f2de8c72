"""`steer-agent export --html DIR`: a self-contained static site of a store (an index to search, sort and filter,
one page per feature, the run's settings). Every text goes through the judge's redaction before it is written;
pictures are inlined as data: URLs, the style and the index's script as inline elements."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from agent.judges.evidence import STOPWORDS, words
from agent.judges.redact import redact
from agent.site.assets import CSS, INDEX_JS
from agent.site.feature import (
    CHANGE_HELP,
    KL_HELP,
    TEST_HELP,
    Activation,
    FeaturePage,
    ProbeEntry,
    TestEntry,
    activation,
    feature_page,
    test_entries,
)
from agent.store.export import ExportRefused, judge_name
from agent.store.records import FeatureRecord
from agent.store.store import RecordUnreadable, Store, describe_world

log = logging.getLogger(__name__)

MARKER = "steer-site.json"
"""Written last into an exported folder: the store's id and the files written (a re-export removes its own
stale pages, never anything else)."""
FORMAT = "steer-interp-html"
PICTURES = 8
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def t(value: Any) -> str:
    """``value`` as HTML text, credentials redacted."""
    return escape(redact(str(value)))


def link(n: int) -> str:
    return f'<a href="#probe-{n}">#{n}</a>'


def doc(title: str, body: str, script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{t(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}{tail}</body></html>\n")


def nav(*extra: str) -> str:
    return '<nav><a href="index.html">all features</a><a href="settings.html">run settings</a>' + "".join(extra) + "</nav>"


def png_url(image: Any, side: int = 128) -> str:
    """A PIL image as a PNG data: URL, at most ``side`` pixels a side."""
    image = image.convert("RGB")
    if max(image.size) > side:
        image.thumbnail((side, side))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def marked(text: str, base: set[str]) -> str:
    """``text`` escaped, with each content word the baseline lacks marked as changed."""
    out, last = [], 0
    for m in _WORD.finditer(text):
        w = m.group().lower()
        if len(w) > 1 and w not in STOPWORDS and w not in base:
            out += [t(text[last:m.start()]), f'<span class="changed">{t(m.group())}</span>']
            last = m.end()
    return "".join(out) + t(text[last:])


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def measures(e: ProbeEntry) -> str:
    return f'<span class="dim small">first-token KL {_num(e.kl_first)} · answer change {_num(e.change)}</span>'


def _answers(entries: list[ProbeEntry], base: set[str]) -> str:
    if not entries:
        return '<span class="dim">—</span>'
    return "".join(f"<div>{link(e.id)} " + "<br>".join(marked(x, base) for x in e.texts)
                   + ("" if e.role == "baseline" else f"<br>{measures(e)}") + "</div>"
                   for e in entries)


def histogram_svg(hist: list[tuple[float, float, int]], width: int = 360, height: int = 110) -> str:
    top = max((c for _, _, c in hist), default=0)
    if not top:
        return '<p class="dim">no active patches on the kept images</p>'
    bw = width / len(hist)
    bars = "".join(f'<rect x="{i * bw + 1:.1f}" y="{height - 16 - (height - 26) * c / top:.1f}" width="{bw - 2:.1f}" '
                   f'height="{(height - 26) * c / top:.1f}"><title>{lo:.3g}-{hi:.3g}: {c} patches</title></rect>'
                   for i, (lo, hi, c) in enumerate(hist))
    axis = (f'<text x="0" y="{height - 3}">0</text><text x="{width}" y="{height - 3}" text-anchor="end">'
            f'{hist[-1][1]:.3g}</text><text x="2" y="9">{top} patches</text>')
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="activation histogram">{bars}{axis}</svg>')


# ----------------------------------------------------------------------------- one feature


def _summary(p: FeaturePage) -> str:
    review = p.review or {}
    state = f'<b class="state-{p.review_state}">{p.review_state}</b>'
    if review:
        state += f" by {t(review.get('reviewer'))} at {t(review.get('at'))}"
        if review.get("note"):
            state += f": reason “{t(review['note'])}”"
    conf = f"{p.confidence:.2f}" if p.confidence is not None else "—"
    body = (f'<p class="explanation">{t(p.explanation or p.error or "no explanation")}</p>'
            f"<p>label <b>{t(p.label or '(none)')}</b> · confidence {conf} · {t(p.status)}"
            f"{' (forced by the budget)' if p.forced else ''} · review: {state}</p>")
    if review.get("decision") == "edit" and p.judge_explanation != p.explanation:
        body += f'<p class="dim">the judge said: {t(p.judge_explanation)} (label {t(p.judge_label)})</p>'
    if p.cited:
        body += "<p>the judge's final verdict cites evidence " + ", ".join(link(n) for n in p.cited) + "</p>"
    return body


def _scores(p: FeaturePage) -> str:
    rows = "".join(f"<tr><td>{t(s.name)}</td><td>{t(s.value)}</td><td class='dim'>{t(s.note)}</td></tr>"
                   for s in p.scores)
    return f'<h2 id="scores">Scores</h2><table><tr><th>score</th><th>value</th><th>note</th></tr>{rows}</table>'


def _explanations(p: FeaturePage) -> str:
    rows = [f"<tr><td>steering (the judge)</td><td>{t(p.judge_explanation or '—')}</td></tr>"]
    rows += [f"<tr><td>{t(i.mode)}{f' s={i.strength:g}' if i.mode == 'hybrid' else ''} {link(i.id)}</td>"
             f"<td>{t(i.text)}</td></tr>" for i in p.images]
    note = "" if p.images else ('<p class="dim">no top-k or hybrid description in this store (run with '
                                "--evidence all after steer-agent topk)</p>")
    return f'<h2 id="explanations">Explanations side by side</h2><table>{"".join(rows)}</table>{note}'


def _activation(act: Activation | None, why: str) -> str:
    head = '<h2 id="activation">Activations</h2>'
    if act is None:
        return head + f'<p class="dim">{t(why)}</p>'
    figs = "".join(f'<figure><img alt="heatmap of image {i.rank}" src="{png_url(i.picture)}">'
                   f"<figcaption>#{i.rank} mean {i.score:.3g} · peak {i.peak:.3g}<br>{t(Path(i.name).name)}"
                   "</figcaption></figure>" for i in act.top if i.picture is not None)
    return (head + f"<p>density: {t(act.density_line)}</p>"
            f'<p class="dim small">histogram of the patch activations above 0 on the {len(act.top)} top images the '
            f"collection keeps (of k={act.k}; it keeps no other activations)</p>{histogram_svg(act.histogram)}"
            f"<h3>Top images (heatmaps: where the feature fires)</h3><div class='pictures'>"
            f"{figs or '<p class=dim>it never fired on the collection</p>'}</div>")


def test_html(e: TestEntry) -> str:
    """A test's result: a render test's values (mean activation with a bar, top share, wins), an edit's before
    and after, or why it did not run."""
    if e.error:
        return f'<span class="state-rejected">not run: {t(e.error)}</span>'
    if e.kind == "edit":
        change = "n/a" if e.change is None else f"{e.change:+.0%}"
        return (f"mean activation {_num(e.before, '.3g')} → {_num(e.after, '.3g')} (<b>{change}</b>) "
                f"{t(e.scope)}<br><span class='dim small'>edit: {t(e.meaning)}</span>")
    top = max((v.mean for v in e.values), default=0.0)
    rows = "".join(f"<tr><td>{t(v.value)}</td><td class='num'>{v.mean:.3g}</td><td><span class='bar' "
                   f"style='width:{(60 * v.mean / top) if top > 0 else 0:.0f}px'></span></td>"
                   f"<td class='num'>{'—' if v.top_share is None else f'{v.top_share:.0%}'}</td>"
                   f"<td class='num'>{v.wins:.0%}</td></tr>" for v in e.values)
    return (f"<span class='dim small'>{t(e.scope)}</span><table class='test'><tr><th>value</th>"
            f"<th class='num'>mean activation</th><th></th><th class='num'>top share</th><th class='num'>wins</th>"
            f"</tr>{rows}</table>")


def _tests(p: FeaturePage) -> str:
    """The activation tests in a line each (the evidence table holds their values)."""
    if not p.tests:
        return ""
    items = "".join(f"<li>{link(e.id)} {t(e.name)}: "
                    f"{f'<span class=state-rejected>{t(e.summary)}</span>' if e.error else t(e.summary)}</li>"
                    for e in p.tests)
    return (f'<h2 id="tests">Activation tests</h2><ul>{items}</ul><p class="legend">{t(TEST_HELP)}.</p>')


def _sweeps(p: FeaturePage) -> str:
    out = [('<h2 id="descriptions">Steered descriptions by strength</h2><p class="dim small">Words not in the '
            'baseline are <span class="changed">marked</span>.</p>')]
    for sw in p.sweeps:
        base = {w for e in sw.baseline for x in e.texts for w in words(x)}
        rows = [f"<tr><td>baseline</td><td colspan=2>{_answers(sw.baseline, base)}</td></tr>"]
        rows += [f"<tr><td class='num'>{r.strength:g}</td><td>{_answers(r.steered, base)}</td>"
                 f"<td>{_answers(r.controls, base)}</td></tr>" for r in sw.rows]
        out.append(f"<h3>on a {t(sw.base_image)} image</h3><table><tr><th class='num'>strength</th>"
                   f"<th>steered</th><th>random control (same norm)</th></tr>{''.join(rows)}</table>")
    if p.questions:
        rows = "".join(f"<tr><td>{link(e.id)}</td><td>{t(e.role)} s={e.strength:g}</td><td>{t(e.question)}</td>"
                       f"<td>{'<br>'.join(t(x) for x in e.texts)}</td></tr>" for e in p.questions)
        out.append(f"<h3>questions</h3><table><tr><th>#</th><th>probe</th><th>question</th><th>answers</th></tr>"
                   f"{rows}</table>")
    return "".join(out)


def _evidence(p: FeaturePage) -> str:
    rows = []
    for e in p.numbered():
        n = e.id
        if isinstance(e, TestEntry):
            why = f"<br><i class='dim'>{t(e.reason)}</i>" if e.reason else ""
            rows.append(f'<tr id="probe-{n}"><td>#{n}</td><td>{e.round}</td><td>activation test: {t(e.name)}{why}'
                        f"</td><td>{test_html(e)}</td><td class='num'>—</td><td class='num'>—</td></tr>")
        elif isinstance(e, ProbeEntry):
            what = t(e.title.split(" ", 1)[1]) + (f"<br><i class='dim'>{t(e.reason)}</i>" if e.reason else "")
            rows.append(f'<tr id="probe-{n}"><td>#{n}</td><td>{e.round}</td><td>{what}</td>'
                        f"<td>{'<br>'.join(t(x) for x in e.texts)}</td><td class='num'>{_num(e.kl_first)}</td>"
                        f"<td class='num'>{_num(e.change)}</td></tr>")
        else:
            rows.append(f'<tr id="probe-{n}"><td>#{n}</td><td></td><td>{t(e.mode)} description of the top images'
                        f"</td><td>{t(e.text)}</td><td class='num'>—</td><td class='num'>—</td></tr>")
    return ('<h2 id="evidence">Evidence, numbered as the judge cites it</h2><table><tr><th>#</th><th>round</th>'
            "<th>probe</th><th>answers</th><th class='num'>first-token KL</th><th class='num'>answer change</th>"
            f"</tr>{''.join(rows)}</table><p class='legend'>{t(KL_HELP)}.<br>{t(CHANGE_HELP)}."
            f"{f'<br>{t(TEST_HELP)}.' if p.tests else ''}</p>")


def _test_request(q: dict[str, Any]) -> str:
    if q.get("kind") == "edit":
        what = f"edit {q.get('edit')}"
    else:
        held = ", ".join(f"{x[0]} {x[1]}" for x in q.get("hold") or [] if isinstance(x, (list, tuple)) and len(x) == 2)
        what = f"render {q.get('family')}" + (f" holding {held}" if held else "")
    return f"<p class='small'>→ test {t(what)} <i class='dim'>{t(q.get('reason', ''))}</i></p>"


def _transcript(record: FeatureRecord, call: Callable[[str], dict[str, Any] | None]) -> str:
    out = ['<h2 id="judge">Judge transcript</h2>']
    tests = test_entries(record)
    if record.note:
        out.append(f"<p><b>reviewer's note to the judge:</b> {t(record.note)}</p>")
    for e in record.transcript or []:
        kind, rnd = e.get("kind"), e.get("round")
        if kind == "sweep":
            out.append(f"<p><b>opening sweep</b>: strengths {t(', '.join(f'{float(s):g}' for s in e.get('strengths', [])))}"
                       f" ({len(e.get('probes', []))} probes)</p>")
        elif kind in ("verdict", "invalid"):
            head = "FINAL" if e.get("action") == "final" else "asks for probes" if kind == "verdict" else "invalid reply"
            body = [f"<p><b>round {t(rnd)} {head}</b> · confidence {float(e.get('confidence') or 0):.2f}</p>"]
            for key in ("hypothesis", "label", "explanation", "error"):
                if e.get(key):
                    body.append(f"<p><span class='dim'>{key}:</span> {t(e[key])}</p>")
            if e.get("evidence"):
                body.append("<p><span class='dim'>cites:</span> " + ", ".join(link(int(n)) for n in e["evidence"]) + "</p>")
            for q in e.get("probes") or []:
                body.append(f"<p class='small'>→ s={float(q.get('strength', 0)):g} on {t(q.get('base_image', 'white'))}"
                            f"{' control' if q.get('control') else ''}{' asks ' + t(repr(q['question'])) if q.get('question') else ''}"
                            f" <i class='dim'>{t(q.get('reason', ''))}</i></p>")
            body.extend(_test_request(q) for q in e.get("tests") or [] if isinstance(q, dict))
            for c in e.get("calls") or []:
                stored = call(str(c.get("key"))) if c.get("key") else None
                if stored:
                    body.append(f"<details><summary class='small'>judge call ({t(stored.get('model', '?'))}, "
                                f"format {t(stored.get('format', '?'))}, {int((stored.get('usage') or {}).get('total_tokens') or 0)} tokens)"
                                f"</summary><pre>{t(stored.get('text', ''))}</pre></details>")
            if kind == "invalid" and e.get("raw"):
                body.append(f"<pre>{t(e['raw'])}</pre>")
            out.append("<div>" + "".join(body) + "</div>")
        elif kind == "images":
            out.append("<p><b>top-k descriptions</b> read: " + ", ".join(link(int(n)) for n in e.get("ids") or []) + "</p>")
        elif kind == "probes":
            if e.get("probes"):
                out.append(f"<p class='small dim'>ran: {t('; '.join(e.get('probes', [])))}</p>")
            ran = [x for x in tests if x.round == (rnd or 0) + 1]
            if ran:
                names = ", ".join(f"{link(x.id)} {t(x.name)}" for x in ran)
                out.append(f"<p class='small dim'>tests: {names}</p>")
        elif kind == "error":
            out.append(f"<p class='state-rejected'>round {t(rnd)} judge call failed: {t(e.get('error'))}</p>")
    if record.error:
        out.append(f"<p class='state-rejected'>failed: {t(record.error)}</p>")
    return "".join(out)


def feature_html(record: FeatureRecord, page: FeaturePage, act: Activation | None, why: str,
                 call: Callable[[str], dict[str, Any] | None], prev: int | None = None, nxt: int | None = None) -> str:
    links = [f'<a href="feature-{f}.html">{label} #{f}</a>' for f, label in ((prev, "previous"), (nxt, "next"))
             if f is not None]
    body = (nav(*links) + f"<h1>Feature #{page.feature}: {t(page.label or '(no label)')}</h1>" + _summary(page)
            + _scores(page) + _explanations(page) + _tests(page) + _activation(act, why) + _sweeps(page)
            + _evidence(page) + _transcript(record, call))
    return doc(f"feature {page.feature} · {page.label or ''}", body)


# ----------------------------------------------------------------------------- index and settings


def index_html(pages: list[FeaturePage], world: str) -> str:
    rows = []
    for p in pages:
        conf = "" if p.confidence is None else f"{p.confidence:.2f}"
        search = " ".join(str(x) for x in (p.feature, p.label, p.explanation) if x).lower()
        rows.append(f'<tr data-review="{p.review_state}" data-label="{t(p.label or "")}" data-confidence="{conf}" '
                    f'data-search="{t(search)}"><td class="num" data-sort="{p.feature}">'
                    f'<a href="feature-{p.feature}.html">#{p.feature}</a></td><td>{t(p.label or "—")}</td>'
                    f'<td class="num" data-sort="{conf}">{conf or "—"}</td><td class="state-{p.review_state}">'
                    f"{p.review_state}</td><td>{t(p.status)}</td><td>{t(p.explanation or p.error or '')}</td></tr>")
    labels = sorted({p.label for p in pages if p.label})
    options = "".join(f'<option value="{t(x)}">{t(x)}</option>' for x in labels)
    states = "".join(f'<option value="{s}">{s}</option>' for s in ("unreviewed", "accepted", "edited", "rejected"))
    body = (nav() + f"<h1>Features</h1><p class='dim'>{t(world)}</p><div class='filters'>"
            '<label>search <input id="q" type="search" placeholder="label or explanation"></label>'
            f'<label>review <select id="review"><option value="">any</option>{states}</select></label>'
            f'<label>label <select id="label"><option value="">any</option>{options}</select></label>'
            '<label>confidence ≥ <input id="conf" type="number" min="0" max="1" step="0.05" style="width:5em"></label>'
            '<span id="shown" class="dim"></span></div><table id="features"><thead><tr>'
            '<th class="sortable num">feature</th><th class="sortable">label</th><th class="sortable num">confidence</th>'
            '<th class="sortable">review</th><th class="sortable">status</th><th>explanation</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table><p class='legend'>Click a column head to sort. The filters are "
            "kept in the address (#review=rejected&amp;conf=0.8) so a filtered view can be shared.</p>")
    return doc("features", body, INDEX_JS)


def _flat(d: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flat(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), d


def settings_html(store: Store, pages: list[FeaturePage], records: list[FeatureRecord]) -> str:
    last = store.get_meta("last_run")
    last = last if isinstance(last, dict) else {}
    world = store.world() or {}
    rows = [("world", describe_world(world)), ("model revision", world.get("revision")),
            ("SAE revision", world.get("sae_revision")), ("store", store.path.name), ("run id", last.get("run_id")),
            ("judge", judge_name(last.get("judge") or (records[0].judge if records else {})))]
    rows += [(f"judge.{k}", v) for k, v in _flat(last.get("judge") or {}) if k not in ("kind",)]
    rows += [(f"run.{k}", v) for k, v in _flat(last.get("config") or {})]
    table = "".join(f"<tr><td>{t(k)}</td><td>{t(json.dumps(v) if isinstance(v, list) else v)}</td></tr>"
                    for k, v in rows if v is not None)
    feats = "".join(f'<li><a href="feature-{p.feature}.html#judge">#{p.feature} {t(p.label or "")}</a> · '
                    f"{r.rounds} rounds, {r.n_probes} probes</li>" for p, r in zip(pages, records))
    body = (nav() + "<h1>Run settings</h1><table><tr><th>setting</th><th>value</th></tr>" + table + "</table>"
            + "<h2>The judge's transcript, per feature</h2><ul>" + feats + "</ul>")
    return doc("run settings", body)


# ----------------------------------------------------------------------------- the site


@dataclass
class SiteResult:
    written: int
    folder: Path
    corrupt: list[RecordUnreadable] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = f"wrote {self.written} feature pages to {self.folder / 'index.html'}"
        return line + (f"; {len(self.corrupt)} corrupt records (named above)" if self.corrupt else "")


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def site_problem(folder: Path, store: Store) -> str | None:
    """Why the site may not be written into ``folder`` without --overwrite (None: absent, empty, or an earlier
    HTML export of this store)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} exists and is not a folder"
    if not any(folder.iterdir()):
        return None
    marker = _marker(folder)
    if marker is None:
        return f"{folder} is not empty and is not an HTML export"
    if marker.get("store_id") != store.id:
        return f"{folder} holds an HTML export of another store"
    return None


def write_site(store: Store, folder: str | Path, features: Iterable[int] | None = None, *, overwrite: bool = False,
               topk: str | Path | None = None) -> SiteResult:
    """Write the site of ``store`` (its ``features``, None: all) into ``folder``; raises ExportRefused (naming
    --overwrite) for a folder that holds something else."""
    from agent.groundtruth import ground_truth_for
    from agent.topk import topk_dir

    folder = Path(folder).expanduser()
    problem = site_problem(folder, store)
    if problem and not overwrite:
        raise ExportRefused(f"{problem}: pass --overwrite to write into it, or another --html")
    result = SiteResult(0, folder)
    records = store.list_records(None if features is None else sorted(set(features)), errors=result.corrupt)
    try:
        truth = ground_truth_for(store.world() or {}) or {}
    except RecordUnreadable as exc:
        result.warnings.append(f"no ground truth ({exc.why})")
        truth = {}
    root = topk_dir(store, topk)
    pages = [feature_page(r, truth.get(r.feature)) for r in records]
    folder.mkdir(parents=True, exist_ok=True)
    written = ["index.html", "settings.html"]
    for i, (rec, page) in enumerate(zip(records, pages)):
        act, why = None, f"no top-k collection in this store: collect one with steer-agent topk --store {store.path.name}"
        if root is not None:
            try:
                act = activation(root, rec.feature, pictures=PICTURES)
            except Exception as exc:  # noqa: BLE001 - a page without pictures beats no page
                why = f"top-k collection unreadable: {exc}"
        prev = records[i - 1].feature if i else None
        nxt = records[i + 1].feature if i + 1 < len(records) else None
        name = f"feature-{rec.feature}.html"
        (folder / name).write_text(feature_html(rec, page, act, why, store.get_judge_call, prev, nxt), encoding="utf-8")
        written.append(name)
    world = describe_world(store.world() or {})
    (folder / "index.html").write_text(index_html(pages, world), encoding="utf-8")
    (folder / "settings.html").write_text(settings_html(store, pages, records), encoding="utf-8")
    old = _marker(folder)
    for stale in set((old or {}).get("files") or []) - set(written):
        if re.fullmatch(r"feature-\d+\.html", str(stale)):
            (folder / stale).unlink(missing_ok=True)
    (folder / MARKER).write_text(json.dumps({"format": FORMAT, "version": 1, "store_id": store.id,
                                             "files": written}, indent=1), encoding="utf-8")
    result.written = len(records)
    return result
