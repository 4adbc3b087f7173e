"""The msal token cache, kept only in the operating system's keyring.

Graph tokens are bearer secrets: whoever reads them reads the mailbox. They are never written to a file,
SQLite or a log by Deskpilot; the one copy at rest is the keyring entry (Windows Credential Manager, the
macOS Keychain, the Secret Service on Linux desktops). A headless Linux machine often has no such
service, and `keyring` then falls back to keyrings.alt's plaintext file or to a backend that fails: on
those we refuse to store tokens unless the user opted in (`allow_insecure_token_storage`), and say why.

The serialized cache (JSON, a few kB) is split into parts: Windows Credential Manager holds at most
2,560 bytes per entry. Parts are written before the head entry that names their count, so a crash
mid-write leaves the previous head, whose parts may now be mixed: a cache that does not decode is
treated as no cache (sign in again), never as a crash.

`KeyringTokenBackend` is O365's token backend interface over that storage; it is also the `token_cache`
handed to msal, so sign-in, refresh and Graph calls share one cache object.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
from O365.utils import BaseTokenBackend

__all__ = [
    "InsecureKeyringError",
    "KeyringTokenBackend",
    "TokenVault",
    "keyring_description",
    "resolve_keyring",
]

log = logging.getLogger("deskpilot.connectors")

SERVICE = "deskpilot-graph"
# Characters per keyring entry: Windows stores UTF-16, 2 bytes a character, 2,560 bytes at most.
_PART_CHARS = 1200
_HEAD_PREFIX = "deskpilot-msal-cache-v1:"


class InsecureKeyringError(RuntimeError):
    """No secure OS keyring: tokens would end up in a plaintext file, or nowhere."""


def resolve_keyring(ring: keyring.backend.KeyringBackend) -> keyring.backend.KeyringBackend:
    """The backend that actually holds our entries. keyring's ChainerBackend writes to the first backend
    that accepts a write, so a locked Secret Service would silently hand the tokens to a plaintext file
    further down the chain: we use the chain's first (highest priority) backend only."""
    chain = getattr(ring, "backends", None) if type(ring).__name__ == "ChainerBackend" else None
    if chain is not None:
        return chain[0] if chain else keyring.backends.fail.Keyring()
    return ring


def _is_insecure(ring: keyring.backend.KeyringBackend) -> bool:
    module = type(ring).__module__
    # keyrings.alt: plaintext or password-file backends (not the OS's store); fail/null: no store at all.
    return module.startswith("keyrings.alt") or module in ("keyring.backends.fail", "keyring.backends.null")


def keyring_description(ring: keyring.backend.KeyringBackend | None = None) -> tuple[str, bool]:
    """(the name of the keyring backend tokens go to, whether it is a secure OS keyring)."""
    backend = resolve_keyring(ring or keyring.get_keyring())
    return f"{type(backend).__module__}.{type(backend).__name__}", not _is_insecure(backend)


