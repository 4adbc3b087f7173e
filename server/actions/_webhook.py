"""The webhook adapter: a signed JSON POST, deduplicated by the receiver on `Idempotency-Key`.

A webhook cannot be looked up, so exactly-once rests on the receiver keeping the key (as Stripe's and
most webhook receivers do): a repeat of a delivery it has applied answers as the first did (2xx, or 409
"duplicate") and changes nothing. Sending again is therefore always safe, and every failure that a retry
may fix (a dropped connection, a timeout, 408, 429, 5xx) is a TransientError.

Signing is Stripe's scheme: `X-Deskpilot-Signature: sha256=HEX` with HEX = HMAC-SHA256(secret,
"{timestamp}." + body) and the timestamp (unix seconds) in `X-Deskpilot-Timestamp`, so a receiver can
refuse replays of old deliveries. The secret comes from the keyring by name, per call; it is never
logged, and neither is the signature.

Where a delivery may go is `destinations.py`'s: the URL is checked against the allow-list before anything
is sent, and the client connects only to addresses checked when the socket opens (no DNS rebinding, no
proxy, no redirect: a 3xx is a failure). A refused destination is a PermanentError: nothing is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import msgspec

from deskpilot.server.actions._types import Effect, PermanentError, TransientError, WebhookParams
from deskpilot.server.actions.destinations import (
    DestinationRefused,
    Destinations,
    HostNotFound,
    pinned_client,
)
from deskpilot.server.actions.secrets import WebhookSecrets

__all__ = ["RETRACTED", "WebhookAdapter", "signature"]

log = logging.getLogger("deskpilot.actions")

RETRACTED = "deskpilot.action.retracted"
_TRANSIENT = {408, 425, 429}


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Deskpilot-Signature` value for a body sent at `timestamp`."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookAdapter:
    kind: ClassVar[str] = "webhook"

    def __init__(
        self,
        secrets: WebhookSecrets,
        *,
        destinations: Destinations,
        timeout: float = 10.0,
        clock: Any = time.time,
    ) -> None:
        self.secrets, self.destinations, self.timeout, self.clock = secrets, destinations, timeout, clock
        # One client for every delivery, shared by the worker threads (httpx clients are thread-safe): a
        # new client per call builds a TLS context each time, which cost more than the delivery itself.
        self._client = pinned_client(destinations, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def execute(self, key: str, params: WebhookParams) -> Effect:
        status, response = self._deliver(params, params.payload, key)
        ref = key
        try:
            answer = msgspec.json.decode(response.content) if response.content else None
            if isinstance(answer, dict) and isinstance(answer.get("id"), str):
                ref = answer["id"]  # the receiver's own id for the delivery, when it gives one
        except msgspec.DecodeError:
            pass
        replayed = status == 409 or response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Effect(ref=ref, detail={"status": status, "url": params.url}, existed=replayed)

    def compensate(self, key: str, params: WebhookParams, effect: Effect) -> None:
        """A retraction event, itself idempotent under its own key; 404 and 410 mean nothing to retract."""
        self._deliver(params, {"type": RETRACTED, "idempotencyKey": key}, f"{key}:retract", gone_ok=True)

    def _deliver(
        self, params: WebhookParams, payload: dict[str, Any], key: str, *, gone_ok: bool = False
    ) -> tuple[int, httpx.Response]:
        target = _redacted(params.url)
        try:
            self.destinations.check_url(params.url)
        except DestinationRefused as exc:
            raise PermanentError(f"webhook to {target} refused: {exc}") from exc
        body = msgspec.json.encode(payload)
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Deskpilot",
            "Idempotency-Key": key,
            "X-Deskpilot-Timestamp": timestamp,
        }
        if params.secret is not None:
            headers["X-Deskpilot-Signature"] = signature(self.secrets.get(params.secret), timestamp, body)
        try:
            response = self._client.post(params.url, content=body, headers=headers)
        except DestinationRefused as exc:  # raised when the socket opens, on the addresses resolved then
            raise PermanentError(f"webhook to {target} refused: {exc}") from exc
        except HostNotFound as exc:  # DNS may answer again later
            raise TransientError(f"webhook to {target}: {exc}") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"webhook to {target}: {exc}") from exc
        except httpx.TransportError as exc:  # refused, reset, dropped, timed out: the receiver dedupes
            raise TransientError(f"webhook to {target}: {type(exc).__name__}") from exc
        status = response.status_code
        log.info("webhook %s to %s: %d", key, target, status)
        if 200 <= status < 300 or status == 409 or (gone_ok and status in (404, 410)):
            return status, response
        if status in _TRANSIENT or status >= 500:
            raise TransientError(f"webhook to {target} answered {status}")
        if 300 <= status < 400:
            raise PermanentError(f"webhook to {target} answered {status} (a redirect, which is not followed)")
        raise PermanentError(f"webhook to {target} answered {status} {response.reason_phrase}")


def _redacted(url: str) -> str:
    """Scheme, host and path: a query string may carry a token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        return "an invalid URL"
