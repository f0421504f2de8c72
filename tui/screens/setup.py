"""The setup screen: model, SAE, layer, judge and features; checks everything before a run starts."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Header,
    Input,
    Label,
    LoadingIndicator,
    Select,
    Static,
)
from textual.worker import Worker, WorkerState

from agent.run.features import FeatureSpecError, parse_features
from agent.judges.config import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV
from agent.judges.redact import shown_url
from tui.backends import INJECTED, SetupError
from tui.screens.host import host
from tui.services import PreparedRun, RunRequest, display_path

FIELDS = ("store", "features", "model", "sae", "layer", "judge", "judge_model", "judge_url", "judge_key_env", "samples",
          "rounds", "ray", "ray_workers")
CLI_WORDS = {"--judge-api-key-env NAME": "the API key var field", "--judge-api-key-env": "the API key var field",
             "--judge-base-url": "the judge URL field", "--judge-model": "the judge model field",
             "--ray-workers": "the Ray workers field", "--ray [ADDRESS]": "a Ray address",
             "run without --ray": "leave the Ray address empty", "--ray": "a Ray address"}
"""The judge's errors name CLI flags; the form names its fields."""


class SetupScreen(Screen[PreparedRun | None]):
    """Returns a PreparedRun (every check passed) or None (cancelled)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel"), Binding("ctrl+r", "start", "start run")]

    def compose(self) -> ComposeResult:
        s = host(self).services
        world, judge, cfg = s.current_world(), s.judge_spec, s.run_config
        kinds = ([(f"given: {getattr(s.injected_judge, 'name', 'judge')}", INJECTED)] if s.injected_judge else [])
        kinds += [("offline (word statistics, no LLM)", "offline"), ("openai-compatible endpoint", "openai")]
        yield Header()
        with VerticalScroll(id="setup"):
            yield Label("New run: explain features of an SAE by steering the model", classes="title")
            with Grid(classes="form"):
                yield Label("store folder")
                yield Input(display_path(s.store.path) if s.store else "", id="store", compact=True,
                            placeholder="blank: steer-agent's default for the model")
                yield Label("features")
                yield Input(s.features or "0-15", id="features", compact=True, placeholder="e.g. 0-63,100")
                yield Label("model")
                yield Input(world.model or "", id="model", compact=True, placeholder="toy world (hub id or folder)")
                yield Label("SAE")
                yield Input(world.sae or "", id="sae", compact=True, placeholder="toy SAE (folder or file)")
                yield Label("layer")
                yield Input("" if world.layer is None else str(world.layer), id="layer", type="integer",
                            compact=True, placeholder="from the SAE config")
                yield Label("judge")
                yield Select(kinds, value=judge.kind if judge.kind in {v for _, v in kinds} else kinds[0][1],
                             allow_blank=False, id="judge", compact=True)
                yield Label("judge model")
                yield Input(judge.model or "", id="judge_model", compact=True, placeholder=DEFAULT_JUDGE_MODEL)
                yield Label("judge URL")
                # Shown with its password and query values masked; left as shown, the real URL is used.
                yield Input(shown_url(judge.base_url), id="judge_url", compact=True,
                            placeholder="OpenAI, or http://localhost:8000/v1")
                yield Label("API key var")
                yield Input(judge.api_key_env or DEFAULT_KEY_ENV, id="judge_key_env", compact=True,
                            placeholder=f"{DEFAULT_KEY_ENV} (the environment variable holding the key)")
                yield Label("samples")
                yield Input(str(cfg.sweep.samples), id="samples", type="integer", compact=True)
                yield Label("judge rounds")
                yield Input(str(cfg.max_rounds), id="rounds", type="integer", compact=True)
                yield Label("Ray address")
                yield Input("", id="ray", compact=True,
                            placeholder="blank: this process; local, auto or host:6379")
                yield Label("Ray workers")
                yield Input("", id="ray_workers", type="integer", compact=True,
                            placeholder="blank: one per GPU (one CPU actor without GPUs)")
            yield Checkbox("re-judge features that are already done", id="rejudge", compact=True)
            yield Static("", id="setup-error", classes="error")
            with Horizontal(id="setup-checking"):
                yield LoadingIndicator(id="setup-spinner")
                yield Static("", id="setup-status", classes="dim")
            with Horizontal(classes="buttons"):
                yield Button("Start run", variant="primary", id="start")
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        startup_error = host(self).startup_error
        self.show_error(startup_error, "model" if startup_error else None)
        if not startup_error:
            self.query_one("#features", Input).focus()
        self.status("")

    # ------------------------------------------------------------------ inline messages

    def show_error(self, message: str | None, field: str | None = None) -> None:
        box = self.query_one("#setup-error", Static)
        for flag, words in CLI_WORDS.items():
            message = message.replace(flag, words) if message else message
        if field == "judge" and message and "API key" in message:
            field = "judge_key_env"
        box.update(Content(f"✗ {message}") if message else "")  # literal: a masked URL shows [redacted]
        box.display = bool(message)
        for name in FIELDS:
            self.query_one(f"#{name}").set_class(name == field, "-problem")
        if field in FIELDS:
            self.query_one(f"#{field}").focus()

    def status(self, text: str) -> None:
        """What the form is doing (a spinner turns while its checks run)."""
        self.query_one("#setup-status", Static).update(text)
        self.query_one("#setup-checking").display = bool(text)

    @on(Input.Changed, "#features")
    def _check_features(self, event: Input.Changed) -> None:
        try:
            parse_features(event.value)
        except FeatureSpecError as exc:
            self.show_error(str(exc), None)
            event.input.add_class("-problem")
        else:
            self.show_error(None)

    # ------------------------------------------------------------------ start

    def request(self) -> RunRequest:
        def text(name: str) -> str:
            return self.query_one(f"#{name}", Input).value.strip()

        def number(name: str, what: str) -> int:
            try:
                value = int(text(name))
            except ValueError:
                raise SetupError(f"{what} must be a whole number", field=name) from None
            if value < 1:
                raise SetupError(f"{what} must be at least 1", field=name)
            return value

        layer = text("layer")
        try:
            layer_n = int(layer) if layer else None
        except ValueError:
            raise SetupError("layer must be a whole number (or empty: from the SAE config)", field="layer") from None
        s = host(self).services
        current = s.current_world()
        world = replace(current, model=text("model") or None, sae=text("sae") or None, layer=layer_n,
                        revision=current.revision if text("model") == (current.model or "") else None)
        url = text("judge_url")
        if url and url == shown_url(s.judge_spec.base_url):  # the masked URL as shown: the real one
            url = s.judge_spec.base_url or url
        # the form's fields over the call policy steer-tui was started with (--judge-timeout, ...)
        judge = replace(s.judge_spec, kind=str(self.query_one("#judge", Select).value),
                        model=text("judge_model") or None, base_url=url or None,
                        api_key_env=text("judge_key_env") or s.judge_spec.api_key_env, api_key=None)
        cfg = s.run_config
        config = replace(cfg, sweep=replace(cfg.sweep, samples=number("samples", "samples")),
                         max_rounds=number("rounds", "judge rounds"),
                         rejudge=self.query_one("#rejudge", Checkbox).value)
        return RunRequest(features=text("features"), world=world, judge=judge, config=config,
                          store=text("store") or None, ray=text("ray") or None,
                          ray_workers=number("ray_workers", "Ray workers") if text("ray_workers") else None)

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if host(self).main_screen.run_panel.running:
            self.show_error("a run is in progress: cancel it first (c on the feature table)")
            return
        try:
            request = self.request()
        except SetupError as exc:
            self.show_error(str(exc), exc.field)
            return
        self.show_error(None)
        self.query_one("#start", Button).disabled = True
        self.status("checking… (loading the model if the feature range needs its size)")
        self._prepare(request)

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False)
    def _prepare(self, request: RunRequest) -> PreparedRun:
        return host(self).services.prepare(request)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "prepare" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        self.query_one("#start", Button).disabled = False
        self.status("")
        if event.state == WorkerState.SUCCESS:
            host(self).services.features = self.query_one("#features", Input).value.strip()  # the next form's
            self.dismiss(event.worker.result)
            return
        err = event.worker.error
        if isinstance(err, SetupError):
            self.show_error(str(err), err.field)
        else:
            self.show_error(f"{type(err).__name__}: {err}")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

