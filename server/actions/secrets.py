"""Webhook signing secrets, by name, in the operating system's keyring and nowhere else.

An action names its secret (`WebhookParams.secret = "crm"`); the secret itself is never in the action's
parameters, the outbox, lineage, a file or a log. Like the Microsoft 365 tokens (connectors/tokens.py),
a secret is only stored in a secure OS keyring unless the user accepted a plaintext one with
`allow_insecure_token_storage`.
"""

from __future__ import annotations

import logging

import keyring
import keyring.backend
import keyring.errors

from deskpilot.server.actions._types import PermanentError, TransientError
from deskpilot.server.connectors.tokens import InsecureKeyringError, keyring_description, resolve_keyring

__all__ = ["SERVICE", "WebhookSecrets"]

log = logging.getLogger("deskpilot.actions")

SERVICE = "deskpilot-webhook"


class WebhookSecrets:
    """get/set/delete a webhook secret by name (keyring service "deskpilot-webhook")."""

    def __init__(
        self, *, allow_insecure: bool = False, ring: keyring.backend.KeyringBackend | None = None
    ) -> None:
        self.allow_insecure = allow_insecure
        self._ring = ring

    def __repr__(self) -> str:
        return f"WebhookSecrets(service={SERVICE!r})"  # names and values stay out of reprs and logs

    @property
    def ring(self) -> keyring.backend.KeyringBackend:
        return resolve_keyring(self._ring or keyring.get_keyring())

    def get(self, name: str) -> bytes:
        """The secret's bytes. A missing secret is a PermanentError: no retry will make it appear."""
        try:
            value = self.ring.get_password(SERVICE, _checked(name))
        except keyring.errors.KeyringLocked as exc:
            raise TransientError(f"the keyring is locked; unlock it to sign webhook {name!r}") from exc
        except keyring.errors.KeyringError as exc:
            raise PermanentError(f"cannot read webhook secret {name!r} from the keyring: {exc}") from exc
        if value is None:
            raise PermanentError(
                f"no webhook secret named {name!r} in the keyring (service {SERVICE!r}); store it with "
                "WebhookSecrets().set(name, secret) before sending signed webhooks"
            )
        return value.encode()

    def set(self, name: str, secret: str) -> None:
        if not secret:
            raise ValueError("a webhook secret cannot be empty")
        backend, secure = keyring_description(self.ring)
        if not secure and not self.allow_insecure:
            raise InsecureKeyringError(
                f"the only keyring on this machine is {backend}, which does not keep secrets safe; "
                "Deskpilot will not store webhook secrets there (allow_insecure_token_storage overrides)"
            )
        self.ring.set_password(SERVICE, _checked(name), secret)
        log.info("stored webhook secret %r in %s", name, backend)

    def delete(self, name: str) -> bool:
        """Remove a secret; False if there was none."""
        try:
            self.ring.delete_password(SERVICE, _checked(name))
        except keyring.errors.PasswordDeleteError:
            return False
        return True


def _checked(name: str) -> str:
    if not name or not name.strip():
        raise PermanentError("a webhook secret needs a name")
    return name
