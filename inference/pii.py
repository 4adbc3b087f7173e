"""Personal data tokenized before a request leaves the machine, and restored in what comes back.

A profile that is not local has a PII policy: `allow` sends text as it is, `block` refuses a request that
holds personal data (`PiiBlocked`, which names categories and counts, never values), and `mask` replaces
each value with a placeholder such as `<PERSON_1>` before sending and puts the value back in the answer,
streamed or not. One `Redaction` is one request's mapping: the same value (compared without case and extra
spaces for names, emails and addresses, by its digits for phones and cards, by its letters and digits for
IBANs) gets the same placeholder in every message of the request, and `counts` says how many distinct
values of each category were masked, which is what lineage records.

How values are found. Microsoft Presidio's AnalyzerEngine runs with no NLP model (its NoOpNlpEngine):
Presidio finds names through a spaCy NER model, and spaCy's trained English models are not on PyPI, so the
engine holds recognizers that work on the text alone (inference/_pii_rules.py):

- EMAIL: Presidio's pattern; a top-level label of letters instead of tldextract's check, which would fetch
  the public suffix list over the network.
- PHONE: Presidio's recognizer over Google's phonenumbers (valid numbers only, any region with a + or 00
  prefix, national formats for US, GB, DE, FR, ES, NL, AU), run on digit runs only, for speed.
- IBAN: Presidio's pattern and ISO 7064 checksum, grouped with spaces or dashes or not (capitals only).
- CARD: Presidio's pattern and Luhn check, plus Mastercard's 2-series; a Luhn-invalid number is not masked.
- ADDRESS: our patterns: house number, street words and suffix (Street, Ave, Rd ...) with an optional
  city/state/ZIP or postcode line; German/Dutch/Nordic street words with a number and postal code;
  Spanish/Italian/Portuguese/French street words; PO boxes; "City, ST 12345" and spaced UK postcodes.
  An address written without a house number or street word ("the old mill by the station") is missed.
- PERSON: our rules, no model: display names in headers and before <address>, greetings and thanks
  ("Hi Priya,"), the name line after a sign-off, names after a title (Ms, Dr ...), a given-name list of
  ~4,300 first names (inference/data, from Faker's MIT-licensed lists; SSA baby names for en_US) with the
  capitalized surname after it, and every later mention of a name so found. Names outside the list in
  running prose with none of those cues, and names not capitalized, are missed: measure before trusting.

When two findings overlap, the longer wins, so no part of a value is left in clear (an address holding a
phone-like number, an IBAN holding a Luhn-valid run); of two alike, the stronger category (EMAIL, IBAN,
CARD, PHONE, ADDRESS, PERSON: checksums before shapes).

The analyzer is built once per process, under a lock, on first use or `PiiDetector.load()`: importing
Presidio takes seconds (it imports spaCy, and torch and transformers where they are installed), so a server
that has remote profiles may load it at start; masking a 2,000-word email then takes tens of milliseconds.

Model output sometimes mangles placeholders: `<Person_1>` and `< PERSON_1 >` are restored, `PERSON_1`
without brackets is not, nor is a placeholder with a number this request never issued. A placeholder split
across streamed tokens is held back by `StreamRestorer` until it is complete or proves not to be one.
Text that already contains a literal placeholder (`<PERSON_1>`) before masking is restored like one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

__all__ = [
    "CATEGORIES",
    "PiiBlocked",
    "PiiDetector",
    "PiiPolicy",
    "PiiSpan",
    "Redaction",
    "StreamRestorer",
    "redact_json",
    "restore_json",
    "screen",
]

PiiPolicy = Literal["mask", "block", "allow"]
CATEGORIES = ("EMAIL", "PHONE", "IBAN", "CARD", "ADDRESS", "PERSON")
# Presidio's entity names -> ours, in the order that settles overlaps of equal length.
_ENTITIES = {
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "CREDIT_CARD": "CARD",
    "PHONE_NUMBER": "PHONE",
    "ADDRESS": "ADDRESS",
    "PERSON": "PERSON",
}
_RANK = {category: rank for rank, category in enumerate(_ENTITIES.values())}


class PiiSpan(msgspec.Struct, frozen=True):
    """One value found: where it is, its category (one of CATEGORIES) and the text itself."""

    start: int
    end: int
    category: str
    text: str


class PiiBlocked(Exception):
    """A request held personal data and its profile's policy is `block`; names categories, never values."""

    def __init__(self, categories: Mapping[str, int]) -> None:
        self.categories = dict(categories)
        found = ", ".join(f"{count} {category}" for category, count in self.categories.items())
        super().__init__(
            f"the request holds personal data ({found}) and this profile's PII policy is 'block'; "
            "use a local profile or the 'mask' policy"
        )


