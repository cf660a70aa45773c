"""The Sphinx extension dfnb.book_assets on hand-made inputs (the smoke book build in test_book.py uses it whole)."""
from types import SimpleNamespace

from dfnb import book_assets

REDIRECT = '<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n'


def _app(tmp_path, favicon="_static/favicon.svg"):
    return SimpleNamespace(outdir=str(tmp_path), config=SimpleNamespace(html_favicon=favicon))


def test_the_root_redirect_gets_the_favicon_and_keeps_its_target(tmp_path):
    (tmp_path / "index.html").write_text(REDIRECT)
    book_assets.icon_on_redirect(_app(tmp_path), None)
    text = (tmp_path / "index.html").read_text()
    assert '<link rel="icon" href="_static/favicon.svg">' in text
    assert REDIRECT.strip() in text
    book_assets.icon_on_redirect(_app(tmp_path), None)  # a second build leaves it as it is
    assert (tmp_path / "index.html").read_text() == text


def test_a_real_index_page_a_failed_build_or_no_favicon_is_left_alone(tmp_path):
    (tmp_path / "index.html").write_text("<html><body>the book</body></html>")
    book_assets.icon_on_redirect(_app(tmp_path), None)
    assert (tmp_path / "index.html").read_text() == "<html><body>the book</body></html>"
    (tmp_path / "index.html").write_text(REDIRECT)
    book_assets.icon_on_redirect(_app(tmp_path), RuntimeError("build failed"))
    book_assets.icon_on_redirect(_app(tmp_path, favicon=""), None)
    assert (tmp_path / "index.html").read_text() == REDIRECT


def test_identical_scripts_are_kept_once_in_order():
    js = lambda f, **a: SimpleNamespace(filename=f, attributes=a)  # noqa: E731
    files = [js("a.js"), js("b.js", defer="defer"), js("a.js"), js("b.js"), js("b.js", defer="defer")]
    ctx = {"script_files": files}
    book_assets.dedupe_scripts(None, "p", "t", ctx, None)
    assert [(f.filename, f.attributes) for f in ctx["script_files"]] == [("a.js", {}), ("b.js", {"defer": "defer"}),
                                                                         ("b.js", {})]
