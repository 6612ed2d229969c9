"""Fake OpenAI-compatible server for tests (real HTTP, background thread): Chat Completions
(whole answers and server-sent-event streams, `max_tokens` honoured with `finish_reason:
length`) and Audio Transcriptions (multipart upload, json / verbose_json / text answers).

It can refuse structured output the way real servers do (OpenAI-style 400, or the HTTP 500 of
llama-cpp-python's server for `json_schema`), refuse streaming, stream slowly, and records
whether the client hung up on a stream before it ended (`Call.disconnected`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = [
    "FAILURE_KINDS",
    "Call",
    "FakeOpenAI",
    "Responder",
    "TranscriptionCall",
    "default_responder",
    "synthesize_from_schema",
]

FAILURE_KINDS: frozenset[str] = frozenset(
    {
        "rate_limit",
        "quota",
        "server_error",
        "unavailable",
        "timeout",
        "context_length",
        "refusal",
        "invalid_json",
        "schema_mismatch",
        "no_json_schema",
    }
)

REFUSAL_TEXT = "I can't help with that."
INVALID_JSON_CONTENT = "this is not json {"
SCHEMA_MISMATCH_CONTENT = '{"unexpected": true}'
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 8192 tokens. "
    "However, your messages resulted in 9000 tokens."
)
NO_JSON_SCHEMA_MESSAGE = "response_format json_schema is not supported by this model"

# Tiny retry-after-ms hint so the SDK's automatic retries of 429/5xx are fast in tests.
# (The SDK ignores a bare "retry-after: 0" and falls back to its 0.5 s+ exponential backoff.)
_FAST_RETRY_HEADERS = {"retry-after-ms": "10"}
_MAX_SYNTH_DEPTH = 8


@dataclass
class TranscriptionCall:
    """One /audio/transcriptions request: its form fields and the uploaded file."""

    headers: dict[str, str]
    fields: dict[str, str]
    filename: str | None
    size: int
    status: int = 0
    failure: str | None = None


# OpenAI's upload limit for transcriptions.
MAX_TRANSCRIPTION_BYTES = 25 * 1024 * 1024


def audio_seconds(data: bytes) -> float | None:
    """Decoded length of an uploaded recording, as a real server measures it (None: unreadable)."""
    import av

    seconds = 0.0
    try:
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(audio=0):
                seconds += frame.samples / frame.sample_rate
    except Exception:
        return seconds or None
    return seconds


@dataclass
class Call:
    """One request received on the chat completions endpoint."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 0  # HTTP status the fake answered with (0 while still in flight)
    failure: str | None = None  # injected failure kind applied to this request, if any
    # Streams: how many content chunks went out, and whether the client hung up before the
    # end (it closed the stream, so a real server would stop generating).
    chunks_sent: int = 0
    disconnected: bool = False
    finish_reason: str | None = None
    finished_at: float = 0.0  # time.monotonic() when the answer ended (or the client left)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_tokens", self.body.get("max_completion_tokens"))
        return value if isinstance(value, int) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's `messages` list (empty if absent or malformed)."""
        msgs = self.body.get("messages")
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []

    @property
    def prompt_text(self) -> str:
        """All message text contents joined with newlines."""
        parts: list[str] = []
        for msg in self.messages:
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                texts = [p.get("text") for p in content if isinstance(p, dict)]
                parts.append("\n".join(t for t in texts if isinstance(t, str)))
        return "\n".join(parts)

    @property
    def images(self) -> list[str]:
        """The image URLs (data: URLs included) of the request's image_url content parts."""
        found: list[str] = []
        for msg in self.messages:
            content = msg.get("content")
            if not isinstance(content, list):
                continue
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else None
                    if isinstance(url, str):
                        found.append(url)
        return found

    @property
    def schema_name(self) -> str | None:
        """`response_format.json_schema.name` when the request asks for a JSON schema."""
        schema = self._json_schema_spec
        name = schema.get("name") if schema is not None else None
        return name if isinstance(name, str) else None

    @property
    def response_format_type(self) -> str | None:
        """`response_format.type` ("json_schema", "json_object", "text") or None."""
        fmt = self.body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """`response_format.json_schema.schema` when present."""
        spec = self._json_schema_spec
        schema = spec.get("schema") if spec is not None else None
        return schema if isinstance(schema, dict) else None

    @property
    def approx_tokens(self) -> int:
        """Approximate prompt token count: len(prompt_text) // 4."""
        return len(self.prompt_text) // 4

    @property
    def _json_schema_spec(self) -> dict[str, Any] | None:
        fmt = self.body.get("response_format")
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            return None
        spec = fmt.get("json_schema")
        return spec if isinstance(spec, dict) else None


