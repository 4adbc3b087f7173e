"""Faithful summaries: the check a summary run ends with (the checker is `inference/faithful.py`).

The source of a summary is what the model was shown: the `text`, or the email's body and then the bodies
of the earlier messages of its thread, in request order (a source sentence's `part` says which). A
`headline` is checked as one line, and what replaces it is a key sentence cut to `HEADLINE_WORDS` words.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from deskpilot.inference.faithful import Faithful, FaithfulChecker, Source
from deskpilot.server.runs import FaithfulCheck
from deskpilot.server.tasks.wire import SummarizeRequest

__all__ = ["HEADLINE_WORDS", "check_summary", "summary_check", "summary_parts"]

# A headline that has to be quoted from the source is cut to this many words (a subject line's length).
HEADLINE_WORDS = 12


def summary_parts(data: SummarizeRequest) -> list[str]:
    """The texts a summary may draw on, as `part` numbers them."""
    if data.email is None:
        return [data.text or ""]
    return [data.email.body, *(m.body for m in data.thread)]


def check_summary(
    checker: FaithfulChecker,
    parts: Sequence[str],
    output: str,
    *,
    length: str,
    sentences: int,
    source: Source | None = None,
) -> Faithful:
    """A summary the model wrote, checked against `parts` (see the module docstring); `source`: the
    parts already split and embedded."""
    source = source or checker.source(parts)
    if length == "headline":
        return checker.check_headline(output, source, max_words=HEADLINE_WORDS)
    return checker.check(output, source, sentences=sentences)


def summary_check(checker: FaithfulChecker, data: SummarizeRequest) -> FaithfulCheck:
    """The check of one summarize request's run."""
    parts = summary_parts(data)
    # The email is split and embedded once, while the model writes (`FaithfulCheck.begin`).
    source = functools.cache(lambda: checker.source(parts))
    return FaithfulCheck(
        lambda output: check_summary(
            checker, parts, output, length=data.length, sentences=data.sentences, source=source()
        ),
        prepare=source,
    )
