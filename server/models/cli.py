"""`deskpilot models`: list, add, use, pull, remove and test model profiles.

Profiles and routes live in `config.toml` (`[models.NAME]`, `[routes.TASK]`); these commands edit it
keeping everything else in the file, and refuse an edit that would not load. API keys go to the OS keyring
only. A running server reads the file when it starts: restart it (or the Windows service) after a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import click
import keyring
import keyring.errors
import msgspec
from rich.console import Console
from rich.table import Table
from tomlkit import table as toml_table
from tomlkit.items import Table as TomlTable

from deskpilot.inference import BackendError, Finished, GenerationRequest, Message
from deskpilot.server.core.cli import settings_or_usage_error
from deskpilot.server.models.config_edit import edit_config
from deskpilot.server.models.registry import KEYRING_SERVICE, ModelRegistry, UnknownProfile
from deskpilot.server.settings import EMBEDDED_PROFILE, Settings, SettingsError

__all__ = ["models_group"]

out = Console()
err = Console(stderr=True)

TASKS = ("default", "summarize", "draft_reply", "rewrite", "extract", "classify", "ask")
_RESTART = "restart the server to use it"


def _registry(settings: Settings) -> ModelRegistry:
    try:
        return ModelRegistry(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _edit(settings: Settings, change: Any) -> Settings:
    try:
        return edit_config(settings, change)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("models")
def models_group() -> None:
    """Model profiles: which models Deskpilot may use, and which task uses which."""


@models_group.command("list")
def list_profiles() -> None:
    """The profiles, where each model is, and the tasks that use it."""
    registry = _registry(settings_or_usage_error())
    users: dict[str, list[str]] = {}
    for task, route in registry.routes.items():
        for i, name in enumerate(route.use):
            users.setdefault(name, []).append(task if i == 0 else f"{task} (fallback)")
    grid = Table("profile", "backend", "where", "locality", "context", "price in/out per 1k", "PII", "tasks")
    for name, p in registry.profiles.items():
        where = f"{p.model or '(first listed)'} at {p.base_url}" if p.backend == "openai" else p.path
        grid.add_row(
            name,
            p.backend,
            where or "embedded SmolLM2-135M-Instruct",
            "local" if registry.is_local(name) else "remote",
            str(p.context_length),
            f"{p.price_in_per_1k:g} / {p.price_out_per_1k:g}",
            p.pii if not registry.is_local(name) else "-",
            ", ".join(users.get(name, [])) or "-",
        )
    out.print(grid)


@models_group.command("add")
@click.argument("name")
@click.option("--backend", type=click.Choice(["openai", "llama.cpp", "exllamav2"]), required=True)
@click.option("--base-url", help="openai: the server's API root, e.g. https://gpu.corp.example/v1")
@click.option("--model", "model", help="openai: the model name (default: the first the server lists)")
@click.option("--path", help="llama.cpp: a GGUF file; exllamav2: an EXL2 model folder")
@click.option("--api-key-stdin", is_flag=True, help="Read the API key from standard input into the keyring.")
@click.option("--context-length", type=click.IntRange(256, 1_000_000), default=4096, show_default=True)
@click.option("--price-in", type=click.FloatRange(0), default=0.0, help="Cost per 1,000 prompt tokens.")
@click.option("--price-out", type=click.FloatRange(0), default=0.0, help="Cost per 1,000 output tokens.")
@click.option("--pii", type=click.Choice(["mask", "block", "allow"]), default="mask", show_default=True)
@click.option("--json-schema", type=click.Choice(["response_format", "json_object", "validate"]))
@click.option("--locality", type=click.Choice(["local", "remote"]), help="Default: from the address.")
def add(name: str, api_key_stdin: bool, **options: Any) -> None:
    """Add (or replace) the profile NAME in config.toml."""
    settings = settings_or_usage_error()
    key_name = name if api_key_stdin else None
    spec = {
        "backend": options["backend"],
        "base_url": options["base_url"],
        "model": options["model"],
        "path": options["path"],
        "api_key_name": key_name,
        "context_length": options["context_length"],
        "price_in_per_1k": options["price_in"],
        "price_out_per_1k": options["price_out"],
        "pii": options["pii"],
        "json_schema": options["json_schema"],
        "locality": options["locality"],
    }
    entry = toml_table()
    for field, value in spec.items():
        if value is not None:
            entry[field] = value

    def change(models: TomlTable, routes: TomlTable) -> None:
        models[name] = entry

    _edit(settings, change)
    if api_key_stdin:
        api_key = sys.stdin.readline().strip()
        if not api_key:
            raise click.ClickException("no API key on standard input")
        try:
            keyring.set_password(KEYRING_SERVICE, name, api_key)
        except keyring.errors.KeyringError as exc:
            raise click.ClickException(f"the OS keyring refused the key: {exc}") from exc
        err.print(f"API key stored in the OS keyring ({KEYRING_SERVICE}/{name}), not in config.toml")
    out.print(f"profile [bold]{name}[/] added; `deskpilot models use TASK {name}` routes a task to it")


@models_group.command("use")
@click.argument("task", type=click.Choice(TASKS))
@click.argument("profile")
@click.option("--fallback", "fallbacks", multiple=True, help="A fallback profile, in order (repeatable).")
def use(task: str, profile: str, fallbacks: tuple[str, ...]) -> None:
    """Route TASK to PROFILE first. A remote profile falls back to the embedded model unless --fallback
    says otherwise. Switching back (`use TASK embedded`) is the rollback."""
    settings = settings_or_usage_error()
    registry = _registry(settings)
    try:
        for name in (profile, *fallbacks):
            registry.profile(name)
    except UnknownProfile as exc:
        raise click.ClickException(str(exc)) from exc
    chain = [profile, *fallbacks]
    if not fallbacks and not registry.is_local(profile):
        chain.append(EMBEDDED_PROFILE)
    before = registry.routes.get(task)

    def change(models: TomlTable, routes: TomlTable) -> None:
        entry = routes.get(task) or toml_table()
        entry["use"] = list(dict.fromkeys(chain))
        routes[task] = entry

    _edit(settings, change)
    was = " → ".join(before.use) if before else "the default route"
    out.print(f"{task}: {' → '.join(dict.fromkeys(chain))} (was: {was}); {_RESTART}")


@models_group.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also take it out of the routes that use it.")
def remove(name: str, force: bool) -> None:
    """Remove the profile NAME and its API key from the keyring."""
    settings = settings_or_usage_error()
    if name not in settings.models:
        raise click.ClickException(
            f"no profile {name!r} in config.toml (built-in profiles cannot be removed)"
        )
    users = [task for task, route in settings.routes.items() if name in route.use]
    if users and not force:
        raise click.ClickException(
            f"routes use {name!r}: {', '.join(users)}; use --force or route them first"
        )

    def change(models: TomlTable, routes: TomlTable) -> None:
        del models[name]
        for task in users:
            left = [n for n in settings.routes[task].use if n != name]
            if left:
                routes[task]["use"] = left
            else:
                del routes[task]

    _edit(settings, change)
    key_name = settings.models[name].api_key_name
    if key_name:
        with contextlib.suppress(keyring.errors.KeyringError):  # there was none
            keyring.delete_password(KEYRING_SERVICE, key_name)
    out.print(f"profile [bold]{name}[/] removed; {_RESTART}")


@models_group.command("pull")
@click.argument("name")
@click.argument("repo")
@click.argument("filename")
@click.option("--revision", required=True, help="A commit, tag or branch (pin a commit for a fixed file).")
@click.option("--sha256", help="The file's SHA-256 (default: the Hub's own LFS digest).")
@click.option("--context-length", type=click.IntRange(256, 1_000_000), default=4096, show_default=True)
def pull_model(
    name: str, repo: str, filename: str, revision: str, sha256: str | None, context_length: int
) -> None:
    """Download the GGUF FILENAME of the Hugging Face repository REPO into the app data folder (pinned
    revision, SHA-256 checked, resumable: run it again after an interruption) and make it the llama.cpp
    profile NAME. HF_ENDPOINT names a mirror."""
    from deskpilot.server.models.hub import PullError, pull

    settings = settings_or_usage_error()
    dest = settings.home / "models" / repo.replace("/", "--")
    try:
        pulled = pull(
            repo, filename, revision=revision, sha256=sha256, dest=dest, progress=sys.stderr.isatty()
        )
    except PullError as exc:
        raise click.ClickException(str(exc)) from exc
    entry = toml_table()
    entry.update(
        {
            "backend": "llama.cpp",
            "path": str(pulled.path),
            "context_length": context_length,
            "source": f"hf://{repo}@{pulled.revision}/{filename}",
            "sha256": pulled.sha256,
        }
    )

    def change(models: TomlTable, routes: TomlTable) -> None:
        models[name] = entry

    _edit(settings, change)
    out.print(f"{pulled.path} ({pulled.size:,} bytes, sha256 {pulled.sha256}, commit {pulled.revision})")
    out.print(f"profile [bold]{name}[/] is this file; `deskpilot models test {name}` checks it")


@models_group.command("test")
@click.argument("name")
@click.option("--tokens", type=click.IntRange(8, 1024), default=64, show_default=True)
def test_profile(name: str, tokens: int) -> None:
    """Load the profile NAME, check it answers and writes JSON a schema asks for, and measure its speed."""
    registry = _registry(settings_or_usage_error())
    try:
        registry.profile(name)
    except UnknownProfile as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        report = asyncio.run(_smoke(registry, name, tokens))
    except BackendError as exc:
        raise click.ClickException(f"model profile {name!r}: {exc}") from exc
    for line in report:
        out.print(line)


_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


async def _smoke(registry: ModelRegistry, name: str, tokens: int) -> list[str]:
    host = registry.host(name)
    try:
        started = time.perf_counter()
        backend = await host.ready()
        info = backend.info
        lines = [f"loaded {info.model_id} ({info.backend}) in {time.perf_counter() - started:.1f} s"]
        lines.append(f"weights {info.weights_digest}; context {info.context_length} tokens")
        if info.backend == "llama.cpp":
            from deskpilot.inference.llama import LlamaCppBackend

            assert isinstance(backend, LlamaCppBackend)
            lines.append(f"threads for this request: {backend.threads_for_next().describe()}")
        ask = GenerationRequest(
            messages=(Message("user", "Write a few sentences about the sea."),),
            max_tokens=tokens,
            temperature=0.0,
        )
        text, first, count, started = "", None, 0, time.perf_counter()
        async for item in backend.stream(ask):
            if isinstance(item, Finished):
                count = item.usage.completion_tokens
                break
            first = first or time.perf_counter()
            text += item.text
        total = time.perf_counter() - started
        if not text.strip():
            raise BackendError("the model answered nothing")
        decode = (
            count / (total - (first - started)) if first and count > 1 and total > first - started else 0.0
        )
        lines.append(
            f"answers: {count} tokens, first after {((first or started) - started) * 1000:.0f} ms, "
            f"{count / total:.1f} tokens/s overall, {decode:.1f} tokens/s after the first"
        )
        lines.append(await _json_check(backend))
        return lines
    finally:
        await registry.aclose()


async def _json_check(backend: Any) -> str:
    ask = GenerationRequest(
        messages=(Message("user", "Give the largest city of France and its population as JSON."),),
        max_tokens=64,
        temperature=0.0,
        json_schema=_SCHEMA,
    )
    text = ""
    async for item in backend.stream(ask):
        if isinstance(item, Finished):
            break
        text += item.text
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise BackendError(f"no JSON support: asked for JSON with a schema, it wrote {text[:80]!r}") from exc
    if not isinstance(value, dict) or set(value) != {"city", "population"}:
        raise BackendError(f"no JSON Schema support: the answer {text[:80]!r} does not follow the schema")
    return f"JSON Schema output: ok ({text.strip()[:60]})"
