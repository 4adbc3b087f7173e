"""Turn file bytes into text segments (one per page where the format has pages), or say why not.

Loaders take the bytes that were hashed, not a path, so the text indexed is exactly the content whose
hash is recorded. Every failure becomes `SkipFile(reason, detail)`: a bad file is a fact about the
user's data, reported per file, never an error that stops a run.
"""

from __future__ import annotations

import codecs
import email.policy
import email.utils
import io
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

from deskpilot.indexes._types import SkipReason

__all__ = ["SUPPORTED_SUFFIXES", "LoadedDocument", "SkipFile", "html_to_text", "load_bytes"]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BLOCK_TAGS = [
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "li",
    "tr",
    "td",
    "th",
    "table",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "title",
    "dt",
    "dd",
    "hr",
]
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n(?:[ \t\r\f\v]*\n)+")


class SkipFile(Exception):
    def __init__(self, reason: SkipReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


@dataclass
class LoadedDocument:
    kind: str
    # (page or None, text) in reading order; the document's text is the segments joined by "\n\n".
    segments: list[tuple[int | None, str]]
    title: str = ""
    date: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def decode_text(data: bytes) -> str:
    """Decode a text file: BOMs honoured, UTF-8 preferred, cp1252 as the legacy fallback."""
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    head = data[:8192]
    if b"\x00" in head:
        raise SkipFile(SkipReason.BINARY, "contains NUL bytes; not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    sample = text[:8192]
    if sample and len(_CONTROL.findall(sample)) > len(sample) * 0.05:
        raise SkipFile(SkipReason.BINARY, "mostly control characters; not a text file")
    return text


def html_to_text(markup: str | bytes) -> tuple[str, str]:
    """(title, visible text) of an HTML document."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    # Line breaks after block elements only, so that inline markup ("<b>bold</b> text") stays one line.
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_after("\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    text = soup.get_text()
    text = "\n".join(line.strip() for line in text.splitlines())
    return title, _BLANK_LINES.sub("\n\n", text).strip()


def _load_text(data: bytes) -> LoadedDocument:
    return LoadedDocument("text", [(None, decode_text(data))])


def _load_markdown(data: bytes) -> LoadedDocument:
    text = decode_text(data)
    heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return LoadedDocument("markdown", [(None, text)], title=heading.group(1).strip() if heading else "")


def _load_html(data: bytes) -> LoadedDocument:
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SkipFile(SkipReason.BINARY, "contains NUL bytes; not an HTML file")
    title, text = html_to_text(data)
    return LoadedDocument("html", [(None, text)], title=title)


def _email_text(headers: Sequence[tuple[str, str | None]], body: str) -> str:
    head = "\n".join(f"{name}: {value}" for name, value in headers if value)
    return f"{head}\n\n{body.strip()}" if head else body.strip()


def _load_eml(data: bytes) -> LoadedDocument:
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    if b"\x00" in data[:8192]:
        raise SkipFile(SkipReason.BINARY, "contains NUL bytes; not an email file")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise SkipFile(SkipReason.CORRUPT, "no email headers")
    body = ""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is not None:
        try:
            content = part.get_content()
        except (LookupError, ValueError) as exc:  # unknown charset, broken transfer encoding
            raise SkipFile(SkipReason.CORRUPT, f"unreadable body: {exc}") from exc
        body = html_to_text(content)[1] if part.get_content_type() == "text/html" else str(content)
    date = None
    if message["date"]:
        try:
            date = _utc(email.utils.parsedate_to_datetime(str(message["date"])))
        except (TypeError, ValueError):
            date = None
    subject = str(message["subject"] or "")
    headers = [
        ("Subject", subject),
        ("From", str(message["from"] or "")),
        ("To", str(message["to"] or "")),
        ("Date", str(message["date"] or "")),
    ]
    return LoadedDocument(
        "email",
        [(None, _email_text(headers, body))],
        title=subject,
        date=date,
        extra={"message_id": str(message["message-id"] or "")},
    )


def _load_msg(data: bytes) -> LoadedDocument:
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    if not data.startswith(_OLE_MAGIC):
        raise SkipFile(SkipReason.CORRUPT, "not an Outlook .msg file (no OLE header)")
    import extract_msg

    try:
        message = extract_msg.openMsg(data, delayAttachments=True)
    except Exception as exc:  # extract-msg raises many types for bad input; all mean "cannot read"
        raise SkipFile(SkipReason.CORRUPT, f"cannot read .msg: {exc}") from exc
    try:
        subject = getattr(message, "subject", None) or ""
        body = getattr(message, "body", None) or ""
        html = getattr(message, "htmlBody", None)  # a Message has it; other .msg kinds do not
        if not body.strip() and html:
            body = html_to_text(html)[1]
        date = getattr(message, "date", None)
        headers = [
            ("Subject", subject),
            ("From", getattr(message, "sender", None)),
            ("To", getattr(message, "to", None)),
            ("Date", date.isoformat() if date else None),
        ]
        return LoadedDocument(
            "email",
            [(None, _email_text(headers, body))],
            title=subject,
            date=_utc(date) if isinstance(date, datetime) else None,
        )
    except Exception as exc:
        raise SkipFile(SkipReason.CORRUPT, f"cannot read .msg: {exc}") from exc
    finally:
        message.close()


def _is_encrypted_office(data: bytes) -> bool:
    # A password-protected .docx is not a zip but an OLE container holding an "EncryptedPackage".
    return data.startswith(_OLE_MAGIC) and "EncryptedPackage".encode("utf-16-le") in data


def _load_docx(data: bytes) -> LoadedDocument:
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    if _is_encrypted_office(data):
        raise SkipFile(SkipReason.ENCRYPTED, "password-protected Word document")
    if not data.startswith(_ZIP_MAGIC):
        raise SkipFile(SkipReason.CORRUPT, "not a .docx file (no zip header)")
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    parts.append(" | ".join(c for c in cells if c))
            else:
                parts.append(block.text)
        props = document.core_properties
        title, date = props.title or "", props.modified or props.created
    except Exception as exc:  # python-docx and lxml raise many types for damaged packages
        raise SkipFile(SkipReason.CORRUPT, f"cannot read .docx: {exc}") from exc
    text = _BLANK_LINES.sub("\n\n", "\n".join(parts)).strip()
    if not title:
        title = next((p.strip() for p in parts if p.strip()), "")[:200]
    return LoadedDocument("docx", [(None, text)], title=title, date=_utc(date))


def _load_pdf(data: bytes) -> LoadedDocument:
    if not data:
        raise SkipFile(SkipReason.EMPTY, "0 bytes")
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise SkipFile(SkipReason.ENCRYPTED, "password-protected PDF")
        pages = list(reader.pages)
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises assorted errors for damaged files
        raise SkipFile(SkipReason.CORRUPT, f"cannot read PDF: {exc}") from exc
    segments: list[tuple[int | None, str]] = []
    failed = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # one damaged page should not lose the others
            failed += 1
            continue
        if text.strip():
            segments.append((number, text))
    if not segments:
        detail = f"{failed} of {len(pages)} pages unreadable" if failed else "no extractable text (scanned?)"
        raise SkipFile(SkipReason.CORRUPT if failed else SkipReason.NO_TEXT, detail)
    title, date = "", None
    try:
        meta = reader.metadata
        if meta is not None:
            title = str(meta.title or "")
            date = meta.modification_date or meta.creation_date
    except Exception:  # malformed metadata is not worth losing the text for
        pass
    return LoadedDocument("pdf", segments, title=title, date=_utc(date))


_LOADERS: dict[str, Callable[[bytes], LoadedDocument]] = {
    ".txt": _load_text,
    ".text": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".eml": _load_eml,
    ".msg": _load_msg,
    ".docx": _load_docx,
    ".pdf": _load_pdf,
}
SUPPORTED_SUFFIXES = frozenset(_LOADERS)


def load_bytes(data: bytes, suffix: str) -> LoadedDocument:
    """Parse `data` as a file of type `suffix` (".pdf"). Raises SkipFile with the reason."""
    loader = _LOADERS.get(suffix.lower())
    if loader is None:
        raise SkipFile(SkipReason.UNSUPPORTED, f"no loader for {suffix or 'files without extension'}")
    # Parsers warn about oddities of the file (a malformed xref, an unknown charset): those are facts
    # about user data, not about our code, so they must not surface as warnings (or errors under
    # `-W error`).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            document = loader(data)
        except SkipFile:
            raise
        except RecursionError as exc:
            raise SkipFile(SkipReason.CORRUPT, "nested too deeply to parse") from exc
    if not any(text.strip() for _, text in document.segments):
        raise SkipFile(SkipReason.NO_TEXT, "no text in the document")
    return document
