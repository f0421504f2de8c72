"""One feature in full: the answer and its scores, description grid, response plot, judge transcript, pictures,
and every probe numbered as the judge cites it (a citation jumps to its probe)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from tui import detail_model as dm
from tui.evaluation import same_world
from tui.messages import FeatureChanged
from tui.screens.actions import REVIEW_BINDINGS, FeatureActions
from tui.screens.host import host
from tui.screens.probe_number import ProbeNumberModal
from tui.widgets.picture import Picture
from tui.widgets.plot import ResponsePlot

TABS = ("descriptions", "response", "judge", "images", "probes", "evidence")


class DetailScreen(FeatureActions):
    """The feature's record as stored; reloads when a run or a review changes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *REVIEW_BINDINGS,
        Binding("escape", "back", "back", show=False),
        Binding("left_square_bracket", "step(-1)", "prev"),
        Binding("right_square_bracket", "step(1)", "next"),
        Binding("g", "ask_probe", "go to #", tooltip="show the probe the judge cites as #N (Evidence tab)"),
        Binding("0", "tab('overview')", "overview tab", show=False),
        *[Binding(str(i), f"tab('{t}')", f"{t} tab", show=False) for i, t in enumerate(TABS, 1)],
    ]
    DEFAULT_CSS = """
    DetailScreen #evidence-list > Static { margin-bottom: 1; }
    DetailScreen #evidence-list > Static.-cited { background: $warning 25%; }
    DetailScreen #activation { margin-top: 1; }
    """

    def __init__(self, feature: int) -> None:
        super().__init__()
        self.feature = feature
        self.record: Any = None
        self.page: dm.FeaturePage | None = None
        self._generation = 0
        self._pictures_for: int | None = None

    @property
    def current_feature(self) -> int | None:
        return self.feature

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"#{self.feature} loading…"), id="summary")
        yield Static("", id="verdict")
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("Overview", id="overview"), VerticalScroll():
                yield Static(id="overview-body")
                yield Static("", id="activation")
            with TabPane("Descriptions", id="descriptions"), VerticalScroll():
                yield Static(id="grid")
            with TabPane("Response", id="response"):
                yield VerticalScroll(id="plot-pane")
            with TabPane("Judge", id="judge"), VerticalScroll():
                yield Static(id="transcript")
            with TabPane("Images", id="images"), VerticalScroll():
                yield Horizontal(id="base-picture", classes="pictures")
                yield Static("", id="topk-status", classes="dim")
                yield Horizontal(id="topk-pictures", classes="pictures")
            with TabPane("Probes", id="probes"), VerticalScroll():
                yield Static(id="manual")
            with TabPane("Evidence", id="evidence"):
                yield VerticalScroll(id="evidence-list")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.watch(self.app, "report", self.show_verdict)
        self.load()

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        self._generation += 1
        self._load(self.feature, self._generation)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load(self, feature: int, generation: int) -> tuple[int, int, Any, list[dict[str, Any]]]:
        services = host(self).services
        record = services.record(feature)
        manual = record.manual if record is not None else services.manual_probes(feature)
        return feature, generation, record, manual

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        w = event.worker
        if w.group == "detail" and event.state == WorkerState.SUCCESS:
            feature, generation, record, manual = w.result
            if generation == self._generation and feature == self.feature:  # drop late answers
                self.show(record, manual)
        elif w.group == "detail" and event.state == WorkerState.ERROR:
            self.query_one("#summary", Static).update(Text(f"#{self.feature}: {w.error}", style="red"))
        elif w.group == "pictures" and event.state == WorkerState.SUCCESS:
            feature, views, stats = w.result
            if feature == self.feature:
                self.show_topk(views, stats)
        elif w.group == "activation" and event.state == WorkerState.SUCCESS:
            feature, act = w.result
            if feature == self.feature:
                self.query_one("#activation", Static).update(dm.activation_view(act, self._no_activation()))
        elif w.group == "pictures" and event.state == WorkerState.ERROR:
            self.query_one("#topk-status", Static).update(Text(f"top-k images unavailable: {w.error}", style="red"))

    def on_feature_changed(self, msg: FeatureChanged) -> None:
        if msg.feature == self.feature:
            self.load()

    # ------------------------------------------------------------------ showing

    def show(self, record: Any, manual: list[dict[str, Any]] | None = None) -> None:
        self.record = record
        self.sub_title = f"feature #{self.feature}"
        summary = self.query_one("#summary", Static)
        if record is None:
            row = host(self).main_screen.rows.get(self.feature)
            status = row.status_text if row else "unknown"
            summary.update(Text(f"#{self.feature} {status}: no record yet", style="dim"))
            for name in ("#grid", "#transcript", "#overview-body"):
                self.query_one(name, Static).update(Text("nothing stored yet", style="dim"))
            self.page = None
        else:
            self.page = dm.feature_page(record, host(self).services.ground_truth(self.feature))
            self.query_one("#overview-body", Static).update(dm.overview(self.page))
            summary.update(dm.summary(record))
            self.query_one("#grid", Static).update(dm.descriptions(record))
            self.query_one("#transcript", Static).update(dm.transcript(record))
            pane = self.query_one("#plot-pane", VerticalScroll)
            pane.remove_children()
            pane.mount(ResponsePlot(dm.series(record)))
        self.show_evidence()
        self.show_activation()
        self.show_base_image(record)
        self.query_one("#manual", Static).update(dm.manual_probes(manual or []))
        if self.query_one(TabbedContent).active == "images":
            self.load_pictures()

    def show_evidence(self) -> None:
        """Every numbered item the judge saw, one widget each (class ``probe-N``: the old list may not be gone
        yet), so a citation can scroll to it."""
        box = self.query_one("#evidence-list", VerticalScroll)
        box.remove_children()
        page = self.page
        entries = page.numbered() if page else []
        if page is None or not entries:
            box.mount(Static(Text("No numbered evidence was stored for this feature.", style="dim")))
            return
        items = [Static(dm.evidence_entry(e), classes=f"probe-{e.id}") for e in entries]
        box.mount_all([Static(dm.evidence_legend(page)), *items])

    def _no_activation(self) -> str:
        return ("No top-k collection for this store, so no activations: collect one with steer-agent topk "
                "--store DIR, or start steer-tui with --topk DIR.")

    def show_activation(self) -> None:
        box = self.query_one("#activation", Static)
        if host(self).services.topk_source() is None:
            box.update(Text(self._no_activation(), style="dim"))
            return
        box.update(Text("loading activations…", style="dim"))
        self._activation(self.feature)

    @work(thread=True, exclusive=True, group="activation", exit_on_error=False)
    def _activation(self, feature: int) -> tuple[int, Any]:
        return feature, host(self).services.activation(feature)

    def action_ask_probe(self) -> None:
        known = {e.id for e in self.page.numbered()} if self.page else set()
        self.app.push_screen(ProbeNumberModal(known), lambda n: self.action_show_probe(n) if n is not None else None)

    def action_show_probe(self, number: int) -> None:
        """Show evidence item ``number`` (a citation's target) in the Evidence tab, marked."""
        self.query_one(TabbedContent).active = "evidence"
        for old in self.query("#evidence-list > .-cited"):
            old.remove_class("-cited")
        found = self.query(f"#evidence-list > .probe-{int(number)}")
        if not found:
            self.notify(f"#{number} is not in this feature's evidence", severity="warning")
            return
        target = found.last()  # a list being replaced may still hold the old one
        target.add_class("-cited")
        self.call_after_refresh(target.scroll_visible, top=True, animate=False)

    def show_verdict(self, _new_report: Any = None) -> None:
        """The evaluation's ground truth and verdict for this feature, when a loaded report has it
        (also the watcher of ``app.report``)."""
        report = host(self).report
        box = self.query_one("#verdict", Static)
        line = report.verdict_line(self.feature) if report is not None else None
        if report is None or line is None:
            truth = host(self).services.ground_truth(self.feature)
            box.display = truth is not None and bool(truth.get("value"))
            if box.display:
                box.update(Text.assemble(("ground truth: ", "bold"), f"{truth['family']}={truth['value']}",
                                         (f" (purity {float(truth.get('purity', 0)):.2f})", "dim")))
            return
        box.display = True
        text = Text(line)
        store = host(self).services.store
        if not same_world(report.world, store.world() if store is not None else None):
            text = Text("(report for another SAE) ", style="yellow") + text
        box.update(text)

    def show_base_image(self, record: Any) -> None:
        box = self.query_one("#base-picture", Horizontal)
        box.remove_children()
        spec = dm.sweep_base_image(record) if record is not None else "white"
        try:
            box.mount(Picture(host(self).services.base_image(spec, size=64), f"base image: {spec}", cells=12))
        except Exception as exc:  # noqa: BLE001 - a missing custom image must not break the screen
            box.mount(Static(Text(f"base image {spec}: {exc}", style="red")))

    @on(TabbedContent.TabActivated)
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "images":
            self.load_pictures()

    def load_pictures(self) -> None:
        if self._pictures_for == self.feature:
            return
        self._pictures_for = self.feature
        status = self.query_one("#topk-status", Static)
        self.query_one("#topk-pictures", Horizontal).remove_children()
        if host(self).services.topk_source() is None:
            status.update("No top-activating images for this store: collect them with steer-agent topk "
                          "--store DIR [--images DIR | --dataset NAME], or start steer-tui with --topk DIR.")
            return
        status.update("loading top-activating images…")
        self._pictures(self.feature)

    @work(thread=True, exclusive=True, group="pictures", exit_on_error=False)
    def _pictures(self, feature: int) -> tuple[int, list[tuple[Any, str]], dict[str, float] | None]:
        services = host(self).services
        return feature, services.topk_views(feature), services.topk_stats(feature)

    def show_topk(self, views: list[tuple[Any, str]], stats: dict[str, float] | None = None) -> None:
        status = self.query_one("#topk-status", Static)
        box = self.query_one("#topk-pictures", Horizontal)
        box.remove_children()
        density = ""
        if stats:
            density = (f"; fires on {100 * stats['image_frequency']:.2f}% of the collection's images "
                       f"({100 * stats['patch_frequency']:.3f}% of patches), largest activation "
                       f"{stats['max_activation']:.3g}")
        if not views:
            status.update("This feature has no top-activating images (it never fired on the collection)" + density)
            return
        status.update(f"the {len(views)} top-activating images collected, as heatmaps of where the feature fires "
                      f"(caption: rank, mean activation, peak patch){density}")
        box.mount_all(Picture(img, caption, cells=16) for img, caption in views)

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_step(self, delta: int) -> None:
        self.go_to(host(self).main_screen.neighbour(self.feature, delta))

    def go_to(self, feature: int | None) -> None:
        if feature is not None and feature != self.feature:
            self.feature = feature
            self._pictures_for = None
            self.query_one("#summary", Static).update(Text(f"#{feature} loading…"))
            self.show_verdict()
            self.load()
