"""Deterministic extractors: what plain pattern matching finds in a document, to cross-check the model.

They are written for documents in general (invoices, receipts, emails in several European languages),
not fitted to any dataset. Each finder returns every candidate with its position; `find_facts` picks the
likeliest value per role with the rules stated in its docstring. Where a pattern cannot decide (an
unlabelled amount, a line that may or may not be an address) it leaves the role empty rather than guess:
a cross-check that is silent is better than one that disagrees wrongly.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import msgspec

from deskpilot.inference.extraction.normalize import (
    find_dates,
    normalize_currency,
    normalize_text,
    parse_amount,
)

__all__ = [
    "Facts",
    "address_blocks",
    "could_be_name",
    "ends_address",
    "find_amounts",
    "find_currency",
    "find_emails",
    "find_facts",
    "find_ibans",
    "find_invoice_numbers",
    "iban_is_valid",
    "label_line",
    "names_company",
    "registration_only",
]


class Facts(msgspec.Struct, kw_only=True):
    """What the deterministic extractors found in one document."""

    dates: list[date] = []
    amounts: list[Decimal] = []
    emails: list[str] = []
    ibans: list[str] = []
    invoice_numbers: list[str] = []
    currency: str | None = None
    vendor: str | None = None
    vendor_address: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    subtotal: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None


# --- amounts --------------------------------------------------------------------------------------------

_CURRENCY_BEFORE = r"(?P<cur>[A-Z]{3}|[A-Za-z]{1,2}\$|RM|Rp|[€£¥₹$])?\s?"
_DECIMAL = r"(?P<num>-?\d{1,3}(?:[,.\u00a0 ]\d{3})+[.,]\d{2}|-?\d+[.,]\d{2})(?![\d.,]*\d)"
_INTEGER_WITH_CURRENCY = r"(?P<int>\d{1,3}(?:[,.\u00a0]\d{3})+|\d+)(?![\d.,]*\d)"
_AMOUNT = re.compile(
    r"(?<![\w.,])"
    + _CURRENCY_BEFORE
    + "(?:"
    + _DECIMAL
    + "|(?<=[€£¥₹$A-Z] )"
    + _INTEGER_WITH_CURRENCY
    + "|(?<=[€£¥₹$])"
    + _INTEGER_WITH_CURRENCY.replace("?P<int>", "?P<int2>")
    + r")\s?(?P<after>[A-Z]{3}\b|€)?"
)


class Amount(msgspec.Struct, frozen=True):
    value: Decimal
    start: int
    end: int
    currency: str | None


def find_amounts(text: str) -> list[Amount]:
    """Money amounts: numbers with two decimals (12.50, 1.234,50), or whole numbers next to a currency."""
    found = []
    for match in _AMOUNT.finditer(text):
        raw = match.group("num") or match.group("int") or match.group("int2")
        marks = [m for m in (match.group("cur"), match.group("after")) if m]
        currency = next((c for c in map(normalize_currency, marks) if c), None)
        if match.group("num") is None and currency is None:
            continue  # a whole number is an amount only with a currency next to it
        value = parse_amount(raw)
        if value is not None:
            found.append(Amount(value, match.start(), match.end(), currency))
    return found


def find_currency(text: str) -> str | None:
    """The currency a document uses: the one its amounts and currency words name most often."""
    counts: dict[str, int] = {}
    for amount in find_amounts(text):
        if amount.currency:
            counts[amount.currency] = counts.get(amount.currency, 0) + 1
    # A currency word counts where it reads as one: next to a number, in brackets ("Total (GBP)"), or
    # after "currency". A bare capitalised word elsewhere is usually part of a name (Malaysia's "SDN BHD"
    # is Berhad, not Bahraini dinars; "USA" is a country).
    for match in re.finditer(r"(?<![A-Za-z])(?:[A-Z]{3}|RM|€|£|¥|₹)(?![A-Za-z])", text):
        word = match.group(0)
        before, after = text[max(0, match.start() - 12) : match.start()], text[match.end() : match.end() + 3]
        if not (
            re.match(r"\s?\d", after)
            or re.search(r"\d\s?$", before)
            or (before.endswith(("(", "[")) and after.startswith((")", "]")))
            or re.search(r"currency\W{0,3}$", before, re.IGNORECASE)
        ):
            continue
        code = normalize_currency(word)
        if code:
            counts[code] = counts.get(code, 0) + 1
    return max(counts, key=lambda c: counts[c]) if counts else None


# --- identifiers ----------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def find_emails(text: str) -> list[str]:
    return list(dict.fromkeys(m.group().rstrip(".") for m in _EMAIL.finditer(text)))


# Lengths by country for the IBANs most often seen; others must be 15-34 characters.
_IBAN_LENGTHS = {
    "AT": 20,
    "BE": 16,
    "CH": 21,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "IE": 22,
    "IT": 27,
    "LU": 20,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "SE": 24,
}
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def iban_is_valid(value: str) -> bool:
    """ISO 13616: country letters, the length for that country, and the mod-97 checksum equal to 1."""
    iban = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    if len(iban) != _IBAN_LENGTHS.get(iban[:2], len(iban)):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ibans(text: str) -> list[str]:
    """Valid IBANs (checksum verified), compact and upper case. Written in groups of four or in one run."""
    found = []
    for match in _IBAN.finditer(text.upper()):
        candidate = re.sub(r"\s", "", match.group())
        # A run that swallowed a following word: shorten to the country's length before checking.
        expected = _IBAN_LENGTHS.get(candidate[:2])
        if expected and len(candidate) > expected:
            candidate = candidate[:expected]
        if iban_is_valid(candidate):
            found.append(candidate)
    return list(dict.fromkeys(found))


_DOC_NUMBER = re.compile(
    r"\b(?:invoice|inv|receipt|rcpt|bill|document|doc|order|reference|ref|rechnung|facture|factura|fattura)"
    r"\.?[ \t]*(?:no|nr|number|num|n°|nº|#|id)?\.?[ \t]*[:#]?[ \t]*"
    r"(?P<id>(?=[A-Z0-9\-/.]*\d)[A-Z0-9][A-Z0-9\-/.]{2,30})",
    re.IGNORECASE,
)


def find_invoice_numbers(text: str) -> list[str]:
    """Document numbers after a label ("Invoice No:", "Receipt #", "Rechnung Nr."); they hold a digit."""
    found = []
    for match in _DOC_NUMBER.finditer(text):
        value = match.group("id").rstrip(".-/")
        if any(ch.isdigit() for ch in value) and not re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", value):
            found.append(value)
    return list(dict.fromkeys(found))


# --- labelled values ------------------------------------------------------------------------------------

# Labels of the amount a customer pays, strongest first. Lines about quantities, discounts, change or a
# subtotal are never totals.
_TOTAL_LABELS = [
    re.compile(
        r"\b(?:amount|balance|total)\s+(?:due|payable)\b|\bgrand\s+total\b|\bto\s+pay\b|\bnet\s+total\b"
        r"|\btotal\s+(?:amount|incl|inc\b|including)|\brounded\s+total|\btotal\s+\(?(?:incl|inc)",
        re.I,
    ),
    re.compile(r"\btotal\b|\bsumme\b|\bgesamt|\bmontant\s+total|\btotale\b|\btotaal\b", re.I),
]
_NOT_TOTAL = re.compile(
    r"sub\s*-?\s*total|total\s+(?:qty|quantity|items?|disc|discount|saving|tax|gst|vat)"
    r"|\bchange\b|\bcash\b|\btendered\b|\bexcl",
    re.I,
)
_SUBTOTAL_LABEL = re.compile(r"sub\s*-?\s*total|total\s+excl|\bnet\s+amount\b|zwischensumme|sous-total", re.I)
_TAX_LABEL = re.compile(
    r"\b(?:tax|vat|gst|sst|mwst|ust|tva|iva|btw)\b(?!\s*(?:id|no|reg|invoice|number|#))", re.I
)
_DUE_LABEL = re.compile(r"\bdue\b|\bf[äa]llig|\béch[ée]ance|\bvencimiento|\bpay\s+by\b", re.I)


def _labelled_amount(lines: list[str], index: int, after: int) -> Decimal | None:
    """The first amount after the label on its line, else on one of the next two lines."""
    same = find_amounts(lines[index][after:])
    if same:
        return same[0].value
    for line in lines[index + 1 : index + 3]:
        amounts = find_amounts(line)
        if amounts:
            return amounts[0].value
        if re.search(r"[A-Za-z]{3}", line) and not normalize_currency(line.strip()):
            return None  # another labelled line: this label had no amount
    return None


_ROUNDING_LABEL = re.compile(r"\bround(?:ing)?\b(?!\s*(?:ed\b|total))|\bround(?:ing)?\s+adj", re.I)


def _find_total(lines: list[str], amounts: list[Decimal]) -> Decimal | None:
    """The amount to pay: that of the strongest total label. Among labels of equal strength, the largest
    amount, as the amount to pay includes the tax and charges that a total before tax leaves out (a
    receipt's tax summary often repeats "Total" for the amount before tax); a discount comes off under
    a stronger label ("net total", "amount due"). A rounding adjustment printed with it, where the
    document also states the rounded amount, gives that amount."""
    for label in _TOTAL_LABELS:
        found = []
        for i, line in enumerate(lines):
            match = label.search(line)
            if match and not _NOT_TOTAL.search(line):
                value = _labelled_amount(lines, i, match.end())
                if value is not None:
                    found.append(value)
        if found:
            total = max(found)
            rounding = _find_labelled(lines, _ROUNDING_LABEL)
            if rounding and (total + rounding) in amounts and total + rounding > 0:
                return total + rounding
            return total
    return None


def _find_labelled(lines: list[str], label: re.Pattern[str]) -> Decimal | None:
    for i, line in enumerate(lines):
        match = label.search(line)
        if match:
            value = _labelled_amount(lines, i, match.end())
            if value is not None:
                return value
    return None


def _dates(lines: list[str]) -> tuple[list[date], date | None, date | None]:
    every, issue, due = [], None, None
    for i, line in enumerate(lines):
        for value, _, _ in find_dates(line):
            every.append(value)
            labelled_due = _DUE_LABEL.search(line) or (i > 0 and _DUE_LABEL.search(lines[i - 1]))
            if labelled_due and due is None:
                due = value
            elif not labelled_due and issue is None:
                issue = value
    return every, issue, due


# --- the document header: who issued it, and where --------------------------------------------------------

_LEGAL_FORM = re.compile(
    r"\b(?:ltd|limited|inc|llc|llp|plc|gmbh|ag|sarl|sas|s\.a\.|bv|b\.v\.|nv|pty|pte|co\.|corp|corporation"
    r"|company|sdn\.?\s*bhd|bhd|s\.p\.a|s\.l\.|enterprise|enterprises|trading)\b\.?",
    re.I,
)
_NOT_A_NAME = re.compile(
    r"^(?:tax\s+)?(?:invoice|receipt|bill|cash\s+bill|welcome|original|copy|statement)\b", re.I
)
# Lines that end the address block: contact details, tax/registration ids, document labels, dates.
_ADDRESS_STOP = re.compile(
    r"\b(?:tel|phone|fax|mobile|hp|e-?mail|www|http|gst|vat|tax|reg|registration|company\s+no|co\.?\s*no|abn"
    r"|uen|invoice|receipt|bill|date|cashier|table|order|document|doc)\b|@",
    re.I,
)
_REGISTRATION_ONLY = re.compile(r"^\(?[A-Z]{0,3}[\s.:]*\d[\d\s\-/.]*[A-Z]?\)?$", re.I)
# "SALESPERSON:", "Company Reg No. : 123", "Cashier: Ann": a few words, then a colon. A name is never one.
_LABEL_LINE = re.compile(r"^\W*[^\W\d_][\w .&/'()-]{0,30}?\s*:")
# A telephone number alone on its line: seven or more digits in groups, no letters.
_PHONE_ONLY = re.compile(r"^\W*(?=(?:\D*\d){7})[\d\s()+./-]+$")
ADDRESS_LINES = 6  # lines an address may span


def label_line(line: str) -> bool:
    """Whether `line` is a label ("SALESPERSON:", "Tel: 123"): a few words then a colon."""
    return bool(_LABEL_LINE.match(line))


def ends_address(line: str) -> bool:
    """Whether `line` cannot be part of a postal address: contact details, ids, labels, amounts, dates."""
    return bool(
        _ADDRESS_STOP.search(line)
        or label_line(line)
        or _PHONE_ONLY.match(line)
        or find_amounts(line)
        or find_dates(line)
    )


def names_company(line: str) -> bool:
    """Whether `line` names a company: it carries a legal form (Ltd, GmbH, Sdn Bhd ...) and is no title
    and no label."""
    return bool(_LEGAL_FORM.search(line)) and not (_NOT_A_NAME.search(line) or label_line(line))


def could_be_name(line: str) -> bool:
    """Whether `line` could be a name: not a document title, contact details, an id or a label."""
    return not (_NOT_A_NAME.search(line) or _ADDRESS_STOP.search(line) or label_line(line))


def registration_only(line: str) -> bool:
    """Whether `line` is nothing but a registration number, such as "(JM0325955-V)"."""
    return bool(_REGISTRATION_ONLY.match(line))


def _join_address(lines: list[str]) -> str:
    """Address lines as one line; a comma before a letter gets its space ("27,JALAN" -> "27, JALAN"),
    as the printed line break stood for one, while a comma between digits ("55,57") is kept as is."""
    return re.sub(r",(?=[^\W\d_])", ", ", " ".join(lines))


def address_blocks(lines: list[str]) -> list[tuple[int, str]]:
    """Every postal address in `lines`, with the index of its first line: a run of consecutive address-like
    lines (none ends an address, names a company or is a bare registration number), from its first line
    holding a number (a street number, lot, level or postcode) to the end of the run, at most
    `ADDRESS_LINES` lines. An address spans all its lines: a part of one is never offered as the whole."""
    blocks: list[tuple[int, str]] = []
    run: list[tuple[int, str]] = []
    for index, raw in enumerate([*lines, "\x00"]):
        line = normalize_text(raw) if raw != "\x00" else raw
        if not line:
            continue  # an empty line neither starts nor ends anything
        if line != "\x00" and not (ends_address(line) or names_company(line) or registration_only(line)):
            run.append((index, line))
            continue
        start = next((i for i, (_, text) in enumerate(run) if re.search(r"\d", text)), None)
        part = run[start : start + ADDRESS_LINES] if start is not None else []
        if part and re.search(r"[^\W\d_]{2}", " ".join(text for _, text in part)):
            blocks.append((part[0][0], _join_address([text for _, text in part])))
        run = []
    return blocks


def _header(lines: list[str]) -> tuple[str | None, str | None]:
    """The issuer's name (the first of the top lines with a legal form, else the first name-like line) and
    the first address (`address_blocks`) in the lines under it."""
    top = [(i, normalize_text(line)) for i, line in enumerate(lines[:10]) if normalize_text(line)]
    named = [(i, line) for i, line in top if names_company(line)]
    if not named:
        named = [(i, line) for i, line in top if re.search(r"[A-Za-z]{2}", line) and could_be_name(line)]
    if not named:
        return None, None
    index, vendor = named[0]
    below = address_blocks(lines[index + 1 : index + 1 + 12])
    return vendor, (below[0][1] if below else None)


def find_facts(text: str) -> Facts:
    """Everything the extractors find, with one value per role:

    - total: the amount to pay (`_find_total`): after the strongest "total" label (amount due, grand
      total, ... over a plain "total"); lines about quantities, discounts, cash or change excluded;
    - subtotal and tax: the first amount after their labels; issue date: the first date not labelled as a
      due date; due date: the first date on or under a "due" line;
    - vendor and address: see `_header`; currency: see `find_currency`.
    """
    lines = text.splitlines()
    every_date, issue, due = _dates(lines)
    vendor, address = _header(lines)
    amounts = [a.value for a in find_amounts(text)]
    return Facts(
        dates=every_date,
        amounts=amounts,
        emails=find_emails(text),
        ibans=find_ibans(text),
        invoice_numbers=find_invoice_numbers(text),
        currency=find_currency(text),
        vendor=vendor,
        vendor_address=address,
        issue_date=issue,
        due_date=due,
        subtotal=_find_labelled(lines, _SUBTOTAL_LABEL),
        tax=_find_labelled(lines, _TAX_LABEL),
        total=_find_total(lines, amounts),
    )