_analyzer: AnalyzerEngine | None = None
_analyzer_lock = threading.Lock()


def _build_analyzer() -> AnalyzerEngine:
    """Presidio's engine with no NLP model and only the recognizers above (imported here: ~1 s)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import IbanRecognizer

    from deskpilot.inference._pii_rules import (
        AddressRecognizer,
        CardRecognizer,
        FastPhoneRecognizer,
        OfflineEmailRecognizer,
        PersonRecognizer,
    )

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        OfflineEmailRecognizer(),
        FastPhoneRecognizer(),
        IbanRecognizer(),
        CardRecognizer(),
        AddressRecognizer(),
        PersonRecognizer(),
    ):
        recognizer.load()
        registry.add_recognizer(recognizer)
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp_engine.load()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def _shared_analyzer() -> AnalyzerEngine:
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            _analyzer = _build_analyzer()
        return _analyzer


class PiiDetector:
    """Finds personal data in text. Cheap to make: the engine, shared by every detector in the process,
    is built on the first `find` (or `load`). Safe to use from several threads."""

    def load(self) -> None:
        """Build the engine now (at start-up, say) rather than on the first request."""
        _shared_analyzer()

    def find(self, text: str) -> list[PiiSpan]:
        """The values in `text`, sorted and not overlapping."""
        if not text.strip():
            return []
        results = _shared_analyzer().analyze(text, language="en", entities=list(_ENTITIES))
        candidates = sorted(
            (
                (
                    -(r.end - r.start),
                    _RANK[_ENTITIES[r.entity_type]],
                    r.start,
                    r.end,
                    _ENTITIES[r.entity_type],
                )
                for r in results
                if r.entity_type in _ENTITIES and r.score > 0
            ),
        )
        taken: list[PiiSpan] = []
        for _length, _rank, start, end, category in candidates:
            if all(end <= span.start or start >= span.end for span in taken):
                taken.append(PiiSpan(start, end, category, text[start:end]))
        return sorted(taken, key=lambda span: span.start)


def _normalize(category: str, value: str) -> str:
    if category in {"PHONE", "CARD"}:
        return "".join(ch for ch in value if ch.isdigit())
    if category == "IBAN":
        return "".join(ch for ch in value if ch.isalnum()).upper()
    return " ".join(value.split()).casefold()


# A placeholder as issued (<PERSON_1>) or as a model may echo it (<person_1>, < PERSON_1 >).
_PLACEHOLDER = re.compile(rf"<\s{{0,2}}({'|'.join(CATEGORIES)})_(\d{{1,9}})\s{{0,2}}>", re.IGNORECASE)


class Redaction:
    """One request's mapping value <-> placeholder. The same value (normalized: case and spaces for names,
    emails and addresses, digits for phones and cards, letters and digits for IBANs) gets the same
    placeholder, numbered per category from 1 (<PERSON_1>, <EMAIL_2>) across all of the request's texts."""

    def __init__(self, detector: PiiDetector) -> None:
        self._detector = detector
        self._placeholders: dict[tuple[str, str], str] = {}  # (category, normalized value) -> placeholder
        self._values: dict[tuple[str, int], str] = {}  # (category, number) -> value as first seen
        self._issued: dict[str, int] = {}

    def mask(self, text: str) -> str:
        """`text` with every value found replaced by its placeholder."""
        pieces: list[str] = []
        position = 0
        for span in self._detector.find(text):
            pieces += [text[position : span.start], self._placeholder(span)]
            position = span.end
        pieces.append(text[position:])
        return "".join(pieces)

    def restore(self, text: str) -> str:
        """Placeholders of this request back to their values (the spelling first seen); others left."""
        return _PLACEHOLDER.sub(self._value_for, text)

    def restorer(self) -> StreamRestorer:
        """A restorer for one streamed answer."""
        return StreamRestorer(self)

    @property
    def counts(self) -> dict[str, int]:
        """Category -> distinct values masked, categories with none left out. Never the values."""
        return {category: self._issued[category] for category in CATEGORIES if category in self._issued}

    def _placeholder(self, span: PiiSpan) -> str:
        key = (span.category, _normalize(span.category, span.text))
        if key not in self._placeholders:
            number = self._issued.get(span.category, 0) + 1
            self._issued[span.category] = number
            self._values[(span.category, number)] = span.text
            self._placeholders[key] = f"<{span.category}_{number}>"
        return self._placeholders[key]

    def _value_for(self, match: re.Match[str]) -> str:
        return self._values.get((match.group(1).upper(), int(match.group(2))), match.group(0))


