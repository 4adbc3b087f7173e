"""Extraction schemas: msgspec Structs, and the JSON Schema the model is held to while it writes.

Each schema is a Struct (validation) whose JSON Schema (`msgspec.json.schema`) is published to clients and,
with every property made required and references inlined, compiled into a llama.cpp grammar (constrained
decoding). The two must agree, so a schema only uses constraints the grammar enforces: types, `null`,
`enum`, `maxLength`, `maxItems`. Everything else a document must satisfy (totals add up, dates parse) is a
rule check (`rules.py`), reported rather than enforced. The length limits also bound how much the model can
write, so that its output fits the token budget.

Fields carry two annotations in their JSON Schema: `description` (it goes into the prompt) and `x-kind`,
the role a value plays (`date.issue`, `amount.total`, `invoice_number` ...), which selects the rule checks
and deterministic cross-checks that apply. Custom schemas (`custom.py`) may use the same `x-kind` values.

Dates are free text in the schema (the model copies "25/12/2018" as printed; copying is what a small model
does well) and normalised to ISO 8601 afterwards; amounts are JSON numbers.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = [
    "BUILT_IN",
    "ContractTerms",
    "EmailActions",
    "ExtractionSchema",
    "Invoice",
    "MeetingNotes",
    "SchemaError",
]


class SchemaError(ValueError):
    """A schema that cannot be used (unknown name, unsupported JSON Schema)."""


def _field(kind: str | None, description: str) -> Meta:
    return Meta(description=description, extra_json_schema={"x-kind": kind} if kind else None)


# Text of bounded length (the grammar enforces maxLength). Written out, not made by a function, so that
# type checkers see them as types.
Short = Annotated[str, Meta(max_length=40)]
Medium = Annotated[str, Meta(max_length=120)]
Long = Annotated[str, Meta(max_length=200)]
CurrencyText = Annotated[str, Meta(max_length=8)]


class _Schema(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


class LineItem(_Schema, kw_only=True):
    description: Annotated[Medium | None, _field("item", "what was bought")] = None
    quantity: Annotated[float | None, _field("quantity", "how many")] = None
    unit_price: Annotated[float | None, _field("amount.unit", "price of one")] = None
    amount: Annotated[float | None, _field("amount.line", "price of the line")] = None


class Invoice(_Schema, kw_only=True):
    """An invoice or a receipt."""

    vendor: Annotated[Medium | None, _field("vendor", "name of the company or shop that issued it")] = None
    vendor_address: Annotated[Long | None, _field("address", "the issuer's postal address")] = None
    invoice_number: Annotated[Short | None, _field("invoice_number", "invoice, receipt or bill number")] = (
        None
    )
    issue_date: Annotated[Short | None, _field("date.issue", "date it was issued, as written")] = None
    due_date: Annotated[Short | None, _field("date.due", "date payment is due, as written")] = None
    currency: Annotated[CurrencyText | None, _field("currency", "currency code or symbol")] = None
    subtotal: Annotated[float | None, _field("amount.subtotal", "total before tax")] = None
    tax: Annotated[float | None, _field("amount.tax", "tax amount")] = None
    total: Annotated[float | None, _field("amount.total", "final amount to pay")] = None
    line_items: Annotated[list[LineItem], Meta(max_length=12, description="the items bought")] = []


class Obligation(_Schema, kw_only=True):
    party: Annotated[Medium | None, _field("party", "who must do it")] = None
    obligation: Annotated[Long, _field(None, "what they must do")]


class ContractTerms(_Schema, kw_only=True):
    """The key terms of a contract."""

    parties: Annotated[list[Medium], Meta(max_length=6, description="the parties to the contract")] = []
    effective_date: Annotated[Short | None, _field("date.effective", "date the contract starts")] = None
    term: Annotated[Medium | None, _field(None, "how long it runs")] = None
    renewal: Annotated[Long | None, _field(None, "whether and how it renews")] = None
    notice_period: Annotated[Medium | None, _field(None, "notice needed to end it")] = None
    governing_law: Annotated[Medium | None, _field(None, "law or courts that govern it")] = None
    payment_terms: Annotated[Long | None, _field(None, "when and how payment is made")] = None
    obligations: Annotated[list[Obligation], Meta(max_length=8, description="who must do what")] = []


class ActionItem(_Schema, kw_only=True):
    task: Annotated[Long, _field(None, "what must be done")]
    owner: Annotated[Medium | None, _field("person", "who must do it")] = None
    due_date: Annotated[Short | None, _field("date.due", "by when, as written")] = None


class EmailActions(_Schema, kw_only=True):
    """The action items an email asks for."""

    action_items: Annotated[
        list[ActionItem], Meta(max_length=10, description="tasks the email asks for")
    ] = []


class MeetingNotes(_Schema, kw_only=True):
    """Who met, what they decided and who does what next."""

    attendees: Annotated[list[Medium], Meta(max_length=20, description="people at the meeting")] = []
    decisions: Annotated[list[Long], Meta(max_length=10, description="decisions taken")] = []
    action_items: Annotated[
        list[ActionItem], Meta(max_length=10, description="tasks agreed, with owners")
    ] = []


# --- the schema as the extraction pipeline sees it ---------------------------------------------------------


@dataclass(frozen=True)
class ExtractionSchema:
    """A schema ready for extraction: its Struct, its JSON Schemas, its field roles and its prompt template.

    `content_hash` identifies the exact schema (sha256 of its canonical JSON Schema), as a template's hash
    identifies its words; lineage records it.
    """

    name: str
    version: int
    description: str
    struct: type[msgspec.Struct]
    template: str
    origin: str = "built-in"
    json_schema: dict[str, Any] = field(init=False)
    decode_schema: dict[str, Any] = field(init=False)
    kinds: dict[str, str] = field(init=False)
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        published = msgspec.json.schema(self.struct)
        decode = _all_required(_inline_refs(published, published.get("$defs", {})))
        set_ = object.__setattr__  # frozen: computed once here
        set_(self, "json_schema", published)
        set_(self, "decode_schema", decode)
        set_(self, "kinds", dict(_kinds(decode, "")))
        canonical = msgspec.json.encode(published, order="sorted")
        set_(self, "content_hash", "sha256:" + hashlib.sha256(canonical).hexdigest())

    @property
    def schema_id(self) -> str:
        return f"{self.name}@v{self.version}"

    def field_guide(self) -> str:
        """One line per top-level field, for the prompt: "- total: final amount to pay"."""
        lines = []
        for name, prop in self.decode_schema.get("properties", {}).items():
            line = f"- {name}: {_description(prop) or name}"
            items = prop.get("items", {})
            if items.get("type") == "object":
                line += f" (each with {', '.join(items.get('properties', {}))})"
            lines.append(line)
        return "\n".join(lines)

    def kind_of(self, path: str) -> str | None:
        """The role of the value at `path` ("lineItems[3].amount" -> "amount.line")."""
        return self.kinds.get(_pattern(path))


def _pattern(path: str) -> str:
    """ "lineItems[3].amount" -> "lineItems[].amount": the schema-level name of a value's position."""
    out, depth = [], 0
    for char in path:
        if char == "[":
            depth += 1
            out.append("[]")
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k not in ("$defs", "default", "title")}
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


