"""Rebuild given_names.txt and ambiguous_names.txt from Faker's person providers (by hand, never at runtime).

Usage: python inference/data/make_given_names.py   (needs Faker, MIT; README.md here names the sources)

given_names.txt: the single-word first names of the locales below, in Latin script. ambiguous_names.txt:
those that are also everyday English words, sentence-opening verbs or place names (Faker's en_US lorem
words, one-word countries and US states, and the list below). The PERSON rules trust an ambiguous name only
beside a surname, in a greeting, sign-off or header, or after an honorific, never on its own.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL")
ATTRIBUTES = ("first_names", "first_names_male", "first_names_female")
LATIN_NAME = re.compile(r"[A-ZÀ-Ý][a-zà-ÿ'-]+")
# Names that read as ordinary words in business mail, beyond Faker's word lists.
EVERYDAY_WORDS = """
April August June May March Will Bill Mark Grant Chase Max Gene Rose Hope Faith Joy Grace Summer Autumn
Winter Dawn Amber Crystal Ruby Pearl Jade Iris Ivy Holly Heather Sky River Angel Christian Royal King
Major Precious Unique Destiny Harmony Justice Sterling Gray Brown Jordan Page Art Sunny Price Cash Miles
Rich Rob Pat Lane Wade Reed Rod Sandy Honey Candy Cherry Olive Violet Daisy Lily Poppy Fern Hazel Ginger
Basil Clay Stone Forest Bay Bond Gale Glen Hall Hill Moss Noble Penny Rusty Sage Storm Star Wolf Young
Sol Luz Mar Paz Bella Constance Prudence Patience Charity Mercy Verity Felicity Serenity Trinity Paris
Sydney Austin Dallas Houston Phoenix Florence Georgia Virginia Carolina India China Asia Africa Kenya
Israel Lincoln Washington Jackson Victoria Madison Brooklyn Savannah Cameron Marina Roma Milan Siena
Adelaide Alexandria Camden Carmel Cheyenne Dakota Denver Eden Genesis Hudson Kingston London Memphis
Montana Nevada Orlando Raleigh Regina Reno Sierra Tyler Vienna
"""
EVERYDAY = EVERYDAY_WORDS.split()


def _names(locale: str) -> set[str]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    found: set[str] = set()
    for attribute in ATTRIBUTES:
        found |= {name for name in getattr(provider, attribute, ()) if LATIN_NAME.fullmatch(name)}
    return found


def _words() -> set[str]:
    lorem = importlib.import_module("faker.providers.lorem.en_US").Provider
    places = importlib.import_module("faker.providers.address.en_US").Provider
    words = {word.capitalize() for word in lorem.word_list}
    words |= {place for place in (*places.countries, *places.states) if " " not in place}
    return words | set(EVERYDAY)


def main() -> None:
    here = Path(__file__).parent
    names = sorted(set().union(*(_names(locale) for locale in LOCALES)))
    ambiguous = sorted(set(names) & _words())
    (here / "given_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    (here / "ambiguous_names.txt").write_text("\n".join(ambiguous) + "\n", encoding="utf-8")
    print(f"{len(names)} given names, {len(ambiguous)} of them ambiguous")


if __name__ == "__main__":
    main()
