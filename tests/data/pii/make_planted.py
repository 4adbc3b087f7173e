"""Write planted.jsonl: synthetic business emails with personal data planted where we know it is.

Usage: python tests/data/pii/make_planted.py   (deterministic: the same file every run, seed 14)

Every record is {"id", "text", "pii": [[start, end, category], ...], "decoys": [text, ...]}. `pii` holds
every occurrence of every planted value; `decoys` are strings that look like personal data and are not
(a card number that fails Luhn, an IBAN with a wrong check digit, invoice and order numbers, amounts,
dates), so a detector that masks them shows up as imprecise. Nothing else in the texts is personal data.

The values are made here, not copied from anywhere: phone numbers are random numbers that Google's
phonenumbers library calls valid (printed in international, national, E.164 and dotted/dashed styles);
IBANs get real ISO 7064 check digits over random account numbers in each country's layout; card numbers
get a real Luhn digit after an issuer prefix (Visa, Mastercard 5x and 2x, Amex, Discover), grouped with
spaces, dashes or not at all. Names are written by hand below, from many languages, and half of the
people's first names are deliberately missing from the detector's given-name list (inference/data), so
the PERSON figure is not a measure of the list alone. The templates put names where mail puts them
(headers, greetings, sign-offs, titles) and in running prose with no cue at all.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import phonenumbers

SEED = 14
RECORDS = 320
HERE = Path(__file__).parent

# First names: the first row is in the shipped list, the second is not (checked by tests/test_pii.py).
LISTED_FIRST = [
    "Priya",
    "Marco",
    "Sofia",
    "Lukas",
    "Amelia",
    "Mateo",
    "Chloe",
    "Fatima",
    "Elena",
    "Tobias",
    "Ingrid",
    "Omar",
    "Liam",
    "Noor",
    "Javier",
    "Hannah",
]
UNLISTED_FIRST = [
    "Chidi",
    "Wei",
    "Oluwaseun",
    "Thanh",
    "Kwame",
    "Yuki",
    "Siobhan",
    "Tariq",
    "Ngozi",
    "Bao",
    "Anil",
    "Zaynab",
    "Kofi",
    "Mei",
    "Dmitri",
    "Rahul",
]
LAST = [
    "Shah",
    "Rossi",
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Fernández",
    "Müller",
    "O'Brien",
    "Kowalski",
    "Nguyen",
    "Mensah",
    "Haddad",
    "van der Berg",
    "Dubois",
    "Adeyemi",
    "Petrov",
    "Castillo",
    "Johansson",
    "Chen",
    "MacLeod",
]
DOMAINS = ["example.com", "acme-corp.io", "mail.example.co.uk", "northwind.de", "contoso.fr", "fabrikam.net"]
US_STREETS = ["Oak", "Maple", "Cedar Hollow", "Lakeview", "Pine Ridge", "Harbor", "Willow Creek", "Elm"]
US_SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Lane", "Drive", "Court", "Way"]
US_CITIES = [
    ("Springfield", "IL", "62704"),
    ("Austin", "TX", "78701"),
    ("Portland", "OR", "97205"),
    ("Columbus", "OH", "43215"),
    ("Madison", "WI", "53703"),
    ("Raleigh", "NC", "27601"),
]
UK = [
    ("Kingsway", "Road", "Leeds", "LS1 4AP"),
    ("Albion", "Street", "Manchester", "M1 3BD"),
    ("Queen's", "Terrace", "Bristol", "BS8 1QU"),
    ("Baker", "Street", "London", "NW1 6XE"),
]
EU = [
    "Lindenstraße {n}, 10969 Berlin",
    "Bahnhofstraße {n}, 80335 München",
    "Keizersgracht {n}, 1015 CJ Amsterdam",
    "{n} rue de la Paix, 75002 Paris",
    "Calle de Alcalá {n}, 28014 Madrid",
    "Via Garibaldi {n}, 16124 Genova",
    "Storgatan {n}, 111 51 Stockholm",
    "Rua Augusta {n}, 1100-048 Lisboa",
    "Hauptstraße {n}",
]
CARD_PREFIXES = [
    ("4", 16),
    ("51", 16),
    ("53", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
]
IBAN_LAYOUTS = {  # country -> BBAN layout: n digit, a capital letter
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 23,
    "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20,
    "IT": "a" + "n" * 22,
    "BE": "n" * 12,
    "AT": "n" * 16,
    "IE": "aaaa" + "n" * 14,
    "PL": "n" * 24,
    "CH": "n" * 17,
    "SE": "n" * 20,
}
PHONE_REGIONS_NATIONAL = ["US", "GB", "DE", "FR", "ES", "NL", "AU"]  # the detector reads these without +
PHONE_REGIONS_INTERNATIONAL = [
    *PHONE_REGIONS_NATIONAL,
    "IN",
    "IT",
    "BR",
    "JP",
    "SG",
    "ZA",
    "CA",
    "IE",
    "CH",
    "MX",
]


class Builder:
    """One record: text written piece by piece, each planted value's span recorded as it is added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[list[int | str]] = []
        self.decoys: list[str] = []
        self.length = 0

    def text(self, value: str) -> Builder:
        self.parts.append(value)
        self.length += len(value)
        return self

    def pii(self, category: str, value: str) -> Builder:
        self.spans.append([self.length, self.length + len(value), category])
        return self.text(value)

    def decoy(self, value: str) -> Builder:
        self.decoys.append(value)
        return self.text(value)

    def record(self, number: int) -> dict[str, object]:
        return {"id": number, "text": "".join(self.parts), "pii": self.spans, "decoys": self.decoys}