def _all_required(schema: Any) -> Any:
    """Every property required (a value may still be null): the model writes every key, in schema order,
    so no field is skipped silently and every field's value has tokens to score."""
    if isinstance(schema, dict):
        out = {k: _all_required(v) for k, v in schema.items()}
        if isinstance(out.get("properties"), dict):
            out["required"] = list(out["properties"])
        return out
    if isinstance(schema, list):
        return [_all_required(item) for item in schema]
    return schema


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [prop, *prop.get("anyOf", [])]


def _description(prop: dict[str, Any]) -> str | None:
    return next((b["description"] for b in _branches(prop) if "description" in b), None)


def _kinds(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for branch in _branches(schema):
        kind = branch.get("x-kind") or {"date": "date", "email": "email"}.get(branch.get("format", ""))
        if kind:
            yield path, kind
            break
    for branch in _branches(schema):
        for name, prop in branch.get("properties", {}).items():
            yield from _kinds(prop, f"{path}.{name}" if path else name)
        if isinstance(branch.get("items"), dict):
            yield from _kinds(branch["items"], f"{path}[]")


BUILT_IN: dict[str, ExtractionSchema] = {
    schema.name: schema
    for schema in (
        ExtractionSchema(
            "invoice", 1, "Invoice or receipt: vendor, dates, amounts, line items", Invoice, "extract_invoice"
        ),
        ExtractionSchema(
            "contract",
            1,
            "Contract terms: parties, dates, term, renewal, law, obligations",
            ContractTerms,
            "extract_contract",
        ),
        ExtractionSchema(
            "email_actions",
            1,
            "Action items an email asks for: task, owner, due date",
            EmailActions,
            "extract_email_actions",
        ),
        ExtractionSchema(
            "meeting_notes",
            1,
            "Meeting notes: attendees, decisions, action items",
            MeetingNotes,
            "extract_meeting_notes",
        ),
    )
}
