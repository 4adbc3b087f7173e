"""Wire types of the writing tasks (summarize, draft a reply, rewrite): msgspec Structs, camelCase."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from msgspec import Meta, field

from deskpilot.server.core.wire import NOT_BLANK, Client, EmailIn, RunIn, ShortText

__all__ = ["DraftReplyRequest", "RewriteRequest", "SummarizeRequest"]

# In the OpenAPI document: not blank (`__post_init__` refuses a blank text).
_Text = Annotated[str, Meta(extra_json_schema={"pattern": NOT_BLANK})]


class SummarizeRequest(RunIn, kw_only=True):
    """Either `text`, or an `email` with optionally the earlier messages of its `thread`."""

    exactly_one_of = ("text", "email")
    # A thread goes with an email.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"required": ["thread"], "properties": {"thread": {"minItems": 1}}},
        "then": {"required": ["email"], "properties": {"email": {"type": "object"}}},
    }

    text: _Text | None = None
    email: EmailIn | None = None
    thread: list[EmailIn] = field(default_factory=list)
    sentences: Annotated[int, Meta(ge=1, le=10)] = 3
    # "headline": one line, like a subject (for a draft's subject line); `sentences` does not apply.
    length: Literal["sentences", "headline"] = "sentences"
    client: Client = "api"
    source_ref: ShortText | None = None  # e.g. the Outlook item id, kept in lineage

    def __post_init__(self) -> None:
        if (self.text is None) == (self.email is None):
            raise ValueError("give exactly one of `text` or `email`")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is empty")
        if self.thread and self.email is None:
            raise ValueError("`thread` needs the `email` it belongs to")


class DraftReplyRequest(RunIn, kw_only=True):
    email: EmailIn
    thread: list[EmailIn] = field(default_factory=list)
    tone: Literal["neutral", "friendly", "formal", "direct", "apologetic"] = "neutral"
    length: Literal["short", "medium", "long"] = "medium"
    instructions: Annotated[str, Meta(max_length=2_000)] = ""
    signature: Annotated[str, Meta(max_length=200)] = ""
    client: Client = "api"
    source_ref: ShortText | None = None


class RewriteRequest(RunIn, kw_only=True):
    """A passage the user selected (in Word), to rewrite; the task pane inserts it as a tracked change."""

    text: Annotated[str, Meta(min_length=1, max_length=20_000, extra_json_schema={"pattern": NOT_BLANK})]
    instructions: Annotated[str, Meta(max_length=2_000)] = ""
    tone: Literal["neutral", "friendly", "formal", "direct", "apologetic"] = "neutral"
    client: Client = "api"
    source_ref: ShortText | None = None

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("`text` is empty")
