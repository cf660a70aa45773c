"""Sphinx extension that loads the book's JavaScript only where a page needs it.

Enabled in ``_config.yml`` (``sphinx: extra_extensions: [dfnb.book_assets]``).  Jupyter Book 1 adds
every ``*.js`` under ``_static/`` to every page, so without this the vendored MathJax came a second
time (after the copy ``mathjax_path`` adds) and the 3.6 MB widget manager was on every page; and
sphinx-thebe's configuration script is registered twice (``const THEBE_JS_URL`` declared twice).

* ``drop_vendored``: removes the vendored files (``vendor/**``, ``dfnb-widgets.js``) from
  ``html_js_files``.  MathJax then comes only through ``mathjax_path``, on pages with maths; the
  widget manager only through myst-nb's ``nb_ipywidgets_js``, on pages whose notebook holds
  widget state.
* ``dedupe_scripts``: keeps the first of identical script entries (same file or body, same attributes).
* ``icon_on_redirect``: gives the root ``index.html`` (sphinx-external-toc's one-line redirect to the
  root page) the book's favicon, so that the browser does not ask for ``/favicon.ico`` (a 404 in the
  console) before the redirect fires.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

VENDORED = ("vendor/", "dfnb-widgets.js")


def _name(entry) -> str:
    return str(entry[0] if isinstance(entry, (tuple, list)) else entry)


def drop_vendored(app, config) -> None:
    config.html_js_files = [e for e in config.html_js_files if not _name(e).startswith(VENDORED)]


def script_key(js) -> tuple:
    """What makes two script entries the same: file and attributes (an inline script's filename is
    ``None`` or ``""`` depending on who added it; the priority does not count)."""
    attrs = getattr(js, "attributes", {}) or {}
    return str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items()))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    files = context.get("script_files")
    if not isinstance(files, list):
        return
    seen, keep = set(), []
    for js in files:
        k = script_key(js)
        if k not in seen:
            seen.add(k)
            keep.append(js)
    files[:] = keep


def icon_on_redirect(app, exception) -> None:
    index = Path(app.outdir) / "index.html"
    favicon = app.config.html_favicon
    if exception is not None or not favicon or not index.is_file():
        return
    text = index.read_text(encoding="utf8")
    if not text.startswith('<meta http-equiv="Refresh"') or "<link" in text:
        return  # a real page, or already done
    icon = f"_static/{os.path.basename(favicon)}"
    index.write_text(f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
                     f'<link rel="icon" href="{html.escape(icon)}">\n{text.strip()}\n</head></html>\n',
                     encoding="utf8")


def setup(app):
    app.connect("config-inited", drop_vendored, priority=900)  # after Sphinx's own conversion (800)
    app.connect("html-page-context", dedupe_scripts, priority=900)  # after mathjax and myst-nb (500)
    app.connect("build-finished", icon_on_redirect, priority=900)  # after sphinx-external-toc's redirect (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
