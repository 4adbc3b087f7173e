"""The faithfulness checker (inference/faithful.py): planted hallucinations are caught against the aligned
source sentence, supported paraphrases are kept, unsupported sentences are quoted or dropped, and the
extractive fallback only ever returns sentences of the source. One suite over the hash embedder (fast)
and the real all-MiniLM-L6-v2 the index loads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from deskpilot.indexes import HashEmbedder, SentenceTransformerEmbedder
from deskpilot.inference._sentences import facts
from deskpilot.inference.faithful import Faithful, FaithfulChecker, Source, split_sentences

pytestmark = pytest.mark.unit

EMAIL = """Hi team,

Priya will update the project plan by Friday. The vendor review moved to March 14, in room 4B.
Please reply by Wednesday if you cannot attend. The budget for the pilot is $12,500, approved by Dana Ortiz.
We expect 40 people at the review.

Thanks,
Lee"""


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(HashEmbedder, id="hash", marks=pytest.mark.unit),
        pytest.param(SentenceTransformerEmbedder, id="minilm", marks=pytest.mark.model),
    ],
)
def checker(request: pytest.FixtureRequest) -> Iterator[FaithfulChecker]:
    yield FaithfulChecker(request.param())


@pytest.fixture(scope="module")
def source(checker: FaithfulChecker) -> Source:
    return checker.source([EMAIL])


def in_source(result: Faithful, parts: dict[int, str]) -> bool:
    """Every quoted sentence is its source span, verbatim (whitespace collapsed)."""
    for kept in result.sentences:
        if kept.kind == "quoted":
            assert kept.source is not None
            span = parts[kept.source.part][kept.source.start : kept.source.end]
            if " ".join(span.split()) != kept.text:
                return False
    return True


@pytest.mark.parametrize(
    ("planted", "invented"),
    [
        ("Marco will update the project plan by Wednesday.", "p:marco"),  # the mix of true words
        ("Priya will update the project plan by Wednesday.", "d:wed"),  # a day from another sentence
        ("The budget for the pilot is $15,000, approved by Dana Ortiz.", "n:15000"),  # a number
        ("The vendor review moved to April 14, in room 4B.", "m:4"),  # a date
        ("The budget for the pilot is $12,500, approved by Tom Baker.", "p:baker"),  # a name
        ("We expect 400 people at the review.", "n:400"),  # an amount
    ],
)
def test_a_planted_hallucination_is_caught(
    checker: FaithfulChecker, source: Source, planted: str, invented: str
) -> None:
    [assessed] = checker.assess(planted, source)
    assert not assessed.supported
    assert invented in assessed.missing
    assert "not in the source sentence it matches" in assessed.reason


@pytest.mark.parametrize(
    "paraphrase",
    [
        "Priya will revise the project plan by Friday.",
        "The pilot has a budget of $12,500, which Dana Ortiz approved.",
        "The vendor review is now on March 14 in room 4B.",
        "Priya updates the project plan by Friday, and replies are due by Wednesday.",  # two sentences
        "Lee asks the team to reply by Wednesday if they cannot attend.",  # the sign-off's name
    ],
)
def test_a_supported_paraphrase_is_kept(checker: FaithfulChecker, source: Source, paraphrase: str) -> None:
    [assessed] = checker.assess(paraphrase, source)
    assert assessed.supported, assessed.reason
    result = checker.check(paraphrase, source, sentences=1)
    assert [(s.kind, s.text) for s in result.sentences] == [("generated", paraphrase)]
    assert not result.dropped and not result.fallback


def test_an_unsupported_paraphrase_is_replaced_by_the_sentence_it_paraphrases(
    checker: FaithfulChecker, source: Source
) -> None:
    summary = (
        "Marco will update the project plan by Wednesday. "
        "The budget for the pilot is $12,500, approved by Dana Ortiz. "
        "The vendor review moved to March 14, in room 4B."
    )
    result = checker.check(summary, source, sentences=3)
    assert not result.fallback and result.written == 3 and result.supported == 2
    first = result.sentences[0]
    assert first.kind == "quoted" and first.text == "Priya will update the project plan by Friday."
    assert first.source is not None and first.source.index == result.dropped[0].replaced_by
    assert [s.kind for s in result.sentences[1:]] == ["generated", "generated"]
    assert result.dropped[0].text.startswith("Marco") and "marco" in result.dropped[0].reason
    assert in_source(result, {0: EMAIL})


def test_too_little_left_falls_back_to_key_sentences_of_the_source(
    checker: FaithfulChecker, source: Source
) -> None:
    summary = "Acme Corp will acquire the company in 2027. The CEO Jane Roe resigned on Monday."
    result = checker.check(summary, source, sentences=2)
    assert result.fallback and result.supported == 0 and len(result.dropped) == 2
    assert len(result.sentences) == 2 and all(s.kind == "quoted" for s in result.sentences)
    assert in_source(result, {0: EMAIL})
    indexes = [s.source.index for s in result.sentences if s.source]
    assert indexes == sorted(indexes)  # in the source's order


@pytest.mark.parametrize(
    "text",
    [
        EMAIL,
        "One line without an end",
        "Dr. Smith met Mr. Jones at 9 a.m. today. They agreed on $3.5 million! Why? Nobody knows.",
        "a wrapped line that goes on for long enough to be a wrapped line and does\nnot end here. Next.",
        "Table\tof\tcells\t1,234.00\t\t\n\n\n- a bullet\n- another bullet",
        "",
    ],
)
@pytest.mark.parametrize("max_words", [None, 5])
def test_the_extract_is_always_sentences_of_the_source(
    checker: FaithfulChecker, text: str, max_words: int | None
) -> None:
    source = checker.source([text, "An earlier message in the thread said something else entirely."])
    for count in (1, 2, 5):
        extract = checker.extractive(source, count, max_words=max_words)
        assert len(extract) <= count
        for s in extract:
            part = source.parts[s.part]
            assert " ".join(part[s.start : s.end].split()) == s.text
            assert s.text and (max_words is None or len(s.text.split()) <= max_words)
    assert bool(checker.extractive(source, 1)) == bool(source.sentences)


def test_an_answer_is_checked_against_the_passages_it_cites(checker: FaithfulChecker) -> None:
    passages = {
        1: "Either party may terminate this Supply Agreement with 90 days written notice to the other party.",
        2: "The warranty period is 12 months from delivery. Payment is due within 30 days of invoice.",
    }
    source = checker.source(list(passages.values()), part_ids=list(passages))
    question = "How much notice is needed to terminate the supply agreement?"
    good = checker.check_answer(
        "The agreement can be terminated with 90 days written notice [1].", source, question
    )
    assert [s.kind for s in good.sentences] == ["generated"] and not good.dropped
    # 30 days is in the sources, but not in the passage the answer cites.
    bad = checker.check_answer(
        "Globex Industries must give 30 days written notice to terminate the agreement [1].", source, question
    )
    assert bad.dropped and all(s.kind == "quoted" for s in bad.sentences)
    assert bad.sentences[0].source is not None and bad.sentences[0].source.part == 1
    assert "90 days written notice" in bad.text


def test_sentences_keep_their_offsets() -> None:
    text = "  Hello there.  Second one follows!\nThird line\n\nFourth, after a blank line."
    sentences = split_sentences(text, part=2)
    assert [s.text for s in sentences] == [
        "Hello there.",
        "Second one follows!",
        "Third line",
        "Fourth, after a blank line.",
    ]
    assert all(text[s.start : s.end] == s.text and s.part == 2 for s in sentences)
    assert [s.index for s in sentences] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "The deal is worth $5 million, signed 10/30/01 at 9:00.",
            {"n:5000000", "n:10/30/01", "n:9", "m:10"},
        ),
        ("We need two rooms on friday, not on Sat.", {"n:2", "d:fri", "d:sat"}),
        ("You may sit in the sun and wed in March.", {"m:3"}),  # "may", "sun", "wed" are words here
        ("It goes to Priya at Globex by tomorrow.", {"p:priya", "p:globe", "d:tomorrow"}),
    ],
)
def test_facts(sentence: str, expected: set[str]) -> None:
    assert facts(sentence) == expected


def test_a_capitalised_common_word_is_no_name_when_the_source_uses_it_in_lower_case(
    checker: FaithfulChecker,
) -> None:
    source = checker.source(["please confirm the meeting with the vendor for tuesday."])
    [assessed] = checker.assess("Meeting confirmation with the vendor for Tuesday", source)
    assert assessed.supported, assessed.reason


def test_a_month_and_a_day_from_two_sentences_make_no_date(checker: FaithfulChecker) -> None:
    source = checker.source(
        [
            "Everyone must finish the training by November 30. "
            "Managers get the list of late ones on December 1."
        ]
    )
    [mixed] = checker.assess("Everyone must finish the training by December 30.", source)
    assert not mixed.supported and "t:12-30" in mixed.missing
    [kept] = checker.assess("The training must be finished by the 30th of November.", source)
    assert kept.supported, kept.reason


class Loading(HashEmbedder):
    """An embedder still loading: the checker must not call it."""

    @property
    def is_ready(self) -> bool:
        return False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("a check waited for a model that is still loading")


def test_while_the_embedder_loads_a_stand_in_checks() -> None:
    checker = FaithfulChecker(Loading(), until_ready=HashEmbedder(model_id="stand-in"))
    result = checker.check("Marco will update the project plan by Wednesday.", checker.source([EMAIL]))
    assert result.embedder == "stand-in" and result.record()["embedder"] == "stand-in"
    assert [s.text for s in result.sentences] == ["Priya will update the project plan by Friday."]
