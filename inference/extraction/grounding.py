"""Grounded decoding: each field narrowed to values the document contains, or to the extractors' answer.

A small model asked for a value writes something plausible: a total it computed, a date in a format of its
own, an invoice number of forty ones. Asked to choose among the values that are really in the document,
it can only be wrong about which one. So the schema the model is held to while it writes (`grounded_schema`;
the Struct that validates the result is unchanged) narrows each field by its role (`x-kind`):

- date: the dates as the document writes them; amount: the amounts it contains, as numbers;
- vendor: one of the document's lines that could be a name (no amount, date, title, contact details, id
  or label: `extractors.could_be_name`); among its first twenty lines, those that name a company (a
  legal form: Ltd, GmbH, Sdn Bhd; `extractors.names_company`) if there are any;
- item (what a line item bought): one of its lines;
- address: one to four consecutive lines among the first twenty, none of them contact details, an id, a
  label, an amount or a date (`extractors.ends_address`), a company's name or a bare registration
  number, together holding a digit (street numbers and postcodes do), joined by spaces;
- quantity: the numbers the document contains, outside its dates;
- invoice number: the identifiers after a document-number label ("Invoice No:", "Receipt #");
- currency: the currency its amounts and currency words name (`find_currency`);
- due date, subtotal and tax: nothing but the extractors' value. What identifies these roles in a
  document is a label ("Due", "Subtotal", "VAT"); where the extractors found none, a small model choosing
  among all the dates or amounts can only guess.

Every such field may also be null, and one with no candidate can only be null. Choosing among values is
also cheap: once the first token singles a value out, the rest of it is forced, and the backend evaluates
forced tokens as one batch instead of sampling them one by one.

Where an extractor's answer rests on a label in the document, the field is narrowed to that one value (not
even null), so the model does not spend steps choosing it, and the result names the extractor as the
field's source (`supplied_values`): the amount after the strongest "total" label, the subtotal and tax
after theirs, the date on a "due" line, the only labelled invoice number, and the currency; and the issue
date of a document that states a single date (a due date apart). The model still scores such a value:
its token confidence is the model's own probability of writing it.
"""

from __future__ import annotations

import re
from typing import Any

from deskpilot.inference.extraction.extractors import (
    Facts,
    address_blocks,
    could_be_name,
    find_amounts,
    names_company,
)
from deskpilot.inference.extraction.normalize import find_dates, normalize_text
from deskpilot.inference.extraction.schemas import ExtractionSchema

__all__ = ["MAX_CANDIDATES", "candidates", "grounded_schema", "sub_schemas", "supplied_values"]

MAX_CANDIDATES = 40
HEADER_LINES = 20  # where an issuer's address is looked for
_QUANTITY = re.compile(r"(?<![\w.,])\d{1,5}(?:[.,]\d{1,3})?(?![\w.,]*\d)")


def _lines(content: str) -> list[str]:
    return [line for line in (normalize_text(raw) for raw in content.splitlines()) if line]


def _named_lines(content: str) -> list[str]:
    """Lines that could name something: two letters in a row."""
    return list(dict.fromkeys(line for line in _lines(content) if re.search(r"[^\W\d_]{2}", line)))


def _vendor_lines(content: str) -> list[str]:
    """Lines that could name the issuer: no amount and no date in them, no title, contact details, id or
    label (`extractors.could_be_name`); those of the first twenty that name a company, if any do."""
    names = [
        line
        for line in _named_lines(content)
        if could_be_name(line) and not (find_amounts(line) or find_dates(line))
    ]
    header = set(_lines(content)[:HEADER_LINES])
    companies = [line for line in names if line in header and names_company(line)]
    return companies or names


def _address_runs(content: str) -> list[str]:
    """The addresses among the first lines, each whole (`extractors.address_blocks`)."""
    header = content.splitlines()[: HEADER_LINES * 2]  # empty lines do not count toward the header
    blocks = [text for _, text in address_blocks([line for line in header if line.strip()][:HEADER_LINES])]
    return list(dict.fromkeys(blocks))


def _quantities(content: str) -> list[float | int]:
    dates = [(start, end) for _, start, end in find_dates(content)]
    values = (
        float(m.group().replace(",", "."))
        for m in _QUANTITY.finditer(content)
        if not any(start < m.end() and m.start() < end for start, end in dates)
    )
    return list(dict.fromkeys(int(v) if v.is_integer() else v for v in values if v > 0))


