"""The web UI: its page at ``/`` and its built assets under ``/ui/assets/``, from the package.

The front end (``ui/`` in the repository: Preact and TypeScript, built by Vite) is built into
``ember/ui/static`` by ``make up`` and ``make test``; nothing is fetched from elsewhere. The
page is public, like the API docs: it holds no data, and every call it makes to the API
carries the user's token. The page is never cached (a new build takes effect at once); the
assets have content-hashed names and are cached for a year. A client that accepts gzip gets
the assets gzip-compressed (compressed once, then kept in memory). Every answer forbids
framing and limits what the page may load to this origin (``Content-Security-Policy``).

A package without a built UI answers ``/`` with 503 ``ui_not_built`` saying how to build it.
"""

from __future__ import annotations

import gzip
import mimetypes
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ember.errors import NotFound, UINotBuilt
from ember.ui import static_root

__all__ = ["ASSETS_PATH", "UIFiles", "ui_router"]

ASSETS_PATH = "/ui/assets"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""What the page may load: only its own origin (and images it makes itself)."""
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_COMPRESSIBLE = (".js", ".css", ".html", ".svg", ".json", ".map", ".txt")


class UIFiles:
    """The built UI under ``root`` (default: the package's ``ember/ui/static``): its page and
    its assets, read once and kept (with their gzip forms) in memory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or static_root()
        self._cache: dict[tuple[str, bool], bytes] = {}
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    def read(self, relative: str, *, compressed: bool) -> bytes:
        """The file ``relative`` (to the root), gzip-compressed when asked.

        :raises NotFound: no such file (or a path leaving the root).
        """
        key = (relative, compressed)
        found = self._cache.get(key)
        if found is not None:
            return found
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            raise NotFound(f"no UI file {relative!r}")
        data = path.read_bytes()
        if compressed:
            data = gzip.compress(data, compresslevel=9, mtime=0)
        with self._lock:
            self._cache[key] = data
        return data


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def _answer(files: UIFiles, relative: str, request: Request, cache: str) -> Response:
    compress = relative.endswith(_COMPRESSIBLE) and _accepts_gzip(request)
    body = files.read(relative, compressed=compress)
    media_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
    headers = {**_SECURITY, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


def ui_router(files: UIFiles | None = None) -> APIRouter:
    """``GET /`` (the page) and ``GET /ui/assets/{name}`` over ``files`` (default: the
    package's build)."""
    found = files or UIFiles()
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page(request: Request) -> Response:
        if not found.built:
            raise UINotBuilt(
                "the web UI is not built: run `make up` (or `npm ci && npm run build` in ui/)"
            )
        return _answer(found, "index.html", request, "no-cache")

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str, request: Request) -> Response:
        if "/" in name or name.startswith("."):
            raise NotFound(f"no UI asset named {name!r}")
        return _answer(found, f"assets/{name}", request, "public, max-age=31536000, immutable")

    return router
