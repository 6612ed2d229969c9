"""Links: find URLs in a message, fetch a page within bounds, extract its main text.

A page is fetched with redirects followed by hand (at most MAX_REDIRECTS), each hop's host
resolved and refused when it is on a loopback, private, link-local or otherwise non-public
address (unless `allow_private`: a self-hosted wiki, tests), the body streamed up to a size
cap, the whole fetch inside one deadline, and only HTML or plain text accepted. The main text
is extracted by trafilatura (navigation, footers and cookie banners stay out), in a thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

import httpx

from bot.services.threads import run_in_daemon_thread

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# Links of one message fetched as sources; further ones stay in the writer's words.
MAX_LINKS_PER_MESSAGE = 10
# A page's text kept for drafting: long enough for an article, short of a book.
MAX_TEXT_CHARS = 30_000
USER_AGENT = "voice-draft-bot/1.0 (+link preview for the writer's own notes)"
_ACCEPTED_TYPES = ("text/html", "application/xhtml+xml", "text/plain")

# A URL as writers paste them: http(s) only; trailing punctuation belongs to the sentence.
_URL = re.compile(r"https?://[^\s<>\"'«»]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}’”…"


class FetchFailure(StrEnum):
    """Why a page could not be read; bot/telegram/texts.py turns these into words."""

    PRIVATE_ADDRESS = "private_address"  # loopback, private or link-local host
    UNREACHABLE = "unreachable"  # DNS, connection, TLS
    TIMED_OUT = "timed_out"
    TOO_LARGE = "too_large"
    NOT_A_PAGE = "not_a_page"  # neither HTML nor plain text
    HTTP_ERROR = "http_error"  # 4xx/5xx
    TOO_MANY_REDIRECTS = "too_many_redirects"
    NO_TEXT = "no_text"  # fetched, but no main text could be found


class FetchError(Exception):
    def __init__(self, failure: FetchFailure, detail: str = "") -> None:
        super().__init__(f"{failure.value}: {detail}" if detail else failure.value)
        self.failure = failure


@dataclass(frozen=True)
class Page:
    url: str  # where the page was finally read (after redirects)
    title: str
    text: str


def find_urls(text: str, limit: int = MAX_LINKS_PER_MESSAGE) -> list[str]:
    """The http(s) URLs in a message, in order, each once, at most `limit`."""
    found: list[str] = []
    for match in _URL.finditer(text):
        url = _clean(match.group(0))
        if urlsplit(url).hostname and url not in found:
            found.append(url)
    return found[:limit]


def _clean(url: str) -> str:
    """A URL without the sentence's punctuation after it; a closing bracket that opened
    inside the URL (Wikipedia's "(disambiguation)") stays."""
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def words_around(text: str, urls: list[str]) -> str:
    """The writer's own words in a message once its URLs are taken out ("" when none)."""
    taken = set(urls)
    pieces: list[str] = []
    end = 0
    for match in _URL.finditer(text):
        url = _clean(match.group(0))
        if url in taken:  # cut where it stands: one URL may begin another
            pieces += [text[end : match.start()], " "]
            end = match.start() + len(url)
    text = "".join([*pieces, text[end:]])
    # "see <url>, and" leaves "see , and": the gap before the punctuation goes.
    lines = [re.sub(r"\s+([,.;:!?)])", r"\1", " ".join(line.split())) for line in text.splitlines()]
    words = "\n".join(line for line in lines if line).strip()
    # A lone "see:" or "->" is no note of its own.
    return words if re.search(r"\w{2,}", words) else ""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class LinkFetcher:
    """Fetches pages within bounds; one instance (one connection pool) per process."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "text/html, text/plain;q=0.9"},
            transport=transport,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> Page:
        """The page's title and main text; FetchError says why not."""
        try:
            async with asyncio.timeout(self._timeout):
                final_url, body, content_type, charset = await self._download(url)
        except TimeoutError:
            raise FetchError(FetchFailure.TIMED_OUT) from None
        if content_type == "text/plain":
            text = body.decode(charset or "utf-8", errors="replace").strip()
            title = next((line.strip() for line in text.splitlines() if line.strip()), "")
            page = Page(final_url, title[:200], text)
        else:
            page = await run_in_daemon_thread(_extract, final_url, body)
        if not page.text.strip():
            raise FetchError(FetchFailure.NO_TEXT)
        return Page(page.url, page.title or _fallback_title(page.url), page.text[:MAX_TEXT_CHARS])

    async def _download(self, url: str) -> tuple[str, bytes, str, str | None]:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            await self._check_host(current)
            try:
                async with self._client.stream("GET", current) as response:
                    self._check_peer(response)
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(FetchFailure.HTTP_ERROR, "redirect without location")
                        current = urljoin(current, location)
                        if urlsplit(current).scheme not in ("http", "https"):
                            raise FetchError(FetchFailure.NOT_A_PAGE, "redirect to non-http")
                        continue
                    if response.status_code >= 400:
                        raise FetchError(FetchFailure.HTTP_ERROR, str(response.status_code))
                    content_type = (
                        response.headers.get("content-type", "").split(";")[0].strip().lower()
                    )
                    if content_type not in _ACCEPTED_TYPES:
                        raise FetchError(FetchFailure.NOT_A_PAGE, content_type or "no type")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self._max_bytes:
                        raise FetchError(FetchFailure.TOO_LARGE, declared)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise FetchError(FetchFailure.TOO_LARGE, f"over {self._max_bytes}")
                        chunks.append(chunk)
                    plain = "text/plain" if content_type == "text/plain" else "text/html"
                    return current, b"".join(chunks), plain, response.charset_encoding
            except httpx.TimeoutException:
                raise FetchError(FetchFailure.TIMED_OUT) from None
            except httpx.HTTPError as exc:
                raise FetchError(FetchFailure.UNREACHABLE, type(exc).__name__) from None
        raise FetchError(FetchFailure.TOO_MANY_REDIRECTS)

    async def _check_host(self, url: str) -> None:
        """Refuse a host that resolves to a non-public address (each hop: a public page may
        redirect to the router's admin page)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(FetchFailure.NOT_A_PAGE, "not an http(s) URL")
        if self._allow_private:
            return
        host = parts.hostname
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host,
                parts.port or (443 if parts.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )
        except (OSError, UnicodeError):
            raise FetchError(FetchFailure.UNREACHABLE, "name not resolved") from None
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(is_public_address(a) for a in addresses):
            log.info("Refused to fetch a link to a non-public address")
            raise FetchError(FetchFailure.PRIVATE_ADDRESS)

    def _check_peer(self, response: httpx.Response) -> None:
        """The address the connection really reached: a name that resolved to a public
        address for the check and to a private one for the request (DNS rebinding) is
        refused before anything of the answer is read."""
        if self._allow_private:
            return
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer and not is_public_address(str(peer[0])):
            log.info("Refused a link whose connection reached a non-public address")
            raise FetchError(FetchFailure.PRIVATE_ADDRESS)


def _extract(url: str, body: bytes) -> Page:
    """trafilatura's main text and title (runs in a thread: parsing is CPU work)."""
    import trafilatura

    html = body.decode("utf-8", errors="replace") if _looks_utf8(body) else body
    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=True, favor_precision=True
    )
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata is not None and metadata.title else "") or ""
    return Page(url, " ".join(title.split())[:200], (text or "").strip())


def _looks_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fallback_title(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or url) + (parts.path if parts.path not in ("", "/") else "")
