"""The bytes of the stand-in's OneDrive files: real .html, .docx and .pdf documents, written without any
test-only package.

The stand-in is product code (`python -m deskpilot.server.connectors.standin` runs it for a demo or a
manual check), so it cannot lean on the test suite's corpus writers, which use fpdf2. A .docx comes from
python-docx, a runtime dependency already. A PDF needs so little that we write it by hand: one Helvetica
text stream per page, which is what a simple "print to PDF" produces and what pypdf (the loader's
runtime dependency) extracts line by line.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

__all__ = ["docx_bytes", "html_text", "pdf_bytes"]

# A4 in points, 2 cm margins, 11 pt Helvetica on a 14 pt line: ~85 characters a line, 54 lines a page.
_WIDTH, _HEIGHT, _MARGIN, _LEADING = 595, 842, 56, 14
_CHARS_PER_LINE = 85
_LINES_PER_PAGE = (_HEIGHT - 2 * _MARGIN) // _LEADING


def html_text(title: str, paragraphs: Sequence[str]) -> str:
    """An HTML page with a style and a script block, which an indexer must not take for text."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title}</title><style>p {{ color: #333 }}</style>"
        f"<script>var tracking = 'not text';</script></head><body><h1>{title}</h1>\n{body}\n</body></html>"
    )


def docx_bytes(paragraphs: Sequence[str], *, title: str = "") -> bytes:
    import docx  # python-docx: imported when a .docx is asked for, not when the stand-in starts

    document = docx.Document()
    if title:
        document.core_properties.title = title
        document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (what the font declares); other characters become '?'."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf_bytes(text: str, *, title: str = "") -> bytes:
    """A PDF of `text` (lines wrapped, pages broken as needed), with `title` in its document info."""
    lines = [
        line
        for paragraph in text.split("\n")
        for line in textwrap.wrap(paragraph, _CHARS_PER_LINE, break_on_hyphens=False) or [""]
    ]
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)] or [[]]
    # Objects 1-4: catalog, page tree, font, document info; then a page and its content stream per page.
    kids = [5 + 2 * i for i in range(len(pages))]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title %s /Producer (Deskpilot Graph stand-in) >>" % _pdf_string(title),
    ]
    for kid, page in zip(kids, pages, strict=True):
        shown = b" ".join(_pdf_string(line) + b" Tj T*" for line in page)
        content = b"BT /F1 11 Tf %d TL %d %d Td %s ET" % (_LEADING, _MARGIN, _HEIGHT - _MARGIN, shown)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (_WIDTH, _HEIGHT, kid + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
