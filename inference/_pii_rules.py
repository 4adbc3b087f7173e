"""Presidio recognizers for inference/pii.py: Presidio's own for emails, phones, IBANs and cards (with a
few offline fixes), and rules of ours for postal addresses and person names, which Presidio leaves to a
spaCy NER model that is not available offline (spaCy's trained English models are not on PyPI).

Everything here runs on the text alone: no NLP model, no network, no state between calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

import phonenumbers
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, PhoneRecognizer

__all__ = [
    "AddressRecognizer",
    "CardRecognizer",
    "FastPhoneRecognizer",
    "OfflineEmailRecognizer",
    "PersonRecognizer",
]


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email pattern, validated without tldextract: its default fetches the public suffix list
    over the network on first use. An address whose top-level label is letters (2-24) is kept, so internal
    domains (jane@corp.internal) are masked too; leaking one costs more than masking a near-miss."""

    def validate_result(self, pattern_text: str) -> bool:
        return re.search(r"\.[^\W\d_]{2,24}$", pattern_text) is not None


_CARD = Pattern(
    "Card numbers, grouped or not",
    r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(2[2-7]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))"
    r"[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b",
    0.3,
)


class CardRecognizer(CreditCardRecognizer):
    """Presidio's card pattern and Luhn check, with Mastercard's 2221-2720 range that it leaves out."""

    def __init__(self) -> None:
        super().__init__(patterns=[_CARD])


# Text that could hold a phone number: digits with the separators numbers are written with.
_PHONE_CANDIDATE = re.compile(r"(?:\+|\b00)?\(?\d[\d \t().\-/]{5,24}\d")
_DATE = re.compile(r"\d{1,4}([/.-])\d{1,2}\1\d{1,4}")


def _may_be_phone(candidate: str) -> bool:
    """Cheap refusals before phonenumbers: fewer than 7 digits, a date, or a reference with two slashes
    (2023/0045/77; a phone number has one at most, as in 030/1234567)."""
    digits = sum(ch.isdigit() for ch in candidate)
    return digits >= 7 and candidate.count("/") < 2 and _DATE.fullmatch(candidate) is None


def _result(recognizer: EntityRecognizer, entity: str, start: int, end: int) -> RecognizerResult:
    """A finding as Presidio records it, with the recognizer that made it."""
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=0.6,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: type(recognizer).__name__,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


class FastPhoneRecognizer(PhoneRecognizer):
    """Presidio's phonenumbers-based recognizer, run on the few stretches of digits rather than on the
    whole text once per region (120 ms for eight regions on a 2,000-word email here, ~1 ms this way).
    Numbers with a + or 00 prefix are found whatever the region; national formats need their region."""

    REGIONS = ("US", "GB", "DE", "FR", "ES", "NL", "AU")
    LENIENCY = phonenumbers.Leniency.VALID  # a number valid for its region, not merely possible

    def __init__(self) -> None:
        super().__init__(supported_regions=self.REGIONS, leniency=self.LENIENCY)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for candidate in _PHONE_CANDIDATE.finditer(text):
            if not _may_be_phone(candidate.group()):
                continue
            # One character of context each side: phonenumbers looks at it to refuse parts of longer runs.
            offset = max(0, candidate.start() - 1)
            window = text[offset : candidate.end() + 1]
            international = candidate.group().startswith(("+", "00"))
            for region in self.REGIONS[:1] if international else self.REGIONS:
                for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=self.LENIENCY):
                    results.append(_result(self, "PHONE_NUMBER", offset + match.start, offset + match.end))
        return EntityRecognizer.remove_duplicates(results)


