"""The console's page renderer and static index (sealbox.web), without a server."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from sealbox import web


def _root(tmp_path: Path, page: str) -> Path:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "approvals.html").write_text(page)
    (tmp_path / "static" / "app").mkdir(parents=True)
    (tmp_path / "static" / "app" / "approvals.js").write_bytes(b"export {};\n")
    return tmp_path


def test_values_are_escaped(tmp_path: Path) -> None:
    assets = web.Assets(_root(tmp_path, "<head></head><p title='{{vault}}'>{{approver}}</p>"))
    page = assets.render("approvals", {"vault": "'><script>x()</script>", "approver": 'a&b"c'})
    text = page.body.decode()
    assert "<script>x()" not in text
    assert "title='&#x27;&gt;&lt;script&gt;x()&lt;/script&gt;'" in text
    assert "a&amp;b&quot;c" in text


def test_unset_values_are_empty_and_page_is_the_page(tmp_path: Path) -> None:
    assets = web.Assets(_root(tmp_path, "<head></head>[{{csrf}}][{{ page }}]"))
    text = assets.render("approvals", {"page": "other"}).body.decode()
    assert "[][approvals]" in text


def test_a_template_mistake_is_an_error(tmp_path: Path) -> None:
    assets = web.Assets(_root(tmp_path, "<head></head>{{secret_key}}"))
    with pytest.raises(ValueError, match="unknown placeholder"):
        assets.render("approvals", {})
    (tmp_path / "pages" / "approvals.html").write_text("<p>{{vault}}</p>")
    with pytest.raises(ValueError, match="</head>"):
        assets.render("approvals", {})


def test_only_console_pages_render(tmp_path: Path) -> None:
    assets = web.Assets(_root(tmp_path, "<head></head>"))
    (tmp_path / "pages" / "evil.html").write_text("<head></head>")
    for name in ("evil", "../pages/approvals", "setup"):
        with pytest.raises(LookupError):
            assets.render(name, {})


def test_the_csp_hash_is_the_importmaps(tmp_path: Path) -> None:
    assets = web.Assets(_root(tmp_path, "<HEAD></HEAD>"))
    page = assets.render("approvals", {})
    found = re.search(rb'<script type="importmap">(.*?)</script>', page.body, re.S)
    assert found is not None
    digest = base64.b64encode(hashlib.sha256(found.group(1)).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in page.csp
    assert web.page_headers(page)["content-security-policy"] == page.csp


def test_the_packaged_assets_index_and_render() -> None:
    assets = web.packaged()
    for path in assets.paths():
        assert not path.startswith(("/", "."))
        assert ".." not in path.split("/")
        asset = assets.static(path)
        assert asset.integrity.startswith("sha384-")
    for name in web.PAGES:
        try:
            page = assets.render(name, {"vault": "vlt_x"})
        except LookupError:
            continue  # the browser app has not written this page (yet)
        assert b'<script type="importmap">' in page.body
