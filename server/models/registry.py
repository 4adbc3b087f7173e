"""The model registry: every profile the settings name, and the one place a backend is built from one.

Profiles come from `[models.NAME]` in config.toml, plus two that need no table:
- "embedded": the llama.cpp model of `model_path` (the bundled SmolLM2 by default), always there, so an
  installation with nothing configured works offline;
- "server": an OpenAI-compatible server at `model_server`, the one setting an IT admin sets to point
  every task at the organisation's inference server (the embedded model stays its fallback).

Each profile has its own `ModelHost` (its loading state and its line), built on first use: a request
routed to a remote profile never loads local weights, and `deskpilot audit verify` loads nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import keyring
import keyring.errors

from deskpilot.inference import Backend, BackendError
from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.settings import (
    EMBEDDED_PROFILE,
    SERVER_PROFILE,
    ModelProfile,
    Route,
    Settings,
    SettingsError,
)

__all__ = [
    "KEYRING_SERVICE",
    "BackendSource",
    "ModelRegistry",
    "UnknownProfile",
    "api_key",
    "is_loopback_url",
    "profiles_from",
    "routes_from",
    "served_models",
]

# The OS keyring service under which API keys are kept, one entry per `api_key_name`.
KEYRING_SERVICE = "deskpilot-models"
# A backend, or what loads one (weights take seconds to load: the server loads them after start-up).
BackendSource = Backend | Callable[[], Backend]
# Remote servers take several requests at once (they batch); a local engine runs one at a time.
REMOTE_CONCURRENCY = 4


class UnknownProfile(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model profile {name!r}; the profiles are: {', '.join(known)}")
        self.name = name


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_profile(name: str, p: ModelProfile) -> None:
    """Refuse a profile that cannot work, naming it (settings load fails with this message)."""
    where = f"models.{name}"
    if p.backend == "openai":
        if not p.base_url:
            raise SettingsError(f"{where}: an openai profile needs base_url (e.g. https://host/v1)")
        scheme = urlsplit(p.base_url).scheme
        if scheme not in ("http", "https"):
            raise SettingsError(f"{where}: base_url must be an http(s) URL, not {p.base_url!r}")
        if scheme == "http" and not is_loopback_url(p.base_url):
            raise SettingsError(
                f"{where}: base_url {p.base_url!r} is plain http to another machine; use https (TLS is "
                "verified) or a server on this computer"
            )
    elif p.backend == "exllamav2" and not p.path:
        raise SettingsError(f"{where}: an exllamav2 profile needs path (the EXL2 model folder)")
    if p.context_length < 256:
        raise SettingsError(f"{where}: context_length {p.context_length} is too small")


def profiles_from(settings: Settings) -> dict[str, ModelProfile]:
    """Every profile: "embedded", "server" when `model_server` is set, then `[models.*]` (which may
    redefine either)."""
    found = {
        EMBEDDED_PROFILE: ModelProfile(
            backend="llama.cpp",
            path=settings.model_path,
            context_length=settings.context_length,
            threads=settings.threads,
            locality="local",
        )
    }
    if settings.model_server:
        found[SERVER_PROFILE] = ModelProfile(
            backend="openai",
            base_url=settings.model_server,
            model=settings.model_server_model,
            api_key_name=settings.model_server_api_key_name,
            context_length=max(settings.context_length, 8192),
        )
    found.update(settings.models)
    for name, profile in found.items():
        _check_profile(name, profile)
    return found


def routes_from(settings: Settings, profiles: Mapping[str, ModelProfile]) -> dict[str, Route]:
    """The routes, with "default" always present: the server then the embedded model when `model_server`
    is set, else the embedded model. A route naming an unknown profile is refused, naming both."""
    default = (SERVER_PROFILE, EMBEDDED_PROFILE) if settings.model_server else (EMBEDDED_PROFILE,)
    routes = {"default": Route(use=default), **settings.routes}
    for task, route in routes.items():
        for name in route.use + tuple(n for rule in route.rules for n in rule.use):
            if name not in profiles:
                raise SettingsError(
                    f"routes.{task}: unknown model profile {name!r}; the profiles are: {', '.join(profiles)}"
                )
        if not route.use:
            raise SettingsError(f"routes.{task}: `use` names no profile")
    return routes


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        *,
        backends: Mapping[str, BackendSource] | None = None,
        max_waiting: int | None = None,
    ) -> None:
        """`backends`: a backend (or its loader) per profile name, used instead of building one from the
        profile (tests pass scripted backends; a profile must still exist for each)."""
        self.settings = settings
        self.profiles = profiles_from(settings)
        self.routes = routes_from(settings, self.profiles)
        self._given = dict(backends or {})
        for name in self._given:
            self.profile(name)
        self.max_waiting = settings.max_queue if max_waiting is None else max_waiting
        self._hosts: dict[str, ModelHost] = {}

    def profile(self, name: str) -> ModelProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise UnknownProfile(name, list(self.profiles)) from None

    def is_local(self, name: str) -> bool:
        p = self.profile(name)
        if p.locality is not None:
            return p.locality == "local"
        return p.backend != "openai" or is_loopback_url(p.base_url or "")

    def host(self, name: str) -> ModelHost:
        """The profile's host (loading state and line), built on first use."""
        host = self._hosts.get(name)
        if host is None:
            concurrency = 1 if self.profile(name).backend != "openai" else REMOTE_CONCURRENCY
            source = self._given.get(name) or self.loader(name)
            host = self._hosts[name] = ModelHost(
                source, max_waiting=self.max_waiting, concurrency=concurrency
            )
        return host

    def built_hosts(self) -> dict[str, ModelHost]:
        return dict(self._hosts)

    def loader(self, name: str) -> Callable[[], Backend]:
        """What builds the profile's backend (on a worker thread: loading weights takes seconds)."""
        p = self.profile(name)
        if p.backend == "llama.cpp":
            return lambda: _llama(p, self.settings)
        if p.backend == "exllamav2":
            return lambda: _exllamav2(p, self.settings)
        return lambda: _openai(name, p)

    async def aclose(self) -> None:
        for host in reversed(list(self._hosts.values())):
            await host.close()