Responder = Callable[[Call], dict[str, Any] | str]


@dataclass
class _Answer:
    """A completion to stream: what the whole answer would have said."""

    content: str | None
    refusal: str | None
    finish_reason: str
    usage: dict[str, int]


def synthesize_from_schema(schema: dict[str, Any]) -> Any:
    """Build a minimal instance that validates against a JSON schema (pydantic-style)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _synth(schema, schema, defs, 0)


def _resolve_ref(ref: str, root: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if ref == "#":
        return root
    if ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if isinstance(node, dict):
            return node
    name = ref.rsplit("/", 1)[-1]
    found = defs.get(name)
    if isinstance(found, dict):
        return found
    raise ValueError(f"cannot resolve $ref {ref!r}")


def _synth(node: Any, root: dict[str, Any], defs: dict[str, Any], depth: int) -> Any:
    if node is True or not isinstance(node, dict):
        return "lorem"
    if "$ref" in node:
        return _synth(_resolve_ref(node["$ref"], root, defs), root, defs, depth + 1)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches:
            non_null = [
                b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")
            ]
            if not non_null or (depth >= _MAX_SYNTH_DEPTH and len(non_null) < len(branches)):
                return None
            return _synth(non_null[0], root, defs, depth + 1)
    if isinstance(node.get("allOf"), list) and node["allOf"]:
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for sub in node["allOf"]:
            if isinstance(sub, dict) and "$ref" in sub:
                sub = _resolve_ref(sub["$ref"], root, defs)
            if isinstance(sub, dict):
                for k, v in sub.items():
                    if k == "properties" and isinstance(merged.get(k), dict):
                        merged[k] = {**merged[k], **v}
                    elif k == "required" and isinstance(merged.get(k), list):
                        merged[k] = [*merged[k], *v]
                    else:
                        merged.setdefault(k, v)
        return _synth(merged, root, defs, depth + 1)

    kind = node.get("type")
    if isinstance(kind, list):
        non_null_kinds = [k for k in kind if k != "null"]
        if not non_null_kinds or (depth >= _MAX_SYNTH_DEPTH and "null" in kind):
            return None
        kind = non_null_kinds[0]
    if kind is None:
        if "properties" in node:
            kind = "object"
        elif "items" in node or "prefixItems" in node:
            kind = "array"
        else:
            return "lorem"

    if kind == "object":
        return _synth_object(node, root, defs, depth)
    if kind == "array":
        return _synth_array(node, root, defs, depth)
    if kind == "string":
        return _synth_string(node)
    if kind == "integer":
        return int(_synth_number(node, integer=True))
    if kind == "number":
        return float(_synth_number(node, integer=False))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "lorem"


def _synth_object(
    node: dict[str, Any], root: dict[str, Any], defs: dict[str, Any], depth: int
) -> dict[str, Any]:
    raw_props = node.get("properties")
    props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
    required = set(node.get("required") or [])
    out: dict[str, Any] = {}
    for name, sub in props.items():
        if depth >= _MAX_SYNTH_DEPTH and name not in required:
            continue
        out[name] = _synth(sub, root, defs, depth + 1)
    return out


def _synth_array(
    node: dict[str, Any], root: dict[str, Any], defs: dict[str, Any], depth: int
) -> list[Any]:
    prefix = node.get("prefixItems")
    if isinstance(prefix, list):
        return [_synth(sub, root, defs, depth + 1) for sub in prefix]
    min_items = int(node.get("minItems", 0))
    count = min_items if depth >= _MAX_SYNTH_DEPTH else max(1, min_items)
    if "maxItems" in node:
        count = min(count, int(node["maxItems"]))
    items = node.get("items", {})
    return [_synth(items, root, defs, depth + 1) for _ in range(count)]


_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "lorem@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


def _synth_string(node: dict[str, Any]) -> str:
    value = _STRING_FORMATS.get(str(node.get("format")), "lorem")
    min_len = int(node.get("minLength", 0))
    while len(value) < min_len:
        value += " lorem"
    if "maxLength" in node:
        value = value[: int(node["maxLength"])]
    return value


def _synth_number(node: dict[str, Any], *, integer: bool) -> float:
    step = 1.0 if integer else 0.5
    low = node.get("minimum")
    if "exclusiveMinimum" in node and isinstance(node["exclusiveMinimum"], int | float):
        low = node["exclusiveMinimum"] + step
    high = node.get("maximum")
    if "exclusiveMaximum" in node and isinstance(node["exclusiveMaximum"], int | float):
        high = node["exclusiveMaximum"] - step
    value = 0.0
    if low is not None and value < low:
        value = float(low)
    if high is not None and value > high:
        value = float(high)
    if integer:
        value = float(math.ceil(value)) if low is not None else float(math.floor(value))
    multiple = node.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0 and value % multiple:
        value = math.ceil(value / multiple) * multiple
    return value


def default_responder(call: Call) -> dict[str, Any] | str:
    """Schema-valid instance for json_schema, "{}" for json_object, else "ok"."""
    schema = call.json_schema
    if call.response_format_type == "json_schema" and schema is not None:
        result = synthesize_from_schema(schema)
        return result if isinstance(result, dict) else json.dumps(result)
    if call.response_format_type == "json_object":
        return "{}"
    return "ok"


def _error_body(
    message: str, err_type: str | None, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


class FakeOpenAI:
    """Fake OpenAI Chat Completions server on 127.0.0.1, served from a background thread."""

    def __init__(self, api_key: str = "sk-test-key") -> None:
        """Configure the fake; call start() (or use as a context manager) to serve."""
        self.api_key: str = api_key
        self.max_context_tokens: int | None = None
        self.hang_seconds: float = 5.0
        self.base_url: str = ""
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: deque[str] = deque()
        self._responder: Responder = default_responder
        self._schema_responders: dict[str, Responder] = {}
        self._reject_json_schema = False
        # How json_schema is refused: "openai" (400 naming response_format) or "llama_cpp"
        # (HTTP 500 "Input should be 'text' or 'json_object'", as llama-cpp-python's server).
        self.json_schema_refusal = "openai"
        # False: JSON mode with a "schema" attached is refused like an unknown parameter.
        self.accept_json_object_schema = True
        # False: `stream: true` is refused with a 400 naming stream.
        self.streaming = True
        # Seconds between streamed chunks, and characters per chunk.
        self.stream_delay = 0.0
        self.stream_chunk_chars = 40
        self.reject_temperature = False
        # Like OpenAI's reasoning models: `max_tokens` refused, `max_completion_tokens` wanted.
        self.reject_max_tokens = False
        # A text-only model: any image content is refused with a 400, as such servers do.
        self.reject_images = False
        # Some OpenAI-compatible servers send no `usage` with their answers.
        self.report_usage = True
        # What /audio/transcriptions answers: the text, and per-segment silence scores.
        self.transcript_text = "The book club meets on Thursday to discuss the new novel."
        self.transcript_language = "english"
        self.transcript_no_speech_prob = 0.01
        self.transcript_avg_logprob = -0.2
        # False: answer verbose_json with 400 and json without a duration, like servers that
        # only have the basic format.
        self.verbose_json = True
        self._transcriptions: list[TranscriptionCall] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """TCP port the server listens on (0 before start())."""
        return self._port

    def start(self) -> FakeOpenAI:
        """Start serving in a background thread; returns self."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            self._thread.join(1)
            self._thread = None
            self._loop = None
            raise RuntimeError("fake OpenAI server failed to start") from (
                errors[0] if errors else None
            )
        self.base_url = f"http://127.0.0.1:{self._port}/v1"
        return self

    def stop(self) -> None:
        """Stop the server, release in-flight (hanging) requests and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_post("/v1/audio/transcriptions", self._handle_transcription)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ configuration

    @property
    def calls(self) -> list[Call]:
        """Snapshot of every chat completions request received, in order (incl. failed)."""
        with self._lock:
            return list(self._calls)

    @property
    def transcriptions(self) -> list[TranscriptionCall]:
        """Snapshot of every /audio/transcriptions request received, in order (incl. failed)."""
        with self._lock:
            return list(self._transcriptions)

    def completions(self) -> list[Call]:
        """Requests that were answered with HTTP 200 (a completion, incl. refusals/bad JSON)."""
        with self._lock:
            return [c for c in self._calls if c.status == 200]

    def reset(self) -> None:
        """Forget recorded calls, queued failures, responders and persistent modes."""
        with self._lock:
            self._calls.clear()
            self._failures.clear()
            self._responder = default_responder
            self._schema_responders.clear()
            self._reject_json_schema = False
            self.max_context_tokens = None
        self.json_schema_refusal = "openai"
        self.accept_json_object_schema = True
        self.streaming = True
        self.stream_delay = 0.0
        self.stream_chunk_chars = 40
        self.reject_max_tokens = False
        self.reject_images = False

    def set_responder(self, responder: Responder) -> None:
        """Set the fallback responder (used when no on_schema() responder matches)."""
        with self._lock:
            self._responder = responder

    def on_schema(self, schema_name: str, responder: Responder) -> None:
        """Use `responder` for json_schema requests whose schema name equals `schema_name`."""
        with self._lock:
            self._schema_responders[schema_name] = responder

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Queue `times` failures of `kind`; each later valid request consumes one (FIFO)."""
        # A queued "no_json_schema" is consumed by a non-json_schema request without effect.
        if kind not in FAILURE_KINDS:
            raise ValueError(
                f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}"
            )
        with self._lock:
            self._failures.extend([kind] * times)

    def pending_failures(self) -> list[str]:
        """Failure kinds still queued, in the order they will be applied."""
        with self._lock:
            return list(self._failures)

    def reject_json_schema(self, enabled: bool) -> None:
        """Persistently answer every json_schema request with the "no_json_schema" 400."""
        with self._lock:
            self._reject_json_schema = enabled

    # ------------------------------------------------------------------ request handling

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        return self._json(
            404,
            _error_body(f"Invalid URL ({request.method} {request.path})", "invalid_request_error"),
        )

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = Call(path=request.path, body=body if isinstance(body, dict) else {}, headers=headers)
        with self._lock:
            self._calls.append(call)
        response = await self._respond(call, body)
        if isinstance(response, _Answer):
            return await self._stream(request, call, response)
        transport = request.transport
        gone = transport is None or transport.is_closing()
        with self._lock:
            # 499 = the client hung up before the answer (e.g. an SDK-side timeout).
            call.status = 499 if gone else response.status
            call.finished_at = time.monotonic()
        return response

    async def _stream(
        self, request: web.Request, call: Call, answer: _Answer
    ) -> web.StreamResponse:
        """Send the answer as server-sent events, chunk by chunk, noticing a hang-up."""
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        with self._lock:
            call.status = 200
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(call.body.get("model", "")),
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        content = answer.content or ""
        size = max(1, self.stream_chunk_chars)
        try:
            await response.prepare(request)
            if answer.refusal:
                delta = {"role": "assistant", "content": None, "refusal": answer.refusal}
                await response.write(event([{"index": 0, "delta": delta, "finish_reason": None}]))
            for start in range(0, len(content), size):
                if self.stream_delay:
                    await asyncio.sleep(self.stream_delay)
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
                delta = {"content": content[start : start + size]}
                if start == 0:
                    delta["role"] = "assistant"
                await response.write(event([{"index": 0, "delta": delta, "finish_reason": None}]))
                with self._lock:
                    call.chunks_sent += 1
            await response.write(
                event([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
            )
            options = call.body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage") and self.report_usage:
                await response.write(event([], usage=answer.usage))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            with self._lock:
                call.finish_reason = answer.finish_reason
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            with self._lock:
                call.disconnected = True
                call.status = 499
        finally:
            with self._lock:
                call.finished_at = time.monotonic()
        return response

    async def _respond(self, call: Call, body: Any) -> web.Response | _Answer:
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            given = call.headers.get("authorization", "").removeprefix("Bearer ")
            return self._json(
                401,
                _error_body(
                    f"Incorrect API key provided: {given[:8]}***.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
        if not isinstance(body, dict):
            return self._json(
                400,
                _error_body(
                    "We could not parse the JSON body of your request.", "invalid_request_error"
                ),
            )
        for param in ("model", "messages"):
            if param not in body:
                return self._json(
                    400,
                    _error_body(
                        f"Missing required parameter: '{param}'.",
                        "invalid_request_error",
                        "missing_required_parameter",
                        param,
                    ),
                )
        if not isinstance(body["messages"], list) or not body["messages"]:
            return self._json(
                400,
                _error_body(
                    "Invalid 'messages': expected a non-empty array.",
                    "invalid_request_error",
                    "invalid_value",
                    "messages",
                ),
            )
        if body.get("stream") and not self.streaming:
            return self._json(
                400,
                _error_body(
                    "stream=true is not supported by this server",
                    "invalid_request_error",
                    None,
                    "stream",
                ),
            )

        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            call.failure = failure
            reject_schema = self._reject_json_schema
            max_tokens = self.max_context_tokens

        uses_json_schema = call.response_format_type == "json_schema"
        if failure is not None:
            early = self._failure_response(failure, uses_json_schema=uses_json_schema)
            if early is not None:
                return early
            if failure == "timeout":
                await self._hang()
        if reject_schema and uses_json_schema:
            return self._no_json_schema()
        fmt = call.body.get("response_format")
        if (
            isinstance(fmt, dict)
            and fmt.get("type") == "json_object"
            and "schema" in fmt
            and not self.accept_json_object_schema
        ):
            return self._json(
                400,
                _error_body(
                    "Unknown parameter: 'response_format.schema'.",
                    "invalid_request_error",
                    "unknown_parameter",
                    "response_format.schema",
                ),
            )
        if self.reject_temperature and "temperature" in call.body:
            # What reasoning models answer when asked for a sampling temperature.
            return self._json(
                400,
                _error_body(
                    "Unsupported parameter: 'temperature' is not supported with this model.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    "temperature",
                ),
            )
        if self.reject_max_tokens and "max_tokens" in call.body:
            return self._json(
                400,
                _error_body(
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    "max_tokens",
                ),
            )
        if self.reject_images and call.images:
            return self._json(
                400,
                _error_body(
                    "Invalid content type. image_url is only supported by certain models.",
                    "invalid_request_error",
                    "invalid_value",
                    "messages",
                ),
            )
        if max_tokens is not None and call.approx_tokens > max_tokens:
            return self._context_length()

        if failure == "refusal":
            return self._completion(call, content=None, refusal=REFUSAL_TEXT)
        if failure == "invalid_json":
            return self._completion(call, content=INVALID_JSON_CONTENT)
        if failure == "schema_mismatch":
            return self._completion(call, content=SCHEMA_MISMATCH_CONTENT)

        name = call.schema_name
        with self._lock:
            responder = self._responder
            if name is not None:
                responder = self._schema_responders.get(name, responder)
        try:
            result = responder(call)
        except Exception as exc:
            return self._json(
                500,
                _error_body(f"fake responder raised {exc!r}", "fake_responder_error"),
                {"x-should-retry": "false"},
            )
        content = result if isinstance(result, str) else json.dumps(result)
        return self._completion(call, content=content)

    async def _handle_transcription(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        fields: dict[str, str] = {}
        data = b""
        filename: str | None = None
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    data, filename = value.file.read(), value.filename
                else:
                    fields[key] = str(value)
        call = TranscriptionCall(headers=headers, fields=fields, filename=filename, size=len(data))
        with self._lock:
            self._transcriptions.append(call)
            failure = self._failures.popleft() if self._failures else None
            call.failure = failure
        response = await self._transcribe(call, data, failure)
        with self._lock:
            call.status = response.status
        return response

    async def _transcribe(
        self, call: TranscriptionCall, data: bytes, failure: str | None
    ) -> web.Response:
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._json(
                401,
                _error_body(
                    "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                ),
            )
        if call.filename is None or "model" not in call.fields:
            return self._json(
                400, _error_body("Missing required parameter: 'file'.", "invalid_request_error")
            )
        if failure is not None:
            early = self._failure_response(failure, uses_json_schema=False)
            if early is not None:
                return early
            if failure == "timeout":
                await self._hang()
        if call.size > MAX_TRANSCRIPTION_BYTES:
            return self._json(
                413,
                _error_body("Maximum content size limit exceeded.", "invalid_request_error"),
            )
        response_format = call.fields.get("response_format", "json")
        if response_format == "verbose_json" and not self.verbose_json:
            return self._json(
                400,
                _error_body(
                    "response_format 'verbose_json' is not supported", "invalid_request_error"
                ),
            )
        seconds = audio_seconds(data)
        if seconds is None:
            return self._json(
                400,
                _error_body(
                    "Audio file might be corrupted or unsupported", "invalid_request_error"
                ),
            )
        text = self.transcript_text
        if response_format == "text":
            return web.Response(text=text, content_type="text/plain")
        if response_format != "verbose_json":
            return self._json(200, {"text": text})
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": seconds,
            "text": f" {text}",
            "tokens": [50364],
            "temperature": 0.0,
            "avg_logprob": self.transcript_avg_logprob,
            "compression_ratio": 1.2,
            "no_speech_prob": self.transcript_no_speech_prob,
        }
        return self._json(
            200,
            {
                "task": "transcribe",
                "language": self.transcript_language,
                "duration": seconds,
                "text": text,
                "segments": [segment] if text else [],
            },
        )

    def _failure_response(self, kind: str, *, uses_json_schema: bool) -> web.Response | None:
        if kind == "rate_limit":
            return self._json(
                429,
                _error_body(
                    "Rate limit reached for requests. Please try again in 0s.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                {"retry-after": "0", **_FAST_RETRY_HEADERS},
            )
        if kind == "quota":
            return self._json(
                429,
                _error_body(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
                {"x-should-retry": "false"},
            )
        if kind == "server_error":
            return self._json(
                500,
                {"error": {"message": "The server had an error", "type": "server_error"}},
                dict(_FAST_RETRY_HEADERS),
            )
        if kind == "unavailable":
            return self._json(
                503,
                _error_body(
                    "The engine is currently overloaded, please try again later.", "server_error"
                ),
                dict(_FAST_RETRY_HEADERS),
            )
        if kind == "context_length":
            return self._context_length()
        if kind == "no_json_schema" and uses_json_schema:
            return self._no_json_schema()
        return None

    async def _hang(self) -> None:
        stopping = self._stopping
        assert stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=self.hang_seconds)

    def _context_length(self) -> web.Response:
        return self._json(
            400,
            _error_body(
                CONTEXT_LENGTH_MESSAGE,
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
        )

    def _no_json_schema(self) -> web.Response:
        if self.json_schema_refusal == "llama_cpp":
            # What llama-cpp-python's server answers: its request model only knows "text" and
            # "json_object", and its error wrapper turns the validation error into a 500.
            message = (
                "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
                "  Input should be 'text' or 'json_object' [type=literal_error, "
                "input_value='json_schema', input_type=str]"
            )
            return self._json(500, _error_body(message, "internal_server_error"))
        return self._json(
            400,
            _error_body(NO_JSON_SCHEMA_MESSAGE, "invalid_request_error", None, "response_format"),
        )

    def _completion(
        self, call: Call, *, content: str | None, refusal: str | None = None
    ) -> web.Response | _Answer:
        prompt_tokens = call.approx_tokens
        finish = "stop"
        limit = call.max_tokens
        if content is not None and limit is not None and len(content) // 4 > limit:
            # As a real server does: generation stops at max_tokens, mid-answer.
            content, finish = content[: limit * 4], "length"
        completion_tokens = len(content or refusal or "") // 4
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if call.stream:
            return _Answer(content, refusal, finish, usage)
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(call.body.get("model", "")),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        if not self.report_usage:
            del payload["usage"]
        with self._lock:
            call.finish_reason = finish
        return self._json(200, payload)

    @staticmethod
    def _json(
        status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        all_headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **(headers or {})}
        return web.json_response(payload, status=status, headers=all_headers)
