"""The interactive API docs at ``/docs``, served whole from the installed package.

Swagger UI's script, stylesheet and icon come from the ``swagger_ui_bundle`` distribution and
are served under ``/docs/assets/``, so the page works on a machine with no way out: nothing is
fetched from a CDN. ReDoc has no such bundle and is not served.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from ember.errors import NotFound

__all__ = ["ASSETS", "DOCS_PATH", "api_docs_router"]

DOCS_PATH = "/docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files of the bundle the page loads, and their media types; nothing else is served."""


def api_docs_router(app: FastAPI) -> APIRouter:
    """``/docs``, its OAuth2 redirect page and ``/docs/assets/{name}`` (404 ``not_found`` for
    a name not in :data:`ASSETS`). Call with ``docs_url=None, redoc_url=None`` set on ``app``."""
    router = APIRouter(include_in_schema=False)
    redirect = f"{DOCS_PATH}/oauth2-redirect"

    @router.get(DOCS_PATH)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{DOCS_PATH}/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PATH}/assets/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_PATH}/assets/favicon-32x32.png",
        )

    @router.get(redirect)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(DOCS_PATH + "/assets/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"no docs asset named {name!r}")
        headers = {"Cache-Control": "public, max-age=86400"}
        return FileResponse(swagger_ui_path / name, media_type=media_type, headers=headers)

    return router
