"""Faithful summaries and answers: check every sentence a model wrote against the source sentence it
paraphrases; keep what is supported, quote the source for what is not, and fall back to the source's
key sentences when too little survives.

Why sentence by sentence, against the *aligned* source sentences and not the whole source: a small model
recombines true pieces into false statements. "Marco will update the plan by Wednesday" uses only words
of an email that says "Priya will update the plan by Friday" and "Please reply by Wednesday", and every
whole-email check passes it. So each generated sentence is first aligned with its best-matching source
sentence (MiniLM cosine, the index's embedder, blended with the share of its content words that sentence
has); a second or third source sentence joins the alignment only when it brings a content word of the
generated sentence that the first lacks (a summary sentence that joins two clauses). The sentence is
supported when every number, date, amount and name in it (`_sentences.facts`) appears in its aligned
sentences, and the alignment scores at least `min_score`.

What is not supported is replaced by the source sentence it paraphrases (when it scores at least
`replace_score` against one: the model meant that sentence and got a fact wrong) or dropped. When fewer
than half of the sentences the model wrote survive, the answer is extractive: the source's key sentences,
chosen by centrality (mean cosine to the other sentences) and position (emails lead with their point).
Everything that is not a supported generated sentence is a verbatim sentence of the source, with its
offsets, so a reader can be shown where it comes from.

All of this is pure computation over the embedder, on the order of tens of milliseconds for an email:
the server runs it on a worker thread after the model has finished streaming.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec
import numpy as np

from deskpilot.inference._sentences import (
    Sentence,
    content_words,
    facts,
    lowercase_stems,
    plain_words,
    split_sentences,
    strip_lead,
    support_keys,
    union,
)

__all__ = [
    "Assessment",
    "Dropped",
    "Faithful",
    "FaithfulChecker",
    "Kept",
    "Sentence",
    "Source",
    "SupportsEmbedding",
    "split_sentences",
]

# Weights of the alignment score: meaning (MiniLM cosine) and the share of content words found.
_COSINE_WEIGHT = 0.6
_LEXICAL_WEIGHT = 0.4
# Extractive choice: centrality and position.
_CENTRALITY_WEIGHT = 0.6
# A source sentence shorter than this (a greeting, "Thanks,", a name) is never a key sentence.
_KEY_MIN_WORDS = 4
_FACT_KINDS = {"n": "number", "d": "day", "m": "month", "t": "date", "p": "name"}
_GREETING = re.compile(r"(?i)(?:hi|hello|hey|dear|good (?:morning|afternoon))\b")
_CITATION = re.compile(r"\s*\[(\d{1,2})\]")


class SupportsEmbedding(Protocol):
    """What the checker needs of an embedder (`deskpilot.indexes.Embedder` is one): L2-normalised rows."""

    @property
    def model_id(self) -> str: ...

    @property
    def is_ready(self) -> bool: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class RecentEmbeddings:
    """An embedder that remembers the vectors of the last `size` texts it embedded. A summary asked for
    again (answered from the result cache) is checked again over the same sentences: remembered, the
    check takes milliseconds instead of another MiniLM pass over the email."""

    def __init__(self, embedder: SupportsEmbedding, size: int = 4096) -> None:
        self._embedder, self._size = embedder, size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def is_ready(self) -> bool:
        return self._embedder.is_ready

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
        if missing:
            fresh = self._embedder.embed(missing)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    self._recent[text] = row
                while len(self._recent) > self._size:
                    self._recent.popitem(last=False)
        with self._lock:
            rows = []
            for text in texts:
                row = self._recent.get(text)
                if row is None:  # pushed out meanwhile by a long text from another thread
                    row = self._embedder.embed([text])[0]
                else:
                    self._recent.move_to_end(text)
                rows.append(row)
        return np.stack(rows) if rows else self._embedder.embed([])


class Source:
    """A source split into sentences, embedded once: the email (and earlier messages) of a summary, or
    the passages an answer may cite (`part_ids`: their citation numbers)."""

    def __init__(
        self, parts: Sequence[str], embedder: SupportsEmbedding, part_ids: Sequence[int] | None = None
    ) -> None:
        ids = list(part_ids) if part_ids is not None else list(range(len(parts)))
        if len(ids) != len(parts):
            raise ValueError(f"{len(parts)} parts but {len(ids)} part ids")
        self.parts = dict(zip(ids, parts, strict=True))
        self.sentences: list[Sentence] = []
        for pid, text in self.parts.items():
            self.sentences += split_sentences(text, part=pid, first_index=len(self.sentences))
        # A source and the sentences checked against it are embedded by the same model.
        self.embedder = embedder
        self.vectors = embedder.embed([s.text for s in self.sentences])
        self.keys = [support_keys(s.text) for s in self.sentences]
        self.words = [content_words(s.text) for s in self.sentences]
        self.common = lowercase_stems("\n".join(parts))
        # Who writes to whom: names in greetings and sign-offs ("Hi Phillip,", "Lee") support a name
        # anywhere, since a summary says "Lee asks Phillip to ..." of the sentence it paraphrases.
        self.people = union(
            {k for k in self.keys[s.index] if k.startswith("p:")}
            for s in self.sentences
            if len(s.text.split()) < _KEY_MIN_WORDS or _GREETING.match(s.text)
        )


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    """The check of one generated sentence."""

    text: str
    supported: bool
    aligned: tuple[Sentence, ...]  # best first; empty when the source has no sentence to align with
    score: float  # the alignment score with the best-aligned sentence
    missing: tuple[str, ...] = ()  # its facts that the aligned sentences do not state ("p:marco")

    @property
    def reason(self) -> str:
        if self.supported:
            return "supported"
        if self.missing:
            return "not in the source sentence it matches: " + ", ".join(k[2:] for k in self.missing)
        return f"no source sentence says this (best match {self.score:.2f})"


class Kept(msgspec.Struct, frozen=True, kw_only=True):
    """A sentence of the checked answer: the model's, supported by `source`; or a quote of `source`."""

    text: str
    kind: Literal["generated", "quoted"]
    source: Sentence | None
    score: float


