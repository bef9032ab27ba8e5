"""Every page stays light: HTML plus its images under 2 MB (the table prints at the end)."""

from __future__ import annotations

from .conftest import book_root, page_weight

LIMIT_MB = page_weight.DEFAULT_LIMIT_MB


def test_page_under_weight_limit(book, book_page):
    weight = page_weight.measure(book_root(), book_page)
    assert not weight.missing_images, f"{book_page}: images with no file: {weight.missing_images}"
    assert weight.total_bytes <= LIMIT_MB * page_weight.MB, (
        f"{book_page} weighs {weight.total_bytes / page_weight.MB:.2f} MB with its "
        f"{len(weight.images)} images (limit {LIMIT_MB:g} MB): lower the figures' DPI, "
        "use fewer or smaller figures, or split the page"
    )
