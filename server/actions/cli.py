"""`deskpilot worker`, `deskpilot events replay`, `deskpilot webhook-secret`."""

from __future__ import annotations

import logging
import sys

import click
from rich.console import Console

from ..settings import SettingsError, load_settings

__all__ = ["events_group", "webhook_secret", "worker"]

err = Console(stderr=True)


@click.command()
@click.option("--threads", type=click.IntRange(1, 64), help="Worker threads (default: the `worker_threads` setting).")
def worker(threads: int | None) -> None:
    """Run the queue's consumer: executes approved actions and workflow steps (Ctrl+C stops it gracefully)."""
    from .worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        run_worker(settings, threads=threads)
    except KeyboardInterrupt:
        pass


@click.group("events")
def events_group() -> None:
    """Trigger events (new mail, task pane requests) that start workflows."""


@events_group.command("replay")
@click.option("--since", type=click.IntRange(0), default=0, show_default=True, help="Replay events after this seq.")
def replay(since: int) -> None:
    """Dispatch recorded events again: starts the workflows that did not start (e.g. while disabled)."""
    from ..lineage import LineageStore
    from .api import WorkflowServices

    settings = load_settings()
    with LineageStore(settings.db_path) as lineage:
        services = WorkflowServices.create(settings, lineage)
        try:
            result = services.events.replay(since=since)
        finally:
            services.queue.close()
    click.echo(f"replayed {result['events']} event(s); started {result['started']} workflow(s)")


@click.command("webhook-secret")
@click.argument("name")
@click.option("--delete", is_flag=True, help="Remove the secret from the keyring.")
def webhook_secret(name: str, delete: bool) -> None:
    """Store the HMAC secret NAME for webhook actions in the OS keyring (read from standard input)."""
    from .secrets import WebhookSecrets

    secrets = WebhookSecrets()
    if delete:
        secrets.delete(name)
        click.echo(f"deleted webhook secret {name!r}")
        return
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else click.prompt(
        f"secret for {name}", hide_input=True)
    if not value:
        raise click.UsageError("the secret is empty")
    secrets.set(name, value)
    click.echo(f"stored webhook secret {name!r} in the keyring")