# ---- postal addresses ------------------------------------------------------------------------------
_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|Terrace"
    r"|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Close|Crescent|Row|Mews|Walk|Gardens|Grove|Hill|Trail"
    r"|Plaza|Broadway|Quay|Wharf)"
)
_UNIT = r"(?:,?[ ]+(?:Suite|Ste|Apt|Apartment|Unit|Flat|Floor|Fl|Room|#)\.?[ ]*#?[A-Za-z0-9-]+)?"
_CITY = r"[A-Z][A-Za-z'\u2019.-]+(?:[ ][A-Z][A-Za-z'\u2019.-]+){0,3}"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}"
_CA_POSTCODE = r"[A-Z]\d[A-Z][ ]?\d[A-Z]\d"
_US_STATE_ZIP = r"[A-Z]{2}[ ]+\d{5}(?:-\d{4})?"
# ", Springfield, IL 62704" / "\nLondon W1U 6TY" / ", Toronto, ON M5V 2T6" after a street line.
_LOCALITY = (
    rf"(?:[ ]*(?:,[ ]*|\r?\n[ \t]*){_CITY}(?:,[ ]*|[ ]+)"
    rf"(?:{_US_STATE_ZIP}|{_UK_POSTCODE}|[A-Z]{{2}}[ ]+{_CA_POSTCODE})\b)?"
)
# 10115 Berlin, D-10115 Berlin, 1015 CJ Amsterdam, 1100-048 Lisboa, 111 51 Stockholm.
_EU_POSTAL = (
    r"(?:[ ]*(?:,[ ]*|\r?\n[ \t]*)(?:[A-Z]{1,2}-)?(?:\d{4,5}|\d{4}-\d{3}|\d{3}[ ]\d{2})(?:[ ][A-Z]{2})?"
    r"[ ]+[A-ZÀ-Ý][\wÀ-ÿ'\u2019-]+)?"
)
_STREET_PARTICLE = r"(?:(?:de|del|della|di|da|do|dos|das|des|du|la|le|von|van)[ ]+)?"
_STREET_WORD = r"[A-ZÀ-Ý][\wÀ-ÿ'\u2019-]*"
# Alcalá, de Alcalá, Giuseppe Garibaldi: up to four capitalized words, particles between.
_NAME_WORDS = rf"{_STREET_PARTICLE}{_STREET_WORD}(?:[ ]+{_STREET_PARTICLE}{_STREET_WORD}){{0,3}}"

_ADDRESS_PATTERNS = [
    # 221B Baker Street, Flat 2 / London NW1 6XE; 1600 Pennsylvania Ave NW, Washington, DC 20500
    Pattern(
        "number, street, suffix",
        rf"\b\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?,?[ ]+(?:(?:N|S|E|W|North|South|East|West)\.?[ ]+)?"
        rf"(?:[A-Z0-9][\w'\u2019.-]*[ ]+){{1,4}}?{_SUFFIX}\b\.?(?:[ ]+(?:NE|NW|SE|SW|N|S|E|W)\b)?"
        rf"{_UNIT}{_LOCALITY}",
        0.6,
    ),
    # Hauptstraße 12, 10115 Berlin; Keizersgracht 123 / 1015 CJ Amsterdam
    Pattern(
        "street-suffix word, number",
        r"\b(?:[A-ZÀ-Ý][\wÀ-ÿ'\u2019.-]*[ ]+){0,2}[A-ZÀ-Ý][\wÀ-ÿ-]*"
        r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|gracht|straat|laan|plein|kade|vej"
        rf"|gade|gatan|vägen)[ ]+\d{{1,4}}[a-zA-Z]?\b{_EU_POSTAL}",
        0.6,
    ),
    # Calle Mayor 5, 28013 Madrid; Via Roma 10; Rua Augusta 100
    Pattern(
        "street word first, then number",
        rf"\b(?:Calle|Avenida|Avda\.|Plaza|Paseo|Carrer|Via|Viale|Piazza|Corso|Largo|Rua|Travessa|Praça)[ ]+"
        rf"{_NAME_WORDS},?[ ]+\d{{1,4}}[a-zA-Z]?\b{_EU_POSTAL}",
        0.6,
    ),
    # 10 rue de Rivoli, 75001 Paris
    Pattern(
        "number, French street word",
        r"\b\d{1,4}(?:[ ]?(?:bis|ter))?,?[ ]+"
        r"(?:rue|avenue|boulevard|bd|place|allée|chemin|impasse|quai|route)"
        rf"[ ]+(?:(?:de la|de l'|du|des|de|d')[ ]*)?{_NAME_WORDS}{_EU_POSTAL}",
        0.6,
    ),
    Pattern("PO box", rf"\b(?:P\.?[ ]?O\.?[ ]?Box|Postfach)[ ]+\d{{1,6}}\b{_LOCALITY}{_EU_POSTAL}", 0.6),
    # On their own: "Springfield, IL 62704", a UK postcode written with its space ("SW1A 1AA").
    Pattern("city, state ZIP", rf"\b{_CITY},[ ]*{_US_STATE_ZIP}\b", 0.5),
    Pattern("UK postcode", r"\b[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}\b", 0.5),
]


