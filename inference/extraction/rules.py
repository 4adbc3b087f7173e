"""Rule checks on an extracted document, and the normalisation that comes before them.

Rules are selected by the roles of a schema's fields (`x-kind`, see `schemas.py`), so a custom schema that
marks its fields `amount.total`, `date.due` ... gets the same checks as the built-in invoice. Only rules that
apply (their fields have values) are reported; a rule that fails names the fields it involves, which lowers
their confidence and sends the document to review.

Amounts are compared "within rounding": a difference up to 0.05 in the document's currency, which covers
cents lost to rounding per line and the cash rounding to 5 cents several countries use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import msgspec

from deskpilot.inference.extraction.extractors import iban_is_valid
from deskpilot.inference.extraction.normalize import (
    CURRENCY_DECIMALS,
    normalize_currency,
    normalize_text,
    parse_amount,
    parse_date,
)
from deskpilot.inference.extraction.schemas import ExtractionSchema

__all__ = ["Change", "RuleResult", "check_rules", "leaves", "normalize_document"]

TOLERANCE = Decimal("0.05")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


class RuleResult(msgspec.Struct, frozen=True):
    rule: str
    status: Literal["pass", "fail"]
    message: str
    fields: list[str]


class Change(msgspec.Struct, frozen=True):
    """A value the normaliser rewrote, e.g. issueDate "25/12/2018" -> "2018-12-25"."""

    path: str
    before: Any
    after: Any


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar and every empty list or object, depth first, in document order."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _set(document: Any, path: str, value: Any) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target = document
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value


def _currency(schema: ExtractionSchema, document: Any) -> str | None:
    for path, value in leaves(document):
        if schema.kind_of(path) == "currency" and isinstance(value, str):
            return normalize_currency(value)
    return None


def normalize_document(schema: ExtractionSchema, document: Any, *, day_first: bool = True) -> list[Change]:
    """Normalise `document` in place by field role; return what changed. Values that cannot be normalised
    stay as written (a rule check then reports them): dates to ISO 8601, currencies to ISO 4217 codes,
    amounts rounded to the currency's minor unit, IBANs compact, every text whitespace-collapsed."""
    changes = []
    decimals = CURRENCY_DECIMALS.get(_currency(schema, document) or "", 2)
    for path, value in list(leaves(document)):
        kind = (schema.kind_of(path) or "").split(".")[0]
        new = value
        if isinstance(value, str):
            new = normalize_text(value)
            if kind == "date":
                parsed = parse_date(new, day_first=day_first)
                new = parsed.isoformat() if parsed else new
            elif kind == "currency":
                new = normalize_currency(new) or new
            elif kind == "iban":
                new = re.sub(r"\s", "", new).upper()
        elif kind == "amount" and isinstance(value, int | float) and not isinstance(value, bool):
            exponent = Decimal(1).scaleb(-decimals)
            new = float(Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP))
        if new != value:
            _set(document, path, new)
            changes.append(Change(path, value, new))
    return changes


# --- the rules ------------------------------------------------------------------------------------------


def _by_kind(schema: ExtractionSchema, document: Any) -> dict[str, list[tuple[str, Any]]]:
    found: dict[str, list[tuple[str, Any]]] = {}
    for path, value in leaves(document):
        kind = schema.kind_of(path)
        if kind is not None and value is not None and value != "":
            found.setdefault(kind, []).append((path, value))
    return found


def _one(found: dict[str, list[tuple[str, Any]]], kind: str) -> tuple[str, Any] | None:
    """The top-level field of this role (rules on totals and dates are about the document as a whole)."""
    return next(((p, v) for p, v in found.get(kind, []) if "." not in p and "[" not in p), None)


def _amount(value: Any) -> Decimal | None:
    return parse_amount(value) if isinstance(value, int | float | str) else None


def _date_rules(found: dict[str, list[tuple[str, Any]]]) -> Iterator[RuleResult]:
    for kind, items in found.items():
        if kind.split(".")[0] != "date":
            continue
        for path, value in items:
            ok = isinstance(value, str) and bool(_ISO_DATE.match(value))
            yield RuleResult(
                "date_parses",
                "pass" if ok else "fail",
                "a valid date" if ok else f"{value!r} is not a date",
                [path],
            )
    issue, due = _one(found, "date.issue"), _one(found, "date.due")
    if issue and due and _ISO_DATE.match(str(issue[1])) and _ISO_DATE.match(str(due[1])):
        ok = date.fromisoformat(due[1]) >= date.fromisoformat(issue[1])
        yield RuleResult(
            "due_not_before_issue",
            "pass" if ok else "fail",
            f"due {due[1]} {'is not' if ok else 'is'} before issue {issue[1]}",
            [issue[0], due[0]],
        )


