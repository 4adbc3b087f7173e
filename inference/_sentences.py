"""Sentences of emails, documents and model output, with their offsets, and the facts a sentence states.

Emails are not prose: a greeting or a signature is a line of its own without a full stop, some mailers
wrap lines at ~70 characters, and tables are runs of tabs. A line break therefore ends a sentence unless
the line looks wrapped (long, no closing punctuation, the next line going on in lower case). Inside a
line, a sentence ends at `.`, `!` or `?` followed by a capital, a digit or a quote, except after a few
abbreviations and initials.

The facts of a sentence are what a summary may not invent: numbers (amounts, times, dates, written
numbers up to twelve, "5 million" as 5000000), days and months (a month also as the number in a slash
date), and proper names. A capitalised word counts as a name unless it is a common word, or the source
uses it in lower case too (so "Meeting" opening a sentence is not a name when the email says "meeting").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import msgspec

__all__ = [
    "Sentence",
    "content_words",
    "facts",
    "lowercase_stems",
    "plain_words",
    "split_sentences",
    "support_keys",
]


class Sentence(msgspec.Struct, frozen=True, kw_only=True):
    """A sentence of a source `part` (an email, an earlier message, a passage): `text` is the part's
    `[start:end]` with its whitespace collapsed."""

    index: int
    part: int
    start: int
    end: int
    text: str


_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "no",
        "fig",
        "approx",
        "dept",
        "est",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "u.s",
    ]
)
_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_TERMINAL = re.compile(r"[.!?:;]['\")\]]*$")
# A list marker or a "Summary:" label at the start of a model's sentence is not part of what it says.
_LEAD = re.compile(r"^\s*(?:[-*\u2022]+|\d{1,2}[.)])\s+|^\s*(?:summary|subject|headline)\s*:\s*", re.I)
# Wrapped lines are at least this long; a shorter line without punctuation (a greeting) is its own.
_WRAPPED_AT = 50


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each logical line: wrapped lines joined, blank lines dropped."""
    spans: list[tuple[int, int]] = []
    for match in re.finditer(r"[^\n]+", text):
        start, end = match.span()
        line = match.group().strip()
        if not line:
            continue
        if spans and _continues(text[spans[-1][0] : spans[-1][1]], line):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _continues(previous: str, line: str) -> bool:
    last = previous.rstrip().rsplit("\n", 1)[-1]
    return len(last) >= _WRAPPED_AT and not _TERMINAL.search(last) and line[:1].islower()


def _ends_in_abbreviation(chunk: str) -> bool:
    words = chunk.rstrip().rsplit(None, 1)
    word = words[-1].rstrip(".!?").lower() if words else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str, *, part: int = 0, first_index: int = 0) -> list[Sentence]:
    """The sentences of `text`, in order, with offsets into `text`."""
    out: list[Sentence] = []
    for line_start, line_end in _line_spans(text):
        cut = line_start
        for match in _END.finditer(text, line_start, line_end):
            if _ends_in_abbreviation(text[cut : match.start() + 1]):
                continue
            out.extend(_sentence(text, cut, match.end(), part, first_index + len(out)))
            cut = match.end()
        out.extend(_sentence(text, cut, line_end, part, first_index + len(out)))
    return out


def _sentence(text: str, start: int, end: int, part: int, index: int) -> list[Sentence]:
    raw = text[start:end]
    lead = len(raw) - len(raw.lstrip())
    body = raw.strip()
    if not body:
        return []
    start += lead
    return [Sentence(index=index, part=part, start=start, end=start + len(body), text=" ".join(body.split()))]


def strip_lead(sentence: str) -> str:
    """A model's sentence without a list marker or a "Summary:" label."""
    return _LEAD.sub("", sentence.strip().strip("*_#").strip(), count=1).strip().strip('"*_').strip()


# --- facts --------------------------------------------------------------------------------------------

_STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "please",
        "re",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "thanks",
        "thank",
        "hi",
        "hello",
        "dear",
        "regards",
        "best",
        "cheers",
        "fyi",
        "fw",
        "fwd",
        "ok",
        "okay",
        "yes",
        "also",
        "attached",
        "below",
        "above",
        "per",
        "via",
        "new",
        "summary",
        "email",
        "message",
        "sender",
        "recipient",
        "writes",
        "wrote",
        "asks",
        "asked",
        "says",
        "said",
        "wants",
        "want",
        "need",
        "needs",
    ]
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "_",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
    if w != "_"
}
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mm": 1e6, "billion": 1e9, "bn": 1e9}
_DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTH_NAMES = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_RELATIVE_DAYS = ("today", "tonight", "tomorrow", "yesterday")
# Each way of writing a day or a month, to its key; abbreviations count only capitalised.
_DATE_WORDS: dict[str, str] = {
    **{form: f"d:{day[:3]}" for day in _DAY_NAMES for form in (day, day[:3], day[:4], day[:5])},
    **{"weds": "d:wed", "thurs": "d:thu"},
    **{form: f"m:{i}" for i, month in enumerate(_MONTH_NAMES, 1) for form in (month, month[:3])},
    **{"sept": "m:9"},
    **{day: f"d:{day}" for day in _RELATIVE_DAYS},
}
# Written in lower case these are still dates ("by friday"); "may", "sun", "sat", "wed", "mar" are not.
_LOWER_OK = frozenset([*_DAY_NAMES, *(m for m in _MONTH_NAMES if m != "may"), *_RELATIVE_DAYS])
_NUMBER = re.compile(r"\d(?:[\d,]*\d)?(?:\.\d+)?(?:[:/-]\d+)*")
_AMOUNT = re.compile(r"(\d(?:[\d,]*\d)?(?:\.\d+)?)\s*(thousand|million|billion|bn|mm|k|m)\b", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def _number(value: str) -> str:
    """A number as one canonical string: "1,000.50" -> "1000.5", "9:00" -> "9", "10/30/01" kept."""
    if re.fullmatch(r"\d{1,2}:00", value):
        return value.split(":")[0]
    if re.fullmatch(r"[\d,]*\d(?:\.\d+)?", value):
        number = float(value.replace(",", ""))
        return f"{number:.10g}"
    return value


def _number_facts(sentence: str) -> set[str]:
    found = {f"n:{_number(m.group())}" for m in _NUMBER.finditer(sentence)}
    for match in _AMOUNT.finditer(sentence):
        scaled = float(match.group(1).replace(",", "")) * _SCALE[match.group(2).lower()]
        found.discard(f"n:{_number(match.group(1))}")
        found.add(f"n:{scaled:.10g}")
    for word in re.findall(r"[a-z]+", sentence.lower()):
        if word in _NUMBER_WORDS:
            found.add(f"n:{_NUMBER_WORDS[word]}")
    return found


def _date_facts(sentence: str) -> set[str]:
    """Days and months, by full name or a capitalised abbreviation ("Wed", "Oct"; not "may" or "sun")."""
    found: set[str] = set()
    for word in _WORD.findall(sentence):
        key = _DATE_WORDS.get(word.lower())
        if key and (word[0].isupper() or word.lower() in _LOWER_OK):
            found.add(key)
    return found


def _slash_months(sentence: str) -> set[str]:
    found: set[str] = set()
    for match in re.finditer(r"\b(\d{1,2})/(\d{1,2})(?:/\d{2,4})?\b", sentence):
        found.update(f"m:{int(g)}" for g in match.groups() if 1 <= int(g) <= 12)
    return found


_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?\b"


def _day_of_month(sentence: str, *, slashes: bool = False) -> set[str]:
    """A month with its day ("December 30th", "30 December", "the 14th of March") is one fact: its month
    and its day, each true somewhere, do not make it true ("t:12-30"). With `slashes` (what a source
    supports), "10/30" and "5/6" too, read either way round."""
    found: set[str] = set()
    for match in re.finditer(r"\b([A-Za-z]+)\.?\s+" + _ORDINAL, sentence):
        month = _DATE_WORDS.get(match.group(1).lower(), "")
        if month.startswith("m:") and match.group(1)[0].isupper():
            found.add(f"t:{month[2:]}-{int(match.group(2))}")
    for match in re.finditer(r"\b" + _ORDINAL + r"\s+(?:of\s+)?([A-Za-z]+)", sentence):
        month = _DATE_WORDS.get(match.group(2).lower(), "")
        if month.startswith("m:") and match.group(2)[0].isupper():
            found.add(f"t:{month[2:]}-{int(match.group(1))}")
    for match in re.finditer(r"\b(\d{1,2})/(\d{1,2})(?:/\d{2,4})?\b", sentence if slashes else ""):
        first, second = int(match.group(1)), int(match.group(2))
        found.update(f"t:{m}-{d}" for m, d in ((first, second), (second, first)) if 1 <= m <= 12 and d <= 31)
    return found


def _stem(word: str) -> str:
    """A crude stem, enough to match "confirm" with "confirmation" and "replies" with "reply"."""
    word = word.lower().strip("'-")
    word = word.removesuffix("'s")
    for suffix, instead in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + instead
            break
    return word[:5]


_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


def content_words(sentence: str) -> set[str]:
    """Stems of a sentence's words that carry meaning (no stop words, no numbers)."""
    return {_stem(w) for w in _WORD.findall(sentence) if w.lower() not in _STOP and len(w) > 1}


def plain_words(sentence: str) -> set[str]:
    """Content words that are no fact: lower case, not a day or a month. A source sentence joins an
    alignment only by bringing one of these (bringing only a date or a name is how facts get mixed)."""
    return {
        _stem(w)
        for w in _WORD.findall(sentence)
        if w.islower() and w not in _STOP and w not in _DATE_WORDS and len(w) > 1
    }


def lowercase_stems(text: str) -> set[str]:
    """Stems of the words `text` writes in lower case: such a word is not a name when capitalised."""
    return {_stem(w) for w in _WORD.findall(text) if w.islower()}


def _name_facts(sentence: str, common: AbstractSet[str]) -> set[str]:
    """Capitalised words that are not common words: names of people, companies, places, products."""
    found: set[str] = set()
    for word in _WORD.findall(sentence):
        bare = word.lower().strip("'-")
        if not word[0].isupper() or bare in _STOP or bare in _NUMBER_WORDS:
            continue
        if bare in _DATE_WORDS:
            continue
        if _stem(word) in common:
            continue
        found.add(f"p:{_stem(word)}")
    return found


def facts(sentence: str, common: AbstractSet[str] = frozenset()) -> set[str]:
    """What a sentence states that a summary must not invent, each as a comparable key ("n:90", "d:wed",
    "m:10", "p:priya"). `common`: stems not to count as names (see `lowercase_stems`)."""
    return (
        _number_facts(sentence)
        | _date_facts(sentence)
        | _slash_months(sentence)
        | _day_of_month(sentence)
        | _name_facts(sentence, common)
    )


def support_keys(sentence: str) -> set[str]:
    """What a source sentence can support: its facts, the parts of its dates, times and phone numbers
    ("10/30/01" supports "30"), and every word as a possible name."""
    keys = (
        facts(sentence)
        | _day_of_month(sentence, slashes=True)
        | {f"p:{_stem(w)}" for w in _WORD.findall(sentence)}
    )
    for key in [k for k in keys if k.startswith("n:")]:
        keys.update(f"n:{_number(part)}" for part in re.split(r"[:/-]", key[2:]) if part)
    return keys


def union(sets: Iterable[set[str]]) -> set[str]:
    out: set[str] = set()
    for s in sets:
        out |= s
    return out
