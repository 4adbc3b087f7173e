"""AI tasks: turn what the user asked for into a `Job` (template + generation request + input to record).

Pure functions, no I/O beyond loading a template. Inputs that would overflow the model's context are cut to
a character budget here, where we still know which part matters: the newest message is kept whole first,
then earlier messages of the thread, newest first. Whether anything was cut is part of the job, so lineage
shows it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from deskpilot.inference._types import GenerationRequest
from deskpilot.inference.templates import PromptTemplate, load_template

__all__ = [
    "Email",
    "Job",
    "Passage",
    "ask_job",
    "draft_reply_job",
    "input_digest",
    "rewrite_job",
    "summarize_job",
]

# Conservative characters-per-token for budgeting (English is ~4; code, numbers and other scripts less).
CHARS_PER_TOKEN = 3.0
# Tokens the template's own words and the chat markup take.
TEMPLATE_OVERHEAD_TOKENS = 160

Tone = Literal["neutral", "friendly", "formal", "direct", "apologetic"]
Length = Literal["short", "medium", "long"]
# A summary is `sentences` long, or one line like a subject (`headline`).
SummaryLength = Literal["sentences", "headline"]
REPLY_WORDS: dict[str, int] = {"short": 50, "medium": 110, "long": 200}
REPLY_MAX_TOKENS: dict[str, int] = {"short": 110, "medium": 220, "long": 380}


class Email(msgspec.Struct, frozen=True, kw_only=True):
    body: str
    subject: str = ""
    sender: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: str | None = None

    def render(self, body_chars: int | None = None) -> str:
        head = [f"From: {self.sender}" if self.sender else "", f"To: {', '.join(self.to)}" if self.to else ""]
        head += [f"Cc: {', '.join(self.cc)}" if self.cc else "", f"Date: {self.date}" if self.date else ""]
        head += [f"Subject: {self.subject}" if self.subject else ""]
        body = self.body.strip()
        if body_chars is not None and len(body) > body_chars:
            body = body[: max(body_chars, 0)].rstrip() + " [...]"
        return "\n".join([*(h for h in head if h), "", body]).strip()


class Job(msgspec.Struct, frozen=True, kw_only=True):
    task: str
    template: PromptTemplate
    request: GenerationRequest
    input: dict[str, Any]  # canonical input, for the digest (and retention where allowed)
    truncated: bool = False
    parameters: dict[str, Any] = {}  # task-specific settings lineage records with the sampling ones


def input_digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()


def _budget_chars(context_length: int, max_tokens: int) -> int:
    return int((context_length - max_tokens - TEMPLATE_OVERHEAD_TOKENS) * CHARS_PER_TOKEN)


def _render_thread(email: Email, thread: tuple[Email, ...], budget: int) -> tuple[str, bool]:
    """The newest email first and whole if it fits, then earlier ones newest-first while budget remains."""
    current = email.render()
    truncated = len(current) > budget
    if truncated:
        current = email.render(body_chars=budget - (len(current) - len(email.body.strip())))
    parts = [current]
    remaining = budget - len(current)
    for earlier in sorted(thread, key=lambda m: m.date or "", reverse=True):
        text = earlier.render()
        if len(text) + 40 > remaining:
            truncated = True
            break
        parts.append(text)
        remaining -= len(text) + 40
    if len(parts) == 1:
        return current, truncated
    earlier_text = "\n\n".join(f"--- Earlier message ---\n{p}" for p in reversed(parts[1:]))
    return f"{earlier_text}\n\n--- Latest message ---\n{current}", truncated


def summarize_job(
    *,
    context_length: int,
    text: str | None = None,
    email: Email | None = None,
    thread: tuple[Email, ...] = (),
    sentences: int = 3,
    length: SummaryLength = "sentences",
    template: PromptTemplate | None = None,
) -> Job:
    """A summary in `sentences` sentences, or a one-line `headline` (its own template)."""
    template = template or load_template("summarize_headline" if length == "headline" else "summarize")
    budget = _budget_chars(context_length, template.max_tokens)
    if email is not None:
        kind = "email thread" if thread else "email"
        content, truncated = _render_thread(email, thread, budget)
    else:
        kind = "text"
        source = (text or "").strip()
        truncated = len(source) > budget
        content = source[:budget] + (" [...]" if truncated else "")
    messages = template.render(kind=kind, sentences=sentences, content=content)
    request = GenerationRequest(
        messages=messages, max_tokens=template.max_tokens, temperature=template.temperature
    )
    recorded: dict[str, Any] = {"text": text, "email": email, "thread": thread, "sentences": sentences}
    if length != "sentences":  # only then: a summary's input digest (and cache key) stays as it was
        recorded["length"] = length
    return Job(
        task="summarize",
        template=template,
        request=request,
        input=msgspec.to_builtins(recorded),
        truncated=truncated,
    )


def draft_reply_job(
    *,
    context_length: int,
    email: Email,
    thread: tuple[Email, ...] = (),
    tone: Tone = "neutral",
    length: Length = "medium",
    instructions: str = "",
    signature: str = "",
    template: PromptTemplate | None = None,
) -> Job:
    template = template or load_template("draft_reply")
    max_tokens = REPLY_MAX_TOKENS[length]
    budget = _budget_chars(context_length, max_tokens) - len(instructions)
    content, truncated = _render_thread(email, thread, budget)
    extra = f" Also: {instructions.strip()}" if instructions.strip() else ""
    messages = template.render(
        tone=tone,
        words=REPLY_WORDS[length],
        instructions=extra,
        content=content,
        signature=signature.strip() or "me",
    )
    request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=template.temperature)
    recorded = {
        "email": email,
        "thread": thread,
        "tone": tone,
        "length": length,
        "instructions": instructions,
        "signature": signature,
    }
    return Job(
        task="draft_reply",
        template=template,
        request=request,
        input=msgspec.to_builtins(recorded),
        truncated=truncated,
    )


class Passage(msgspec.Struct, frozen=True, kw_only=True):
    """A retrieved piece of a document, as the model sees it; `number` is what citations refer to."""

    number: int
    title: str
    text: str
    page: int | None = None


def ask_job(
    *,
    context_length: int,
    question: str,
    passages: tuple[Passage, ...],
    template: PromptTemplate | None = None,
) -> Job:
    """Answer `question` from `passages`, best first; passages that do not fit the context are dropped."""
    template = template or load_template("ask")
    budget = _budget_chars(context_length, template.max_tokens) - len(question)
    blocks: list[str] = []
    for p in passages:
        where = f", page {p.page}" if p.page else ""
        block = f"[{p.number}] {p.title}{where}:\n{p.text.strip()}"
        if len(block) + 2 > budget:
            break
        blocks.append(block)
        budget -= len(block) + 2
    messages = template.render(sources="\n\n".join(blocks), question=question.strip())
    request = GenerationRequest(
        messages=messages, max_tokens=template.max_tokens, temperature=template.temperature
    )
    recorded = {"question": question, "passages": [msgspec.to_builtins(p) for p in passages[: len(blocks)]]}
    return Job(
        task="ask", template=template, request=request, input=recorded, truncated=len(blocks) < len(passages)
    )


def rewrite_job(
    *,
    context_length: int,
    text: str,
    tone: Tone = "neutral",
    instructions: str = "",
    template: PromptTemplate | None = None,
) -> Job:
    """Rewrite a selection. The output budget follows the input's length (a rewrite is about as long)."""
    template = template or load_template("rewrite")
    max_tokens = min(template.max_tokens, max(64, int(len(text) / CHARS_PER_TOKEN * 1.5)))
    budget = _budget_chars(context_length, max_tokens)
    source = text.strip()
    truncated = len(source) > budget
    extra = f" Also: {instructions.strip()}" if instructions.strip() else ""
    messages = template.render(content=source[:budget], tone=tone, instructions=extra)
    request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=template.temperature)
    recorded = {"text": text, "tone": tone, "instructions": instructions}
    return Job(task="rewrite", template=template, request=request, input=recorded, truncated=truncated)
