"""PII tokenization (inference/pii.py): what is found, how it is masked and restored, streamed or not, and
recall on the planted set (tests/data/pii/planted.jsonl, written by make_planted.py beside it)."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deskpilot.inference.pii import (
    CATEGORIES,
    PiiBlocked,
    PiiDetector,
    Redaction,
    redact_json,
    restore_json,
    screen,
)

pytestmark = pytest.mark.unit

PLANTED = Path(__file__).parent / "data" / "pii" / "planted.jsonl"
EMAIL = """From: "Shah, Priya" <priya.shah@example.com>
To: Marco Rossi <m.rossi@acme.it>

Hi Marco,

Please call me on +44 20 7946 0958 or (415) 555-2671. Our IBAN is DE89 3704 0044 0532 0130 00 and the
card on file is 4111 1111 1111 1111. Send the papers to 221B Baker Street, London NW1 6XE.
Amounts: $1,234.56 < $2,000.

Best regards,
Priya Shah
"""
# Ordinary business prose: dates, amounts, invoice and order numbers, versions, times. Nothing personal.
PROSE = """Following up on Tuesday's review: the Q3 forecast closed at $1,234.56 per seat, up 4.5% on Q2,
and the renewal for 2,500 licences (SKU AB-2291-X) is booked for 15 March 2025. Invoice INV-2024-00871 of
12/03/2024 was paid on 2024-04-15 at 14:30 CET; order #44871 and purchase order 4500123456 remain open until
the audit on 30 June. The London and Paris offices will move to version 3.12.4 of the client in week 27.
Shipping weighed 1,250.75 kg across 18 pallets; tracking 1Z 999 AA1 0123 4567 84 is attached. Budget:
EUR 2.500.000,00 for FY2025, of which 12.5 % is reserved. Mark the ticket as resolved once Grace periods
are agreed with Legal. Call extension 4412 if the meeting room on floor 3 is booked. The May release ships
on 1 May; Will the board approve it? Please see sections 4.2.1 and 7.3 of the Master Services Agreement
dated 01.02.2023. Ref 2023/0045/77, account code 400-1200-300, tax rate 19%, exchange rate 1.0834 at 09:15."""


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    found = PiiDetector()
    found.load()
    return found


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(span.category, span.text) for span in detector.find(text)]


@pytest.mark.parametrize(
    ("text", "category", "value"),
    [
        (
            "write to priya.shah+invoices@mail.example.co.uk today",
            "EMAIL",
            "priya.shah+invoices@mail.example.co.uk",
        ),
        ("or jane@corp.internal for the old system", "EMAIL", "jane@corp.internal"),
        ("call +49 30 901820 after lunch", "PHONE", "+49 30 901820"),
        ("call (415) 555-2671 after lunch", "PHONE", "(415) 555-2671"),
        ("call 020 7946 0958 after lunch", "PHONE", "020 7946 0958"),
        ("call +91 98765 43210 after lunch", "PHONE", "+91 98765 43210"),
        ("pay to GB82 WEST 1234 5698 7654 32 by Friday", "IBAN", "GB82 WEST 1234 5698 7654 32"),
        ("pay to DE89370400440532013000 by Friday", "IBAN", "DE89370400440532013000"),
        ("card 4111-1111-1111-1111 was charged", "CARD", "4111-1111-1111-1111"),
        ("card 3782 822463 10005 was charged", "CARD", "3782 822463 10005"),
        ("card 2221000000000009 was charged", "CARD", "2221000000000009"),
        (
            "ship it to 1600 Pennsylvania Ave NW, Washington, DC 20500 please",
            "ADDRESS",
            "1600 Pennsylvania Ave NW, Washington, DC 20500",
        ),
        ("ship it to Hauptstraße 12, 10115 Berlin please", "ADDRESS", "Hauptstraße 12, 10115 Berlin"),
        ("ship it to 10 rue de la Paix, 75002 Paris please", "ADDRESS", "10 rue de la Paix, 75002 Paris"),
        ("Hi Chidi,\nthe deck is attached.", "PERSON", "Chidi"),
        ("the deck is attached.\n\nThanks,\nOluwaseun Adeyemi\n", "PERSON", "Oluwaseun Adeyemi"),
        ("as Dr. Okonkwo said on the call", "PERSON", "Okonkwo"),
        ("I asked Priya Shah to check the numbers", "PERSON", "Priya Shah"),
    ],
)
def test_each_category_is_found(detector: PiiDetector, text: str, category: str, value: str) -> None:
    assert (category, value) in found(detector, text)


def test_card_numbers_failing_luhn_are_not_masked(detector: PiiDetector) -> None:
    assert found(detector, "card 4111 1111 1111 1111 was charged") == [("CARD", "4111 1111 1111 1111")]
    assert found(detector, "card 4111 1111 1111 1112 was charged") == []


def test_ibans_need_their_check_digits(detector: PiiDetector) -> None:
    assert found(detector, "IBAN DE89 3704 0044 0532 0130 00") == [("IBAN", "DE89 3704 0044 0532 0130 00")]
    assert "IBAN" not in {category for category, _ in found(detector, "IBAN DE88 3704 0044 0532 0130 00")}


def test_ordinary_business_prose_is_left_alone(detector: PiiDetector) -> None:
    assert found(detector, PROSE) == []


def test_spans_are_sorted_and_do_not_overlap(detector: PiiDetector) -> None:
    spans = detector.find(EMAIL)
    assert {span.category for span in spans} == set(CATEGORIES)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert all(EMAIL[span.start : span.end] == span.text for span in spans)


def test_the_same_value_gets_the_same_placeholder(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    masked = redaction.mask(
        "Ask Priya Shah (priya.shah@example.com, 415-555-2671). PRIYA.SHAH@example.com is the same "
        "address and (415) 555-2671 the same phone; Priya  Shah the same person, Marco Rossi another."
    )
    assert masked == (
        "Ask <PERSON_1> (<EMAIL_1>, <PHONE_1>). <EMAIL_1> is the same "
        "address and <PHONE_1> the same phone; <PERSON_1> the same person, <PERSON_2> another."
    )
    assert redaction.counts == {"EMAIL": 1, "PHONE": 1, "PERSON": 2}


def test_numbering_is_shared_by_the_messages_of_one_request(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    assert redaction.mask("Mail priya.shah@example.com") == "Mail <EMAIL_1>"
    assert redaction.mask("and m.rossi@acme.it, cc priya.shah@example.com") == "and <EMAIL_2>, cc <EMAIL_1>"
    assert Redaction(detector).mask("and m.rossi@acme.it") == "and <EMAIL_1>"


def test_restore_gives_back_the_first_spelling(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    masked = redaction.mask("Mail Priya.Shah@Example.com, then priya.shah@example.com")
    assert masked == "Mail <EMAIL_1>, then <EMAIL_1>"
    assert redaction.restore(masked) == "Mail Priya.Shah@Example.com, then Priya.Shah@Example.com"


def planted() -> Iterator[dict[str, Any]]:
    with PLANTED.open(encoding="utf-8") as lines:
        yield from (json.loads(line) for line in lines)


def test_mask_then_restore_is_the_identity_on_the_planted_set(detector: PiiDetector) -> None:
    for record in planted():
        redaction = Redaction(detector)
        masked = redaction.mask(record["text"])
        assert redaction.restore(masked) == record["text"], record["id"]
        for start, end, category in record["pii"]:  # names are left to the recall test: some are missed
            if category != "PERSON":
                assert record["text"][start:end] not in masked, (record["id"], record["text"][start:end])


def test_mangled_placeholders_are_restored_conservatively(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    assert redaction.mask("Hi Priya,") == "Hi <PERSON_1>,"
    assert redaction.restore("<person_1> / < PERSON_1 > / <Person_1>") == "Priya / Priya / Priya"
    assert redaction.restore("PERSON_1, <PERSON_2>, <EMAIL_1>, <PERSON 1>") == (
        "PERSON_1, <PERSON_2>, <EMAIL_1>, <PERSON 1>"
    )


def stream(redaction: Redaction, deltas: list[str]) -> str:
    restorer = redaction.restorer()
    return "".join(restorer.feed(delta) for delta in deltas) + restorer.flush()


# Model output: placeholders, a literal "<" in prose, tag-like and placeholder-like text that is neither.
ANSWER = "Dear <PERSON_1>, x < y and <b>bold</b>; <PERSONAL> <PER> <EMAIL_1 > at <person_2>; <PHONE_9>. <"


@pytest.fixture(scope="module")
def answer_redaction(detector: PiiDetector) -> Redaction:
    redaction = Redaction(detector)
    assert redaction.mask("Hi Priya, Marco Rossi writes from m.rossi@acme.it") == (
        "Hi <PERSON_1>, <PERSON_2> writes from <EMAIL_1>"
    )
    return redaction


def test_streaming_restores_placeholders_split_at_any_two_points(answer_redaction: Redaction) -> None:
    expected = answer_redaction.restore(ANSWER)
    assert expected == (
        "Dear Priya, x < y and <b>bold</b>; <PERSONAL> <PER> m.rossi@acme.it at Marco Rossi; <PHONE_9>. <"
    )
    for i in range(len(ANSWER) + 1):
        for j in range(i, len(ANSWER) + 1):
            assert stream(answer_redaction, [ANSWER[:i], ANSWER[i:j], ANSWER[j:]]) == expected, (i, j)


def test_streaming_one_character_at_a_time(answer_redaction: Redaction) -> None:
    assert stream(answer_redaction, list(ANSWER)) == answer_redaction.restore(ANSWER)


def test_streaming_holds_back_only_what_may_be_a_placeholder(answer_redaction: Redaction) -> None:
    restorer = answer_redaction.restorer()
    assert restorer.feed("Dear <PER") == "Dear "
    assert restorer.feed("SON_1") == ""
    assert restorer.feed(">, x <") == "Priya, x "
    assert restorer.feed(" y") == "< y"  # a "<" followed by a space and a lowercase word is let go
    assert restorer.feed(" <div>") == " <div>"
    assert restorer.feed(" <EMAIL_") == " "
    assert restorer.flush() == "<EMAIL_"


def test_counts_and_refusals_never_carry_values(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    redaction.mask(EMAIL)
    counts = redaction.counts
    assert set(counts) == set(CATEGORIES) and all(isinstance(n, int) and n > 0 for n in counts.values())
    error = PiiBlocked(counts)
    values = [span.text for span in detector.find(EMAIL)]
    for text in (json.dumps(counts), str(error), repr(error)):
        assert not any(value in text for value in values), text
    assert "PERSON" in str(error) and error.categories == counts


def test_policies(detector: PiiDetector) -> None:
    assert screen("allow", Redaction(detector), "Hi Priya,") == "Hi Priya,"
    assert screen("mask", Redaction(detector), "Hi Priya,") == "Hi <PERSON_1>,"
    assert screen("block", Redaction(detector), "The invoice is attached.") == "The invoice is attached."
    with pytest.raises(PiiBlocked, match=r"1 PERSON") as refusal:
        screen("block", Redaction(detector), "Hi Priya,")
    assert refusal.value.categories == {"PERSON": 1}


def test_json_values_are_masked_and_restored_inside_strings(detector: PiiDetector) -> None:
    redaction = Redaction(detector)
    document = {
        "vendor": "Acme",
        "contact": {"name": "Hi Priya,", "phones": ["(415) 555-2671", 3]},
        "ok": True,
    }
    masked = redact_json(document, redaction)
    assert masked == {
        "vendor": "Acme",
        "contact": {"name": "Hi <PERSON_1>,", "phones": ["<PHONE_1>", 3]},
        "ok": True,
    }
    answer = {"payer": "<PERSON_1>", "call": ["<PHONE_1>", "<PHONE_2>"], "total": 12.5}
    assert restore_json(answer, redaction) == {
        "payer": "Priya",
        "call": ["(415) 555-2671", "<PHONE_2>"],
        "total": 12.5,
    }


def test_finding_needs_no_network(detector: PiiDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Presidio's email check asks tldextract, which fetches the public suffix list: ours does not."""

    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)  # recorded, since a library may swallow the error and fall back
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert ("EMAIL", "jane@corp.example.org") in found(detector, "mail jane@corp.example.org or call")
    assert attempts == []