def candidates(content: str, facts: Facts) -> dict[str, list[Any]]:
    """Per role, the values the document offers, in order of appearance."""
    found: dict[str, list[Any]] = {
        "date": list(dict.fromkeys(content[start:end] for _, start, end in find_dates(content))),
        "amount": list(dict.fromkeys(float(a.value) for a in find_amounts(content))),
        "vendor": _vendor_lines(content),
        "item": _named_lines(content),
        "address": _address_runs(content),
        "quantity": _quantities(content),
        "invoice_number": list(facts.invoice_numbers),
        "currency": [facts.currency] if facts.currency else [],
        "date.due": [],  # these three: the extractors' labelled value or nothing (`supplied_values`)
        "amount.subtotal": [],
        "amount.tax": [],
    }
    return {role: values[:MAX_CANDIDATES] for role, values in found.items()}


def _date_as_written(text: str, value: Any) -> str | None:
    """The first text in `text` that states the date `value`, read as `find_facts` reads dates."""
    return next((text[start:end] for found, start, end in find_dates(text) if found == value), None)


def supplied_values(schema: ExtractionSchema, text: str, facts: Facts) -> dict[str, Any]:
    """Top-level field -> the value the extractors supply for it (see the module docstring); `facts` are
    those of `text`."""
    supplied: dict[str, Any] = {}
    for name in schema.decode_schema.get("properties", {}):
        kind = schema.kind_of(name) or ""
        value: Any = None
        if kind in ("amount.total", "amount.subtotal", "amount.tax"):
            amount = {
                "amount.total": facts.total,
                "amount.subtotal": facts.subtotal,
                "amount.tax": facts.tax,
            }[kind]
            value = None if amount is None else float(amount)
        elif kind == "date.due" and facts.due_date is not None:
            value = _date_as_written(text, facts.due_date)
        elif kind == "date.issue" and facts.issue_date is not None:
            stated = set(facts.dates) - {facts.due_date}
            value = _date_as_written(text, facts.issue_date) if stated == {facts.issue_date} else None
        elif kind == "invoice_number" and len(facts.invoice_numbers) == 1:
            value = facts.invoice_numbers[0]
        elif kind == "currency":
            value = facts.currency
        if value is not None:
            supplied[name] = value
    return supplied


def sub_schemas(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The non-null branch of a property schema, and whether null is allowed."""
    branches = [schema, *schema.get("anyOf", [])]
    nullable = any(b.get("type") == "null" for b in branches)
    main = next((b for b in branches[1:] if b.get("type") != "null"), schema) if "anyOf" in schema else schema
    return main, nullable


def _fits(value: Any, main: dict[str, Any]) -> bool:
    if main.get("type") == "string":
        # No quote, backslash or control character: llama-cpp-python's grammar converter writes JSON's
        # escapes of these into the grammar unescaped, which breaks it (or, for `\b`, fails to compile).
        return (
            isinstance(value, str)
            and len(value) <= main.get("maxLength", 10**6)
            and not re.search(r'["\\\x00-\x1f\x7f]', value)
        )
    return main.get("type") == "number" and isinstance(value, int | float)


def grounded_schema(
    schema: ExtractionSchema, content: str, facts: Facts, supplied: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The decode schema with every field of a known role narrowed to `content`'s values (see the module
    docstring), and each field in `supplied` to its one value."""
    found = candidates(content, facts)
    supplied = supplied or {}

    def narrow(node: Any, path: str) -> Any:
        if not isinstance(node, dict):
            return node
        out = dict(node)
        kind = schema.kinds.get(path) or ""
        base = kind.split(".")[0]
        main, nullable = sub_schemas(node)
        keep = {k: v for k, v in node.items() if k in ("description", "x-kind")}
        if path in supplied and _fits(supplied[path], main):
            return {**keep, "enum": [supplied[path]]}
        if (kind in found or base in found) and nullable and main.get("type") in ("string", "number"):
            options = [v for v in found.get(kind, found.get(base, [])) if _fits(v, main)]
            if not options:
                return {**keep, "type": "null"}
            return {**keep, "anyOf": [{"enum": options}, {"type": "null"}]}
        if isinstance(main.get("properties"), dict):
            target = out if main is node else dict(main)
            target["properties"] = {
                k: narrow(v, f"{path}.{k}" if path else k) for k, v in main["properties"].items()
            }
            if main is not node:
                out["anyOf"] = [target if b is main else b for b in node["anyOf"]]
        if isinstance(main.get("items"), dict):
            target = out if main is node else dict(main)
            target["items"] = narrow(main["items"], f"{path}[]")
            if main is not node:
                out["anyOf"] = [target if b is main else b for b in node["anyOf"]]
        return out

    grounded: dict[str, Any] = narrow(schema.decode_schema, "")  # a dict in, a dict out
    return grounded
