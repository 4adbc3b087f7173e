"""Scoring extraction against labelled documents: field-level precision, recall, F1 and exact match.

A dataset is JSON Lines: `{"id", "text" (or "ocr_text"), "labels": {name: value}}`. Label names map to
schema fields (`FIELD_MAPS` knows the usual receipt names: company, address, date, total). An empty label
means the document has no such value.

How values are compared (the normalisation, stated once):
- dates (fields whose role is a date): both sides parsed as dates (day or month first as the document's
  own unambiguous dates show, day first otherwise) and compared as dates;
- amounts (role amount.*): both parsed as numbers (either decimal mark, currency marks ignored) and
  compared to the cent;
- everything else: Unicode NFKC, case-folded, whitespace collapsed and trimmed, then compared exactly;
- when a side does not parse as a date or an amount, the texts are compared as above.

Counting, per field: a prediction equal to the label is a true positive; a wrong prediction is a false
positive and a false negative; a prediction where the label is empty is a false positive; no prediction
where there is a label is a false negative. A document is an exact match when every mapped field is right
(both empty counts as right).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec

from deskpilot.inference.extraction.extractors import Facts
from deskpilot.inference.extraction.normalize import infer_day_first, parse_amount, parse_date, text_key
from deskpilot.inference.extraction.schemas import ExtractionSchema

__all__ = ["FIELD_MAPS", "Example", "FieldScore", "Report", "facts_as_document", "load_dataset", "score"]

# Label name -> schema field, for datasets that use the common receipt names.
FIELD_MAPS: dict[str, dict[str, str]] = {
    "invoice": {
        "company": "vendor",
        "address": "vendorAddress",
        "date": "issueDate",
        "total": "total",
        "vendor": "vendor",
        "invoice_number": "invoiceNumber",
        "due_date": "dueDate",
        "currency": "currency",
        "subtotal": "subtotal",
        "tax": "tax",
    },
}


class Example(msgspec.Struct, frozen=True):
    id: str
    text: str
    labels: dict[str, str | float | None]


class FieldScore(msgspec.Struct, kw_only=True):
    field: str
    support: int = 0  # documents with a label for this field
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


class Report(msgspec.Struct, kw_only=True):
    fields: list[FieldScore]
    documents: int
    exact_matches: int

    @property
    def exact_match(self) -> float:
        return self.exact_matches / self.documents if self.documents else 0.0

    @property
    def micro_f1(self) -> float:
        tp, fp, fn = (sum(getattr(f, k) for f in self.fields) for k in ("tp", "fp", "fn"))
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def load_dataset(lines: Iterable[str]) -> list[Example]:
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = msgspec.json.decode(line)
            text = raw.get("text", raw.get("ocr_text"))
            examples.append(
                Example(id=str(raw.get("id", number)), text=str(text), labels=dict(raw["labels"]))
            )
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"line {number}: not a {{id, text, labels}} record: {exc}") from exc
    return examples


def _present(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or bool(value.strip())) and value != []


def same_value(kind: str | None, predicted: Any, gold: Any, *, day_first: bool = True) -> bool:
    """Whether two values are the same after the normalisation in the module docstring."""
    base = (kind or "").split(".")[0]
    if base == "date":
        p, g = parse_date(str(predicted), day_first=day_first), parse_date(str(gold), day_first=day_first)
        if p is not None and g is not None:
            return p == g
    if base == "amount":
        p_amount, g_amount = parse_amount(predicted), parse_amount(gold)
        if p_amount is not None and g_amount is not None:
            cent = Decimal("0.01")
            return p_amount.quantize(cent) == g_amount.quantize(cent)
    return text_key(str(predicted)) == text_key(str(gold))


def score(
    schema: ExtractionSchema, field_map: dict[str, str], pairs: Iterable[tuple[Example, dict[str, Any]]]
) -> Report:
    """Score predicted documents (schema-shaped dicts) against the examples' labels."""
    scores = {label: FieldScore(field=f"{label} -> {field}") for label, field in field_map.items()}
    documents = exact = 0
    for example, predicted in pairs:
        documents += 1
        day_first = infer_day_first(example.text)
        all_right = True
        for label, field in field_map.items():
            if label not in example.labels:
                continue
            gold, guess = example.labels[label], predicted.get(field)
            counts = scores[label]
            counts.support += _present(gold)
            if _present(gold) and _present(guess):
                if same_value(schema.kind_of(field), guess, gold, day_first=day_first):
                    counts.tp += 1
                else:
                    counts.fp += 1
                    counts.fn += 1
                    all_right = False
            elif _present(guess):
                counts.fp += 1
                all_right = False
            elif _present(gold):
                counts.fn += 1
                all_right = False
        exact += all_right
    used = [s for label, s in scores.items() if s.support or s.fp]
    return Report(fields=used, documents=documents, exact_matches=exact)


def facts_as_document(schema: ExtractionSchema, facts: Facts) -> dict[str, Any]:
    """What the deterministic extractors alone say, in the shape of `schema` (top-level fields by role)."""
    by_kind: dict[str, Any] = {
        "vendor": facts.vendor,
        "address": facts.vendor_address,
        "date.issue": facts.issue_date and facts.issue_date.isoformat(),
        "date.due": facts.due_date and facts.due_date.isoformat(),
        "date": facts.dates[0].isoformat() if facts.dates else None,
        "amount.total": facts.total,
        "amount.subtotal": facts.subtotal,
        "amount.tax": facts.tax,
        "currency": facts.currency,
        "invoice_number": facts.invoice_numbers[0] if facts.invoice_numbers else None,
        "email": facts.emails[0] if facts.emails else None,
        "iban": facts.ibans[0] if facts.ibans else None,
    }
    document: dict[str, Any] = {}
    for field in schema.decode_schema.get("properties", {}):
        value = by_kind.get(schema.kind_of(field) or "")
        document[field] = float(value) if isinstance(value, Decimal) else value
    return document


def median_and_p90(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
