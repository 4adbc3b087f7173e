"""Reading the values documents are full of: dates, amounts, currencies, and text compared loosely.

Everything here is deterministic and locale-aware only in the ways spelled out below, so that the model's
fields, the deterministic extractors and the evaluation all normalise the same way:

- Text: Unicode NFKC, whitespace collapsed, trimmed; `text_key` also case-folds (for comparisons).
- Dates: ISO (2024-03-05), numeric day/month/year with `/`, `-` or `.` (day first unless the first number
  cannot be a month or the caller says month first), and month names in English, German, French, Spanish
  and Dutch (5 Mar 2024, March 5, 2024, 5. März 2024). Two-digit years are 2000-2069 or 1970-1999. Times
  after the date are ignored. A date that does not exist (31/02) is not a date.
- Amounts: a decimal number with optional currency marks, thousands separators and a sign or accounting
  parentheses. With both `,` and `.` the last one is the decimal mark; with only one kind, it is the decimal
  mark when 1-2 digits follow it once (12,50 or 9.5), a thousands separator when groups of exactly 3 follow
  and it appears more than once or is a comma (1,000 and 1.000.000); a single `.` with 3 digits (9.000) stays
  a decimal point, as receipts print unit prices that way.
- Currencies: ISO 4217 codes, symbols and a few common local marks map to the ISO code; `$` alone is USD.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

__all__ = [
    "CURRENCY_DECIMALS",
    "ISO_CURRENCIES",
    "find_dates",
    "infer_day_first",
    "normalize_currency",
    "normalize_text",
    "parse_amount",
    "parse_date",
    "text_key",
]

_SPACE = re.compile(r"\s+")


def normalize_text(value: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def text_key(value: str) -> str:
    """The form two texts are compared in: normalised and case-folded."""
    return normalize_text(value).casefold()


# --- dates ----------------------------------------------------------------------------------------------

_MONTH_NAMES: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "jan january januar janvier enero januari ene janv",
        "feb february februar fevrier février febrero februari fev févr",
        "mar march marz märz mars marzo maart mrz",
        "apr april avril abril",
        "may mai mayo mei",
        "jun june juni juin junio",
        "jul july juli juillet julio juil",
        "aug august aout août agosto augustus ago",
        "sep sept september septembre septiembre set",
        "oct october oktober octobre octubre okt",
        "nov november novembre noviembre",
        "dec december dezember decembre décembre diciembre dez dic",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTH_NAMES[_name] = _number

_MONTH = r"(?P<mon>[A-Za-zÀ-ÿ]{3,10})\.?"
_YEAR = r"(?P<y>\d{4}|\d{2})"
_DATE_PATTERNS = [
    re.compile(r"(?<!\d)(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)" + _YEAR + r"(?!\d)"),
    re.compile(
        r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?[\s.\-/]*(?:of\s+)?"
        + _MONTH
        + r"[\s.,\-/]*"
        + _YEAR
        + r"(?!\d)",
        re.IGNORECASE,
    ),
    re.compile(_MONTH + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+" + r"(?P<y>\d{4})(?!\d)", re.IGNORECASE),
]


def _year(text: str) -> int:
    value = int(text)
    if len(text) == 2:
        value += 2000 if value < 70 else 1900
    return value


def _make_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d) if 1900 <= y <= 2100 else None
    except ValueError:
        return None


def _from_match(match: re.Match[str], day_first: bool) -> date | None:
    groups = match.groupdict()
    if groups.get("mon") is not None:
        month = _MONTH_NAMES.get(unicodedata.normalize("NFKC", groups["mon"]).casefold().rstrip("."))
        return _make_date(_year(groups["y"]), month, int(groups["d"])) if month else None
    if groups.get("a") is not None:
        a, b = int(groups["a"]), int(groups["b"])
        if a > 12 or (day_first and b <= 12):
            return _make_date(_year(groups["y"]), b, a)
        return _make_date(_year(groups["y"]), a, b)
    return _make_date(int(groups["y"]), int(groups["m"]), int(groups["d"]))


def find_dates(text: str, *, day_first: bool = True) -> list[tuple[date, int, int]]:
    """Every date in `text` with its character span, in order of appearance, overlaps resolved first-come."""
    found: list[tuple[date, int, int]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            value = _from_match(match, day_first)
            if value is not None:
                found.append((value, start, end))
                taken.append((start, end))
    return sorted(found, key=lambda item: item[1])


def infer_day_first(text: str) -> bool:
    """Whether a document writes day before month: any numeric date whose first number exceeds 12 says
    yes, any whose second does says no; day first (most of the world) when nothing tells."""
    for match in _DATE_PATTERNS[1].finditer(text):
        if int(match.group("a")) > 12:
            return True
        if int(match.group("b")) > 12:
            return False
    return True


def parse_date(value: str, *, day_first: bool = True) -> date | None:
    """The one date `value` states (extra text such as a time is ignored), or None."""
    found = find_dates(normalize_text(value), day_first=day_first)
    return found[0][0] if found else None


# --- amounts --------------------------------------------------------------------------------------------

# Digits with separators; a plain space only as a thousands separator (1 234,50), never between numbers.
_NUMBER = re.compile(r"\d(?:[\d.,'\u00a0\u202f]|\s(?=\d{3}(?!\d)))*\d|\d")


def parse_amount(value: str | float | int | Decimal) -> Decimal | None:
    """The amount `value` states, as a Decimal, or None if it states no number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return None
        return amount if amount.is_finite() else None
    text = normalize_text(value)
    match = _NUMBER.search(text)
    if match is None:
        return None
    digits = _number_text(re.sub(r"[\s'\u00a0\u202f]", "", match.group()))
    if digits is None:
        return None
    before, after = text[: match.start()], text[match.end() :]
    negative = before.rstrip().endswith("-") or (
        before.rstrip().endswith("(") and after.lstrip().startswith(")")
    )
    negative = negative or after.startswith("-")
    amount = Decimal(digits)
    return -amount if negative else amount


