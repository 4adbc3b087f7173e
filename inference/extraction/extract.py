"""Extraction as two pure steps around the model: build the job, then finish what the model wrote.

`extraction_job` renders the schema's prompt template with the document cut to fit the context, and asks
for constrained decoding (the schema's grammar, with each field of a known role narrowed to the values the
document contains, or to the value an extractor read from a label: `grounding.py`), greedy sampling and
token log-probabilities.

`finish_extraction` turns the model's text into a result that always validates against the schema:

1. read the JSON with value spans (`_json.read_json`); output cut at the token limit is closed back to its
   last complete value (`close_truncated`); output that cannot be read at all becomes the empty document;
2. conform it to the schema: keys the model did not reach are filled (null, [], or for a required
   non-null field a placeholder), so nothing is missing;
3. validate with msgspec; a value that still fails (a grammar is a little looser than the Struct) is
   replaced by its field's empty value, one at a time, and the failure recorded;
4. normalise by field role, run the rule checks, cross-check with the deterministic extractors, and score
   every field and the document (`confidence.py`).

Every repair is listed in `problems`, the fields it touched are marked `repaired` with confidence 0, and
the document's confidence is capped, so a repaired result always goes to human review.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from deskpilot.inference._types import GenerationRequest, Token
from deskpilot.inference.extraction._json import JSONReadError, Node, close_truncated, read_json
from deskpilot.inference.extraction.confidence import (
    CrossCheck,
    FieldReport,
    combine,
    document_confidence,
    token_confidences,
    word_support,
)
from deskpilot.inference.extraction.extractors import Facts, find_facts
from deskpilot.inference.extraction.grounding import grounded_schema, sub_schemas, supplied_values
from deskpilot.inference.extraction.normalize import infer_day_first, parse_amount, parse_date, text_key
from deskpilot.inference.extraction.rules import Change, RuleResult, check_rules, leaves, normalize_document
from deskpilot.inference.extraction.schemas import ExtractionSchema
from deskpilot.inference.tasks import Job
from deskpilot.inference.templates import PromptTemplate, load_template

__all__ = ["ExtractionResult", "Generated", "extraction_job", "finish_extraction", "fit_to_tokens"]

# Tokens the template's words, the field guide and the chat markup take, beyond the guide's own length.
TEMPLATE_OVERHEAD_TOKENS = 200
DEFAULT_REVIEW_THRESHOLD = 0.6
# The same list item (a flat object or a string) three times in a row: a small model decoding greedily has
# fallen into a loop and would repeat it until the token limit. Generation stops there (`stop_pattern`);
# `finish_extraction` keeps one copy and fails the `no_repeated_items` rule, so a person checks the list.
REPEATED_ITEMS = r'(\{[^{}]*\}|"(?:[^"\\]|\\.)*")\s*,\s*\1\s*,\s*\1'


class Generated(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one generation produced, as the structured tasks need it."""

    text: str
    tokens: Sequence[Token]
    finish_reason: str


class ExtractionResult(msgspec.Struct, kw_only=True):
    schema: str  # "invoice@v1"
    data: dict[str, Any]
    confidence: float
    fields: dict[str, FieldReport]
    repaired: bool
    problems: list[str]
    rules: list[RuleResult]
    normalized: list[Change]
    review_reasons: list[str]


# --- the job --------------------------------------------------------------------------------------------


def fit_to_tokens(text: str, budget: int, count_tokens: Callable[[str], int] | None) -> tuple[str, bool]:
    """`text`, cut so that it takes at most `budget` tokens; and whether it was cut.

    With the model's tokenizer we cut close to the budget. Without it, we count UTF-8 bytes: a byte-level
    tokenizer never makes more tokens than bytes, so that bound holds even for 50k characters of noise,
    where any characters-per-token guess fails (random letters take one token per 1.4 characters).
    """
    count = count_tokens or (lambda s: len(s.encode()))
    used = count(text)
    if used <= budget:
        return text, False
    cut = text
    for _ in range(6):  # shrink in proportion, with a margin, until it fits
        cut = cut[: max(0, int(len(cut) * budget / max(used, 1) * 0.95))]
        used = count(cut)
        if used <= budget:
            break
    return cut.rstrip() + " [...]", True


