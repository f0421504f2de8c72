"""Test doubles: a torch-free engine whose features name known words, and a Chat Completions server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.probes import Probe, ProbeResult
from steering.errors import FeatureOutOfRangeError

CONCEPTS = ("red", "circle", "striped", "green", "triangle", "dotted", "blue", "square")
BASELINE = "nothing, the image is empty and white."


@dataclass
class FakeSAE:
    d_sae: int = 64

    def check_feature(self, f: int) -> int:
        if not 0 <= f < self.d_sae:
            raise FeatureOutOfRangeError(f"feature {f} is out of range: this SAE has features 0-{self.d_sae - 1}")
        return f


class FakeEngine:
    """Feature f names CONCEPTS[f % 8] once the strength reaches ``onset``; random directions say
    'a grey blob'. Records every ``run`` call."""

    def __init__(self, d_sae: int = 64, onset: float = 10.0, delay: float = 0.0, model: str = "fake-vlm",
                 revision: str | None = "r1") -> None:
        self.sae = FakeSAE(d_sae)
        self.onset = onset
        self.delay = delay
        self.model = model
        self.revision = revision
        self.calls: list[list[Probe]] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        """When set, run() waits for it (tests watch a run in flight)."""

    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.model, "revision": self.revision, "sae": "fake-sae", "layer": 1,
                "prompts": ["vlm_describe@v1", "vlm_ask@v1"], "generation": {"max_new_tokens": 8}}

    def hidden_norm(self, base_image: str = "white") -> float:
        return 10.0

    def concept(self, f: int) -> str:
        return CONCEPTS[f % len(CONCEPTS)]

    def text(self, p: Probe, i: int) -> str:
        if p.is_baseline:
            return BASELINE
        if p.direction == "random":
            return "a grey blob" if p.strength >= self.onset else BASELINE
        if p.strength < self.onset:
            return BASELINE
        c = self.concept(p.feature)
        if p.prompt == "ask":
            return f"It is {c}."
        return f"a {c} shape" if p.strength < 4 * self.onset else f"the colour {c} filling the whole image"

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        for p in probes:
            if p.feature is not None:
                self.sae.check_feature(p.feature)
        with self.lock:
            self.calls.append(list(probes))
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        out = []
        for p in probes:
            r = ProbeResult(probe=p, texts=tuple(self.text(p, i) for i in range(p.samples)),
                            n_tokens=tuple(6 for _ in range(p.samples)),
                            kl_first=0.0 if p.is_baseline else round(p.strength / 10, 3))
            if on_result:
                on_result(r)
            out.append(r)
        return out


# ----------------------------------------------------------------------------- Chat Completions server


@dataclass
class Reply:
    """One scripted HTTP answer."""

    content: str | None = None
    """The assistant message text (a 200 completion)."""
    status: int = 200
    body: Any = None
    """A raw body (dict -> JSON, str/bytes as is) instead of a completion."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] = (120, 30)
    drop: bool = False
    """Close the connection without answering."""
    finish_reason: str = "stop"