def luhn_digit(body: str) -> str:
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def card(rng: random.Random, valid: bool = True) -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    digits = body + check
    groups = (
        [digits[:4], digits[4:10], digits[10:]]
        if length == 15
        else [digits[i : i + 4] for i in range(0, 16, 4)]
    )
    return rng.choice([" ", "-", ""]).join(groups)


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(sorted(IBAN_LAYOUTS))
    bban = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ" if kind == "a" else "0123456789")
        for kind in IBAN_LAYOUTS[country]
    )
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + rng.randint(1, 50)) % 97 + 2
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def phone(rng: random.Random) -> str:
    national = rng.random() < 0.5
    region = rng.choice(PHONE_REGIONS_NATIONAL if national else PHONE_REGIONS_INTERNATIONAL)
    kind = rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    assert example is not None
    digits = phonenumbers.national_significant_number(example)
    for _ in range(1000):
        candidate = digits[:-4] + "".join(rng.choice("0123456789") for _ in range(4))
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(number):
            break
    else:
        raise AssertionError(f"no valid {region} number near {digits}")
    if national:
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if region == "US" and rng.random() < 0.5:
            text = re.sub(r"\D", "", text)
            text = rng.choice(["{}-{}-{}", "{}.{}.{}", "{} {} {}"]).format(text[:3], text[3:6], text[6:])
        return text
    style = rng.choice([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164])
    return phonenumbers.format_number(number, style)


def email(rng: random.Random, first: str, last: str) -> str:
    local = re.sub(r"[^a-z]", "", last.lower())
    style = rng.choice(["{f}.{l}", "{i}{l}", "{f}_{l}{n}", "{f}+invoices", "{l}.{f}"])
    name = style.format(
        f=re.sub(r"[^a-z]", "", first.lower()), l=local, i=first[0].lower(), n=rng.randint(1, 99)
    )
    if rng.random() < 0.15:
        name = name.capitalize()
    return f"{name}@{rng.choice(DOMAINS)}"


def address(rng: random.Random) -> str:
    shape = rng.choice(["us", "us", "uk", "uk", "eu", "eu", "eu", "pobox"])
    n = rng.randint(1, 2400)
    if shape == "us":
        city, state, zip_code = rng.choice(US_CITIES)
        unit = rng.choice(["", "", f", Suite {rng.randint(100, 900)}", f", Apt {rng.randint(1, 40)}B"])
        separator = rng.choice([", ", "\n"])
        street = f"{n} {rng.choice(US_STREETS)} {rng.choice(US_SUFFIXES)}{unit}"
        return f"{street}{separator}{city}, {state} {zip_code}"
    if shape == "uk":
        street, suffix, city, postcode = rng.choice(UK)
        return f"{rng.randint(1, 220)} {street} {suffix}{rng.choice([', ', chr(10)])}{city} {postcode}"
    if shape == "pobox":
        city, state, zip_code = rng.choice(US_CITIES)
        return f"PO Box {rng.randint(10, 9999)}, {city}, {state} {zip_code}"
    return rng.choice(EU).format(n=rng.randint(1, 180))


def person(rng: random.Random) -> tuple[str, str]:
    first = rng.choice(LISTED_FIRST if rng.random() < 0.5 else UNLISTED_FIRST)
    return first, rng.choice(LAST)


def decoys(rng: random.Random, b: Builder) -> None:
    """Numbers business mail is full of, none of them personal data."""
    b.text(" Invoice ").decoy(f"INV-{rng.randint(2019, 2025)}-{rng.randint(1, 99999):05d}")
    b.text(" for ").decoy(f"${rng.randint(1, 99)},{rng.randint(100, 999)}.{rng.randint(10, 99)}")
    b.text(" was due on ").decoy(
        f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2020, 2025)}"
    )
    b.text(" (order ").decoy(f"#{rng.randint(10000, 99999)}").text(", PO ").decoy(
        f"{rng.randint(4500000000, 4500999999)}"
    )
    b.text(") and ").decoy(f"{rng.randint(1, 9)}.{rng.randint(0, 9)}%").text(" of it was disputed.")