def extraction_job(
    schema: ExtractionSchema,
    *,
    text: str,
    context_length: int,
    count_tokens: Callable[[str], int] | None = None,
    template: PromptTemplate | None = None,
    grounded: bool = True,
) -> Job:
    """The prompt and constrained request for one document. With `grounded` (the default), fields of a known
    role may only take values found in the document, or the extractors' value (`grounded_schema`)."""
    template = template or load_template(schema.template)
    guide = schema.field_guide()
    guide_tokens = count_tokens(guide) if count_tokens else len(guide.encode())
    budget = context_length - template.max_tokens - TEMPLATE_OVERHEAD_TOKENS - guide_tokens
    content, truncated = fit_to_tokens(text.strip(), max(budget, 0), count_tokens)
    messages = template.render(content=content, fields=guide, description=schema.description)
    facts = find_facts(text)
    supplied = supplied_values(schema, text, facts) if grounded else {}
    request = GenerationRequest(
        messages=messages,
        max_tokens=template.max_tokens,
        temperature=template.temperature,
        # No repeat penalty: a document repeats `null`, quotes and keys by nature, and penalising them
        # pushes a small model from a correct null toward an invented value.
        repeat_penalty=1.0,
        json_schema=grounded_schema(schema, content, facts, supplied) if grounded else schema.decode_schema,
        logprobs=True,
        stop_pattern=REPEATED_ITEMS,
    )
    identity = {
        "schema": schema.schema_id,
        "schema_hash": schema.content_hash,
        "schema_origin": schema.origin,
    }
    return Job(
        task=f"extract:{schema.name}",
        template=template,
        request=request,
        input={"text": text, **identity},
        truncated=truncated,
        parameters={
            **identity,
            "grounded_candidates": grounded,
            "supplied_by_extractors": sorted(supplied),
        },
    )


# --- reading what the model wrote --------------------------------------------------------------------------


def _read(generated: Generated, problems: list[str]) -> tuple[Any, list[Node], bool]:
    """The value, its nodes, and whether the text had to be closed (it stopped mid-way)."""
    text = generated.text
    try:
        return (*read_json(text), False)
    except JSONReadError as exc:
        reason = "the output was cut at the token limit" if generated.finish_reason == "length" else str(exc)
    closed = close_truncated(text)
    if closed is not None:
        if not (generated.finish_reason == "stop" and re.search(REPEATED_ITEMS, text)):
            problems.append(f"{reason}; kept the complete part")
        return (*read_json(closed), True)
    problems.append(f"{reason}; nothing usable, every field left empty")
    return {}, [], True