def test_one_detector_serves_several_threads(detector: PiiDetector) -> None:
    expected = detector.find(EMAIL)
    results: list[object] = []

    def work() -> None:
        results.append(PiiDetector().find(EMAIL))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def score(detector: PiiDetector) -> tuple[dict[str, tuple[int, int]], Counter[str], Counter[str]]:
    """Recall per category (a planted value counts when spans of its category cover all of it), the
    detections per category, and the spurious ones (overlapping no planted value of their category)."""
    recall: dict[str, list[int]] = {category: [0, 0] for category in CATEGORIES}
    detected: Counter[str] = Counter()
    spurious: Counter[str] = Counter()
    for record in planted():
        spans = detector.find(record["text"])
        for start, end, category in record["pii"]:
            covered = {i for span in spans if span.category == category for i in range(span.start, span.end)}
            recall[category][0] += set(range(start, end)) <= covered
            recall[category][1] += 1
        for span in spans:
            detected[span.category] += 1
            if not any(span.start < e and span.end > s and span.category == c for s, e, c in record["pii"]):
                spurious[span.category] += 1
    return {category: (hit, total) for category, (hit, total) in recall.items()}, detected, spurious


def test_recall_on_the_planted_set(detector: PiiDetector) -> None:
    recall, detected, spurious = score(detector)
    rates = {category: hit / total for category, (hit, total) in recall.items()}
    assert all(total >= 90 for _, total in recall.values()), recall
    for category in ("EMAIL", "PHONE", "IBAN", "CARD"):
        assert rates[category] >= 0.99, (category, recall[category])
    # Measured 1.00 and 0.94 (the misses: names outside the given-name list in prose with no cue).
    assert rates["ADDRESS"] >= 0.95, recall["ADDRESS"]
    assert rates["PERSON"] >= 0.90, recall["PERSON"]
    # Measured 3 of ~1,230: digit runs inside IBANs with a wrong check digit read as a card or a phone.
    assert sum(spurious.values()) <= 0.01 * sum(detected.values()), spurious
