"""`deskpilot drift rebaseline TASK | --all [--actor NAME]`: accept a task's current state as its new normal.

It acts on the lineage file directly, like `deskpilot audit purge`, so it works whether or not the server
runs; a running server sees the restarted reference at its next check (a check that was reading the old
windows meanwhile records nothing). Who ran it is recorded in the chained `drift.rebaselined` event
(`--actor`, default the operating-system user).
"""

from __future__ import annotations

import getpass

import click

from deskpilot.server.core.cli import settings_or_usage_error
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.drift import DriftMonitor, Rebaselined, UnknownDriftTask

__all__ = ["drift_group"]


@click.group("drift")
def drift_group() -> None:
    """Drift of each task's inputs and outputs against its reference (GET /v1/drift shows it)."""


@drift_group.command("rebaseline")
@click.argument("task", required=False)
@click.option("--all", "every", is_flag=True, help="Every task drift knows, each with its own event.")
@click.option(
    "--actor",
    default=None,
    metavar="NAME",
    help="Who is acting, as the chained event records it. Default: the operating-system user.",
)
def rebaseline_command(task: str | None, every: bool, actor: str | None) -> None:
    """Accept TASK's current inputs and outputs as its new normal.

    Its reference restarts now: the next inputs and finished runs fill it again (GET /v1/drift lists the
    task as waiting meanwhile), its input samples and alarms are cleared, and one chained
    `drift.rebaselined` event names the signals that were in alarm.
    """
    if (task is None) != every:
        raise click.UsageError("name one TASK or give --all, not both")
    settings = settings_or_usage_error()
    if not settings.db_path.is_file():
        raise click.ClickException(f"no lineage database at {settings.db_path}")
    who = actor or getpass.getuser()
    with LineageStore(settings.db_path) as lineage:
        monitor = DriftMonitor(lineage, settings)  # never started: it only rebaselines
        try:
            done = (
                monitor.rebaseline_all(actor=who) if task is None else [monitor.rebaseline(task, actor=who)]
            )
        except UnknownDriftTask as exc:
            raise click.ClickException(str(exc)) from exc
    if not done:
        click.echo("drift knows no task yet: nothing to rebaseline")
    for result in done:
        click.echo(_line(result, reference=settings.drift_reference_size))


def _line(result: Rebaselined, *, reference: int) -> str:
    alarms = ", ".join(result.signals_in_alarm) or "none"
    return (
        f"rebaselined {result.task}: alarms cleared: {alarms}; {result.samples_deleted} input sample(s)"
        f" deleted; the reference restarts at {result.since} with the next {reference} inputs and finished"
        f" runs (event {result.event}, by {result.actor})"
    )