def _llama(p: ModelProfile, settings: Settings) -> Backend:
    from deskpilot.inference.llama import LlamaCppBackend  # imports llama.cpp: off the start-up path

    return LlamaCppBackend(
        Path(p.path).expanduser() if p.path else None,
        context_length=p.context_length,
        threads=p.threads,
        cache_dir=settings.cache_dir,
    )


def _exllamav2(p: ModelProfile, settings: Settings) -> Backend:
    from deskpilot.inference.exllamav2 import ExLlamaV2Backend  # imports torch and CUDA kernels

    assert p.path is not None  # checked with the settings
    # cache_dir keeps the weights digest between starts (hashing gigabytes of tensors takes a while).
    folder = Path(p.path).expanduser()
    return ExLlamaV2Backend(folder, context_length=p.context_length, cache_dir=settings.cache_dir)


def api_key(name: str, p: ModelProfile) -> str | None:
    """The profile's API key from the OS keyring; None when it names no entry."""
    if not p.api_key_name:
        return None
    try:
        key = keyring.get_password(KEYRING_SERVICE, p.api_key_name)
    except keyring.errors.KeyringError as exc:
        raise BackendError(f"model profile {name!r}: the OS keyring cannot be read: {exc}") from exc
    if not key:
        raise BackendError(
            f"model profile {name!r}: no API key in the keyring entry {KEYRING_SERVICE}/{p.api_key_name}; "
            f"store it with `deskpilot models add {name} --api-key-stdin ...`"
        )
    return key


def served_models(base_url: str, key: str | None, *, timeout: float = 5.0) -> list[str]:
    """The model names an OpenAI-compatible server lists (`GET /models`)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout)
    response.raise_for_status()
    return [str(m["id"]) for m in response.json().get("data", []) if isinstance(m, dict) and "id" in m]


def _openai(name: str, p: ModelProfile) -> Backend:
    from deskpilot.inference.openai_compat import OpenAICompatBackend

    assert p.base_url is not None  # checked with the settings
    key = api_key(name, p)
    model = p.model
    if model is None:
        try:
            listed = served_models(p.base_url, key, timeout=p.connect_timeout + p.read_timeout)
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(
                f"model profile {name!r}: cannot list the models at {p.base_url}: {exc}"
            ) from exc
        if not listed:
            raise BackendError(f"model profile {name!r}: the server at {p.base_url} lists no model")
        model = listed[0]
    return OpenAICompatBackend(
        p.base_url,
        model,
        context_length=p.context_length,
        api_key=key,
        json_schema=p.json_schema,
        logprobs=p.logprobs,
        prefix_caching=p.prefix_caching,
        tokenize_url=p.tokenize_url,
        repeat_penalty_field=p.repeat_penalty_field,
        connect_timeout=p.connect_timeout,
        read_timeout=p.read_timeout,
        max_retries=p.max_retries,
        cost_per_1k_tokens=p.price_out_per_1k,
    )
