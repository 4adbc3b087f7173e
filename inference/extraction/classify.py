"""Triage: put a message or document into one of a configurable set of labels, with a confidence.

The grammar is the JSON Schema `{"enum": [labels]}`, so the model can only write one of the labels (as a
JSON string), and we decode greedily. The confidence is the model's probability of the label it wrote: the
product of the probabilities of the label's tokens, under its own distribution (before the grammar
narrowed it down; `Token.logprob`). Mass the model put on anything that is not a label therefore lowers the
confidence: a model torn between a label and something else is not confident of the label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import msgspec

from deskpilot.inference._types import GenerationRequest
from deskpilot.inference.extraction._json import JSONReadError, read_json
from deskpilot.inference.extraction.extract import TEMPLATE_OVERHEAD_TOKENS, Generated, fit_to_tokens
from deskpilot.inference.tasks import Job
from deskpilot.inference.templates import PromptTemplate, load_template

__all__ = ["DEFAULT_LABELS", "LABEL", "Classification", "classify_job", "finish_classification"]

LABEL = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# What each default label means, for the prompt. Labels configured without a description are shown as is.
DEFAULT_LABELS: dict[str, str] = {
    "invoice": "a bill or invoice asking for payment, or a receipt",
    "contract": "a contract, agreement or its terms",
    "meeting_request": "an invitation or request to meet or call",
    "action_needed": "asks the reader to do something",
    "fyi": "information only, no action needed",
    "newsletter": "a newsletter, marketing or bulk mail",
}


class Classification(msgspec.Struct, kw_only=True):
    label: str
    confidence: float
    repaired: bool  # the output was not a whole label (cut short); the label is a best guess, confidence 0
    review_reasons: list[str]


def classify_job(
    *,
    text: str,
    labels: Sequence[str],
    context_length: int,
    count_tokens: Callable[[str], int] | None = None,
    descriptions: dict[str, str] | None = None,
    template: PromptTemplate | None = None,
) -> Job:
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(LABEL.match(label) for label in labels):
        raise ValueError("labels must be 2 or more distinct names of lower case letters, digits and '_'")
    template = template or load_template("classify")
    described = {**DEFAULT_LABELS, **(descriptions or {})}
    guide = "\n".join(
        f"- {label}: {described[label]}" if label in described else f"- {label}" for label in labels
    )
    budget = context_length - template.max_tokens - TEMPLATE_OVERHEAD_TOKENS - len(guide.encode())
    content, truncated = fit_to_tokens(text.strip(), max(budget, 0), count_tokens)
    request = GenerationRequest(
        messages=template.render(content=content, labels=guide),
        max_tokens=template.max_tokens,
        temperature=template.temperature,
        repeat_penalty=1.0,
        json_schema={"enum": list(labels)},
        logprobs=True,
    )
    return Job(
        task="classify",
        template=template,
        request=request,
        input={"text": text, "labels": list(labels)},
        truncated=truncated,
        parameters={"labels": list(labels)},
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