class AddressRecognizer(PatternRecognizer):
    """Postal addresses from their shape: a house number, street words and a street suffix (English), a
    street word with its number (German, Dutch, Nordic, Spanish, Italian, Portuguese, French), an optional
    locality line after it (city with US state + ZIP, UK or Canadian postcode, EU postal code), PO boxes,
    and on their own "City, ST 12345" and spaced UK postcodes. Case matters: street words are capitalized."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="ADDRESS", patterns=_ADDRESS_PATTERNS, global_regex_flags=re.MULTILINE
        )


# ---- person names ----------------------------------------------------------------------------------
_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
# One capitalized name word: Priya, O'Brien, McDonald, Smith-Jones, Zoë.
_WORD = (
    rf"[{_UPPER}](?:[{_LOWER}]+(?:[{_UPPER}][{_LOWER}]+)?|(?=['\u2019]))(?:['\u2019-][{_UPPER}]?[{_LOWER}]+)*"
)
_PARTICLE = r"(?:van|von|de|der|den|da|di|del|della|du|le|la|bin|ibn|al|el|ter|dos|das|mac)"
# Priya Shah, Anna-Lena van der Berg, John F. Kennedy, (Ms) van der Berg: up to four words, with particles
# and initials between.
_FULL = (
    rf"(?:{_PARTICLE}[ ]+){{0,2}}{_WORD}(?:[ ]+(?:[{_UPPER}]\.[ ]+)?(?:{_PARTICLE}[ ]+){{0,2}}{_WORD}){{0,3}}"
)
_FULL_NAME = re.compile(_FULL)
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Herr|Frau|Mme|Mlle|Sr|Sra)"

_GREETING = re.compile(
    r"(?:^[ \t]*|(?<=[.!?])[ \t]+)"
    r"(?i:hi|hello|hey|dear|hiya|greetings|morning|good (?:morning|afternoon|evening)|thanks|thank you"
    r"|many thanks|cheers|hallo|bonjour|hola|ciao)"
    rf",?(?:[ \t]+{_HONORIFIC}\.?)?[ \t]+([^\n,!:;]{{1,80}}?)(?=[ \t]*(?:[,!:;\n]|$))",
    re.MULTILINE,
)
_SIGN_OFF = re.compile(
    r"^[ \t]*(?i:thanks|thank you|many thanks|thanks again|best|best regards|kind regards|warm regards"
    r"|warmest regards|regards|cheers|sincerely|yours sincerely|yours truly|yours faithfully|best wishes"
    r"|all the best|talk soon|take care|br|thx|mit freundlichen grüßen|viele grüße|cordialement"
    r"|saludos|un saluto|met vriendelijke groet)"
    rf"[ \t]*[,.!]?[ \t]*(?:\r?\n[ \t]*)(?:[-\u2013\u2014]+[ \t]*)?({_FULL})[ \t]*$",
    re.MULTILINE,
)
# "-- Marco" or the signature delimiter "-- " with the name on the next line.
_DASH_SIGNATURE = re.compile(
    rf"^[ \t]*(?:--|[\u2013\u2014])[ \t]*(?:\r?\n[ \t]*)?({_FULL})[ \t]*$", re.MULTILINE
)
_HEADER = re.compile(r"^(?i:from|to|cc|bcc|reply-to|sender|von|an|de|à|para)[ \t]*:[ \t]*(.+)$", re.MULTILINE)
# A display name before an address in angle brackets: "Shah, Priya" <p@x.com>, Marco Rossi <m@x.it>.
_DISPLAY = re.compile(r"\"([^\"\n<>@]{2,80})\"[ \t]*<|([^\"\n<>@,;:]{2,80}?)[ \t]*<[^<>\n@]+@")
_STREET_BEFORE = re.compile(r"\b\d+[A-Za-z]?(?:[ ]+[A-Z][\w.'\u2019-]*){1,4}[ ]+$")
_TRAILING_NAME = re.compile(rf"(?<![\w'\u2019-]){_FULL}$")
_AFTER_HONORIFIC = re.compile(rf"(?<![\w.])({_HONORIFIC})\.?[ ]+({_FULL})")
_CAPITALIZED = re.compile(rf"(?<![\w@.'\u2019-])({_WORD})")
_FOLLOWING = re.compile(rf"[ ]+(?:[{_UPPER}]\.[ ]+)?(?:{_PARTICLE}[ ]+){{0,2}}({_WORD})(?![\w@'\u2019-])")

# Capitalized words that end a name rather than continue it, and addressees that are not people.
_NOT_NAME_WORDS = """
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July
August September October November December The A An And Or But If In On At To For Of From By With As I
We You He She They It This That These Those My Our Your His Her Their Its Please Thanks Thank Hi Hello
Dear Regards Best Cheers Team All Everyone Everybody Sir Madam Madame Customer Customers Client
Colleagues Folks Guys There Both Friends Partner Partners Sirs Inc Ltd Llc Gmbh Ag Sa Plc Co Corp Group
Department Dept Office Support Sales Finance Accounts Payable Receivable Billing Admin Service Services
Desk Manager Director Officer Street Road Avenue Lane Drive Invoice Order Account Bank Card Credit Email
Phone Mobile Tel Fax Re Fwd Subject Note Update Meeting Call Project Report Board Committee Hr It Legal
Marketing Operations Procurement Payroll Ops Q1 Q2 Q3 Q4 Eu Uk Us Usa Ceo Cfo Cto Vp University College
School Hospital Council Ministry Agency Foundation Trust Bank Holdings Capital Street St Ave Rd Noreply
No Reply Do Not Mailer Daemon Notification Notifications System Alerts Logistics Shipping Warehouse
Reception Management Treasury Compliance Security Facilities Helpdesk Purchasing Accounting Recruiting
Recruitment Communications Engineering Research Development
"""
_NOT_NAME = frozenset(_NOT_NAME_WORDS.split())


@cache
def _names(file: str) -> frozenset[str]:
    text = resources.files("deskpilot.inference").joinpath("data", file).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _is_name(candidate: str) -> bool:
    """A string that reads as a person's name: name words only, none of them a role, team or weekday."""
    if not _FULL_NAME.fullmatch(candidate):
        return False
    return not any(word.strip(".") in _NOT_NAME for word in candidate.split())


