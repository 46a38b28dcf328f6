"""The fetch tool's egress policy. Traffic goes to loopback servers the tests start, or to
an httpx mock transport; names resolve through injected resolvers, never through DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator, Sequence

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from ember.agents import AgentProfile, Fetcher, builtin_tools, is_public
from ember.chat import ToolCall
from ember.errors import BadRequest, PolicyDenied
from tests.fakes.server import ThreadedFakeServer


class LocalSite(ThreadedFakeServer):
    """A small site on 127.0.0.1 that records the requests it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._init_server("local site")

    def _asgi(self) -> FastAPI:
        app = FastAPI()

        @app.get("/{name}")
        async def page(name: str, request: Request) -> Response:
            self.seen.append((name, request.headers.get("host", "")))
            if name == "hello":
                return PlainTextResponse("hello from loopback")
            if name == "host":
                return PlainTextResponse(request.headers.get("host", ""))
            if name == "big":
                return PlainTextResponse("x" * 10_000)
            if name == "same":
                return RedirectResponse("/hello", status_code=302)
            if name == "other":
                return RedirectResponse("http://other.test/hello", status_code=302)
            if name == "loop":
                return RedirectResponse("/loop", status_code=307)
            if name == "slow":
                await asyncio.sleep(3)
                return PlainTextResponse("late")
            return PlainTextResponse("no", status_code=404)

        return app


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    with LocalSite() as server:
        yield server


@pytest.fixture(autouse=True)
def _forget(site: LocalSite) -> None:
    site.seen.clear()


def resolver(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        return table[host]

    return resolve


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"a DNS query for {host} was attempted")


class Recorder:
    """A mock transport that records what would have been sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"mocked"))


async def test_a_loopback_host_the_policy_names_is_fetched(site: LocalSite) -> None:
    fetcher = Fetcher([f"127.0.0.1:{site.port}"], resolver=no_dns)
    result = await fetcher.fetch(f"http://127.0.0.1:{site.port}/hello")
    assert (result.status, result.content, result.truncated) == (200, "hello from loopback", False)
    assert result.content_type is not None and result.content_type.startswith("text/plain")
    assert site.seen == [("hello", f"127.0.0.1:{site.port}")]


async def test_an_exactly_named_host_is_pinned_to_its_address_with_its_host_header(
    site: LocalSite,
) -> None:
    fetcher = Fetcher(["service.test"], resolver=resolver({"service.test": ["127.0.0.1"]}))
    result = await fetcher.fetch(f"http://service.test:{site.port}/host")
    assert result.content == f"service.test:{site.port}"


async def test_a_host_the_policy_does_not_name_is_refused_before_anything(site: LocalSite) -> None:
    fetcher = Fetcher(["docs.example.com", "127.0.0.2"], resolver=no_dns)
    with pytest.raises(PolicyDenied, match="not in the profile's egress_hosts"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/hello")
    with pytest.raises(PolicyDenied):
        await fetcher.fetch("http://api.example.com/")
    assert site.seen == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.1"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["192.168.1.1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["::1"],
        ["fe80::1"],
        ["fd00::1"],
        ["::ffff:10.0.0.1"],
        ["64:ff9b::a00:1"],
        ["100.64.0.1"],
        ["240.0.0.1"],
        ["93.184.216.34", "10.0.0.1"],
    ],
    ids=lambda a: ",".join(a),
)
async def test_a_wildcard_host_resolving_to_a_private_address_is_refused_unsent(
    addresses: list[str],
) -> None:
    recorder = Recorder()
    fetcher = Fetcher(
        ["*.example.com"],
        resolver=resolver({"intranet.example.com": addresses}),
        transport=recorder.transport,
    )
    with pytest.raises(PolicyDenied, match="not a public address"):
        await fetcher.fetch("http://intranet.example.com/")
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("address", "pinned"),
    [("93.184.216.34", "93.184.216.34"), ("2606:4700::1111", "[2606:4700::1111]")],
)
async def test_a_public_address_is_connected_to_directly_with_host_and_sni(
    address: str, pinned: str
) -> None:
    recorder = Recorder()
    fetcher = Fetcher(
        ["*.example.com"],
        resolver=resolver({"api.example.com": [address]}),
        transport=recorder.transport,
    )
    result = await fetcher.fetch("https://api.example.com/v1?q=1")
    assert result.content == "mocked" and result.url == "https://api.example.com/v1?q=1"
    [sent] = recorder.requests
    assert str(sent.url) == f"https://{pinned}/v1?q=1"
    assert sent.headers["host"] == "api.example.com"
    assert sent.extensions["sni_hostname"] == "api.example.com"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://a/"])
async def test_only_http_and_https(url: str) -> None:
    with pytest.raises(PolicyDenied, match="only http and https"):
        await Fetcher(["127.0.0.1", "a"], resolver=no_dns).fetch(url)


async def test_redirects_stay_on_the_host_and_are_rechecked(site: LocalSite) -> None:
    fetcher = Fetcher([f"127.0.0.1:{site.port}"], resolver=no_dns, max_redirects=3)
    followed = await fetcher.fetch(f"http://127.0.0.1:{site.port}/same")
    assert followed.content == "hello from loopback"
    assert followed.redirects == (f"http://127.0.0.1:{site.port}/hello",)
    with pytest.raises(PolicyDenied, match="another host"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/other")
    with pytest.raises(BadRequest, match="more than 3 redirects"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/loop")
    assert [name for name, _ in site.seen] == [
        "same",
        "hello",
        "other",
        "loop",
        "loop",
        "loop",
        "loop",
    ]


async def test_size_and_time_limits(site: LocalSite) -> None:
    fetcher = Fetcher([f"127.0.0.1:{site.port}"], resolver=no_dns, max_bytes=100, timeout_s=0.3)
    big = await fetcher.fetch(f"http://127.0.0.1:{site.port}/big")
    assert (big.bytes, big.truncated, big.content) == (100, True, "x" * 100)
    with pytest.raises(BadRequest, match=r"took longer than 0\.3 s"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/slow")


async def test_the_model_sees_refusals_as_tool_errors(site: LocalSite, workspace) -> None:  # type: ignore[no-untyped-def]
    profile = AgentProfile(
        model="m", tools=("fetch_url",), egress_hosts=(f"127.0.0.1:{site.port}",)
    )
    tools = builtin_tools(profile, workspace, resolver=no_dns)
    allowed = await tools.call(
        ToolCall.of("1", "fetch_url", {"url": f"http://127.0.0.1:{site.port}/hello"})
    )
    refused = await tools.call(ToolCall.of("2", "fetch_url", {"url": "http://10.0.0.1/"}))
    assert allowed.ok and json.loads(allowed.content)["content"] == "hello from loopback"
    assert refused.code == "policy_denied"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("127.0.0.53", False),
        ("::", False),
        ("ff02::1", False),
        ("2002:a00:1::", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