def _collapse_repeats(value: Any, path: str = "") -> list[RuleResult]:
    """Keep one of each run of 3+ identical consecutive list items (a loop, see REPEATED_ITEMS)."""
    found: list[RuleResult] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _collapse_repeats(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        index = 0
        while index < len(value):
            run = 1
            while index + run < len(value) and value[index + run] == value[index]:
                run += 1
            if run >= 3:
                del value[index + 1 : index + run]
                item_path = f"{path}[{index}]"
                found.append(
                    RuleResult(
                        "no_repeated_items",
                        "fail",
                        f"the model wrote {item_path} {run} times in a row; kept once",
                        [p for p, _ in leaves(value[index], item_path)],
                    )
                )
            found += _collapse_repeats(value[index], f"{path}[{index}]")
            index += 1
    return found


def empty_value(schema: dict[str, Any]) -> Any:
    """What a field holds when there is nothing: null where allowed, else an empty list, an object of empty
    values, or a placeholder ("", 0, false, the first enum value) that review will replace."""
    main, nullable = sub_schemas(schema)
    if nullable:
        return None
    if "enum" in main:
        return main["enum"][0]
    kind = main.get("type", "")
    if kind == "array":
        return []
    if kind == "object" or "properties" in main:
        return {name: empty_value(prop) for name, prop in main.get("properties", {}).items()}
    return {"string": "", "number": 0, "integer": 0, "boolean": False}.get(kind)


def _conform(schema: dict[str, Any], value: Any, path: str, filled: list[str]) -> Any:
    main, nullable = sub_schemas(schema)
    if "properties" in main:
        if not isinstance(value, dict):
            if value is None and nullable:
                return None
            filled.append(path)
            value = {}
        result = {}
        for name, prop in main["properties"].items():
            child = f"{path}.{name}" if path else name
            if name in value:
                result[name] = _conform(prop, value[name], child, filled)
            else:
                filled.append(child)
                result[name] = empty_value(prop)
        return result
    if main.get("type") == "array" and isinstance(value, list) and isinstance(main.get("items"), dict):
        return [_conform(main["items"], item, f"{path}[{i}]", filled) for i, item in enumerate(value)]
    return value


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        main, _ = sub_schemas(schema)
        schema = main.get("items", {}) if part.startswith("[") else main.get("properties", {}).get(part, {})
    return schema


def _replace(document: Any, path: str, value: Any) -> Any:
    if not path:
        return value
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target = document
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    target[int(last[1:-1]) if last.startswith("[") else last] = value
    return document


def _validate(
    schema: ExtractionSchema, document: Any, problems: list[str]
) -> tuple[dict[str, Any], list[str]]:
    cleared: list[str] = []
    for _ in range(64):
        try:
            return msgspec.to_builtins(msgspec.convert(document, schema.struct)), cleared
        except msgspec.ValidationError as exc:
            found = re.search(r" - at `\$(.*)`$", str(exc))
            path = found.group(1).lstrip(".") if found else ""
            problems.append(f"{path or 'the document'}: {str(exc).split(' - at ')[0]}; cleared")
            if path in cleared or not path:
                break
            document = _replace(document, path, empty_value(_schema_at(schema.decode_schema, path)))
            cleared.append(path)
    empty = empty_value(schema.decode_schema)
    return msgspec.to_builtins(msgspec.convert(empty, schema.struct)), [*cleared, ""]


# --- checks and scores ----------------------------------------------------------------------------------


def _cross_check(kind: str | None, value: Any, facts: Facts, day_first: bool) -> CrossCheck | None:
    """Does a deterministic extractor back this value? None when no extractor applies or none found."""
    if kind is None:
        return None
    base, _, role = kind.partition(".")
    if base == "date":
        date_fact = {"issue": facts.issue_date, "due": facts.due_date}.get(role)
        if value is None:
            return "missed" if date_fact else None
        parsed = parse_date(str(value), day_first=day_first)
        if not facts.dates:
            return None
        return "agrees" if parsed in (facts.dates if date_fact is None else [date_fact]) else "disagrees"
    if base == "amount":
        amount_fact = {"total": facts.total, "subtotal": facts.subtotal, "tax": facts.tax}.get(role)
        if value is None:
            return "missed" if amount_fact is not None else None
        amount = parse_amount(value)
        amounts = [amount_fact] if amount_fact is not None else facts.amounts
        if not amounts or amount is None:
            return None
        return "agrees" if any(abs(amount - c) < 0.005 for c in amounts) else "disagrees"
    candidates = {
        "invoice_number": facts.invoice_numbers,
        "email": facts.emails,
        "iban": facts.ibans,
        "currency": [facts.currency] if facts.currency else [],
        "vendor": [facts.vendor] if facts.vendor else [],
        "address": [facts.vendor_address] if facts.vendor_address else [],
    }.get(base)
    if not candidates or value is None:
        return None
    if any(text_key(str(value)) == text_key(c) for c in candidates):
        return "agrees"
    # The header heuristics for vendor and address guess; not finding the model's value there is no evidence.
    return None if base in ("vendor", "address") else "disagrees"


_TEXT_KINDS = {None, "vendor", "address", "item", "invoice_number", "party", "person", "email", "iban"}


def _field_reports(
    schema: ExtractionSchema,
    data: dict[str, Any],
    tokens: dict[str, float | None],
    rules: list[RuleResult],
    facts: Facts,
    source: str,
    repaired: set[str],
    day_first: bool,
    supplied: set[str],
) -> dict[str, FieldReport]:
    source_words = set(re.findall(r"\w+", text_key(source)))
    failed: dict[str, list[str]] = {}
    for rule in rules:
        if rule.status == "fail":
            for path in rule.fields:
                failed.setdefault(path, []).append(rule.rule)
    reports = {}
    for path, value in leaves(data):
        kind = schema.kind_of(path)
        if any(r in ("", path) or path.startswith((f"{r}.", f"{r}[")) for r in repaired):
            reports[path] = FieldReport(confidence=0.0, repaired=True, failed_rules=failed.get(path, []))
            continue
        grounding = None
        if isinstance(value, str) and value and (kind or "").split(".")[0] in _TEXT_KINDS:
            grounding = (
                1.0 if text_key(value) in text_key(source) else round(word_support(value, source_words), 3)
            )
        check = _cross_check(kind, value, facts, day_first)
        token = tokens.get(path)
        reports[path] = FieldReport(
            confidence=combine(
                token, cross_check=check, grounding=grounding, failed_rules=len(failed.get(path, []))
            ),
            token_confidence=None if token is None else round(token, 4),
            cross_check=check,
            grounding=grounding,
            failed_rules=failed.get(path, []),
            source="extractor" if path in supplied else "model",
        )
    return reports


def finish_extraction(
    schema: ExtractionSchema,
    *,
    text: str,
    generated: Generated,
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
) -> ExtractionResult:
    """The validated, normalised, checked and scored result of what the model wrote (see the module doc)."""
    problems: list[str] = []
    value, nodes, closed = _read(generated, problems)
    repeats = _collapse_repeats(value)
    filled: list[str] = []
    document = _conform(schema.decode_schema, value, "", filled)
    if filled and not problems:
        problems.append(f"fields missing from the output were left empty: {', '.join(filled)}")
    if closed and not problems and not repeats:
        problems.append("the output stopped before its end; kept the complete part")
    data, cleared = _validate(schema, document, problems)
    facts = find_facts(text)
    # The fields whose value an extractor supplied (the job forced it): they hold exactly that value.
    supplied = {
        path for path, value in supplied_values(schema, text, facts).items() if data.get(path) == value
    }
    day_first = infer_day_first(text)
    changes = normalize_document(schema, data, day_first=day_first)
    rules = repeats + check_rules(schema, data)
    repaired_paths = set(filled) | set(cleared)
    fields = _field_reports(
        schema,
        data,
        token_confidences(nodes, generated.tokens),
        rules,
        facts,
        text,
        repaired_paths,
        day_first,
        supplied - repaired_paths,
    )
    repaired = bool(problems)
    confidence = document_confidence(fields, repaired=repaired)
    reasons = []
    if repaired:
        reasons.append("the output had to be repaired: " + "; ".join(problems))
    reasons += [f"rule failed: {r.rule} ({r.message})" for r in rules if r.status == "fail"]
    if confidence < review_threshold:
        reasons.append(f"confidence {confidence:.2f} is below the review threshold {review_threshold:.2f}")
    return ExtractionResult(
        schema=schema.schema_id,
        data=data,
        confidence=confidence,
        fields=fields,
        repaired=repaired,
        problems=problems,
        rules=rules,
        normalized=changes,
        review_reasons=reasons,
    )
