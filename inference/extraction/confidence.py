"""Confidence per field and per document, from the model's token probabilities and independent checks.

Token confidence of a value: the tokens that wrote it are those overlapping its span in the output (for a
string, its characters inside the quotes; for an empty string, the closing quote), and its confidence is
the geometric mean of their probabilities, exp(mean log p). The geometric mean is the per-token
probability of the whole value, so a long address is not punished for its length the way a product of
probabilities would punish it, while a value the model hesitated over throughout still scores low. A null
is scored like any value: the probability of writing `null` there.

That number is then moved by evidence that does not come from the model (all factors fixed in advance,
stated here, not fitted to any data set):

- a deterministic extractor found the same value ("agrees"): halve the remaining doubt, c = 1 - (1 - c) / 2;
- it found candidates of that kind but not this value ("disagrees"), or found a value the model left null
  ("missed"): c = c / 2;
- a text value whose words are not all in the source ("grounding" < 1, a sign of invention): c = c x
  (0.5 + 0.5 x share of its words found);
- each failed rule check that involves the field: c = c / 2.

With grounded decoding (`grounding.py`) a date or amount is always one the extractors found somewhere in
the document; the cross-check then asks whether it is the one in the right role (the labelled total, the
date not marked as due), which is still evidence the model did not produce itself.

A value the extractors supplied (`source` "extractor": read next to a label and forced on the model, see
`grounding.py`) agrees with the extractors by construction, so it gets the "agrees" step for the label it
was read from; its token confidence is the model's own probability of writing that value, so a value the
model would not have written still scores low.

Document confidence: the geometric mean over top-level fields, each the geometric mean of its leaves (so a
long list of line items counts as one field). A document whose output had to be repaired is capped at 0.2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import msgspec

from deskpilot.inference._types import Token
from deskpilot.inference.extraction._json import Node

__all__ = ["CrossCheck", "FieldReport", "document_confidence", "token_confidences", "word_support"]

CrossCheck = Literal["agrees", "disagrees", "missed"]
REPAIRED_CAP = 0.2


class FieldReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How sure we are of one value, and why."""

    confidence: float
    token_confidence: float | None = None
    cross_check: CrossCheck | None = None
    grounding: float | None = None  # share of the value's words found in the source text
    failed_rules: list[str] = []
    repaired: bool = False  # the value was filled in or cleared by the repair step, not written by the model
    # Who chose the value (see the module docstring); "memory": a person's earlier correction (`hybrid.py`).
    source: Literal["model", "extractor", "memory"] = "model"
    # The score before calibration (`hybrid.py`), when `confidence` is a calibrated probability.
    raw_confidence: float | None = None


def _offsets(tokens: Sequence[Token]) -> list[tuple[int, int, float | None]]:
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token.text), token.logprob))
        position += len(token.text)
    return spans


def token_confidences(nodes: Sequence[Node], tokens: Sequence[Token]) -> dict[str, float | None]:
    """Path -> geometric-mean probability of the tokens that wrote that value (None: no log-probs)."""
    spans = _offsets(tokens)
    result: dict[str, float | None] = {}
    for node in nodes:
        start, end = node.start, max(node.end, node.start + 1)
        logprobs = [lp for s, e, lp in spans if s < end and start < e]
        known = [lp for lp in logprobs if lp is not None]
        result[node.path] = (
            math.exp(sum(known) / len(known)) if known and len(known) == len(logprobs) else None
        )
    return result


def word_support(value: str, source_words: set[str]) -> float:
    """Share of the value's words (letters and digits) that occur in the source."""
    words = re.findall(r"\w+", value.casefold())
    if not words:
        return 1.0
    return sum(word in source_words for word in words) / len(words)


def combine(
    token: float | None, *, cross_check: CrossCheck | None, grounding: float | None, failed_rules: int
) -> float:
    """One field's confidence from its token confidence and the checks (see the module docstring)."""
    c = 0.5 if token is None else token
    if grounding is not None and grounding < 1:
        c *= 0.5 + 0.5 * grounding
    if cross_check == "agrees":
        c = 1 - (1 - c) / 2
    elif cross_check in ("disagrees", "missed"):
        c /= 2
    c /= 2.0**failed_rules  # a float power: int ** int is typed Any (a negative power is a float)
    return round(min(max(c, 0.0), 1.0), 4)


def _geometric_mean(values: Sequence[float]) -> float:
    if not values:
        return 1.0
    return math.exp(sum(math.log(max(v, 1e-6)) for v in values) / len(values))


def document_confidence(fields: dict[str, FieldReport], *, repaired: bool) -> float:
    groups: dict[str, list[float]] = {}
    for path, report in fields.items():
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        groups.setdefault(top, []).append(report.confidence)
    confidence = _geometric_mean([_geometric_mean(values) for values in groups.values()])
    if repaired:
        confidence = min(confidence, REPAIRED_CAP)
    return round(confidence, 4)
