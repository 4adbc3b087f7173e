"""`deskpilot events replay`: dispatch recorded trigger events again."""

from __future__ import annotations

import click

from deskpilot.server.core.cli import cli_parts, settings_or_usage_error
from deskpilot.server.services import Services

__all__ = ["events_group"]


@click.group("events")
def events_group() -> None:
    """Trigger events (new mail, task pane requests) that start workflows."""


@events_group.command("replay")
@click.option(
    "--since", type=click.IntRange(0), default=0, show_default=True, help="Replay events after this seq."
)
def replay(since: int) -> None:
    """Dispatch recorded events again: starts the workflows that did not start (e.g. while disabled)."""
    services = Services(settings_or_usage_error(), **cli_parts())
    try:
        result = services.workflows.events.replay(since=since)
    finally:
        services.close()
    click.echo(f"replayed {result['events']} event(s); started {result['started']} workflow(s)")
