"""The fetch tool: ``GET`` a URL on a host the profile names, from ember's own process.

Each hop (the first request and every redirect) is checked anew: ``http`` or ``https`` only,
the host allowed by ``egress_hosts``, its addresses resolved and checked by
:func:`~ember.agents.egress.pin_address`, and the request sent to that very address with the
original ``Host`` header and TLS server name (certificates are verified against the name).
A redirect to another host is refused (the model may fetch that URL itself, if allowed).
The body is read up to ``max_bytes`` (then cut, and said so) and the whole fetch, redirects
included, ends after ``timeout_s``. No proxy or other setting is taken from the environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from pydantic import Field

from ember.agents.egress import HostRule, Resolver, pin_address, system_resolver
from ember.agents.tools import Tool, ToolArgs
from ember.errors import BadRequest, PolicyDenied

__all__ = ["FetchArgs", "FetchResult", "Fetcher", "fetch_tool"]

_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchResult:
    """What a fetch got: the final URL, its status, type and body text (``truncated`` when
    the body was longer than the limit; ``redirects`` the URLs followed, in order)."""

    url: str
    status: int
    content_type: str | None
    content: str
    bytes: int
    truncated: bool
    redirects: tuple[str, ...] = ()


class Fetcher:
    """Fetches URLs within ``egress_hosts``. ``resolver`` resolves names (injected by tests,
    which must send nothing to the network); ``transport`` replaces httpx's (tests)."""

    def __init__(
        self,
        egress_hosts: tuple[str, ...] | list[str],
        *,
        resolver: Resolver = system_resolver,
        max_bytes: int = 512 * 1024,
        timeout_s: float = 20.0,
        max_redirects: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "ember-agent",
    ) -> None:
        self._rules = [HostRule.parse(entry) for entry in egress_hosts]
        self._resolver = resolver
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self._transport = transport
        self._user_agent = user_agent

    async def fetch(self, url: str) -> FetchResult:
        """``GET`` ``url``, following redirects on the same host.

        :raises PolicyDenied: a scheme, host, address or redirect the policy refuses.
        :raises BadRequest: the URL is malformed, the host does not resolve, the connection
            fails or the fetch takes longer than ``timeout_s``.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(url)
        except TimeoutError:
            raise BadRequest(f"fetching {url} took longer than {self.timeout_s:g} s") from None

    async def _follow(self, text: str) -> FetchResult:
        url = _parse(text)
        followed: list[str] = []
        while True:
            result, location = await self._hop(url)
            if location is None:
                return FetchResult(**{**asdict(result), "redirects": tuple(followed)})
            try:
                target = url.join(location)
            except httpx.InvalidURL as exc:
                raise BadRequest(f"{url} redirects to a malformed URL: {exc}") from exc
            if target.scheme not in ("http", "https") or target.host != url.host:
                raise PolicyDenied(
                    f"{url} redirects to {target}, another host or scheme; redirects may only "
                    "stay on the same host",
                    extra={"host": target.host},
                )
            if len(followed) >= self.max_redirects:
                raise BadRequest(f"more than {self.max_redirects} redirects from {text}")
            followed.append(str(target))
            url = target

    async def _hop(self, url: httpx.URL) -> tuple[FetchResult, str | None]:
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await pin_address(self._rules, url.host, port, self._resolver)
        host = f"[{url.host}]" if ":" in url.host else url.host
        headers = {
            "Host": host if url.port is None else f"{host}:{url.port}",
            "User-Agent": self._user_agent,
            "Accept-Encoding": "identity",
        }
        extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
        pinned = url.copy_with(host=address)
        async with httpx.AsyncClient(
            transport=self._transport,
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout_s,
        ) as client:
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise BadRequest(f"fetching {url} failed: {type(exc).__name__}: {exc}") from exc
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    empty = FetchResult(str(url), response.status_code, None, "", 0, False)
                    return empty, response.headers["location"]
                return await self._read(url, response), None
            except httpx.HTTPError as exc:
                raise BadRequest(f"reading {url} failed: {type(exc).__name__}: {exc}") from exc
            finally:
                await response.aclose()

    async def _read(self, url: httpx.URL, response: httpx.Response) -> FetchResult:
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.max_bytes:
                truncated = True
                del body[self.max_bytes :]
                break
        content_type = response.headers.get("content-type")
        if b"\x00" in body:
            text = f"[binary content, {len(body)} bytes of {content_type or 'unknown type'}]"
        else:
            text = bytes(body).decode(response.charset_encoding or "utf-8", errors="replace")
        return FetchResult(str(url), response.status_code, content_type, text, len(body), truncated)


def _parse(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise BadRequest(f"malformed URL {text!r}: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise PolicyDenied(f"only http and https URLs may be fetched, not {url.scheme or text!r}")
    if not url.host:
        raise BadRequest(f"URL {text!r} has no host")
    return url


class FetchArgs(ToolArgs):
    url: str = Field(min_length=1, max_length=4096, description="An http or https URL.")


def fetch_tool(fetcher: Fetcher) -> Tool[FetchArgs]:
    """``fetch_url``: the body of a URL on an allowed host, as text."""

    async def fetch_url(args: FetchArgs) -> dict[str, Any]:
        return asdict(await fetcher.fetch(args.url))

    return Tool(
        "fetch_url",
        "HTTP GET a URL on a host the agent's policy allows; returns status, content type "
        "and the body as text (cut at a size limit). Redirects must stay on the same host.",
        FetchArgs,
        fetch_url,
    )
