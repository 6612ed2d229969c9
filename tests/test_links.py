"""LinkFetcher against a real local HTTP server: extraction, bounds, private addresses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.sources.links import (
    MAX_REDIRECTS,
    FetchError,
    FetchFailure,
    LinkFetcher,
    find_urls,
    is_public_address,
    words_around,
)

ARTICLE = """<!doctype html>
<html><head><title>Why columnar storage wins | Data Weekly</title>
<meta property="og:title" content="Why columnar storage wins"></head>
<body>
<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies.</div>
<nav><ul><li><a href="/">Home</a></li><li><a href="/subscribe">Subscribe to the newsletter</a></li>
<li><a href="/archive">Archive of every issue</a></li></ul></nav>
<article>
<h1>Why columnar storage wins</h1>
<p>Analytical queries read a few columns of very many rows. Storing each column together lets
the engine skip everything a query does not touch, and compresses far better than rows do.</p>
<p>Parquet files group rows into row groups; within each group every column is a run of
similar values, so dictionary and run-length encodings shrink it to a fraction of its size.</p>
<p>The price is paid on writes: updating one row touches every column file, which is why
columnar stores batch their writes and merge them later.</p>
</article>
<footer><p>Copyright 2026 Data Weekly Media. All rights reserved. Privacy policy.
Terms of service.</p></footer>
</body></html>
"""


class Site:
    """A local site with one route per behaviour; counts the requests it got."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.base = ""
        # /held answers only once a test sets it (a page still loading, for as long as needed).
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        path = request.path
        if path == "/article":
            return web.Response(text=ARTICLE, content_type="text/html")
        if path == "/notes.txt":
            return web.Response(text="Reading list\nDesigning Data-Intensive Applications\n")
        if path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            target = "/article" if n == 0 else f"/hop/{n - 1}"
            raise web.HTTPFound(target)
        if path == "/held":
            await self.release.wait()
            return web.Response(text=ARTICLE, content_type="text/html")
        if path == "/slow":
            await asyncio.sleep(3)
            return web.Response(text=ARTICLE, content_type="text/html")
        if path == "/huge":
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(200):
                await response.write(b"<p>" + b"x" * 1000 + b"</p>")
            await response.write_eof()
            return response
        if path == "/drip":  # a byte at a time: each read is quick, the whole page is not
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(25):
                await response.write(b"<p>x</p>")
                await asyncio.sleep(0.2)
            await response.write_eof()
            return response
        if path == "/file.pdf":
            return web.Response(body=b"%PDF-1.4", content_type="application/pdf")
        return web.Response(status=404, text="not found")


@contextlib.asynccontextmanager
async def serve_site() -> AsyncIterator[Site]:
    """The site on 127.0.0.1, on a free port, for the length of the block."""
    state = Site()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()  # a request still held must not hold up the shutdown
        await runner.cleanup()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with serve_site() as state:
        yield state


@pytest.fixture
async def fetcher() -> AsyncIterator[LinkFetcher]:
    # The site is on loopback: allowed here as LINK_FETCH_ALLOW_PRIVATE=true allows it.
    fetcher = LinkFetcher(timeout=2.0, max_bytes=50_000, allow_private=True)
    try:
        yield fetcher
    finally:
        await fetcher.close()


async def test_main_text_is_extracted_without_navigation_footer_or_cookie_banner(
    site: Site, fetcher: LinkFetcher
) -> None:
    page = await fetcher.fetch(f"{site.base}/article")
    assert page.title == "Why columnar storage wins"
    assert "Storing each column together" in page.text
    assert "merge them later" in page.text
    for boilerplate in (
        "Subscribe to the newsletter",
        "Archive of every issue",
        "Copyright",
        "cookies",
    ):
        assert boilerplate not in page.text


async def test_private_addresses_are_refused_by_default(site: Site) -> None:
    fetcher = LinkFetcher(timeout=2.0, max_bytes=50_000)
    try:
        for url in (f"{site.base}/article", f"http://localhost:{site.base.rsplit(':', 1)[1]}/"):
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch(url)
            assert caught.value.failure is FetchFailure.PRIVATE_ADDRESS
    finally:
        await fetcher.close()
    assert site.hits == [], "a refused address is never contacted"


class RebindingFetcher(LinkFetcher):
    """As if DNS answered a public address for the check and loopback for the connection."""

    async def _check_host(self, url: str) -> None:
        return None


async def test_a_connection_that_reaches_a_private_address_is_refused(site: Site) -> None:
    fetcher = RebindingFetcher(timeout=2.0, max_bytes=50_000)
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"{site.base}/article")
    finally:
        await fetcher.close()
    assert caught.value.failure is FetchFailure.PRIVATE_ADDRESS


def test_only_public_addresses_count_as_public() -> None:
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ):
        assert not is_public_address(address), address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert is_public_address(address), address


async def test_a_page_that_does_not_answer_in_time_times_out(site: Site) -> None:
    fetcher = LinkFetcher(timeout=0.5, max_bytes=50_000, allow_private=True)
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"{site.base}/slow")
    finally:
        await fetcher.close()
    assert caught.value.failure is FetchFailure.TIMED_OUT


async def test_the_timeout_bounds_the_whole_fetch_not_each_read(site: Site) -> None:
    fetcher = LinkFetcher(timeout=1.0, max_bytes=50_000, allow_private=True)
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"{site.base}/drip")
    finally:
        await fetcher.close()
    assert caught.value.failure is FetchFailure.TIMED_OUT


async def test_redirects_are_followed_up_to_the_limit(site: Site, fetcher: LinkFetcher) -> None:
    page = await fetcher.fetch(f"{site.base}/hop/{MAX_REDIRECTS - 1}")
    assert page.title == "Why columnar storage wins"
    assert page.url == f"{site.base}/article"
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(f"{site.base}/hop/{MAX_REDIRECTS + 1}")
    assert caught.value.failure is FetchFailure.TOO_MANY_REDIRECTS


async def test_size_type_and_status_bounds(site: Site, fetcher: LinkFetcher) -> None:
    cases = {
        "/huge": FetchFailure.TOO_LARGE,  # streamed, no Content-Length: cut at the cap
        "/file.pdf": FetchFailure.NOT_A_PAGE,
        "/missing": FetchFailure.HTTP_ERROR,
    }
    for path, failure in cases.items():
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"{site.base}{path}")
        assert caught.value.failure is failure, path
    page = await fetcher.fetch(f"{site.base}/notes.txt")
    assert page.title == "Reading list"
    assert "Designing Data-Intensive Applications" in page.text


def test_urls_and_the_words_around_them() -> None:
    text = (
        "Great piece on storage (see https://example.com/a?x=1). Also "
        "https://en.wikipedia.org/wiki/Parquet_(file_format), and https://example.com/a?x=1"
    )
    urls = find_urls(text)
    assert urls == [
        "https://example.com/a?x=1",
        "https://en.wikipedia.org/wiki/Parquet_(file_format)",
    ]
    assert words_around(text, urls) == "Great piece on storage (see). Also, and"
    assert words_around("https://example.com/a", ["https://example.com/a"]) == ""
    assert find_urls("no links here, just ftp://old.example.com") == []
    many = " ".join(f"https://example.com/{n}" for n in range(15))
    assert len(find_urls(many)) == 10, "a message's links beyond ten stay words"
    assert words_around(many, find_urls(many)).split() == [
        f"https://example.com/{n}" for n in range(10, 15)
    ]
