"""``/docs``: Swagger UI from files installed with the package, so it works offline."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from typing import Annotated

from fastapi import FastAPI, Path
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

from openadk.server._errors import ApiError

__all__ = ["ASSETS_PATH", "install_docs"]

ASSETS_PATH = "/docs/assets"
# name -> media type; only these files are served.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INSTALL = 'pip install "openadk[server]"  (or: pip install fastapi-offline)'


def _static() -> Traversable | None:
    """Swagger UI's files as shipped by the ``fastapi-offline`` package, if installed."""
    try:
        static = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None
    return static if static.joinpath("swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI, openapi_url: str, title: str) -> None:
    """Adds ``GET /docs``, its OAuth2 redirect page and ``/docs/assets/{name}``.

    The assets come from the installed ``fastapi-offline`` package (Swagger UI's distribution
    files); without it ``/docs`` says what to install rather than loading them from a CDN.
    """
    static = _static()
    cache: dict[str, bytes] = {}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if static is None:
            return HTMLResponse(
                "<!doctype html><title>openadk docs</title><p>Swagger UI's files are not "
                f"installed: <code>{_INSTALL}</code>. The schema is at "
                f"<a href='{openapi_url}'>{openapi_url}</a>.</p>",
                status_code=503,
            )
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    async def asset(name: Annotated[str, Path(max_length=64)]) -> Response:
        media_type = _ASSETS.get(name)
        if media_type is None or static is None:
            raise ApiError(404, f"No such documentation asset: {name}")
        if name not in cache:
            cache[name] = static.joinpath(name).read_bytes()
        return Response(
            cache[name], media_type=media_type, headers={"cache-control": "public, max-age=86400"}
        )
