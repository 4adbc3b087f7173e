"""The extraction task layer without a model: normalisation, extractors, JSON repair, schemas, rule checks,
confidence and triage, on scripted model output."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from deskpilot.inference import ScriptedBackend, Token
from deskpilot.inference.extraction import (
    BUILT_IN,
    Generated,
    SchemaError,
    classify_job,
    extraction_job,
    find_facts,
    finish_classification,
    finish_extraction,
    list_schemas,
    load_schema,
)
from deskpilot.inference.extraction._json import close_truncated, read_json
from deskpilot.inference.extraction.custom import custom_schema
from deskpilot.inference.extraction.extract import fit_to_tokens
from deskpilot.inference.extraction.extractors import find_ibans, find_invoice_numbers, iban_is_valid
from deskpilot.inference.extraction.normalize import normalize_currency, parse_amount, parse_date

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

RECEIPT_TEXT = """Corner Cafe
4 Market Street
03/02/2025 08:10
Coffee 2 x 12.50 25.00
Cake 3.20
Sum 28.20
Paid 30.00 change 1.80
Printed 04/02/2025
"""
INVOICE_TEXT = """Northwind Traders Ltd
12 Harbour Road, Bristol BS1 4DJ
Tel: 0117 496 0000
INVOICE
Invoice No: NW-2041
Invoice date: 03/02/2025
Due date: 05/03/2025
Paper, A4 box   2 x 12.50   25.00
Toner cartridge 1 x 60.00   60.00
Subtotal 85.00
VAT 20% 17.00
Total due GBP 102.00
Pay to IBAN GB82 WEST 1234 5698 7654 32, questions to accounts@northwind.example
"""


def invoice(**changes: object) -> dict:
    data = {
        "vendor": "Northwind Traders Ltd",
        "vendorAddress": "12 Harbour Road, Bristol BS1 4DJ",
        "invoiceNumber": "NW-2041",
        "issueDate": "03/02/2025",
        "dueDate": "05/03/2025",
        "currency": "GBP",
        "subtotal": 85.0,
        "tax": 17.0,
        "total": 102.0,
        "lineItems": [
            {"description": "Paper, A4 box", "quantity": 2, "unitPrice": 12.5, "amount": 25.0},
            {"description": "Toner cartridge", "quantity": 1, "unitPrice": 60.0, "amount": 60.0},
        ],
    }
    data.update(changes)
    return data


def tokens_for(text: str, logprob: float = -0.01, low: dict[str, float] | None = None) -> list[Token]:
    """The text cut into 3-character tokens; tokens inside any substring named in `low` get its logprob."""
    marks = [logprob] * len(text)
    for substring, value in (low or {}).items():
        start = text.index(substring)
        marks[start : start + len(substring)] = [value] * len(substring)
    return [Token(text[i : i + 3], min(marks[i : i + 3])) for i in range(0, len(text), 3)]


def generated(
    data: object, *, low: dict[str, float] | None = None, logprob: float = -0.01, cut: int | None = None
) -> Generated:
    text = json.dumps(data)[:cut]
    return Generated(
        text=text, tokens=tokens_for(text, logprob, low), finish_reason="length" if cut else "stop"
    )


# --- normalisation and extractors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-02-03", date(2025, 2, 3)),
        ("03/02/2025", date(2025, 2, 3)),
        ("3.2.25", date(2025, 2, 3)),
        ("03-02-2025 10:15:00", date(2025, 2, 3)),
        ("3 Feb 2025", date(2025, 2, 3)),
        ("February 3, 2025", date(2025, 2, 3)),
        ("3. Februar 2025", date(2025, 2, 3)),
        ("3 février 2025", date(2025, 2, 3)),
        ("12/31/2024", date(2024, 12, 31)),
        ("31/02/2025", None),
        ("next Friday", None),
        ("", None),
    ],
)
def test_dates_parse_in_common_forms_and_impossible_dates_do_not(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


def test_ambiguous_numeric_dates_follow_the_stated_order() -> None:
    assert parse_date("03/02/2025", day_first=False) == date(2025, 3, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("€ 1 234,50", "1234.50"),
        ("12,50", "12.50"),
        ("1,000", "1000"),
        ("1.000.000", "1000000"),
        ("RM 9.00", "9.00"),
        ("(5.59)", "-5.59"),
        ("-5.59", "-5.59"),
        ("none", None),
    ],
)
def test_amounts_parse_with_either_decimal_mark(text: str, expected: str | None) -> None:
    assert parse_amount(text) == (Decimal(expected) if expected else None)


@pytest.mark.parametrize(
    ("text", "code"),
    [("eur", "EUR"), ("€", "EUR"), ("RM", "MYR"), ("US$", "USD"), ("pounds", "GBP"), ("zorkmids", None)],
)
def test_currencies_normalise_to_iso_codes(text: str, code: str | None) -> None:
    assert normalize_currency(text) == code


def test_iban_checksum_catches_a_changed_digit() -> None:
    assert iban_is_valid("GB82 WEST 1234 5698 7654 32") and iban_is_valid("DE89370400440532013000")
    assert not iban_is_valid("GB82 WEST 1234 5698 7654 33")  # one digit off: mod 97 no longer 1
    assert not iban_is_valid("DE8937040044053201300")  # a German IBAN is 22 characters
    assert find_ibans("IBAN: DE89 3704 0044 0532 0130 00, or DE89 3704 0044 0532 0130 01") == [
        "DE89370400440532013000"
    ]


def test_invoice_numbers_need_a_label_and_a_digit() -> None:
    assert find_invoice_numbers("TAX INVOICE\nInvoice No: INV-7/2025\nOrder ref 55-A") == [
        "INV-7/2025",
        "55-A",
    ]
    assert find_invoice_numbers("Invoice for services") == []


def test_facts_of_an_invoice() -> None:
    facts = find_facts(INVOICE_TEXT)
    assert facts.vendor == "Northwind Traders Ltd"
    assert facts.vendor_address == "12 Harbour Road, Bristol BS1 4DJ"
    assert (facts.issue_date, facts.due_date) == (date(2025, 2, 3), date(2025, 3, 5))
    assert (facts.subtotal, facts.tax, facts.total) == (Decimal("85.00"), Decimal("17.00"), Decimal("102.00"))
    assert facts.currency == "GBP" and facts.invoice_numbers == ["NW-2041"]
    assert facts.emails == ["accounts@northwind.example"] and facts.ibans == ["GB82WEST12345698765432"]


def test_a_receipt_total_skips_cash_and_change_and_prefers_the_strongest_label() -> None:
    receipt = "Corner Cafe\nLatte 3.20\nTOTAL 3.20\nAMOUNT DUE 3.20\nCASH 5.00\nCHANGE 1.80\nTotal items 1"
    assert find_facts(receipt).total == Decimal("3.20")
    assert find_facts("Shop\nTotal:\n12.40\nCash\n20.00").total == Decimal("12.40")  # amount on the next line


# --- reading the model's JSON ---------------------------------------------------------------------------


def test_json_values_come_with_their_spans_and_raw_line_breaks_are_tolerated() -> None:
    text = '{"a": "x\ny", "b": [1, 2.5], "c": null}'
    value, nodes = read_json(text)
    assert value == {"a": "x\ny", "b": [1, 2.5], "c": None}
    spans = {n.path: text[n.start : n.end] for n in nodes}
    assert spans["a"] == "x\ny" and spans["b[1]"] == "2.5" and spans["c"] == "null"


@pytest.mark.parametrize(
    ("cut", "closed"),
    [
        ('{"a": 1, "items": [{"d": "x"}, {"d": "y', '{"a": 1, "items": [{"d": "x"}]}'),
        ('{"a": 1, "b": 12.', '{"a": 1}'),  # a number at the very end may be missing digits
        ('{"a": "x", "b": [', '{"a": "x", "b": []}'),
        ('{"a', "{}"),
        ('{"a": "say \\"hi, there\\"", "b": "x', '{"a": "say \\"hi, there\\""}'),  # no cut in a string
        ('"unterminated', None),
    ],
)
def test_output_cut_at_the_token_limit_closes_at_its_last_complete_value(
    cut: str, closed: str | None
) -> None:
    assert close_truncated(cut) == closed


# --- schemas --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_schemas_require_every_key_and_their_empty_document_validates(name: str) -> None:
    schema = BUILT_IN[name]
    props = schema.decode_schema["properties"]
    assert schema.decode_schema["required"] == list(props) and "$ref" not in json.dumps(schema.decode_schema)
    result = finish_extraction(
        schema, text="", generated=Generated(text="", tokens=[], finish_reason="length")
    )
    msgspec.convert(result.data, schema.struct)
    assert result.repaired and result.confidence <= 0.2 and result.review_reasons


def test_a_custom_schema_becomes_a_struct_with_the_same_limits(tmp_path: Path) -> None:
    (tmp_path / "purchase_order.json").write_text(
        json.dumps(
            {
                "title": "Purchase order",
                "x-version": 2,
                "type": "object",
                "required": ["po number", "status"],
                "properties": {
                    "po number": {"type": "string", "maxLength": 20, "x-kind": "invoice_number"},
                    "status": {"type": "string", "enum": ["open", "closed"]},
                    "amount": {"type": ["number", "null"], "x-kind": "amount.total"},
                    "lines": {
                        "type": "array",
                        "maxItems": 5,
                        "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
                    },
                },
            }
        )
    )
    schema = load_schema("purchase_order", tmp_path)
    assert schema.schema_id == "purchase_order@v2" and schema.template == "extract_custom"
    assert schema.kinds == {"po number": "invoice_number", "amount": "amount.total"}
    ok = {"po number": "PO-1", "status": "open", "amount": None, "lines": [{"sku": "A"}]}
    assert msgspec.to_builtins(msgspec.convert(ok, schema.struct)) == ok
    for bad in ({**ok, "status": "lost"}, {**ok, "po number": "x" * 21}, {**ok, "lines": [{"sku": "A"}] * 6}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, schema.struct)
    assert [s.name for s in list_schemas(tmp_path)[0]] == [*BUILT_IN, "purchase_order"]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}}},
            "unsupported keyword(s) ['minimum']",
        ),
        ({"type": "object", "properties": {"s": {"type": "string", "pattern": "^a"}}}, "['pattern']"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/x"}}}, "type must be one of"),
        ({"type": "object", "properties": {}}, "needs `properties`"),
        ({"type": "array", "items": {"type": "string"}}, "root must be an object"),
        (
            {"type": "object", "properties": {"s": {"type": "string", "maxLength": 10**6}}},
            "maxLength must be",
        ),
    ],
)
def test_custom_schemas_refuse_what_the_grammar_cannot_enforce(document: dict, says: str) -> None:
    with pytest.raises(SchemaError, match=None) as caught:
        custom_schema("mine", document, "mine.json")
    assert says in str(caught.value)


def test_custom_schema_names_cannot_shadow_built_ins(tmp_path: Path) -> None:
    (tmp_path / "invoice.json").write_text('{"type": "object", "properties": {"a": {"type": "string"}}}')
    (tmp_path / "broken.json").write_text("{nope")
    schemas, problems = list_schemas(tmp_path)
    assert [s.name for s in schemas] == list(BUILT_IN)
    assert "built-in" in problems["invoice.json"] and "not valid JSON" in problems["broken.json"]
    with pytest.raises(SchemaError, match="no schema 'nope'"):
        load_schema("nope", tmp_path)


# --- finishing an extraction ----------------------------------------------------------------------------


def finish(data: object, **kwargs: object) -> object:
    gen_kwargs = {k: kwargs.pop(k) for k in ("low", "logprob", "cut") if k in kwargs}
    return finish_extraction(
        BUILT_IN["invoice"], text=INVOICE_TEXT, generated=generated(data, **gen_kwargs), **kwargs
    )


def test_a_consistent_invoice_is_normalised_passes_every_rule_and_is_confident() -> None:
    result = finish(invoice())
    assert result.data["issueDate"] == "2025-02-03" and result.data["dueDate"] == "2025-03-05"
    assert all(rule.status == "pass" for rule in result.rules)
    assert {r.rule for r in result.rules} >= {
        "date_parses",
        "due_not_before_issue",
        "total_is_subtotal_plus_tax",
        "line_items_sum",
        "line_is_quantity_times_price",
        "currency_known",
    }
    assert result.fields["total"].cross_check == "agrees" and result.fields["vendor"].grounding == 1.0
    assert result.confidence > 0.9 and result.review_reasons == [] and not result.repaired


@pytest.mark.parametrize(
    ("changes", "rule", "fields"),
    [
        ({"total": 112.0}, "total_is_subtotal_plus_tax", {"subtotal", "tax", "total"}),
        (
            {"lineItems": [{"description": "Paper", "quantity": 2, "unitPrice": 12.5, "amount": 25.0}]},
            "line_items_sum",
            {"lineItems[0].amount", "subtotal"},
        ),
        ({"dueDate": "01/01/2025"}, "due_not_before_issue", {"issueDate", "dueDate"}),
        ({"issueDate": "the 45th of Smarch"}, "date_parses", {"issueDate"}),
        ({"currency": "zorkmid"}, "currency_known", {"currency"}),
        (
            {
                "lineItems": [
                    {"description": "Paper", "quantity": 3, "unitPrice": 12.5, "amount": 25.0},
                    {"description": "Toner", "quantity": 1, "unitPrice": 60.0, "amount": 60.0},
                ]
            },
            "line_is_quantity_times_price",
            {"lineItems[0].quantity", "lineItems[0].unitPrice", "lineItems[0].amount"},
        ),
    ],
)
def test_rule_checks_catch_planted_inconsistencies(changes: dict, rule: str, fields: set[str]) -> None:
    result = finish(invoice(**changes))
    failed = [r for r in result.rules if r.status == "fail"]
    assert [r.rule for r in failed] == [rule] and set(failed[0].fields) == fields
    assert any(reason.startswith(f"rule failed: {rule}") for reason in result.review_reasons)
    consistent = finish(invoice())
    for path in fields:
        assert result.fields[path].failed_rules == [rule]
        assert result.fields[path].confidence < consistent.fields.get(
            path, result.fields[path]
        ).confidence or (path not in consistent.fields)


def test_an_iban_field_in_a_custom_schema_is_checksummed() -> None:
    schema = custom_schema(
        "payee",
        {"type": "object", "properties": {"iban": {"type": "string", "maxLength": 40, "x-kind": "iban"}}},
        "payee.json",
    )
    good = finish_extraction(
        schema,
        text="IBAN GB82 WEST 1234 5698 7654 32",
        generated=generated({"iban": "GB82 WEST 1234 5698 7654 32"}),
    )
    bad = finish_extraction(
        schema,
        text="IBAN GB82 WEST 1234 5698 7654 32",
        generated=generated({"iban": "GB82 WEST 1234 5698 7654 23"}),
    )
    assert good.data["iban"] == "GB82WEST12345698765432" and good.fields["iban"].cross_check == "agrees"
    assert [r.status for r in good.rules] == ["pass"] and [r.status for r in bad.rules] == ["fail"]
    assert bad.fields["iban"].cross_check == "disagrees" and bad.fields["iban"].confidence < 0.3


def test_token_probabilities_reach_the_field_that_owns_them() -> None:
    doubtful = finish(invoice(), low={'"NW-2041"': -2.5})
    assert doubtful.fields["invoiceNumber"].token_confidence == pytest.approx(math.exp(-2.5), abs=0.01)
    assert doubtful.fields["vendor"].token_confidence == pytest.approx(math.exp(-0.01), abs=0.001)
    assert doubtful.fields["invoiceNumber"].confidence < 0.6 < doubtful.fields["vendor"].confidence


def test_an_unsure_model_sends_the_document_to_review() -> None:
    unsure = finish(invoice(), logprob=-1.6)
    assert unsure.confidence < 0.6
    assert any("below the review threshold" in reason for reason in unsure.review_reasons)
    assert not any(
        "below" in r for r in finish(invoice(), logprob=-1.6, review_threshold=0.05).review_reasons
    )


def test_invented_values_lose_confidence() -> None:
    invented = finish(invoice(vendor="Globex Corporation", total=99.0))
    assert invented.fields["vendor"].grounding == 0.0 and invented.fields["vendor"].confidence < 0.6
    assert invented.fields["total"].cross_check == "disagrees"
    missed = finish(invoice(total=None))
    assert missed.fields["total"].cross_check == "missed"


def test_output_cut_at_the_limit_still_validates_keeps_what_was_complete_and_goes_to_review() -> None:
    text = json.dumps(invoice())
    result = finish(invoice(), cut=text.index('"tax"') + 4)
    msgspec.convert(result.data, BUILT_IN["invoice"].struct)
    assert result.data["subtotal"] == 85.0 and result.data["tax"] is None and result.data["lineItems"] == []
    assert result.fields["tax"].repaired and result.fields["tax"].confidence == 0
    assert result.repaired and result.confidence <= 0.2
    assert "cut at the token limit" in result.review_reasons[0]


async def test_a_model_repeating_a_list_item_is_stopped_and_the_run_collapsed() -> None:
    item = {"description": "Paper", "quantity": 1, "unitPrice": 25.0, "amount": 25.0}
    looping = json.dumps(invoice(lineItems=[item] * 40))  # a model that would loop to the token limit
    backend = ScriptedBackend(lambda request: [looping[i : i + 5] for i in range(0, len(looping), 5)])
    job = extraction_job(BUILT_IN["invoice"], text=INVOICE_TEXT, context_length=4096)
    chunks = [t async for t in backend.stream(job.request) if isinstance(t, Token)]
    text = "".join(t.text for t in chunks)
    assert text.count('"Paper"') == 3 and len(text) < len(looping) // 5  # stopped at the third copy
    result = finish_extraction(
        BUILT_IN["invoice"],
        text=INVOICE_TEXT,
        generated=Generated(text=text, tokens=chunks, finish_reason="stop"),
    )
    assert result.data["lineItems"] == [item] and not result.repaired and result.problems == []
    loop = next(r for r in result.rules if r.rule == "no_repeated_items")
    assert loop.status == "fail" and "lineItems[0] 3 times" in loop.message
    assert result.fields["lineItems[0].amount"].failed_rules == ["no_repeated_items", "line_items_sum"]
    assert any("no_repeated_items" in reason for reason in result.review_reasons)


def test_values_the_struct_refuses_are_cleared_not_passed_on() -> None:
    schema = BUILT_IN["email_actions"]
    text = json.dumps({"actionItems": [{"task": "x" * 250, "owner": "Ana", "dueDate": None}]})
    result = finish_extraction(
        schema, text="", generated=Generated(text=text, tokens=tokens_for(text), finish_reason="stop")
    )
    assert result.data == {"actionItems": [{"task": "", "owner": "Ana", "dueDate": None}]}
    assert result.fields["actionItems[0].task"].repaired and result.repaired


def test_the_job_asks_for_grammar_logprobs_and_a_context_that_fits() -> None:
    backend = ScriptedBackend()
    job = extraction_job(
        BUILT_IN["invoice"], text="word " * 10_000, context_length=4096, count_tokens=backend.count_tokens
    )
    request = job.request
    assert (
        job.task == "extract:invoice" and job.template.template_id == "extract_invoice@v2" and job.truncated
    )
    assert (
        request.json_schema["required"] == BUILT_IN["invoice"].decode_schema["required"] and request.logprobs
    )
    assert request.temperature == 0.0 and request.repeat_penalty == 1.0
    assert backend.count_tokens(request.messages[1].content) + request.max_tokens < 4096
    assert job.input["schema_hash"] == BUILT_IN["invoice"].content_hash
    # The field guide is in the system prompt, a prefix every invoice shares (llama.cpp caches it).
    assert "- total: final amount to pay" in request.messages[0].content


def test_fields_are_narrowed_to_what_the_document_contains() -> None:
    request = extraction_job(BUILT_IN["invoice"], text=RECEIPT_TEXT, context_length=4096).request
    props = request.json_schema["properties"]
    assert props["issueDate"]["anyOf"][0] == {"enum": ["03/02/2025", "04/02/2025"]}  # as written
    assert props["total"]["anyOf"][0]["enum"] == [12.5, 25.0, 3.2, 28.2, 30.0, 1.8]  # no "total" label
    assert props["lineItems"]["items"]["properties"]["amount"]["anyOf"][0]["enum"][-1] == 1.8
    vendors = props["vendor"]["anyOf"][0]["enum"]
    assert vendors == ["Corner Cafe", "4 Market Street"]  # lines holding no amount and no date
    # An address is offered whole, from its first line holding a number: never a part of it.
    assert props["vendorAddress"]["anyOf"][0]["enum"] == ["4 Market Street"]
    quantities = props["lineItems"]["items"]["properties"]["quantity"]["anyOf"][0]["enum"]
    assert quantities[0] == 4 and 2 in quantities and 2025 not in quantities  # not from within a date
    # Roles a label identifies, with no label in the document: null is all the model may write.
    assert all(props[name]["type"] == "null" for name in ("dueDate", "tax", "invoiceNumber", "currency"))
    empty = extraction_job(BUILT_IN["invoice"], text="", context_length=4096).request.json_schema
    assert all(
        empty["properties"][name]["type"] == "null" for name in ("total", "issueDate", "vendor", "currency")
    )
    free = extraction_job(BUILT_IN["invoice"], text=INVOICE_TEXT, context_length=4096, grounded=False)
    assert free.request.json_schema == BUILT_IN["invoice"].decode_schema
    assert free.parameters["grounded_candidates"] is False and free.parameters["supplied_by_extractors"] == []


def test_values_read_next_to_a_label_are_supplied_and_the_result_names_their_source() -> None:
    job = extraction_job(BUILT_IN["invoice"], text=INVOICE_TEXT, context_length=4096)
    props = job.request.json_schema["properties"]
    assert props["total"]["enum"] == [102.0] and props["tax"]["enum"] == [17.0]  # not even null
    assert props["dueDate"]["enum"] == ["05/03/2025"] and props["invoiceNumber"]["enum"] == ["NW-2041"]
    assert props["currency"]["enum"] == ["GBP"]
    # the issuer: a line that names a company, when the header has one; its address: no company name in it
    assert props["vendor"]["anyOf"][0]["enum"] == ["Northwind Traders Ltd"]
    assert props["vendorAddress"]["anyOf"][0]["enum"] == ["12 Harbour Road, Bristol BS1 4DJ"]
    # the one date that is not the due date is the issue date
    assert props["issueDate"]["enum"] == ["03/02/2025"]
    assert job.parameters["supplied_by_extractors"] == [
        "currency",
        "dueDate",
        "invoiceNumber",
        "issueDate",
        "subtotal",
        "tax",
        "total",
    ]
    result = finish(invoice())
    assert result.fields["total"].source == "extractor" and result.fields["total"].cross_check == "agrees"
    assert result.fields["vendor"].source == "model" and result.fields["issueDate"].source == "extractor"
    # A model that wrote another value (a backend that ignores the grammar) is the source of what it wrote.
    other = finish(invoice(total=99.0))
    assert other.fields["total"].source == "model" and other.fields["total"].cross_check == "disagrees"


def test_without_a_tokenizer_the_input_is_cut_by_bytes_which_bounds_any_tokenizer() -> None:
    noise = "\u4e00\u9fff" * 20_000
    cut, truncated = fit_to_tokens(noise, 3000, None)
    assert truncated and len(cut.encode()) <= 3000 + len(" [...]")


# --- triage ---------------------------------------------------------------------------------------------


def test_classification_confidence_is_the_probability_of_the_label_tokens() -> None:
    labels = ["invoice", "newsletter", "fyi"]
    job = classify_job(text="Your monthly digest", labels=labels, context_length=4096)
    assert (
        job.request.json_schema == {"enum": labels}
        and "- newsletter: a newsletter" in job.request.messages[1].content
    )
    tokens = [Token('"', -3.0), Token("news", -0.2), Token("letter", -0.1), Token('"', -2.0)]
    result = finish_classification(
        labels, Generated(text='"newsletter"', tokens=tokens, finish_reason="stop")
    )
    assert result.label == "newsletter" and result.confidence == pytest.approx(math.exp(-0.3), abs=1e-4)
    assert result.review_reasons == []
    unsure = finish_classification(
        labels, Generated(text='"fyi"', tokens=[Token('"fyi"', -1.2)], finish_reason="stop")
    )
    assert unsure.confidence < 0.6 and unsure.review_reasons


def test_a_cut_classification_is_a_guess_with_no_confidence() -> None:
    result = finish_classification(
        ["invoice", "newsletter"], Generated(text='"news', tokens=[Token('"news')], finish_reason="length")
    )
    assert (result.label, result.confidence, result.repaired) == ("newsletter", 0.0, True)


@pytest.mark.parametrize("labels", [["one"], ["a", "a"], ["Bad Label", "ok"]])
def test_labels_must_be_distinct_simple_names(labels: list[str]) -> None:
    with pytest.raises(ValueError, match="labels must be"):
        classify_job(text="x", labels=labels, context_length=4096)


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("ABC TRADING SDN BHD\nTOTAL 12.50", None),  # Berhad, not Bahraini dinars
        ("Fabrikam USA Inc\nTotal 10.00", None),
        ("Total due (GBP) 126.00", "GBP"),
        ("Currency: EUR\nTotal 5.00", "EUR"),
        ("Amount: USD 40", "USD"),
        ("12.00 EUR", "EUR"),
        ("TOTAL RM 12.00", "MYR"),
    ],
)
def test_a_currency_word_counts_only_where_it_reads_as_one(text: str, currency: str | None) -> None:
    from deskpilot.inference.extraction.extractors import find_currency

    assert find_currency(text) == currency
