"""Wire types of the HTTP API: msgspec Structs, camelCase on the wire (the task pane is TypeScript).

Requests forbid unknown fields: a typo such as `"tekst"` is a 400 that names the field, not a silent
default. Limits (`Meta`) are part of the types so that they appear in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "Address",
    "Client",
    "DoneEvent",
    "EmailIn",
    "ErrorBody",
    "ErrorEvent",
    "FieldOut",
    "GroundedDroppedOut",
    "GroundedEvent",
    "GroundedSentenceOut",
    "Health",
    "In",
    "MetaEvent",
    "ModelInfo",
    "ModelsOut",
    "NormalizedOut",
    "Out",
    "Person",
    "PrepareOut",
    "ProfileName",
    "ProfileOut",
    "ProgressEvent",
    "ResultEvent",
    "ReviewRef",
    "RouteOut",
    "RuleOut",
    "RunIn",
    "ShortText",
    "SourceOut",
    "SourceSentenceOut",
    "SourcesEvent",
    "TokenEvent",
    "UsageOut",
    "ValidationOut",
    "camel_view",
]

Client = Literal["outlook", "word", "cli", "api"]
ShortText = Annotated[str, Meta(max_length=1_000)]
Address = Annotated[str, Meta(max_length=320)]

# The characters `str.strip()` removes, as a regex class body of literal characters: `\s` differs between
# Python's `re` (which msgspec uses), the ECMA regexes of JSON Schema and Rust's (the fuzz test's validator).
WHITESPACE = "\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A string with something besides whitespace in it (a pattern is searched for, not matched whole). Documents
# a field that `__post_init__` refuses when blank: `Meta(extra_json_schema={"pattern": NOT_BLANK})`.
NOT_BLANK = f"[^{WHITESPACE}]"


class In(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    # What the OpenAPI document says of a request beyond its fields (web/openapi.py), for checks the struct
    # (`__post_init__`) or its handler makes: `exactly_one_of`, fields of which a request gives exactly one
    # (not null), said with `oneOf`; `json_schema_extra`, JSON Schema merged into the struct's schema, in
    # which a Struct type stands for a reference to its schema.
    exactly_one_of: ClassVar[tuple[str, ...]] = ()
    json_schema_extra: ClassVar[dict[str, Any]] = {}


class Out(msgspec.Struct, rename="camel", kw_only=True):
    pass


# A model profile's name, as in `[models.NAME]`.
ProfileName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class RunIn(In, kw_only=True):
    """What every AI request may ask of routing: a model `profile` by name instead of its task's route,
    that its input is `sensitive` (it then never goes to a remote profile), and `cache: false` to have the
    model answer again rather than repeat a recorded answer."""

    profile: ProfileName | None = None
    sensitive: bool = False
    cache: bool = True


class EmailIn(In):
    body: str
    subject: ShortText = ""
    sender: Address = msgspec.field(default="", name="from")
    to: list[Address] = []
    cc: list[Address] = []
    date: ShortText | None = None  # as the mail client shows it; passed to the model verbatim


class Person(In):
    """Who asks for a change that only a person may make (approving an action, changing an approval
    policy): the Office user's display name and email address, as the task pane knows them."""

    # Printable, with at least one character that is not a space.
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f" + WHITESPACE + r"][^\x00-\x1f\x7f]*$",
        ),
    ]
    # An email address's shape: one "@", no spaces or angle brackets, a dot in the domain.
    address: Annotated[
        str,
        Meta(
            min_length=3,
            max_length=320,
            pattern=(
                r"^[^@<>\"\x00-\x1f\x7f" + WHITESPACE + r"]+@[^@<>\"\x00-\x1f\x7f" + WHITESPACE + r"]+"
                r"\.[^@<>\"\x00-\x1f\x7f." + WHITESPACE + r"]+$"
            ),
        ),
    ]

    def __post_init__(self) -> None:
        # The patterns' "$" also matches before a final newline; no control character passes here.
        if any(ord(c) < 32 or c == "\x7f" for c in self.name + self.address):
            raise ValueError("a person's name and address may not contain control characters")
        self.name = self.name.strip()


class MetaEvent(Out):
    run_id: str
    task: str
    model: str
    backend: str
    template: str
    truncated: bool
    # The model profile that answers; when profiles before it failed first, which and why; what personal
    # data was masked before the request left the machine ({category: count}); a cached answer's origin.
    profile: str | None = None
    fallback: str | None = None
    masked: dict[str, int] | None = None
    cached_from: str | None = None


class TokenEvent(Out):
    text: str


class UsageOut(Out):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class DoneEvent(Out):
    run_id: str
    usage: UsageOut
    queue_ms: float
    ttft_ms: float | None
    total_ms: float


class SourceSentenceOut(Out):
    """A sentence of the source, verbatim (whitespace collapsed). `part`: for a summary, 0 is the email
    or text summarized and 1, 2, ... the earlier messages of its `thread` in request order; for /v1/ask,
    the number of the cited passage. `start`/`end`: character offsets in that part's text (the email's
    `body`, the `text`, or the passage)."""

    index: int  # among all the source's sentences, in order
    part: int
    start: int
    end: int
    text: str


class GroundedSentenceOut(Out):
    """A sentence to show: the model's own words, supported by `source_sentence` ("generated"), or a
    quote of `source_sentence` ("quoted"; show it as a quote, a click shows its source)."""

    text: str
    kind: Literal["generated", "quoted"]
    source_sentence: SourceSentenceOut | None
    score: float  # how well it aligns with its source sentence, 0..1 (1.0 for an extract's quote)


