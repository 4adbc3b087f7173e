"""Split a document's text into overlapping chunks that remember where they came from.

A document is a list of (page, text) segments joined by a blank line; offsets are positions in that
joined text, so a chunk's `text == document_text[start:end]` always holds. Chunks never cross a page
boundary (a citation names one page), and are cut at the most natural boundary available inside the
second half of the window: paragraph, then line or sentence, then clause, then word.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SEGMENT_SEPARATOR", "Chunk", "chunk_segments", "join_segments"]

SEGMENT_SEPARATOR = "\n\n"
_BREAKS: tuple[tuple[str, ...], ...] = (
    ("\n\n",),
    ("\n", ". ", "? ", "! ", ".\t"),
    ("; ", ", ", ": "),
    (" ", "\t"),
)


class Chunk(NamedTuple):
    start: int
    end: int
    page: int | None
    text: str


def join_segments(segments: list[tuple[int | None, str]]) -> tuple[str, list[tuple[int, int, int | None]]]:
    """The document text and each segment's (start, end, page) in it."""
    spans: list[tuple[int, int, int | None]] = []
    parts: list[str] = []
    offset = 0
    for page, text in segments:
        if parts:
            parts.append(SEGMENT_SEPARATOR)
            offset += len(SEGMENT_SEPARATOR)
        parts.append(text)
        spans.append((offset, offset + len(text), page))
        offset += len(text)
    return "".join(parts), spans


def _break_at(text: str, lo: int, hi: int) -> int:
    """The end of the best boundary in text[lo:hi], or hi when there is none."""
    for separators in _BREAKS:
        best = -1
        for sep in separators:
            found = text.rfind(sep, lo, hi)
            if found >= 0:
                best = max(best, found + len(sep))
        if best > lo:
            return best
    return hi


def _chunk_span(text: str, start: int, end: int, page: int | None, size: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    pos = start
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        cut = end if end - pos <= size else _break_at(text, pos + size // 2, pos + size)
        stop = cut
        while stop > pos and text[stop - 1].isspace():
            stop -= 1
        chunks.append(Chunk(pos, stop, page, text[pos:stop]))
        if cut >= end:
            break
        # Start the next chunk `overlap` characters back, at a word start, but always move forward.
        nxt = max(cut - overlap, pos + 1)
        if overlap and nxt < cut:
            space = min(
                (i for i in (text.find(" ", nxt, cut), text.find("\n", nxt, cut)) if i >= 0), default=-1
            )
            nxt = space + 1 if space >= 0 else cut
        pos = nxt
    return chunks


def chunk_segments(
    segments: list[tuple[int | None, str]], size: int = 1000, overlap: int = 150
) -> list[Chunk]:
    if size < 2 or not 0 <= overlap < size // 2:
        raise ValueError("chunk size must be >= 2 and overlap between 0 and half the size")
    text, spans = join_segments(segments)
    chunks: list[Chunk] = []
    for start, end, page in spans:
        chunks.extend(_chunk_span(text, start, end, page, size, overlap))
    return chunks
