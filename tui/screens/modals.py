"""Small dialogs: edit an explanation, re-run with a note, jump to an id, export, open an evaluation report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea
from textual.worker import Worker, WorkerState

from tui.evaluation import EvalReport, ReportError, load_report
from tui.rows import FeatureRow
from tui.screens.host import host


class Dialog(ModalScreen):
    """A bordered box in the middle of the screen; escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CLASSES = "dialog"

    def action_cancel(self) -> None:
        self.dismiss(None)

    def error(self, message: str | None) -> None:
        box = self.query_one(".error", Static)
        box.update(message or "")
        box.display = bool(message)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(Dialog):
    """A yes/no question; returns True, or None (escape, n, the other button)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "yes", "yes"), Binding("n", "cancel", "no")]

    def __init__(self, title: str, text: str, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self.title_text, self.text, self.yes_word, self.no_word = title, text, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.title_text, classes="title")
            yield Static(self.text, id="confirm-text")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes_word} (y)", variant="error", id="yes")
                yield Button(f"{self.no_word} (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)


class EditModal(Dialog):
    """New explanation and label for a feature; returns (explanation, label, reason) or None. The explanation is
    edited in a multi-line editor (enter breaks a line, tab moves on, ctrl+s saves from anywhere)."""

    BINDINGS: ClassVar[list[BindingType]] = [*Dialog.BINDINGS, Binding("ctrl+s", "save", "save")]

    def __init__(self, row: FeatureRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(f"Edit feature #{self.row.feature}", classes="title")
            yield Label("explanation (enter: new line, tab: next field, ctrl+s: save)")
            yield TextArea(self.row.explanation or "", id="explanation", soft_wrap=True, tab_behavior="focus",
                           compact=True)
            yield Label("label")
            yield Input(self.row.label, id="label")
            yield Label("reason (optional)")
            yield Input(placeholder="e.g. the colour is right, the shape is not", id="reason")
            yield Static("", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one("#explanation", TextArea).focus()

    @on(Input.Submitted, "#label")
    def _to_reason(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_save(self) -> None:
        self._save()

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        explanation = self.query_one("#explanation", TextArea).text.strip()
        label = self.query_one("#label", Input).value.strip()
        if not explanation and not label:
            self.error("write an explanation or a label (escape cancels)")
            return
        self.dismiss((explanation, label, self.query_one("#reason", Input).value.strip()))


class ReasonModal(Dialog):
    """Why an explanation is rejected; returns the reason ('' for none) or None (cancelled)."""

    def __init__(self, row: FeatureRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(f"Reject feature #{self.row.feature}: {self.row.label or ''}", classes="title")
            yield Label("reason (optional; kept with the decision and exported)")
            yield Input(placeholder="e.g. names the shape, but steering changes the colour", id="reason")
            with Horizontal(classes="buttons"):
                yield Button("Reject", variant="error", id="go")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        self.dismiss(self.query_one("#reason", Input).value.strip())


class NoteModal(Dialog):
    """A note to the judge for a re-run; returns the note ('' for none) or None."""

    def __init__(self, row: FeatureRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(f"Re-run feature #{self.row.feature}", classes="title")
            yield Label("note to the judge (optional)")
            yield Input(placeholder="e.g. look at the colour, not the shape", id="note")
            if self.row.review:
                yield Static(f"It was {self.row.review_word} by {self.row.reviewer}: the new answer replaces it and "
                             "the decision moves to the history.", classes="warning")
            yield Static("", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Re-run", variant="primary", id="go")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one("#note", Input).focus()

    @on(Input.Submitted, "#note")
    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        self.dismiss(self.query_one("#note", Input).value.strip())


class JumpModal(Dialog):
    """Ask for a feature id that the store has; returns it or None."""

    TITLE = "Jump to feature"
    PLACEHOLDER = "feature id"
    EMPTY = "type a feature id (escape cancels)"

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known

    def miss(self, number: int) -> str:
        """Why ``number`` is not one of ``known``, in one line."""
        lo, hi = (min(self.known), max(self.known)) if self.known else (None, None)
        where = f"it has {len(self.known)} features, {lo}-{hi}" if self.known else "it has no features yet"
        return f"feature {number} is not in this store ({where})"

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.TITLE, classes="title")
            yield Input(placeholder=self.PLACEHOLDER, type="integer", id="number")
            yield Static("", classes="error")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _go(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.error(self.EMPTY)
            return
        number = int(text)
        if number not in self.known:
            self.error(self.miss(number))
            return
        self.dismiss(number)


class PathDialog(Dialog):
    """Ask for a path, then do the slow part in a thread; the dialog closes with its result, or shows
    the failure inline and stays open for another try."""

    TITLE = ""
    HINT = ""
    PLACEHOLDER = ""
    BUTTON = "Open"
    EMPTY = "give a path (escape cancels)"
    INPUT_ID = "path"

    def __init__(self, default: str = "") -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.TITLE, classes="title")
            yield Label(self.HINT)
            yield Input(self.default, placeholder=self.PLACEHOLDER, id=self.INPUT_ID)
            yield Static("", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.BUTTON, variant="primary", id="go")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one(f"#{self.INPUT_ID}", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        path = self.query_one(f"#{self.INPUT_ID}", Input).value.strip()
        if not path:
            self.error(self.EMPTY)
            return
        self.error(None)
        question = self.confirm(path)
        if question is None:
            self._run(path)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._run(path)

        self.app.push_screen(ConfirmModal(self.TITLE, question, yes="Replace", no="Cancel"), answer)

    def confirm(self, path: str) -> str | None:
        """A question to confirm before acting on ``path`` (None: act at once)."""
        return None

    @work(thread=True, exclusive=True, group="path-dialog", exit_on_error=False)
    def _run(self, path: str) -> Any:
        return self.act(path)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "path-dialog":
            return
        if event.state == WorkerState.SUCCESS:
            self.dismiss(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.error(self.failure(event.worker.error))

    def act(self, path: str) -> Any:
        """The slow part, in a worker thread; its return value is the dialog's result."""
        raise NotImplementedError

    def failure(self, err: BaseException | None) -> str:
        """The inline one-line message for an exception raised by ``act``."""
        return str(err)


class ExportModal(PathDialog):
    """Write the store as JSON lines; returns (path, count) or None."""

    TITLE = "Export every record as JSON lines"
    HINT = "file (a relative path is taken from the folder steer-tui started in)"
    BUTTON = "Export"
    EMPTY = "give a file name"

    def confirm(self, path: str) -> str | None:
        full = Path(path).expanduser().absolute()
        return f"{full} exists: replace it?" if full.exists() else None

    def act(self, path: str) -> tuple[str, int]:
        full = Path(path).expanduser().absolute()
        return str(full), host(self).services.export(full)

    def failure(self, err: BaseException | None) -> str:
        why = getattr(err, "strerror", None) or str(err)
        return f"cannot export: {why}; pick another file"


class ReportModal(PathDialog):
    """Ask for an evaluation report (a folder or its metrics.json) and read it; returns an EvalReport or None."""

    TITLE = "Open an evaluation report"
    HINT = "report folder or metrics.json (steer-agent eval --report DIR writes one)"
    PLACEHOLDER = "e.g. docs/eval"
    EMPTY = "give a report folder or a metrics.json file (escape cancels)"
    INPUT_ID = "report-path"

    def act(self, path: str) -> EvalReport:
        return load_report(path)

    def failure(self, err: BaseException | None) -> str:
        return str(err) if isinstance(err, ReportError) else f"cannot read the report: {err}"