# What a placeholder can look like before its closing ">": "<", "< PE", "<PERSON_", "<person_12 ".
_LONGEST_PLACEHOLDER = len("< ADDRESS_123456789 ")
_OPENING = re.compile(r"<\s{0,2}(?:([A-Za-z]{1,7})(?:(_)(\d{0,9})\s{0,2})?)?")


def _may_become_placeholder(tail: str) -> bool:
    match = _OPENING.fullmatch(tail)
    if match is None:
        return False
    name, underscore = match.group(1), match.group(2)
    if name is None:
        return True
    if underscore is None:
        return any(category.startswith(name.upper()) for category in CATEGORIES)
    return name.upper() in CATEGORIES


class StreamRestorer:
    """Restores placeholders in a streamed answer whose tokens may split them ("<PER", "SON_", "1>").
    Text is emitted as soon as it cannot be the start of a placeholder, so a plain "<" costs no delay
    beyond the next few characters."""

    def __init__(self, redaction: Redaction) -> None:
        self._redaction = redaction
        self._pending = ""

    def feed(self, delta: str) -> str:
        """The text that is safe to emit now, restored; a possible partial placeholder is held back."""
        self._pending += delta
        cut = len(self._pending)
        opening = self._pending.rfind("<", max(0, cut - _LONGEST_PLACEHOLDER))
        if opening != -1 and _may_become_placeholder(self._pending[opening:]):
            cut = opening
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self._redaction.restore(ready)

    def flush(self) -> str:
        """At the stream's end: whatever was held back, restored where it is a whole placeholder."""
        ready, self._pending = self._pending, ""
        return self._redaction.restore(ready)


def screen(policy: PiiPolicy, redaction: Redaction, text: str) -> str:
    """What of `text` may leave the machine under `policy`: all of it (`allow`), masked (`mask`), or
    nothing: `block` raises PiiBlocked when it holds personal data, and returns it unchanged otherwise."""
    if policy == "allow":
        return text
    masked = redaction.mask(text)
    if policy == "block" and redaction.counts:
        raise PiiBlocked(redaction.counts)
    return masked if policy == "mask" else text


def redact_json(value: Any, redaction: Redaction) -> Any:
    """A JSON value with every string masked (object keys are schema names and stay as they are)."""
    return _map_strings(value, redaction.mask)


def restore_json(value: Any, redaction: Redaction) -> Any:
    """A structured answer with the placeholders in its strings restored."""
    return _map_strings(value, redaction.restore)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    return value
