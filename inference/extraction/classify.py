"""Triage: put a message or document into one of a configurable set of labels, with a confidence.

A label is an id (what the API and lineage record) with a display name and a description a person writes
to say what the label means, and optionally a few example texts (`TriageLabel`). The descriptions go into
the prompt and into the zero-shot classifier over sentence embeddings (`triage.py`), so a label the model
has never seen still means something to both. A bare id is a label too: the default labels have
descriptions here, any other bare id is described by its own words.

The grammar is the JSON Schema `{"enum": [ids]}`, so the model can only write one of the ids (as a
JSON string), and we decode greedily. The confidence is the model's probability of the label it wrote: the
product of the probabilities of the label's tokens, under its own distribution (before the grammar
narrowed it down; `Token.logprob`). Mass the model put on anything that is not a label therefore lowers the
confidence: a model torn between a label and something else is not confident of the label.

Corrected examples from review (the server's triage memory) can be shown to the model as few-shot
examples (`FewShot`): a short excerpt of a similar message and the label a person gave it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from deskpilot.inference._types import GenerationRequest
from deskpilot.inference.extraction._json import JSONReadError, read_json
from deskpilot.inference.extraction.extract import TEMPLATE_OVERHEAD_TOKENS, Generated, fit_to_tokens
from deskpilot.inference.tasks import Job
from deskpilot.inference.templates import PromptTemplate, load_template

__all__ = [
    "DEFAULT_LABELS",
    "LABEL",
    "Classification",
    "DescribedLabel",
    "FewShot",
    "TriageLabel",
    "classify_job",
    "finish_classification",
    "triage_labels",
]

LABEL = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# A few-shot example's text is cut to this many characters: enough to show what such a message looks like,
# little enough that three of them leave the small model's context to the message itself.
FEW_SHOT_CHARS = 400


class TriageLabel(msgspec.Struct, frozen=True, kw_only=True):
    """A label: `id` is what is recorded; `name` is what people read; `description` says what it means
    (it feeds the prompt and the zero-shot classifier); `examples` are a few texts that belong to it."""

    id: str
    name: str = ""
    description: str = ""
    examples: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return self.name or self.id.replace("_", " ")


class DescribedLabel(Protocol):
    """Anything shaped like a `TriageLabel` (the server's settings have their own Struct)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def examples(self) -> Sequence[str]: ...


# The default labels, with general business meanings (what a person sorting an office inbox means by them).
DEFAULT_LABELS: dict[str, TriageLabel] = {
    label.id: label
    for label in (
        TriageLabel(
            id="invoice",
            name="Invoice",
            description="a bill, invoice, receipt, statement or payment reminder: money owed or paid "
            "for goods or services, with amounts, due dates and payment details.",
        ),
        TriageLabel(
            id="contract",
            name="Contract",
            description="a contract or agreement, its draft, terms, amendment, renewal, signature or "
            "termination: legal obligations between parties.",
        ),
        TriageLabel(
            id="meeting_request",
            name="Meeting request",
            description="an invitation or request to meet, call or join a conference: proposing, "
            "scheduling, moving or confirming a time and place.",
        ),
        TriageLabel(
            id="action_needed",
            name="Action needed",
            description="asks the reader to do something: reply, approve, review, send, fix or decide, "
            "often by a deadline.",
        ),
        TriageLabel(
            id="fyi",
            name="FYI",
            description="information only: an update, announcement, report or notice that asks "
            "nothing of the reader.",
        ),
        TriageLabel(
            id="newsletter",
            name="Newsletter",
            description="a newsletter, marketing message, promotion or other bulk mail sent to many "
            "recipients, often with an unsubscribe link.",
        ),
    )
}


class Classification(msgspec.Struct, kw_only=True):
    label: str
    confidence: float
    repaired: bool  # the output was not a whole label (cut short); the label is a best guess, confidence 0
    review_reasons: list[str]


class FewShot(msgspec.Struct, frozen=True):
    """A corrected example shown to the model: a message like this one, and the label a person gave it."""

    text: str
    label: str


def triage_labels(values: Sequence[str | DescribedLabel]) -> list[TriageLabel]:
    """Labels as `TriageLabel`s: a bare id gets its default description when it has one; a described label
    is kept as written. Refuses fewer than two, repeated ids, and ids that are not simple names."""
    labels = [
        DEFAULT_LABELS.get(value, TriageLabel(id=value))
        if isinstance(value, str)
        else TriageLabel(
            id=value.id,
            name=value.name,
            description=value.description,
            examples=tuple(value.examples),
        )
        for value in values
    ]
    ids = [label.id for label in labels]
    if len(ids) < 2 or len(set(ids)) != len(ids) or not all(LABEL.match(i) for i in ids):
        raise ValueError(
            f"labels must be 2 or more distinct ids of lower case letters, digits and '_' (got {ids})"
        )
    return labels


def _guide(labels: Sequence[TriageLabel]) -> str:
    lines = []
    for label in labels:
        plain = label.display.lower() in (label.id, label.id.replace("_", " "))
        named = label.id if plain else f"{label.id} ({label.display})"
        lines.append(f"- {named}: {label.description}" if label.description else f"- {named}")
    return "\n".join(lines)


def _shots(few_shot: Sequence[FewShot]) -> str:
    if not few_shot:
        return ""
    shown = []
    for shot in few_shot:
        text = " ".join(shot.text.split())
        text = text if len(text) <= FEW_SHOT_CHARS else text[:FEW_SHOT_CHARS] + " [...]"
        shown.append(f"<example>\n{text}\n</example>\ncategory: {shot.label}")
    return "Messages people sorted before:\n" + "\n".join(shown) + "\n\n"


def classify_job(
    *,
    text: str,
    labels: Sequence[str | DescribedLabel],
    context_length: int,
    count_tokens: Callable[[str], int] | None = None,
    few_shot: Sequence[FewShot] = (),
    template: PromptTemplate | None = None,
) -> Job:
    described = triage_labels(labels)
    ids = [label.id for label in described]
    template = template or load_template("classify")
    guide, shots = _guide(described), _shots(few_shot)
    budget = context_length - template.max_tokens - TEMPLATE_OVERHEAD_TOKENS - len((guide + shots).encode())
    content, truncated = fit_to_tokens(text.strip(), max(budget, 0), count_tokens)
    request = GenerationRequest(
        messages=template.render(content=content, labels=guide, examples=shots),
        max_tokens=template.max_tokens,
        temperature=template.temperature,
        repeat_penalty=1.0,
        json_schema={"enum": ids},
        logprobs=True,
    )
    parameters: dict[str, object] = {"labels": ids}
    if few_shot:
        parameters["fewShot"] = [shot.label for shot in few_shot]
    return Job(
        task="classify",
        template=template,
        request=request,
        input={"text": text, "labels": ids},
        truncated=truncated,
        parameters=parameters,
    )


def finish_classification(
    labels: Sequence[str], generated: Generated, *, review_threshold: float = 0.6
) -> Classification:
    try:
        value, nodes = read_json(generated.text)
    except JSONReadError:
        value, nodes = None, []
    if value in labels:
        node = nodes[-1]  # the root string; its span is the label inside the quotes
        position, logprob, known = 0, 0.0, True
        for token in generated.tokens:
            start, position = position, position + len(token.text)
            if start < node.end and node.start < position:
                known = known and token.logprob is not None
                logprob += token.logprob or 0.0
        confidence = round(math.exp(logprob), 4) if known else 0.5
        reasons = (
            []
            if confidence >= review_threshold
            else [f"confidence {confidence:.2f} is below the review threshold {review_threshold:.2f}"]
        )
        return Classification(label=str(value), confidence=confidence, repaired=False, review_reasons=reasons)
    # Cut short (the grammar allows nothing else): the label the partial output begins, or the first label.
    partial = generated.text.strip().lstrip('"')
    guess = next((label for label in labels if partial and label.startswith(partial)), labels[0])
    return Classification(
        label=guess,
        confidence=0.0,
        repaired=True,
        review_reasons=[f"the output {generated.text!r} is not a whole label"],
    )
