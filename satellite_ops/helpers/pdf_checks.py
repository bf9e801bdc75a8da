"""Checks that turn a bad input file into a clear per-item failure, and docling's result into
output objects.

docling reports every unreadable input with the same "could not load document" line; a user
moving a file to a failure bucket wants to know whether it was empty, not a PDF at all,
damaged or password-protected. These are told apart here, before conversion, with pdfium
(which docling installs anyway), and they are :class:`FatalError`: no retry can fix a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from satellite_ops.errors import FatalError

HEADER_WINDOW = 1024  # the PDF spec lets '%PDF-' start anywhere in the first 1024 bytes
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (DOCX/XLSX/ZIP)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"{", "JSON or text"),
)


def _kind(head: bytes) -> str:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    lowered = head[:200].lower()
    if b"<html" in lowered or b"<!doctype" in lowered:
        return "an HTML page"
    sample = head[:40].decode("utf-8", errors="replace")
    if sample.isprintable() or all(c.isprintable() or c.isspace() for c in sample):
        return f"text ({sample!r}...)"
    return "binary data"


def check_pdf(path: Path, source: str) -> int | None:
    """The page count of a readable, unencrypted PDF (``None`` when pdfium is not installed);
    a FatalError saying what is wrong otherwise."""
    size = path.stat().st_size
    if size == 0:
        raise FatalError(f"{source}: empty file (0 bytes), not a PDF")
    with path.open("rb") as handle:
        head = handle.read(HEADER_WINDOW)
    if b"%PDF-" not in head:
        raise FatalError(f"{source}: not a PDF: the file is {_kind(head)}")
    try:
        import pypdfium2
    except ImportError:  # docling will still refuse a broken file, less precisely
        return None
    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as exc:
        reason = str(exc)
        if "password" in reason.lower():
            raise FatalError(
                f"{source}: encrypted PDF: it needs a password to open, and none is configured"
            ) from None
        raise FatalError(f"{source}: corrupt PDF ({size} bytes): pdfium says {reason}") from None
    try:
        pages = len(document)
    finally:
        document.close()
    if pages == 0:
        raise FatalError(f"{source}: the PDF has no pages")
    return pages


def conversion_failure(result: Any, source: str, timeout: float | None) -> None:
    """Raise when docling did not convert the document (or gave up at the timeout)."""
    status = str(getattr(result.status, "value", result.status)).lower()
    errors = list(getattr(result, "errors", []) or [])
    messages = "; ".join(str(getattr(e, "error_message", e)) for e in errors) or status
    if any("timeout" in str(getattr(e, "category", "")).lower() for e in errors):
        raise TimeoutError(f"{source}: docling gave up at timeout-seconds={timeout}: {messages}")
    if status in ("success", "partial_success"):
        return
    raise FatalError(f"{source}: docling could not convert it ({status}): {messages}")


def render_outputs(
    document: Any,
    *,
    output_format: str,
    per_page: bool,
    extract_images: bool,
    pages: Iterable[int],
) -> list[dict[str, Any]]:
    """One ``{"markdown"|"text"|"document": ...}`` object for the file, or one per page."""
    from docling_core.types.doc import ImageRefMode

    image_mode = ImageRefMode.EMBEDDED if extract_images else ImageRefMode.PLACEHOLDER

    def one(page_no: int | None) -> dict[str, Any]:
        if output_format == "markdown-string":
            return {"markdown": document.export_to_markdown(image_mode=image_mode, page_no=page_no)}
        if output_format == "text":
            return {"text": document.export_to_text(page_no=page_no)}
        doc = document if page_no is None else document.filter(page_nrs={page_no})
        return {"document": doc.export_to_dict()}

    if not per_page:
        return [one(None)]
    return [{"page": page_no, **one(page_no)} for page_no in pages]
