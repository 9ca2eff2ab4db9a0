"""GET /dashboard and its static files, served from the package (no build step, no CDN).

The page holds no data of its own: its script calls the report endpoints with the key the
user signs in with, so a sub-account key sees exactly what those endpoints let it see.
"""

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from aiohttp import web

from libs.contracts import errors
from services.edge.errors import GatewayError

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
PREFIX = "/dashboard/static/"
_TYPES = MappingProxyType({".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                           ".md": "text/markdown", ".png": "image/png", ".svg": "image/svg+xml"})
# Scripts and styles from this origin only, no inline code, calls only to this origin: a
# script injected through data (a tag, a model name) could neither run nor send the key away.
_PAGE_HEADERS = MappingProxyType({
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
})
_FILE_HEADERS = MappingProxyType({"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def static_files(root: Path = STATIC_DIR) -> Mapping[str, Path]:
    """Every file the dashboard serves, by its path under /dashboard/static/: only these are served,
    so no request path is ever joined onto the file system."""
    return MappingProxyType({path.relative_to(root).as_posix(): path
                             for path in sorted(root.rglob("*")) if path.is_file()})


def _file(path: Path, extra: Mapping[str, str]) -> web.FileResponse:
    headers = {**_FILE_HEADERS, **extra, "Content-Type": _TYPES.get(path.suffix, "application/octet-stream")}
    return web.FileResponse(path, headers=headers)


def _asset_handler(files: Mapping[str, Path]) -> Handler:
    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = files.get(name)
        if path is None or name == PAGE:
            raise GatewayError(404, errors.INVALID_REQUEST, f"No dashboard file '{name[:100]}'.", param="path")
        return _file(path, {})

    return asset


async def page(_: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIR / PAGE, _PAGE_HEADERS)


async def to_page(_: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/dashboard")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", to_page)
    app.router.add_get(PREFIX + "{name:.+}", _asset_handler(static_files()))