def _number_text(raw: str) -> str | None:
    """ "1.234,50" -> "1234.50" (see the module docstring for how the decimal mark is chosen)."""
    commas, dots = raw.count(","), raw.count(".")
    if commas and dots:
        decimal_mark = "," if raw.rfind(",") > raw.rfind(".") else "."
        grouping = "." if decimal_mark == "," else ","
        raw = raw.replace(grouping, "").replace(decimal_mark, ".")
    elif commas or dots:
        mark = "," if commas else "."
        head, _, tail = raw.rpartition(mark)
        groups_of_three = all(len(g) == 3 for g in raw.split(mark)[1:])
        if raw.count(mark) > 1:
            raw = raw.replace(mark, "") if groups_of_three else head.replace(mark, "") + "." + tail
        elif mark == "," and len(tail) == 3:
            raw = head + tail  # 1,000
        else:
            raw = head + "." + tail  # 12,50 / 9.000 / 9.5
    try:
        return str(Decimal(raw))
    except InvalidOperation:
        return None


# --- currencies -----------------------------------------------------------------------------------------

ISO_CURRENCIES = frozenset(
    [
        "AED",
        "ARS",
        "AUD",
        "BDT",
        "BGN",
        "BHD",
        "BRL",
        "CAD",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "ISK",
        "JPY",
        "KES",
        "KRW",
        "KWD",
        "LKR",
        "MAD",
        "MXN",
        "MYR",
        "NGN",
        "NOK",
        "NZD",
        "PEN",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "VND",
        "ZAR",
    ]
)
# Minor units where they are not 2.
CURRENCY_DECIMALS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
_CURRENCY_MARKS = {
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₺": "TRY",
    "₽": "RUB",
    "₪": "ILS",
    "฿": "THB",
    "₫": "VND",
    "₱": "PHP",
    "zł": "PLN",
    "$": "USD",
    "us$": "USD",
    "s$": "SGD",
    "a$": "AUD",
    "c$": "CAD",
    "nz$": "NZD",
    "hk$": "HKD",
    "r$": "BRL",
    "rm": "MYR",
    "rp": "IDR",
    "fr.": "CHF",
    "sfr": "CHF",
    "euro": "EUR",
    "euros": "EUR",
    "dollar": "USD",
    "dollars": "USD",
    "pound": "GBP",
    "pounds": "GBP",
    "ringgit": "MYR",
    "yen": "JPY",
    "rupee": "INR",
    "rupees": "INR",
    "yuan": "CNY",
    "rmb": "CNY",
}


def normalize_currency(value: str) -> str | None:
    """The ISO 4217 code `value` names (a code, a symbol or a common name), or None if it names none."""
    key = normalize_text(value).casefold()
    if key.upper() in ISO_CURRENCIES:
        return key.upper()
    return _CURRENCY_MARKS.get(key)