def _total_rules(found: dict[str, list[tuple[str, Any]]]) -> Iterator[RuleResult]:
    total, subtotal, tax = (_one(found, k) for k in ("amount.total", "amount.subtotal", "amount.tax"))
    if total and subtotal and tax:
        t, s, x = (_amount(v[1]) for v in (total, subtotal, tax))
        if t is not None and s is not None and x is not None:
            ok = abs(s + x - t) <= TOLERANCE
            yield RuleResult(
                "total_is_subtotal_plus_tax",
                "pass" if ok else "fail",
                f"{s} + {x} {'=' if ok else '!='} {t}",
                [subtotal[0], tax[0], total[0]],
            )
    lines = [(p, amount) for p, v in found.get("amount.line", []) if (amount := _amount(v)) is not None]
    if lines:
        target, fields = _line_target(total, subtotal, tax)
        if target is not None:
            line_sum = sum((v for _, v in lines), Decimal(0))
            ok = abs(line_sum - target) <= TOLERANCE
            yield RuleResult(
                "line_items_sum",
                "pass" if ok else "fail",
                f"line items add up to {line_sum}, {'as' if ok else 'not'} {target}",
                [p for p, _ in lines] + fields,
            )
    yield from _line_products(found)


def _line_target(total: Any, subtotal: Any, tax: Any) -> tuple[Decimal | None, list[str]]:
    """What the lines should add up to: the subtotal, else the total less any tax."""
    if subtotal:
        return _amount(subtotal[1]), [subtotal[0]]
    if total:
        t = _amount(total[1])
        x = _amount(tax[1]) if tax else Decimal(0)
        return (t - x if t is not None and x is not None else None), [total[0]] + ([tax[0]] if tax else [])
    return None, []


def _line_products(found: dict[str, list[tuple[str, Any]]]) -> Iterator[RuleResult]:
    """quantity x unit price = line amount, for each line that states all three."""

    def prefix(path: str) -> str:
        return path.rsplit(".", 1)[0]

    quantities = {prefix(p): (p, _amount(v)) for p, v in found.get("quantity", [])}
    units = {prefix(p): (p, _amount(v)) for p, v in found.get("amount.unit", [])}
    for path, value in found.get("amount.line", []):
        q, u, a = quantities.get(prefix(path)), units.get(prefix(path)), _amount(value)
        if q and u and q[1] is not None and u[1] is not None and a is not None:
            ok = abs(q[1] * u[1] - a) <= TOLERANCE
            yield RuleResult(
                "line_is_quantity_times_price",
                "pass" if ok else "fail",
                f"{q[1]} x {u[1]} {'=' if ok else '!='} {a}",
                [q[0], u[0], path],
            )


def _format_rules(found: dict[str, list[tuple[str, Any]]]) -> Iterator[RuleResult]:
    for path, value in found.get("currency", []):
        ok = normalize_currency(str(value)) is not None
        yield RuleResult(
            "currency_known",
            "pass" if ok else "fail",
            f"{value!r} {'is' if ok else 'is not'} a known currency",
            [path],
        )
    for path, value in found.get("email", []):
        ok = bool(_EMAIL.match(str(value)))
        yield RuleResult(
            "email_valid",
            "pass" if ok else "fail",
            f"{value!r} {'is' if ok else 'is not'} an email address",
            [path],
        )
    for path, value in found.get("iban", []):
        ok = iban_is_valid(str(value))
        yield RuleResult(
            "iban_checksum",
            "pass" if ok else "fail",
            f"{value!r} {'passes' if ok else 'fails'} the IBAN checksum",
            [path],
        )


def check_rules(schema: ExtractionSchema, document: Any) -> list[RuleResult]:
    """Every rule that applies to the (normalised) document, passed or failed."""
    found = _by_kind(schema, document)
    return [*_date_rules(found), *_total_rules(found), *_format_rules(found)]