def completion_body(content: str, model: str, usage: tuple[int, int], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


class ChatServer:
    """A threaded HTTP server on 127.0.0.1 speaking POST /v1/chat/completions.

    ``script`` is a list of Reply (served in order) or a function of the request JSON returning one.
    Every request is kept in ``requests`` (path, headers, json).
    """

    def __init__(self, script: Sequence[Reply] | Callable[[dict[str, Any]], Reply], port: int = 0) -> None:
        self.script = script
        self.models: list[str] = ["served-model"]
        """What GET /v1/models lists."""
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                self.send_response(200 if self.path.endswith("/models") else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": payload})
                    n = len(server.requests)
                reply = server.next_reply(payload, n)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.body is not None:
                    body = reply.body
                    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (
                        body.encode() if isinstance(body, str) else body)
                else:
                    data = json.dumps(completion_body(reply.content or "", payload.get("model", "m"),
                                                      reply.usage, reply.finish_reason)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_reply(self, payload: dict[str, Any], n: int) -> Reply:
        if callable(self.script):
            return self.script(payload)
        if n > len(self.script):
            return Reply(status=500, body={"error": {"message": "script exhausted"}})
        return self.script[n - 1]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- real servers' quirks


LLAMA_CPP_SCHEMA_ERROR = {"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', "
                                               "'type'), 'msg': \"Input should be 'text' or 'json_object'\", "
                                               "'input': 'json_schema'}]", "type": "internal_server_error"}}


def prompt_chars(payload: dict[str, Any]) -> int:
    return sum(len(m["content"]) if isinstance(m["content"], str) else len(json.dumps(m["content"]))
               for m in payload.get("messages", []))


@dataclass
class Quirks:
    """How one real server answers, as measured (issue 20): a script for ChatServer.

    ``answer(payload)`` gives the model's text; the quirks decide the HTTP status around it.
    """

    kind: str
    """llama.cpp, vllm, ollama or openai."""
    answer: Callable[[dict[str, Any]], str]
    n_ctx: int = 0
    """Context window in tokens (~4 characters a token; 0: unlimited)."""
    delay: float = 0.0
    """Seconds one request computes (llama.cpp: one slot, so requests queue behind each other)."""
    drops_system: bool = False
    """A chat template that silently drops system messages (llama-cpp-python's gemma format)."""
    broken: str = ""
    """Non-empty: every request gets HTTP 500 with this message (a server whose model failed to load)."""
    slot: threading.Lock = field(default_factory=threading.Lock)
    busy: int = 0
    most_busy: int = 0
    seen: list[str] = field(default_factory=list)
    """The prompt each request actually reached the model with (system dropped where the template does)."""

    def __call__(self, payload: dict[str, Any]) -> Reply:
        fmt = (payload.get("response_format") or {}).get("type", "text")
        refused = self.refuses(payload, fmt)
        if refused is not None:
            return refused
        messages = [m for m in payload["messages"] if not (self.drops_system and m["role"] == "system")]
        tokens = prompt_chars({"messages": messages}) // 4
        if self.n_ctx and tokens + int(payload.get("max_tokens") or 0) > self.n_ctx:
            return self.too_long(tokens + int(payload.get("max_tokens") or 0))
        self.seen.append("\n".join(str(m["content"]) for m in messages))
        with self.slot if self.kind == "llama.cpp" else _nothing():
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            time.sleep(self.delay)
            self.busy -= 1
        text = self.answer({**payload, "messages": messages})
        cap = payload.get("max_tokens")
        if cap is not None and len(text) // 4 > cap:
            return Reply(content=text[: cap * 4], finish_reason="length", usage=(tokens, cap))
        return Reply(content=text, usage=(tokens, max(1, len(text) // 4)))

    def refuses(self, payload: dict[str, Any], fmt: str) -> Reply | None:
        if self.broken:
            return Reply(status=500, body={"error": {"code": 500, "message": self.broken, "type": "server_error"}})
        if self.kind == "llama.cpp" and fmt == "json_schema":
            return Reply(status=500, body=LLAMA_CPP_SCHEMA_ERROR)
        if self.kind == "openai" and fmt == "json_object" and "schema" in payload["response_format"]:
            return Reply(status=400, body={"error": {"message": "Unrecognized request argument supplied: schema",
                                                     "type": "invalid_request_error"}})
        if self.kind == "openai" and fmt == "json_schema":
            schema = payload["response_format"]["json_schema"]["schema"]
            if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(
                    schema.get("properties", {})):
                return Reply(status=400, body={"error": {
                    "message": "Invalid schema for response_format 'verdict': In context=(), 'required' is required "
                               "to be supplied and to be an array including every key in properties",
                    "type": "invalid_request_error", "param": "response_format"}})
        return None

    def too_long(self, asked: int) -> Reply:
        if self.kind == "llama.cpp":
            return Reply(status=400, body={"error": {
                "message": f"Requested tokens ({asked}) exceed context window of {self.n_ctx}",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
        return Reply(status=400, body={"error": {
            "message": f"This model's maximum context length is {self.n_ctx} tokens. However, you requested "
                       f"{asked} tokens. Please reduce the length of the messages or completion.",
            "type": "BadRequestError", "param": None, "code": 400}})


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
