"""Activation tests on a feature's page and in the exports: the page model numbers them with the probes, the
HTML site gives each its #probe-N anchor (citations point at them) with its values, and the JSONL export
keeps a row per test."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.judges.evidence import TestItem
from agent.site.feature import TestEntry, feature_page
from agent.store.store import Store
from steering.activation_tests import ActivationTest, ActivationTestResult
from tests.agent.fakes import FakeEngine

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "black")


def results(feature: int) -> list[tuple[ActivationTestResult, str]]:
    """A render test where red wins, an edit test that removes most of the activation, and a test that
    could not run; each with the judge's reason."""
    render = ActivationTestResult(
        ActivationTest(feature, "render", "colour", hold=(("shape", "circle"),)),
        values={c: {"red": 16.9, "orange": 3.2}.get(c, 0.0) for c in COLOURS},
        top_share={c: {"red": 0.9, "orange": 0.1}.get(c, 0.0) for c in COLOURS},
        wins={c: {"red": 0.95, "orange": 0.05}.get(c, 0.0) for c in COLOURS}, n_images=448, n_top=20, peak=94.7)
    edit = ActivationTestResult(ActivationTest(feature, "edit", edit="desaturate"),
                                values={"before": 12.0, "after": 1.5}, n_images=5, peak=20.0)
    failed = ActivationTestResult(ActivationTest(feature, "edit", edit="blur"), error="the feature has no top images")
    return [(render, "which colour, circles held"), (edit, "does it need colour"), (failed, "")]


def add_tests(store: Store, feature: int) -> list[int]:
    """Give ``feature``'s stored record the three tests (round 2, numbered after its probes), cited by its final
    verdict; returns their numbers."""
    rec = store.get_record(feature)
    first = 1 + max(e["id"] for e in rec.evidence)
    items = [TestItem(first + i, 2, r, reason=why) for i, (r, why) in enumerate(results(feature))]
    rec.test_evidence = [i.to_dict() for i in items]
    final = [e for e in rec.transcript if e.get("action") == "final"][-1]
    final["evidence"] = [first, first + 1]
    rec.transcript.insert(1, {"round": 1, "kind": "probes", "probes": [], "tests": [r.test.name() for r, _ in
                                                                                      results(feature)]})
    store.put_record(rec)
    return [i.id for i in items]


def filled(store: Store, features: list[int]) -> Store:
    from agent.run import run_features
    from agent.run.config import RunConfig, SweepConfig
    from tests.tui.fakes import scripted_judge

    run_features(FakeEngine(), scripted_judge(), store, features,
                 RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0), background=0)))
    for f in features:
        add_tests(store, f)
    return store


def test_the_page_numbers_the_tests_with_the_probes(store: Store) -> None:
    filled(store, [0])
    page = feature_page(store.get_record(0))
    ids = [e.id for e in page.numbered()]
    assert ids == sorted(ids) == list(range(1, len(ids) + 1))
    render, edit, failed = page.tests
    assert isinstance(page.entry(render.id), TestEntry) and page.cited == [render.id, edit.id]
    assert [v.value for v in render.values] == ["red", "orange", "yellow", "green", "blue", "purple", "black"]
    assert render.summary == "most on red (mean 16.9, top 90%, wins 95%)"
    assert edit.change == -0.875 and "12 -> 1.5 (-88%)" in edit.summary and "colour removed" in edit.summary
    assert failed.summary == "not run: the feature has no top images"


def test_a_malformed_test_item_is_left_out(store: Store) -> None:
    filled(store, [0])
    rec = store.get_record(0)
    rec.test_evidence.append({"id": 99, "round": 2, "test": {"values": {}}})  # no test spec
    rec.test_evidence.append({"id": "x"})
    assert len(feature_page(rec).tests) == 3


def test_the_site_anchors_each_test_and_links_its_citations(store: Store, tmp_path: Path) -> None:
    from agent.site.html import write_site

    filled(store, [0, 1])
    ids = [i["id"] for i in store.get_record(0).test_evidence]
    write_site(store, tmp_path / "site")
    page = (tmp_path / "site" / "feature-0.html").read_text()
    rec = store.get_record(0)
    anchors = [int(n) for n in re.findall(r'id="probe-(\d+)"', page)]
    assert sorted(anchors) == [e["id"] for e in rec.evidence] + ids  # one anchor per numbered item, tests too
    for n in ids[:2]:  # cited by the final verdict, and linked from the tests' list and the transcript
        assert page.count(f'<a href="#probe-{n}">#{n}</a>') >= 3
    row = re.search(rf'<tr id="probe-{ids[0]}">(.*?)</table></td>', page).group(1)
    assert "activation test: render colour holding shape circle" in row and "which colour, circles held" in row
    values = re.findall(r"<tr><td>(\w+)</td><td class='num'>([\d.]+)</td><td><span class='bar' style='width:(\d+)px'>"
                        r"</span></td><td class='num'>(\d+)%</td><td class='num'>(\d+)%</td></tr>", row)
    assert values[:2] == [("red", "16.9", "60", "90", "95"), ("orange", "3.2", "11", "10", "5")]
    assert [v[0] for v in values[2:]] == ["yellow", "green", "blue", "purple", "black"]  # ties in the family's order
    edit = re.search(rf'<tr id="probe-{ids[1]}">(.*?)</tr>', page).group(1)
    assert "mean activation 12 → 1.5 (<b>-88%</b>) over 5 top images" in edit
    failed = re.search(rf'<tr id="probe-{ids[2]}">(.*?)</tr>', page).group(1)
    assert "not run: the feature has no top images" in failed
    assert '<h2 id="tests">Activation tests</h2>' in page and "most on red (mean 16.9" in page


def test_the_jsonl_export_keeps_a_row_per_test(store: Store, tmp_path: Path) -> None:
    from agent.store.export import export_records

    filled(store, [0, 1])
    out = tmp_path / "out.jsonl"
    assert export_records(store, out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    tests = rows[0]["activation_tests"]
    first = 1 + max(e["id"] for e in store.get_record(0).evidence)
    assert [t["id"] for t in tests] == [first, first + 1, first + 2]
    render, edit, failed = tests
    assert render["kind"] == "render" and render["family"] == "colour" and render["hold"] == {"shape": "circle"}
    assert render["values"]["red"] == 16.9 and render["wins"]["red"] == 0.95 and render["n_images"] == 448
    assert render["reason"] == "which colour, circles held" and render["round"] == 2
    assert edit["edit"] == "desaturate" and edit["values"] == {"before": 12.0, "after": 1.5}
    assert failed["error"] == "the feature has no top images" and failed["values"] == {}


def test_a_record_without_tests_shows_none(store: Store, tmp_path: Path) -> None:
    from agent.run import run_features
    from agent.run.config import RunConfig, SweepConfig
    from agent.site.html import write_site
    from tests.tui.fakes import scripted_judge

    run_features(FakeEngine(), scripted_judge(), store, [2], RunConfig(sweep=SweepConfig(strengths=(5.0,),
                                                                                         background=0)))
    assert feature_page(store.get_record(2)).tests == []
    write_site(store, tmp_path / "site")
    assert 'id="tests"' not in (tmp_path / "site" / "feature-2.html").read_text()
