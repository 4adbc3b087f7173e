"""Per field, the model's value or the extractors' value: whichever is more likely right, by calibration.

The model and the deterministic extractors fail differently: the extractors read what a label says and are
lost without one; the small model reads any layout and picks a wrong line with confidence. Taking either
alone loses what the other gets right, so for each top-level field the extractors cover, `choose` weighs
the two candidates (`candidates`) with a `Calibration` fitted on labelled documents and keeps the likelier:

- both gave the same value (`agree`): that value, scored by the model's confidence;
- they differ (`model` and `extractor`): the model's value is scored by its confidence; the extractors'
  by how little the model believes in its own different value, raised where the extractor's reading has
  evidence of its own (`_evidence`: a company's legal form, a label). Each score goes through its own
  calibrated map, and the higher probability wins;
- neither has a value (`none`): null, scored by the model's confidence in writing null;
- a remembered value (`memory`: what a person kept for this vendor before, with the probability the
  memory has earned so far) competes with the likelier of those, and wins where it is likelier still.

The chosen value's confidence becomes the calibrated probability, and the document's the probability that
every calibrated field is right (their product: a document is right only when all of them are). Without a
calibration for a field, the model's value and raw confidence stay as they were.

What goes to review then (`review_reasons`): a document whose probability is below the threshold that the
target precision sets (`Calibration.threshold`); output that had to be repaired in a field the model still
answers; and a failed rule check about fields outside the calibration (line items, say), since nothing
measured vouches for those. A failed rule about a calibrated field is not a reason of its own: it already
lowered the field's raw score, and the calibration says what that score is worth.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

import jsonschema_rs
import msgspec

from deskpilot.inference.extraction.calibration import Calibration
from deskpilot.inference.extraction.confidence import FieldReport
from deskpilot.inference.extraction.extract import ExtractionResult
from deskpilot.inference.extraction.extractors import Facts, names_company
from deskpilot.inference.extraction.normalize import infer_day_first, parse_amount, parse_date, text_key
from deskpilot.inference.extraction.schemas import ExtractionSchema

__all__ = [
    "Candidate",
    "Source",
    "candidates",
    "choose",
    "extractor_values",
    "review_reasons",
    "same_value",
]

Source = Literal["model", "extractor", "agree", "none", "memory"]


class Candidate(msgspec.Struct, frozen=True):
    """A value for one field, who proposed it, and its raw (uncalibrated) score in [0, 1]."""

    value: Any
    source: Source
    score: float


def extractor_values(schema: ExtractionSchema, facts: Facts) -> dict[str, Any]:
    """What the extractors alone say, per top-level field of `schema` (by its role); None where they found
    nothing for a role they cover. Fields of roles they do not cover are left out."""
    by_kind: dict[str, Any] = {
        "vendor": facts.vendor,
        "address": facts.vendor_address,
        "date.issue": facts.issue_date and facts.issue_date.isoformat(),
        "date.due": facts.due_date and facts.due_date.isoformat(),
        "amount.total": facts.total,
        "amount.subtotal": facts.subtotal,
        "amount.tax": facts.tax,
        "currency": facts.currency,
        "invoice_number": facts.invoice_numbers[0] if facts.invoice_numbers else None,
    }
    values: dict[str, Any] = {}
    for field in schema.decode_schema.get("properties", {}):
        kind = schema.kind_of(field) or ""
        if kind in by_kind:
            value = by_kind[kind]
            values[field] = float(value) if isinstance(value, Decimal) else value
    return values


def same_value(kind: str | None, a: Any, b: Any, *, day_first: bool = True) -> bool:
    """Two values the same once normalised by role (dates as dates, amounts to the cent, text by key)."""
    if a is None or b is None:
        return a is None and b is None
    base = (kind or "").split(".")[0]
    if base == "date":
        da, db = parse_date(str(a), day_first=day_first), parse_date(str(b), day_first=day_first)
        if da is not None and db is not None:
            return da == db
    if base == "amount":
        aa, ab = parse_amount(a), parse_amount(b)
        if aa is not None and ab is not None:
            return abs(aa - ab) < Decimal("0.005")
    return text_key(str(a)) == text_key(str(b))


def _evidence(kind: str, value: Any) -> float:
    """How much the extractor's own reading supports its value, in [0, 1], fixed in advance: a name with a
    legal form, a multi-part address with a number; values read after a label (dates, amounts, ids) count
    as supported, as the extractors only report those."""
    if kind == "vendor":
        return 1.0 if names_company(str(value)) else 0.5
    if kind == "address":
        text = str(value)
        return 1.0 if any(ch.isdigit() for ch in text) and text.count(",") + text.count(" ") >= 4 else 0.5
    return 1.0


def candidates(
    schema: ExtractionSchema, result: ExtractionResult, extracted: dict[str, Any], day_first: bool
) -> dict[str, list[Candidate]]:
    """Per field the extractors cover, the candidates to weigh (see the module docstring)."""
    found: dict[str, list[Candidate]] = {}
    for field, theirs in extracted.items():
        report = result.fields.get(field)
        confidence = report.confidence if report is not None else 0.5
        ours = result.data.get(field)
        kind = schema.kind_of(field) or ""
        if ours is None and theirs is None:
            found[field] = [Candidate(None, "none", confidence)]
        elif same_value(kind, ours, theirs, day_first=day_first):
            found[field] = [Candidate(ours, "agree", confidence)]
        else:
            options = []
            if ours is not None:
                options.append(Candidate(ours, "model", confidence))
            if theirs is not None:
                doubt = 1 - confidence if ours is not None else 1.0
                options.append(
                    Candidate(theirs, "extractor", round((doubt + _evidence(kind, theirs)) / 2, 4))
                )
            found[field] = options
    return found


def _validator(schema: ExtractionSchema, field: str) -> Callable[[Any], bool]:
    """Whether a value is one the schema allows for `field` (any value where it says nothing)."""
    prop = schema.decode_schema.get("properties", {}).get(field)
    if prop is None:
        return lambda value: True
    return jsonschema_rs.validator_for(prop).is_valid


def choose(
    schema: ExtractionSchema,
    result: ExtractionResult,
    *,
    text: str,
    facts: Facts,
    calibration: Calibration,
    memory: Mapping[str, tuple[Any, float]] | None = None,
) -> ExtractionResult:
    """`result` with each calibrated field set to its likelier candidate (`memory`: field -> a remembered
    value and its probability), field confidences calibrated, and the document confidence the
    probability that every calibrated field is right."""
    day_first = infer_day_first(text)
    data, fields = dict(result.data), dict(result.fields)
    probabilities: list[float] = []
    for field, options in candidates(schema, result, extractor_values(schema, facts), day_first).items():
        fits = _validator(schema, field)
        scored = [(calibration.probability(field, c.source, c.score), c) for c in options]
        # A candidate the schema refuses (an extractor's line longer than the field's maxLength) is never
        # chosen: the result must stay one a reviewer can accept or edit as it is.
        known = [(p, c) for p, c in scored if p is not None and fits(c.value)]
        if not known:
            continue
        probability, best = max(known, key=lambda pc: pc[0])
        remembered = (memory or {}).get(field)
        if remembered is not None and remembered[1] > probability and fits(remembered[0]):
            probability, best = remembered[1], Candidate(remembered[0], "memory", remembered[1])
        data[field] = best.value
        previous = fields.get(field) or FieldReport(confidence=0.0)
        source = previous.source if best.source in ("model", "agree", "none") else best.source
        fields[field] = msgspec.structs.replace(
            previous,
            confidence=round(probability, 4),
            raw_confidence=previous.confidence,
            source=source,
            repaired=previous.repaired and source == "model",
        )
        probabilities.append(probability)
    if not probabilities:
        return result
    confidence = round(math.prod(probabilities), 4)
    return msgspec.structs.replace(result, data=data, fields=fields, confidence=confidence)


def review_reasons(result: ExtractionResult, calibration: Calibration, threshold: float) -> list[str]:
    """Why a calibrated result needs a person (see the module docstring); empty when it does not."""
    calibrated = set(calibration.maps)
    reasons = []
    model_repaired = [p for p, r in result.fields.items() if r.repaired and r.source == "model"]
    if result.repaired and model_repaired:
        reasons.append("the output had to be repaired: " + "; ".join(result.problems))
    for rule in result.rules:
        tops = {re.split(r"[.\[]", path, maxsplit=1)[0] for path in rule.fields}
        if rule.status == "fail" and not tops & calibrated:
            reasons.append(f"rule failed: {rule.rule} ({rule.message})")
    if result.confidence < threshold:
        reasons.append(
            f"probability {result.confidence:.2f} that every field is right is below {threshold:.2f},"
            " the threshold for the target precision"
        )
    return reasons
