"""The static site's style sheet and the index's script, inlined into every page (no file, server or network)."""

from __future__ import annotations

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0 1rem 3rem; color: #222; }
nav { padding: .6rem 0; border-bottom: 1px solid #ccc; margin-bottom: 1rem; }
nav a { margin-right: 1rem; }
h1 { font-size: 1.5rem; margin: .4rem 0; } h2 { font-size: 1.15rem; margin-top: 1.6rem; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #ddd; padding: .25rem .45rem; vertical-align: top; text-align: left; }
th { background: #f4f4f4; } th.sortable { cursor: pointer; } th.sortable::after { content: " \\2195"; color: #999; }
td.num, th.num { text-align: right; white-space: nowrap; }
.dim { color: #777; } .small { font-size: 12px; } .changed { color: #b35a00; font-weight: 600; }
.state-accepted { color: #17803d; } .state-rejected { color: #b00020; } .state-edited { color: #7a3db8; }
.explanation { font-size: 1.1rem; background: #f7f7fb; border-left: 4px solid #7a7ad0; padding: .5rem .8rem; }
tr:target, div:target { background: #fff3c4; outline: 2px solid #e0b000; }
.pictures { display: flex; flex-wrap: wrap; gap: .8rem; }
.pictures figure { margin: 0; width: 136px; } .pictures img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
.pictures figcaption { font-size: 12px; overflow-wrap: anywhere; }
svg.hist rect { fill: #7a7ad0; } svg.hist text { font-size: 10px; fill: #555; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7; padding: .4rem; }
.filters { display: flex; flex-wrap: wrap; gap: .6rem 1.2rem; align-items: center; margin-bottom: .6rem; }
.legend { font-size: 12px; color: #555; }
table.test { width: auto; } table.test td, table.test th { padding: .1rem .4rem; font-size: 12px; }
.bar { display: inline-block; height: .7em; background: #7a7ad0; }
"""

INDEX_JS = """
(function () {
  const rows = Array.from(document.querySelectorAll('#features tbody tr'));
  const q = document.getElementById('q'), review = document.getElementById('review');
  const label = document.getElementById('label'), conf = document.getElementById('conf');
  const shown = document.getElementById('shown');
  function apply() {
    const text = q.value.trim().toLowerCase(), min = parseFloat(conf.value);
    let n = 0;
    for (const r of rows) {
      const ok = (!text || r.dataset.search.includes(text)) && (!review.value || r.dataset.review === review.value)
        && (!label.value || r.dataset.label === label.value)
        && (isNaN(min) || (r.dataset.confidence !== '' && parseFloat(r.dataset.confidence) >= min));
      r.hidden = !ok; if (ok) n++;
    }
    shown.textContent = n + ' of ' + rows.length + ' features shown';
    const p = new URLSearchParams();
    if (text) p.set('q', q.value.trim()); if (review.value) p.set('review', review.value);
    if (label.value) p.set('label', label.value); if (!isNaN(min)) p.set('conf', conf.value);
    try { history.replaceState(null, '', p.toString() ? '#' + p.toString() : location.pathname); } catch (e) { }
  }
  const start = new URLSearchParams(location.hash.slice(1));
  q.value = start.get('q') || ''; review.value = start.get('review') || '';
  label.value = start.get('label') || ''; conf.value = start.get('conf') || '';
  for (const el of [q, review, label, conf]) el.addEventListener('input', apply);
  document.querySelectorAll('#features th.sortable').forEach(function (th, i) {
    th.addEventListener('click', function () {
      const body = th.closest('table').tBodies[0], col = th.cellIndex, num = th.classList.contains('num');
      const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      const key = function (r) { const v = r.cells[col].dataset.sort ?? r.cells[col].textContent;
        return num ? (v === '' ? -Infinity : parseFloat(v)) : v.toLowerCase(); };
      Array.from(body.rows).sort(function (a, b) { const x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir; }).forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
"""
