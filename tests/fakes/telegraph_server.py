"""Fake Telegraph API for tests (real HTTP on 127.0.0.1, background thread).

Speaks https://telegra.ph/api as the real one does for what the bot uses: createAccount,
createPage, editPage (path in the URL or as a parameter) and getPage, GET or POST with form
fields, `{"ok": true, "result": …}` or `{"ok": false, "error": "CODE"}`. Content is checked the
way Telegraph documents it: an array of nodes, only the allowed tags, only href/src
attributes, at most 64 KB. Failures can be queued per method (an error code, an HTTP status,
or a hang past the client's timeout); `calls` is the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

ALLOWED_TAGS = frozenset(
    "a aside b blockquote br code em figcaption figure h3 h4 hr i iframe img li ol p pre s "
    "strong u ul video".split()
)
CONTENT_LIMIT = 64 * 1024


@dataclass
class Call:
    method: str
    params: dict[str, str]
    path: str = ""


@dataclass
class Page:
    path: str
    token: str
    title: str
    content: list[Any]
    author_name: str = ""
    edits: int = 0


@dataclass
class Failure:
    error: str = ""  # answered as {"ok": false, "error": error}
    status: int = 0  # or an HTTP status with a body that is not JSON
    hang: float = 0.0  # or no answer for this long


@dataclass
class _State:
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)  # token -> account
    pages: dict[str, Page] = field(default_factory=dict)


def node_text(nodes: Any) -> str:
    """All the text of some nodes, for assertions."""
    if isinstance(nodes, str):
        return nodes
    if isinstance(nodes, list):
        return "".join(node_text(n) for n in nodes)
    if isinstance(nodes, dict):
        return node_text(nodes.get("children", []))
    return ""


def find_nodes(nodes: Any, tag: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(nodes, list):
        for node in nodes:
            found += find_nodes(node, tag)
    elif isinstance(nodes, dict):
        if nodes.get("tag") == tag:
            found.append(nodes)
        found += find_nodes(nodes.get("children", []), tag)
    return found


class FakeTelegraph:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.api_url = ""
        self._state = _State()
        self._failures: dict[str, deque[Failure]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._stopping: asyncio.Event | None = None

    # test controls ---------------------------------------------------------------------
    def fail(self, method: str, failure: Failure, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(method, deque()).extend([failure] * times)

    def revoke_all_tokens(self) -> None:
        """As after revokeAccessToken: every issued token stops working."""
        with self._lock:
            self._state.accounts.clear()

    def delete_page(self, path: str) -> None:
        with self._lock:
            del self._state.pages[path]

    def page(self, path: str) -> Page:
        with self._lock:
            return self._state.pages[path]

    def page_by_url(self, url: str) -> Page:
        return self.page(url.rsplit("/", 1)[-1])

    @property
    def pages(self) -> list[Page]:
        with self._lock:
            return list(self._state.pages.values())

    @property
    def accounts(self) -> int:
        with self._lock:
            return len(self._state.accounts)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeTelegraph:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._startup())
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-telegraph", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Telegraph server did not start")
        self.api_url = f"http://127.0.0.1:{self._port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{method}", self._handle)
        app.router.add_route("*", "/{method}/{path}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # the API ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = {k: str(v) for k, v in request.query.items()}
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                params.update(
                    {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
                )
            else:
                params.update({k: str(v) for k, v in (await request.post()).items()})
        path = request.match_info.get("path", "") or params.get("path", "")
        with self._lock:
            self.calls.append(Call(method, params, path))
            queue = self._failures.get(method)
            failure = queue.popleft() if queue else None
        if failure is not None:
            if failure.hang and self._stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), failure.hang)
            if failure.status:
                return web.Response(status=failure.status, text="Bad Gateway")
            if failure.error:
                return _error(failure.error)
        handler = {
            "createAccount": self._create_account,
            "createPage": self._create_page,
            "editPage": self._edit_page,
            "getPage": self._get_page,
        }.get(method)
        if handler is None:
            return _error("METHOD_NOT_FOUND")
        try:
            with self._lock:
                result = handler(params, path)
        except _ApiError as exc:
            return _error(exc.code)
        return web.json_response({"ok": True, "result": result})

    def _create_account(self, params: dict[str, str], path: str) -> dict[str, Any]:
        short_name = params.get("short_name", "")
        if not 1 <= len(short_name) <= 32:
            raise _ApiError("SHORT_NAME_REQUIRED")
        if len(params.get("author_name", "")) > 128:
            raise _ApiError("AUTHOR_NAME_TOO_LONG")
        token = uuid.uuid4().hex + uuid.uuid4().hex[:20]
        account = {"short_name": short_name, "author_name": params.get("author_name", "")}
        self._state.accounts[token] = account
        return {**account, "author_url": "", "access_token": token, "auth_url": "https://x/a"}

    def _account(self, params: dict[str, str]) -> str:
        token = params.get("access_token", "")
        if token not in self._state.accounts:
            raise _ApiError("ACCESS_TOKEN_INVALID")
        return token

    def _page_fields(self, params: dict[str, str]) -> tuple[str, list[Any]]:
        title = params.get("title", "")
        if not title:
            raise _ApiError("TITLE_REQUIRED")
        if len(title) > 256:
            raise _ApiError("TITLE_TOO_LONG")
        raw = params.get("content", "")
        if not raw:
            raise _ApiError("CONTENT_REQUIRED")
        if len(raw.encode("utf-8")) > CONTENT_LIMIT:
            raise _ApiError("CONTENT_TOO_BIG")
        try:
            content = json.loads(raw)
        except ValueError:
            raise _ApiError("CONTENT_FORMAT_INVALID") from None
        if not isinstance(content, list) or not content:
            raise _ApiError("CONTENT_FORMAT_INVALID")
        _check_nodes(content)
        return title, content

    def _create_page(self, params: dict[str, str], path: str) -> dict[str, Any]:
        token = self._account(params)
        title, content = self._page_fields(params)
        stem = re.sub(r"[^\w]+", "-", title).strip("-")[:100] or "Page"
        now = datetime.now(UTC)
        path = f"{stem}-{now:%m-%d}"
        number = 1
        while path in self._state.pages:
            number += 1
            path = f"{stem}-{now:%m-%d}-{number}"
        page = Page(path, token, title, content, params.get("author_name", ""))
        self._state.pages[path] = page
        return self._page_result(page)

    def _edit_page(self, params: dict[str, str], path: str) -> dict[str, Any]:
        token = self._account(params)
        page = self._state.pages.get(path)
        if page is None:
            raise _ApiError("PAGE_NOT_FOUND")
        if page.token != token:
            raise _ApiError("PAGE_ACCESS_DENIED")
        page.title, page.content = self._page_fields(params)
        page.author_name = params.get("author_name", "")
        page.edits += 1
        return self._page_result(page)

    def _get_page(self, params: dict[str, str], path: str) -> dict[str, Any]:
        page = self._state.pages.get(path)
        if page is None:
            raise _ApiError("PAGE_NOT_FOUND")
        result = self._page_result(page)
        if params.get("return_content") == "true":
            result["content"] = page.content
        return result

    def _page_result(self, page: Page) -> dict[str, Any]:
        return {
            "path": page.path,
            "url": f"{self.api_url}/{page.path}",
            "title": page.title,
            "description": "",
            "author_name": page.author_name,
            "views": 0,
            "can_edit": True,
        }


class _ApiError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


def _check_nodes(nodes: list[Any]) -> None:
    for node in nodes:
        if isinstance(node, str):
            continue
        if not isinstance(node, dict) or node.get("tag") not in ALLOWED_TAGS:
            raise _ApiError("CONTENT_FORMAT_INVALID")
        attrs = node.get("attrs", {})
        if not isinstance(attrs, dict) or set(attrs) - {"href", "src"}:
            raise _ApiError("CONTENT_FORMAT_INVALID")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise _ApiError("CONTENT_FORMAT_INVALID")
        _check_nodes(children)