class PersonRecognizer(LocalRecognizer):
    """Person names without an NER model, from where mail puts them and from a list of given names.

    1. Headers: display names in From/To/Cc/Reply-To lines and anywhere before `<address>`.
    2. Greetings and thanks: "Hi Priya,", "Dear Ms Okafor,", "Thanks Marco!", "Hello Ana and Luis,".
    3. Sign-offs: a name alone on the line after "Thanks,", "Best regards," ..., or after "-- ".
    4. Honorifics: Mr, Ms, Dr, Prof ... followed by capitalized words (the title itself is kept).
    5. The given-name list (inference/data/given_names.txt, ~4,300 names): a listed first name and the
       capitalized words after it (Priya Shah), or a listed name alone unless it is also an ordinary word
       or place (ambiguous_names.txt: April, Grace, Paris ...).
    6. Every other capitalized occurrence of a name found by 1-5, or of one of its words, in the same text.

    Misses: names in lowercase or capitals, a name not in the list in running prose with no greeting,
    sign-off, header or title near it (common for names outside the list's European, American and Indian
    locales), and names written surname-first without a comma-quoted header.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="PersonRecognizer")

    def load(self) -> None:
        _names("given_names.txt")
        _names("ambiguous_names.txt")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found = {span for span in self._spans(text) if _is_name(text[span[0] : span[1]])}
        found |= set(self._repeats(text, found))
        return EntityRecognizer.remove_duplicates(
            [_result(self, "PERSON", start, end) for start, end in found]
        )

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        yield from _headers(text)
        yield from _greetings(text)
        for pattern in (_SIGN_OFF, _DASH_SIGNATURE):
            yield from (match.span(1) for match in pattern.finditer(text))
        yield from _honorifics(text)
        yield from _listed(text)

    def _repeats(self, text: str, found: set[tuple[int, int]]) -> Iterator[tuple[int, int]]:
        """Later mentions of a name already found: "Hi Priya," then "Priya will send it"."""
        words = {text[start:end] for start, end in found}
        words |= {
            word for name in list(words) for word in name.split() if len(word) > 2 and word[0].isupper()
        }
        words = {word for word in words if word.strip(".") not in _NOT_NAME}
        if not words:
            return
        alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
        for match in re.finditer(rf"(?<![\w@.'\u2019-])(?:{alternatives})(?![\w@'\u2019-])", text):
            yield match.start(), _surname_end(text, match.end())


def _headers(text: str) -> Iterator[tuple[int, int]]:
    for line in _HEADER.finditer(text):
        yield from _display_names(text, line.start(1), line.end(1))
    yield from _display_names(text, 0, len(text))


def _display_names(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    for match in _DISPLAY.finditer(text, start, end):
        group = 1 if match.group(1) is not None else 2
        name_start, name_end = _strip(text, *match.span(group))
        display = text[name_start:name_end]
        if "," in display:  # "Shah, Priya": both parts
            yield from _parts(text, name_start, display, ",")
        elif trailing := _TRAILING_NAME.search(display):  # "please write to Priya Shah <...>"
            yield name_start + trailing.start(), name_end


def _greetings(text: str) -> Iterator[tuple[int, int]]:
    """The addressees of a greeting, one span per name: "Hi Ana and Luis," gives Ana and Luis."""
    for match in _GREETING.finditer(text):
        yield from _parts(text, match.start(1), match.group(1), r"\s*(?:,|&|\band\b)\s*")


def _parts(text: str, offset: int, segment: str, separator: str) -> Iterator[tuple[int, int]]:
    position = 0
    for part in re.split(separator, segment):
        at = segment.index(part, position) if part else position
        position = at + len(part)
        yield _strip(text, offset + at, offset + at + len(part))


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t'\"":
        start += 1
    while end > start and text[end - 1] in " \t'\"":
        end -= 1
    return start, end


def _honorifics(text: str) -> Iterator[tuple[int, int]]:
    for match in _AFTER_HONORIFIC.finditer(text):
        # "12 Elm Dr. Springfield" is a street, not a doctor: Dr and Sr after a house number and street words.
        if match.group(1) in {"Dr", "Sr"} and _STREET_BEFORE.search(text, 0, match.start()):
            continue
        yield match.span(2)


def _surname_end(text: str, end: int) -> int:
    """Where a name that ends at `end` really ends: over the capitalized words after it (Shah, van der
    Berg, F. Kennedy), up to three, stopping at a word that is not a name (Monday, Team, Invoice)."""
    for _ in range(3):
        following = _FOLLOWING.match(text, end)
        if following is None or following.group(1) in _NOT_NAME:
            break
        end = following.end()
    return end


def _listed(text: str) -> Iterator[tuple[int, int]]:
    given, ambiguous = _names("given_names.txt"), _names("ambiguous_names.txt")
    for match in _CAPITALIZED.finditer(text):
        first = match.group(1)
        if first not in given:
            continue
        end = _surname_end(text, match.end(1))
        if end > match.end(1) or first not in ambiguous:
            yield match.start(1), end