class TokenVault:
    """One keyring entry (split into parts) per app registration and authority."""

    def __init__(
        self,
        account: str,
        *,
        allow_insecure: bool = False,
        ring: keyring.backend.KeyringBackend | None = None,
    ) -> None:
        self.account = account
        self.allow_insecure = allow_insecure
        self._ring = ring

    @property
    def ring(self) -> keyring.backend.KeyringBackend:
        return resolve_keyring(self._ring or keyring.get_keyring())

    def check_writable(self) -> None:
        """Raise InsecureKeyringError, with what to do about it, unless tokens may be stored here."""
        name, secure = keyring_description(self.ring)
        if secure:
            return
        module = type(self.ring).__module__
        if module in ("keyring.backends.fail", "keyring.backends.null"):
            raise InsecureKeyringError(
                f"no keyring is available on this machine ({name}), so Deskpilot cannot keep your "
                "Microsoft 365 sign-in. Install and unlock a keyring (Windows Credential Manager, macOS "
                "Keychain, or GNOME Keyring/KWallet via the Secret Service) and sign in again."
            )
        if not self.allow_insecure:
            raise InsecureKeyringError(
                f"the only keyring on this machine is {name}, which stores secrets unencrypted in a file. "
                "Deskpilot will not put your Microsoft 365 tokens there. Use a machine with a secure keyring "
                "(Windows Credential Manager, macOS Keychain, the Secret Service), or accept the risk "
                "explicitly with allow_insecure_token_storage = true "
                "(DESKPILOT_ALLOW_INSECURE_TOKEN_STORAGE=1 or `deskpilot login --allow-insecure-storage`)."
            )
        log.warning(
            "storing Microsoft 365 tokens in an insecure keyring (%s) because "
            "allow_insecure_token_storage is set",
            name,
        )

    def _get(self, key: str) -> str | None:
        try:
            return self.ring.get_password(SERVICE, key)
        except keyring.errors.KeyringError as exc:
            log.warning("cannot read the keyring (%s): %s", type(self.ring).__name__, exc)
            return None

    def load(self) -> str | None:
        head = self._get(self.account)
        if not head or not head.startswith(_HEAD_PREFIX):
            return None
        try:
            count = int(head[len(_HEAD_PREFIX) :])
        except ValueError:
            return None
        parts = [self._get(f"{self.account}#{i}") for i in range(count)]
        present = [p for p in parts if p is not None]
        if len(present) < count:
            log.warning("the sign-in kept in the keyring is incomplete; sign in again")
            return None
        return "".join(present)

    def save(self, data: str) -> None:
        self.check_writable()
        parts = [data[i : i + _PART_CHARS] for i in range(0, len(data), _PART_CHARS)] or [""]
        old = self._part_count()
        for i, part in enumerate(parts):
            self.ring.set_password(SERVICE, f"{self.account}#{i}", part)
        self.ring.set_password(SERVICE, self.account, f"{_HEAD_PREFIX}{len(parts)}")
        self._delete_parts(len(parts), max(old, len(parts)))

    def _part_count(self) -> int:
        head = self._get(self.account) or ""
        try:
            return int(head[len(_HEAD_PREFIX) :]) if head.startswith(_HEAD_PREFIX) else 0
        except ValueError:
            return 0

    def _delete_parts(self, start: int, stop: int) -> None:
        for i in range(start, stop):
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                self.ring.delete_password(SERVICE, f"{self.account}#{i}")

    def delete(self) -> bool:
        """Remove every entry of this account; True if there was something to remove."""
        count = self._part_count()
        existed = self._get(self.account) is not None
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            self.ring.delete_password(SERVICE, self.account)
        # Beyond the recorded count too: a crash mid-save can leave more parts than the head names.
        i = count
        while self._get(f"{self.account}#{i}") is not None:
            i += 1
        self._delete_parts(0, i)
        return existed or i > 0

    def exists(self) -> bool:
        return self.load() is not None


class KeyringTokenBackend(BaseTokenBackend):  # type: ignore[misc]  # O365 has no types: the base is Any
    """O365's token backend (and msal's token cache) over a TokenVault.

    `refresher`, when set, renews the access token through our msal application (which knows the
    authority and the loopback routing) when O365 finds it expired: the documented
    `should_refresh_token` hook, returning None to say "refreshed, and the session updated".
    """

    def __init__(self, vault: TokenVault) -> None:
        super().__init__()
        self.vault = vault
        self.refresher: Callable[[], str] | None = None

    def __repr__(self) -> str:
        return f"KeyringTokenBackend({self.vault.account!r})"

    def serialize(self) -> str:
        with self._lock:
            self._has_state_changed = False
            return json.dumps(self._cache, separators=(",", ":"))

    def load_token(self) -> bool:
        data = self.vault.load()
        if data is None:
            return False
        try:
            self._cache = self.deserialize(data)
        except ValueError:
            log.warning("the sign-in kept in the keyring cannot be read; sign in again")
            return False
        return True

    def save_token(self, force: bool = False) -> bool:
        if not self._cache:
            return False
        if not force and not self._has_state_changed:
            return True
        self.vault.save(self.serialize())
        return True

    def delete_token(self) -> bool:
        with self._lock:
            self._cache = {}
            self._has_state_changed = False
        return self.vault.delete()

    def check_token(self) -> bool:
        return self.vault.exists()

    def should_refresh_token(self, con: Any = None, *, username: str | None = None) -> bool | None:
        if self.refresher is None or con is None:
            return True
        con.update_session_auth_header(access_token=self.refresher())
        return None
