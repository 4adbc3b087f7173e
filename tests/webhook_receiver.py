"""A webhook receiver on 127.0.0.1 for tests: a real threaded HTTP server that does what a careful one does.

    with WebhookReceiver(secret=b"s3cret") as hook:
        ...  # POST JSON to hook.url (any path under it)
        assert len(hook.effects()) == 1

It checks `X-Deskpilot-Signature` (HMAC-SHA256 over "{timestamp}." + body) and that
`X-Deskpilot-Timestamp` is recent (401 otherwise), requires `Idempotency-Key` (400 without), and applies
each key once: a repeat answers as the first did (200 and the same body, or `duplicate_status`) with
`Idempotent-Replayed: true`, and records no second effect. A `deskpilot.action.retracted` event marks
the effect it names retracted. Faults on demand: `fail_next(n, status)` (refused, not applied),
`drop_next(n)` (connection closed before applying), `drop_after_next(n)` (applied, then the connection
closes with no answer), `drop_after_first(keys)` (the same, once for each of these idempotency keys),
`fail_always(path, status)`; `clear_faults()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from deskpilot.server.connectors.standin import QuietHTTPServer

__all__ = ["WebhookReceiver"]

RETRACTED = "deskpilot.action.retracted"


class WebhookReceiver:
    def __init__(
        self, secret: bytes | None = None, *, tolerance_seconds: float = 300.0, duplicate_status: int = 200
    ) -> None:
        self.secret = secret
        self.tolerance_seconds = tolerance_seconds
        self.duplicate_status = duplicate_status
        self.delay_seconds = 0.0  # a slow receiver: every delivery waits this long before it is handled
        self.deliveries: list[dict[str, Any]] = []  # every request: path, key, status (0: dropped)
        self.retractions: list[dict[str, Any]] = []
        self._effects: dict[str, dict[str, Any]] = {}  # idempotency key -> the effect it made
        self._answers: dict[str, dict[str, Any]] = {}  # idempotency key -> the body first answered
        self._fail: list[tuple[int, int]] = []  # (remaining, status)
        self._drop_before = 0
        self._drop_after = 0
        self._drop_after_keys: set[str] = set()
        self._fail_paths: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.receiver = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n deliveries are answered `status` and not applied."""
        with self._lock:
            self._fail.append((n, status))

    def drop_next(self, n: int = 1) -> None:
        """The next n deliveries: the connection closes before anything is applied."""
        with self._lock:
            self._drop_before += n

    def drop_after_next(self, n: int = 1) -> None:
        """The next n deliveries are applied, then the connection closes without an answer."""
        with self._lock:
            self._drop_after += n

    def drop_after_first(self, keys: set[str] | list[str]) -> None:
        """The first delivery of each of these idempotency keys is applied, then the connection closes
        without an answer. Unlike `drop_after_next`, a retry of the same key is never the one dropped
        again, so a sender that retries quickly is not singled out round after round."""
        with self._lock:
            self._drop_after_keys.update(keys)

    def unfired_drops(self) -> set[str]:
        """Keys given to `drop_after_first` that no delivery has carried yet."""
        with self._lock:
            return set(self._drop_after_keys)

    def clear_faults(self) -> None:
        with self._lock:
            self._fail.clear()
            self._drop_before = self._drop_after = 0
            self._drop_after_keys.clear()
            self._fail_paths.clear()

    def fail_always(self, path: str, status: int = 400) -> None:
        """Every delivery to `path` (e.g. "/hooks/broken") is answered `status`."""
        with self._lock:
            self._fail_paths[path] = status

    # -- what happened ----------------------------------------------------------------------------------

    def effects(self, *, include_retracted: bool = False) -> list[dict[str, Any]]:
        """One entry per idempotency key applied: key, path, payload, retracted."""
        with self._lock:
            return [dict(e) for e in self._effects.values() if include_retracted or not e["retracted"]]

    # -- the handler's side -----------------------------------------------------------------------------

    def _verify(self, headers: Any, body: bytes) -> str | None:
        """Why the delivery is not authentic, or None."""
        if self.secret is None:
            return None
        timestamp = headers.get("X-Deskpilot-Timestamp", "")
        given = headers.get("X-Deskpilot-Signature", "")
        expected = (
            "sha256=" + hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return "bad signature"
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.tolerance_seconds:
            return "stale timestamp"
        return None

    def _take_fault(self, path: str, key: str) -> tuple[str, int]:
        with self._lock:
            if path in self._fail_paths:
                return "fail", self._fail_paths[path]
            if self._fail:
                remaining, status = self._fail[0]
                self._fail[0] = (remaining - 1, status)
                if remaining - 1 <= 0:
                    self._fail.pop(0)
                return "fail", status
            if self._drop_before:
                self._drop_before -= 1
                return "drop", 0
            if self._drop_after:
                self._drop_after -= 1
                return "drop_after", 0
            if key in self._drop_after_keys:
                self._drop_after_keys.discard(key)
                return "drop_after", 0
            return "", 0

    def _apply(self, path: str, key: str, payload: Any) -> tuple[int, dict[str, Any], bool]:
        """(status, answer, replayed) for an authentic delivery."""
        with self._lock:
            if key in self._answers:
                return self.duplicate_status, self._answers[key], True
            if isinstance(payload, dict) and payload.get("type") == RETRACTED:
                target = self._effects.get(str(payload.get("idempotencyKey")))
                if target is not None:
                    target["retracted"] = True
                self.retractions.append({"key": key, "target": payload.get("idempotencyKey"), "path": path})
            else:
                self._effects[key] = {"key": key, "path": path, "payload": payload, "retracted": False}
            answer = {"id": f"dlv_{len(self._answers) + 1:04d}", "received": True}
            self._answers[key] = answer
            return 200, answer, False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver: WebhookReceiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, key = self.path.split("?", 1)[0], self.headers.get("Idempotency-Key", "")
        record: dict[str, Any] = {"path": path, "key": key, "status": 0}
        receiver.deliveries.append(record)
        if receiver.delay_seconds:
            time.sleep(receiver.delay_seconds)
        fault, status = receiver._take_fault(path, key)
        if fault == "fail":
            return self._answer(record, status, {"error": "failing on purpose"})
        if fault == "drop":
            return self._drop()
        problem = receiver._verify(self.headers, body)
        if problem:
            return self._answer(record, 401, {"error": problem})
        if not key:
            return self._answer(record, 400, {"error": "Idempotency-Key is required"})
        try:
            payload = json.loads(body)
        except ValueError:
            return self._answer(record, 400, {"error": "not JSON"})
        status, answer, replayed = receiver._apply(path, key, payload)
        if fault == "drop_after":
            return self._drop()
        self._answer(record, status, answer, {"Idempotent-Replayed": "true"} if replayed else {})

    def _answer(
        self, record: dict[str, Any], status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        record["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