class GroundedDroppedOut(Out):
    """A sentence the model wrote that its source does not support, and why; `replaced_by` is the index
    of the source sentence quoted in its place."""

    text: str
    reason: str
    replaced_by: int | None = None


class GroundedEvent(Out):
    """After the streamed tokens of a summary or an answer, before `done`: what the faithfulness check
    kept. The streamed text is what the model wrote; show `sentences` in its place. `fallback`: too
    little was supported, and `sentences` are the source's key sentences (for /v1/ask: those best
    matching the question), all quoted."""

    run_id: str
    task: str
    sentences: list[GroundedSentenceOut]
    dropped: list[GroundedDroppedOut]
    written: int  # sentences the model wrote
    supported: int  # of which supported as written
    fallback: bool
    check_ms: float


class SourceOut(Out):
    number: int  # what [n] in the answer refers to
    document_id: int
    source: str  # a file path, or a reference such as "graph:message:AAMk…"
    path: str | None
    title: str
    page: int | None
    start: int  # character offsets of the passage in the document's text
    end: int
    snippet: str
    score: float


class SourcesEvent(Out):
    sources: list[SourceOut]


class ErrorEvent(Out):
    code: str
    message: str


class ProgressEvent(Out):
    """How far a structured run is: waiting for the model, generating (tokens so far, the field being
    written), or checking the result."""

    stage: Literal["waiting", "generating", "checking"]
    tokens: int = 0
    max_tokens: int = 0
    field: str | None = None


class FieldOut(Out, omit_defaults=True):
    confidence: float
    token_confidence: float | None = None  # from the model's token probabilities alone
    cross_check: Literal["agrees", "disagrees", "missed"] | None = None  # the deterministic extractors
    grounding: float | None = None  # share of the value's words found in the source text
    failed_rules: list[str] = []
    repaired: bool = False  # filled in or cleared by the repair step: the model did not write it
    # "extractor": the extractors' value (one the model was held to, or the hybrid's choice); "memory": the
    # vendor memory's, learnt from a person's earlier correction.
    source: Literal["model", "extractor", "memory"] = "model"
    raw_confidence: float | None = None  # before calibration, where `confidence` is a calibrated probability


class RuleOut(Out):
    rule: str
    status: Literal["pass", "fail"]
    message: str
    fields: list[str]


class NormalizedOut(Out):
    path: str
    before: Any
    after: Any


class ValidationOut(Out):
    """`data` always validates against the schema; this says what it took and what the rules found."""

    valid: bool
    repaired: bool
    problems: list[str] = []
    rules: list[RuleOut] = []
    normalized: list[NormalizedOut] = []


class ReviewRef(Out):
    id: str
    reasons: list[str]


class ResultEvent(Out):
    """A structured result. `data` uses the schema's own field names; `fields` is keyed by value path
    ("lineItems[0].amount"). `review` is set when the result was queued for a person to check."""

    run_id: str
    task: str
    schema: str | None
    data: dict[str, Any]
    confidence: float
    fields: dict[str, FieldOut]
    validation: ValidationOut
    review: ReviewRef | None = None


# --- plain responses ----------------------------------------------------------------------------------


class PrepareOut(Out):
    prepared: bool
    reason: str | None = None
    cached_tokens: int = 0
    ms: float = 0.0


class ErrorBody(Out, omit_defaults=True):
    code: str
    message: str
    retry_after: int | None = None
    field: str | None = None  # the request field at fault, for 400s


class ModelInfo(Out):
    id: str
    backend: str
    weights_digest: str
    context_length: int
    cost_per_1k_tokens: float = msgspec.field(name="costPer1kTokens")


class ProfileOut(Out):
    """A model profile as the pane's Settings shows it (never its API key: only the keyring entry's name)."""

    name: str
    backend: str
    where: str  # the GGUF file or EXL2 folder, or "MODEL at BASE_URL"
    local: bool
    context_length: int
    price_in_per_1k: float = msgspec.field(name="priceInPer1k")
    price_out_per_1k: float = msgspec.field(name="priceOutPer1k")
    pii: str  # mask | block | allow (applies to remote profiles)
    json_schema: str
    logprobs: bool
    prefix_caching: bool
    state: Literal["not_loaded", "loading", "ready", "failed"]
    error: str | None = None
    breaker: str | None = None  # why the profile is skipped for now, if it is
    api_key_name: str | None = None


class RouteOut(Out):
    task: str
    use: list[str]  # the primary profile, then the fallbacks
    rules: list[dict[str, Any]] = []


class ModelsOut(Out):
    state: Literal["loading", "ready", "failed"]
    error: str | None
    models: list[ModelInfo]
    busy: bool
    waiting: int
    max_waiting: int
    profiles: list[ProfileOut] = []
    routes: list[RouteOut] = []


class Health(Out):
    status: Literal["ok"]
    version: str
    model: Literal["loading", "ready", "failed"]
    details: dict[str, Any] = {}


def camel_view(source: type[msgspec.Struct], name: str) -> type[msgspec.Struct]:
    """A camelCase wire twin of a stored record, generated from it so the field list lives in one place."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(source):
        if f.default is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, f.type))
    return msgspec.defstruct(name, fields, rename="camel", kw_only=True, module=__name__)
