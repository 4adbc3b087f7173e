"""What every `deskpilot` command shares: settings or a clear error line, the parts tests inject, Ctrl+C.

Commands build their services with `Services(settings, **cli_parts(ctx))`: tests invoke a command with
`obj={"embedder": HashEmbedder(), "backend": ScriptedBackend(...)}` and get those instead of the real ones.
"""

from __future__ import annotations

import email
import email.policy
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from deskpilot.inference import Email
from deskpilot.server.settings import Settings, SettingsError, load_settings

__all__ = ["cancel_on_ctrl_c", "cli_parts", "read_input", "settings_or_usage_error"]


def settings_or_usage_error(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def cli_parts(ctx: click.Context | None = None) -> dict[str, Any]:
    """The collaborators a caller (a test, an embedding program) put in the click context's `obj`."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return dict(obj) if isinstance(obj, dict) else {}


@contextmanager
def cancel_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl+C sets the event, so a long run stops after its current step and keeps what it
    committed; a second one interrupts at once. (`deskpilot index` and `deskpilot sync` both use it.)"""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def read_input(source: str) -> tuple[str | None, Email | None]:
    """Text, or an email parsed with the stdlib when the input looks like one (.eml or RFC 822 headers)."""
    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    if not raw.strip():
        raise click.BadParameter("the input is empty", param_hint="FILE")
    looks_like_mail = source.lower().endswith(".eml") or raw.lstrip()[:200].lower().startswith(
        (b"from:", b"subject:", b"received:", b"return-path:", b"message-id:", b"date:", b"to:")
    )
    if not looks_like_mail:
        return raw.decode("utf-8", errors="replace"), None
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return None, Email(
        body=body,
        subject=str(msg.get("subject", "")),
        sender=str(msg.get("from", "")),
        to=tuple(a.strip() for a in str(msg.get("to", "")).split(",") if a.strip()),
        date=str(msg["date"]) if msg["date"] else None,
    )
