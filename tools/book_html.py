"""Sphinx extension: small fixes to every HTML page of the book.

1. A meta description on every page. Search engines and link previews show a page's
   ``<meta name="description">``. An author can write one per page (Markdown front matter
   ``myst: html_meta: {"description lang=en": "..."}``, or the same ``myst`` key in a
   notebook's metadata); for every page that has none, one is written from the page's first
   paragraph, with the matching Open Graph title and description.
2. No inline script twice. Sphinx 7.4 writes an inline ``<script>`` twice when an extension
   adds it after the builder starts (``app.add_js_file(None, body=...)``: it is re-added
   with filename ``''`` instead of ``None``). sphinx-thebe's ``const THEBE_JS_URL = ...`` is
   one, and its second copy throws "Identifier 'THEBE_JS_URL' has already been declared" on
   every page.

Loaded from ``_config.yml`` (``sphinx: local_extensions: {book_html: tools}``).
"""

from __future__ import annotations

import html
import re

from docutils import nodes

MAX_CHARS = 160

# TeX commands that turn up in first paragraphs, written as the character a reader sees.
_TEX = {
    r"\gamma": "γ",
    r"\beta": "β",
    r"\mu": "μ",
    r"\sigma": "σ",
    r"\epsilon": "ε",
    r"\varepsilon": "ε",
    r"\alpha": "α",
    r"\eta": "η",
    r"\sqrt": "√",
    r"\cdot": "·",
    r"\times": "×",
    r"\approx": "≈",
    r"\to": "→",
    r"\ell": "ℓ",
}

# Pages Sphinx writes without a source document.
_SPECIAL = {
    "genindex": "Index of the terms, names and symbols of {title}.",
    "search": "Search the pages of {title}.",
}


def _plain_math(tex: str) -> str:
    """Turn a short TeX snippet into readable text: symbols kept, markup dropped."""
    for cmd, char in sorted(_TEX.items(), key=lambda kv: -len(kv[0])):
        tex = tex.replace(cmd, char)
    tex = re.sub(r"\\(?:hat|bar|mathrm|mathbf|text|operatorname)\b", "", tex)
    tex = re.sub(r"\\[A-Za-z]+", "", tex)
    return tex.replace("{", "").replace("}", "").replace("\\", "")


def _text(node: nodes.Node) -> str:
    if isinstance(node, nodes.math):
        return _plain_math(node.astext())
    if isinstance(node, nodes.Text):
        return str(node)
    if isinstance(node, (nodes.footnote_reference, nodes.citation_reference)):
        return ""
    return "".join(_text(child) for child in node.children)


def _shorten(text: str, limit: int = MAX_CHARS) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + "…"


def first_paragraph(doctree: nodes.document) -> str:
    """Return the text of the first paragraph of body prose in ``doctree`` ('' if none).

    Parameters
    ----------
    doctree : docutils.nodes.document
        The resolved document of one page.

    Returns
    -------
    str
        Whitespace-collapsed text, math written with Unicode symbols where it can be.

    Examples
    --------
    >>> from docutils.core import publish_doctree
    >>> first_paragraph(publish_doctree("Title\\n=====\\n\\nBatch norm   helps training."))
    'Batch norm helps training.'
    """
    short = ""
    for para in doctree.findall(nodes.paragraph):
        # Skip paragraphs of admonitions, captions, tables, footers and the like.
        parent = para.parent
        if not isinstance(parent, (nodes.section, nodes.document, nodes.compound)):
            continue
        text = re.sub(r"\s+", " ", _text(para)).strip()
        # A sentence, not a one-line pointer such as "Chapter: <link>".
        if len(text) >= 60:
            return text
        if len(text) >= 20 and not short:
            short = text
    return short


def add_description(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` handler: add a description unless the page set one."""
    metatags = context.get("metatags", "")
    title = app.config.html_title or app.config.project
    own = re.search(r'<meta[^>]*\bname="description"[^>]*>', metatags)
    if own:  # the author wrote one (myst html_meta): keep it
        match = re.search(r'\bcontent="([^"]*)"', own.group(0))
        description = html.unescape(match.group(1)) if match else ""
    elif doctree is not None:
        description = first_paragraph(doctree)
        page_title = re.sub(r"<[^>]+>", "", context.get("title") or "")
        if not description:
            description = f"{html.unescape(page_title)}: a page of {title}."
        description = _shorten(description)
        metatags += f'\n<meta name="description" content="{html.escape(description)}" />'
    else:
        description = _SPECIAL.get(pagename, "A page of {title}.").format(title=title)
        metatags += f'\n<meta name="description" content="{html.escape(description)}" />'
    if "og:description" not in metatags and description:
        page_title = html.unescape(re.sub(r"<[^>]+>", "", context.get("title") or title))
        metatags += (
            f'\n<meta property="og:title" content="{html.escape(page_title)}" />'
            f'\n<meta property="og:description" content="{html.escape(description)}" />'
        )
    context["metatags"] = metatags


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` handler: drop repeated inline and file scripts of a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", tuple(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    # A new list: the builder's own list is restored for the next page anyway.
    context["script_files"] = unique


def setup(app):
    """Register the handlers with Sphinx (late, after other extensions add their assets)."""
    app.connect("html-page-context", add_description)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
