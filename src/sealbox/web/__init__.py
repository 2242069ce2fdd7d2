"""The browser console's assets: server-rendered pages, static ES modules, and their headers.

The same code serves the console from the relay (``/console/…``) and from
``sealbox console`` on localhost (:mod:`sealbox.web.local`), so both deliver
exactly the pages and modules installed with this package.

A page is ``pages/<name>.html`` with ``{{name}}`` placeholders, each replaced
by an HTML-escaped value.  The renderer adds to its ``<head>`` an import map
listing every module under ``static/`` with its SHA-384 ``integrity``, and the
page's own module (``static/app/<name>.js``) with its integrity too: the page,
served ``no-store``, pins the exact bytes of every script it runs.  The CSP
allows scripts from this origin plus the one inline script, the import map, by
its SHA-256.

Static files are served from an index built by walking ``static/`` once: a
request names a key of that index or gets 404, so no path a request makes up
(``..``, encoded slashes, absolute paths) ever reaches the file system.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OUTSIDE_PAGES",
    "PAGES",
    "PLACEHOLDERS",
    "SERVICE_WORKER",
    "STATIC_PREFIX",
    "Asset",
    "Assets",
    "Page",
    "packaged",
    "page_headers",
    "static_headers",
]

PACKAGE = Path(__file__).parent
#: The console's pages, each at ``/console/<name>``.
PAGES = (
    "setup", "signin", "approvals", "logins", "items", "clients", "agents", "approvers",
    "policies", "audit", "store", "join",
)  # fmt: skip
#: Pages served outside the console: a share link's page, at ``/s/<id>`` (never at /console/).
OUTSIDE_PAGES = ("share",)
#: The values a page may use, as ``{{name}}``; anything else in braces is an error.
PLACEHOLDERS = frozenset({"vault", "relay_url", "csrf", "approver", "page"})
STATIC_PREFIX = "/console/static/"
#: The service worker is served from ``/console/sw.js`` (its scope is the console), from here.
SERVICE_WORKER = "app/sw.js"

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

#: Everything but the scripts' hash, which depends on the page's import map.
_CSP_REST = (
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; "
    "worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    path: str
    """Relative to ``static/``, with ``/`` separators (the URL path after the prefix)."""
    body: bytes
    content_type: str
    etag: str
    """A strong ETag (quoted SHA-256 hex of the body)."""
    integrity: str
    """``sha384-…`` of the body (Subresource Integrity)."""

    @property
    def url(self) -> str:
        return STATIC_PREFIX + self.path


@dataclass(frozen=True)
class Page:
    body: bytes
    csp: str


def _integrity(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _index(static: Path) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    if not static.is_dir():
        return found
    for path in sorted(static.rglob("*")):
        relative = path.relative_to(static)
        if not path.is_file() or any(p.startswith((".", "_")) for p in relative.parts):
            continue
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            continue  # only what a browser loads: not package.json, not tests, not sources
        body = path.read_bytes()
        key = relative.as_posix()
        found[key] = Asset(
            key, body, content_type, '"' + hashlib.sha256(body).hexdigest() + '"',
            _integrity(body),
        )  # fmt: skip
    return found


class Assets:
    """The console's pages and static files under ``root`` (``pages/`` and ``static/``)."""

    def __init__(self, root: Path = PACKAGE) -> None:
        self.pages_dir = root / "pages"
        self.static_dir = root / "static"
        self._static = _index(self.static_dir)
        modules = {a.url: a.integrity for a in self._static.values() if a.path.endswith(".js")}
        top = sorted({a.path.split("/", 1)[0] for a in self._static.values() if "/" in a.path})
        importmap = {
            "imports": {f"{name}/": f"{STATIC_PREFIX}{name}/" for name in top},
            "integrity": dict(sorted(modules.items())),
        }
        # Inside <script>: no "</" may appear (module paths never hold one; escaped regardless).
        self.importmap = json.dumps(importmap, indent=1, sort_keys=True).replace("</", "<\\/")
        digest = hashlib.sha256(self.importmap.encode()).digest()
        self.csp = (
            "default-src 'none'; script-src 'self' "
            f"'sha256-{base64.b64encode(digest).decode()}'; {_CSP_REST}"
        )

    def static(self, path: str) -> Asset:
        """The static file at ``path`` (relative to ``static/``); :exc:`LookupError` if none."""
        found = self._static.get(path)
        if found is None:
            raise LookupError(path)
        return found

    def paths(self) -> list[str]:
        return sorted(self._static)

    def render(self, page: str, values: Mapping[str, str], *, outside: bool = False) -> Page:
        """The page ``page`` with ``values`` filled in; :exc:`LookupError` if it does not exist.

        ``outside`` renders one of :data:`OUTSIDE_PAGES` instead of a console page.

        Raises :exc:`ValueError` for a template with an unknown placeholder or no
        ``</head>`` (a mistake in the package, not in the request).
        """
        if page not in (OUTSIDE_PAGES if outside else PAGES):
            raise LookupError(page)
        path = self.pages_dir / f"{page}.html"
        if not path.is_file():
            raise LookupError(page)
        template = path.read_text(encoding="utf-8")
        filled = {**dict.fromkeys(PLACEHOLDERS, ""), **values, "page": page}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in PLACEHOLDERS:
                raise ValueError(f"{path.name}: unknown placeholder {{{{{name}}}}}")
            return html.escape(str(filled[name]), quote=True)

        text = _PLACEHOLDER.sub(substitute, template)
        head_end = text.lower().find("</head>")
        if head_end < 0:
            raise ValueError(f"{path.name}: a page needs a </head> for its scripts")
        scripts = f'<script type="importmap">{self.importmap}</script>\n'
        own = self._static.get(f"app/{page}.js")
        if own is not None:
            scripts += (
                f'<script type="module" src="{own.url}" integrity="{own.integrity}"></script>\n'
            )
        return Page((text[:head_end] + scripts + text[head_end:]).encode("utf-8"), self.csp)


@functools.cache
def packaged() -> Assets:
    """The assets installed with this package (indexed once per process)."""
    return Assets()


def page_headers(page: Page) -> dict[str, str]:
    return {
        **_COMMON,
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": page.csp,
        "cache-control": "no-store",
    }


def static_headers(asset: Asset, *, service_worker: bool = False) -> dict[str, str]:
    """Headers of a static file: revalidated by ETag (pages pin each module's bytes anyway)."""
    headers = {
        **_COMMON,
        "content-type": asset.content_type,
        # A worker runs under its own response's CSP: the same policy as the pages, no inline.
        "content-security-policy": f"default-src 'none'; script-src 'self'; {_CSP_REST}",
        "cache-control": "no-cache",
        "etag": asset.etag,
    }
    if service_worker:
        headers["service-worker-allowed"] = "/console/"
    return headers