class Dropped(msgspec.Struct, frozen=True, kw_only=True):
    """A generated sentence that was not supported; `replaced_by` is the quoted source sentence's index.
    `position`: its place among the sentences the model wrote; `missing`: the kinds of its facts that the
    source sentence lacks ("name", "day", ...), which lineage keeps instead of the values."""

    text: str
    reason: str
    position: int = 0
    missing: tuple[str, ...] = ()
    score: float = 0.0
    replaced_by: int | None = None

    @classmethod
    def of(cls, position: int, a: Assessment, replaced_by: int | None = None) -> Dropped:
        kinds = sorted({_FACT_KINDS[key[0]] for key in a.missing})
        return cls(
            text=a.text,
            reason=a.reason,
            position=position,
            missing=tuple(kinds),
            score=round(a.score, 3),
            replaced_by=replaced_by,
        )


class Faithful(msgspec.Struct, frozen=True, kw_only=True):
    """A checked answer: what to show, what was dropped, and whether it fell back to an extract."""

    sentences: tuple[Kept, ...]
    dropped: tuple[Dropped, ...]
    written: int  # sentences the model wrote
    supported: int  # of which supported as written
    fallback: bool
    embedder: str = ""  # the model that aligned the sentences (a stand-in while MiniLM loads)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def record(self) -> dict[str, object]:
        """What lineage keeps of the check (the run's `validation`): which of the model's sentences were
        dropped and why, by position and kind, not their words (the run's `output` has those, and the
        input's values stay out of lineage unless retention allows them)."""
        return {
            "written": self.written,
            "supported": self.supported,
            "fallback": self.fallback,
            "embedder": self.embedder,
            "dropped": [
                {
                    "position": d.position,
                    "missing": list(d.missing),
                    "score": d.score,
                    "replaced_by": d.replaced_by,
                }
                for d in self.dropped
            ],
            "sentences": [
                {"kind": s.kind, "source": s.source.index if s.source else None, "score": round(s.score, 3)}
                for s in self.sentences
            ],
        }