Template = Callable[[random.Random, Builder], None]


def t_header(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    other_first, other_last = person(rng)
    b.text("From: ").pii("PERSON", f"{first} {last}").text(" <").pii("EMAIL", email(rng, first, last)).text(
        ">\n"
    )
    b.text("To: ").pii("PERSON", f"{other_first} {other_last}").text(" <")
    b.pii("EMAIL", email(rng, other_first, other_last)).text(">\nSubject: Payment details\n\n")
    b.text("Hi ").pii("PERSON", other_first).text(",\n\nPlease use the account ").pii("IBAN", iban(rng))
    b.text(" for the transfer.")
    decoys(rng, b)
    b.text("\n\nThanks,\n").pii("PERSON", first).text("\n")


def t_card(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    b.text("Dear ").pii("PERSON", f"{first} {last}").text(",\n\nWe charged the card ending in ")
    b.text(f"{rng.randint(1000, 9999)}; the full number on file is ").pii("CARD", card(rng))
    b.text(". A second card, ").decoy(card(rng, valid=False)).text(", was declined as invalid.")
    decoys(rng, b)
    b.text("\n\nKind regards,\nBilling team\n")


def t_phone(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    b.text("Hello,\n\nYou can reach ").pii("PERSON", f"{first} {last}").text(" on ").pii("PHONE", phone(rng))
    b.text(" or on the office line ").pii("PHONE", phone(rng)).text(" between 9:00 and 17:30.")
    decoys(rng, b)
    b.text("\n\nBest,\n").pii("PERSON", f"{first} {last}").text("\n")


def t_address(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    b.text("Hi ").pii("PERSON", first).text(",\n\nPlease ship the replacement unit to:\n\n")
    b.pii("PERSON", f"{first} {last}").text("\n").pii("ADDRESS", address(rng)).text("\n\n")
    b.text("The return label should go to ").pii("ADDRESS", address(rng)).text(".")
    decoys(rng, b)
    b.text("\n\nCheers,\nLogistics\n")


def t_title(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    title = rng.choice(["Mr", "Ms", "Mrs", "Dr", "Dr.", "Prof."])
    b.text(f"Dear {title} ").pii("PERSON", last).text(",\n\nThank you for your call. As discussed, ")
    b.text(f"{title} ").pii("PERSON", last).text(" will receive the signed contract at ").pii(
        "EMAIL", email(rng, first, last)
    )
    b.text(" and a copy by post at ").pii("ADDRESS", address(rng)).text(".")
    decoys(rng, b)
    b.text("\n\nYours sincerely,\n").pii("PERSON", f"{first} {last}").text("\n")


def t_prose(rng: random.Random, b: Builder) -> None:
    """Names in running text with no greeting, header or title: only the list can find these."""
    first, last = person(rng)
    other = rng.choice(LISTED_FIRST + UNLISTED_FIRST)
    b.text("Quick update from the steering meeting: ").pii("PERSON", f"{first} {last}")
    b.text(" presented the migration plan and ").pii("PERSON", other).text(" raised the budget question.")
    decoys(rng, b)
    b.text(" Call ").pii("PHONE", phone(rng)).text(" with questions.\n")


def t_mixed(rng: random.Random, b: Builder) -> None:
    first, last = person(rng)
    b.text("Good morning ").pii("PERSON", first).text("!\n\nFor the refund we need: your card ")
    b.pii("CARD", card(rng)).text(", or else your IBAN ").pii("IBAN", iban(rng)).text(" (not ")
    b.decoy(iban(rng, valid=False)).text(", which fails its check). Reply to ").pii(
        "EMAIL", email(rng, first, last)
    )
    b.text(" or call ").pii("PHONE", phone(rng)).text(".")
    decoys(rng, b)
    b.text("\n\n-- \n").pii("PERSON", f"{first} {last}").text("\n")


TEMPLATES: list[Template] = [t_header, t_card, t_phone, t_address, t_title, t_prose, t_mixed]


def main() -> None:
    rng = random.Random(SEED)
    with (HERE / "planted.jsonl").open("w", encoding="utf-8") as out:
        for number in range(RECORDS):
            builder = Builder()
            TEMPLATES[number % len(TEMPLATES)](rng, builder)
            out.write(json.dumps(builder.record(number), ensure_ascii=False) + "\n")
    print(f"wrote {RECORDS} records to {HERE / 'planted.jsonl'}")


if __name__ == "__main__":
    main()