class FaithfulChecker:
    """Checks model output against its source; thresholds are on the alignment score (0..1)."""

    def __init__(
        self,
        embedder: SupportsEmbedding,
        *,
        until_ready: SupportsEmbedding | None = None,
        min_score: float = 0.45,
        replace_score: float = 0.5,
        join_score: float = 0.15,
        min_kept: float = 0.5,
    ) -> None:
        self.embedder = embedder
        self.until_ready = until_ready
        self.min_score = min_score
        self.replace_score = replace_score
        self.join_score = join_score
        self.min_kept = min_kept

    def source(self, parts: Sequence[str], part_ids: Sequence[int] | None = None) -> Source:
        return Source(parts, self._embedder_now(), part_ids)

    def _embedder_now(self) -> SupportsEmbedding:
        """The embedder, or while it is still loading (MiniLM takes ~10 s after a start) `until_ready`:
        a check never waits for a model to load; the fact check is the same either way."""
        if self.until_ready is not None and not self.embedder.is_ready:
            return self.until_ready
        return self.embedder

    def assess(
        self, output: str, source: Source, *, allowed_parts: Sequence[set[int] | None] | None = None
    ) -> list[Assessment]:
        """Each sentence of `output`, checked. `allowed_parts[i]`: the parts sentence i may align with
        (the passages it cites), None for any."""
        return self._assess_texts(_sentences_of(output), source, allowed_parts)

    def _assess_texts(
        self, texts: list[str], source: Source, allowed_parts: Sequence[set[int] | None] | None
    ) -> list[Assessment]:
        if not texts:
            return []
        vectors = source.embedder.embed([_CITATION.sub("", t) for t in texts])
        out = []
        for i, text in enumerate(texts):
            parts = allowed_parts[i] if allowed_parts is not None and i < len(allowed_parts) else None
            out.append(self._assess_one(text, vectors[i], source, parts))
        return out

    def _assess_one(
        self, text: str, vector: np.ndarray, source: Source, parts: set[int] | None
    ) -> Assessment:
        bare = _CITATION.sub("", text)
        stated = facts(bare, source.common)
        words = content_words(bare)
        plain = plain_words(bare)
        candidates = [s.index for s in source.sentences if parts is None or s.part in parts]
        if not candidates:
            return Assessment(
                text=text, supported=False, aligned=(), score=0.0, missing=tuple(sorted(stated))
            )
        cosines = source.vectors[candidates] @ vector
        scores = {
            idx: _COSINE_WEIGHT * float(cos) + _LEXICAL_WEIGHT * _overlap(words, source.words[idx])
            for idx, cos in zip(candidates, cosines, strict=True)
        }
        ranked = sorted(candidates, key=lambda idx: -scores[idx])
        aligned = [ranked[0]]
        covered = set(source.words[ranked[0]])
        for idx in ranked[1:4]:
            brings = (source.words[idx] - covered) & plain
            if brings and scores[idx] >= self.join_score:
                aligned.append(idx)
                covered |= source.words[idx]
        missing = stated - union(source.keys[idx] for idx in aligned) - source.people
        best = scores[ranked[0]]
        return Assessment(
            text=text,
            supported=not missing and best >= self.min_score,
            aligned=tuple(source.sentences[idx] for idx in aligned),
            score=best,
            missing=tuple(sorted(missing)),
        )

    def check(
        self, output: str, source: Source, *, sentences: int = 3, max_words: int | None = None
    ) -> Faithful:
        """A summary, checked: supported sentences kept, others quoted or dropped, the extract when too
        little survives (`sentences` key sentences, each cut to `max_words` words for a headline)."""
        return self._resolve(self.assess(output, source), source, sentences=sentences, max_words=max_words)

    def check_headline(self, output: str, source: Source, *, max_words: int = 12) -> Faithful:
        """A one-line summary (a subject line): the model's first line, checked as one sentence; lines
        after it are dropped. Its replacement or fallback is a key sentence cut to `max_words` words."""
        lines = [strip_lead(line) for line in output.splitlines()]
        lines = [line for line in lines if line]
        assessed = self._assess_texts(lines[:1], source, None)
        checked = self._resolve(assessed, source, sentences=1, max_words=max_words)
        extra = tuple(
            Dropped(text=line, reason="a headline is one line", position=i)
            for i, line in enumerate(lines[1:], start=1)
        )
        return msgspec.structs.replace(checked, dropped=checked.dropped + extra)

    def check_answer(self, output: str, source: Source, question: str, *, quotes: int = 2) -> Faithful:
        """An answer citing passages as [n] (`source` built with the citation numbers as `part_ids`):
        each sentence is checked against the passages it cites (those the whole answer cites when it cites
        none itself, every passage when the answer cites none). When too little survives, the passage
        sentences that best match the question, quoted (their `part` is the citation number)."""
        texts = _sentences_of(output)
        everywhere = {int(n) for n in _CITATION.findall(output) if int(n) in source.parts} or None
        allowed = [
            {int(n) for n in _CITATION.findall(t) if int(n) in source.parts} or everywhere for t in texts
        ]
        assessed = self._assess_texts(texts, source, allowed)
        checked = self._resolve(assessed, source, sentences=0, max_words=None)
        if not checked.fallback:
            return checked
        best = self._best_for(question, source, quotes)
        return msgspec.structs.replace(checked, sentences=tuple(_quote(s, score) for s, score in best))

    def _resolve(
        self, assessed: list[Assessment], source: Source, *, sentences: int, max_words: int | None
    ) -> Faithful:
        kept: list[Kept] = []
        dropped: list[Dropped] = []
        quoted: set[int] = set()
        for position, a in enumerate(assessed):
            best = a.aligned[0] if a.aligned else None
            if a.supported and best is not None:
                kept.append(Kept(text=a.text, kind="generated", source=best, score=a.score))
            elif best is not None and a.score >= self.replace_score and best.index not in quoted:
                quoted.add(best.index)
                part = source.parts[best.part]
                kept.append(_quote(_cut(best, part, max_words) if max_words else best, a.score))
                dropped.append(Dropped.of(position, a, replaced_by=best.index))
            else:
                dropped.append(Dropped.of(position, a))
        supported = sum(a.supported for a in assessed)
        enough = max(1, math.ceil(len(assessed) * self.min_kept))
        if len(kept) >= enough:
            return Faithful(
                sentences=tuple(kept),
                dropped=tuple(dropped),
                written=len(assessed),
                supported=supported,
                fallback=False,
                embedder=source.embedder.model_id,
            )
        extract = self.extractive(source, sentences, max_words=max_words) if sentences else []
        return Faithful(
            sentences=tuple(_quote(s, 1.0) for s in extract),
            dropped=tuple(Dropped.of(position, a) for position, a in enumerate(assessed)),
            written=len(assessed),
            supported=supported,
            fallback=True,
            embedder=source.embedder.model_id,
        )

    def extractive(self, source: Source, count: int, *, max_words: int | None = None) -> list[Sentence]:
        """The source's `count` key sentences, in source order, by centrality and position; with
        `max_words`, each is cut to its first words (still verbatim, offsets adjusted)."""
        pool = [s for s in source.sentences if len(s.text.split()) >= _KEY_MIN_WORDS] or source.sentences
        if not pool or count < 1:
            return []
        rows = source.vectors[[s.index for s in pool]]
        similarity = rows @ rows.T
        n = len(pool)
        centrality = (similarity.sum(axis=1) - 1.0) / max(n - 1, 1)
        scores = [
            _CENTRALITY_WEIGHT * float(centrality[i]) + (1 - _CENTRALITY_WEIGHT) * (1 - i / n)
            for i in range(n)
        ]
        chosen = sorted(sorted(range(n), key=lambda i: -scores[i])[:count])
        out = [pool[i] for i in chosen]
        return [_cut(s, source.parts[s.part], max_words) for s in out] if max_words else out

    def _best_for(self, question: str, source: Source, count: int) -> list[tuple[Sentence, float]]:
        if not source.sentences:
            return []
        vector = source.embedder.embed([question])[0]
        words = content_words(question)
        scored = [
            (s, _COSINE_WEIGHT * float(cos) + _LEXICAL_WEIGHT * _overlap(words, source.words[s.index]))
            for s, cos in zip(source.sentences, source.vectors @ vector, strict=True)
        ]
        scored.sort(key=lambda pair: -pair[1])
        return scored[:count]


def _sentences_of(output: str) -> list[str]:
    """The sentences a model wrote, without list markers or labels."""
    return [t for t in (strip_lead(s.text) for s in split_sentences(output)) if t]


def _overlap(words: set[str], source_words: set[str]) -> float:
    return len(words & source_words) / len(words) if words else 0.0


def _quote(sentence: Sentence, score: float) -> Kept:
    return Kept(text=sentence.text, kind="quoted", source=sentence, score=score)


def _cut(sentence: Sentence, part: str, max_words: int) -> Sentence:
    """`sentence` cut to its first `max_words` words, its offsets following."""
    words = list(re.finditer(r"\S+", part[sentence.start : sentence.end]))
    if len(words) <= max_words:
        return sentence
    end = sentence.start + words[max_words - 1].end()
    return msgspec.structs.replace(sentence, end=end, text=" ".join(part[sentence.start : end].split()))
