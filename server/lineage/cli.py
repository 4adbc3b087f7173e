"""`deskpilot audit`: export the lineage record for compliance, and check that it is intact.

The group is attached to the main `deskpilot` command by the app's CLI. The database is the one the
settings name (`DESKPILOT_HOME`/deskpilot.db) unless `--db` points at another file, e.g. a copy
handed to an auditor. Neither command writes runs, and neither recovers interrupted runs: the server
may be running and have runs open.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import click

from deskpilot.server.lineage.store import LineageStore
from deskpilot.server.settings import SettingsError, load_settings

__all__ = ["audit", "db_option"]


class IsoDateTime(click.ParamType):  # type: ignore[type-arg]  # generic only in recent click
    """An ISO 8601 date or date-time; without an offset it is taken as UTC."""

    name = "ISO_DATE_OR_DATETIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 date or date-time "
                "(examples: 2025-01-31, 2025-01-31T09:30, 2025-01-31T09:30:00+01:00)",
                param,
                ctx,
            )


db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Lineage database file. Default: deskpilot.db in the app data folder.",
)


def _open_store(db_path: Path | None) -> LineageStore:
    if db_path is None:
        try:
            db_path = load_settings().db_path
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc
    if not db_path.is_file():
        # Opening would create an empty database; an audit command should say there is none instead.
        raise click.ClickException(f"no lineage database at {db_path}")
    return LineageStore(db_path)


@click.group("audit")
def audit() -> None:
    """Export and verify the audit trail of AI runs."""


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "--since",
    type=IsoDateTime(),
    default=None,
    help="Only runs started at or after this moment (ISO 8601; UTC unless an offset is given).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option(
    "--table",
    type=click.Choice(["runs", "reviews", "actions", "events"]),
    default="runs",
    show_default=True,
    help="runs: AI runs; reviews: human review decisions; actions: every action and workflow event "
    "(proposals, approvals, executions, compensations, policy changes); events: governance (drift alarms, "
    "retention purges, erasures, legal holds, verifications).",
)
@db_option
def export_command(
    fmt: Literal["jsonl", "csv"],
    since: datetime | None,
    output: Path | None,
    table: str,
    db_path: Path | None,
) -> None:
    """Write closed runs (or another chained table) as JSON Lines or CSV (JSON-valued fields as JSON text)."""

    def write(out: Any) -> int:
        if table == "runs":
            return store.export(out, fmt, since)
        return store.export_table(out, fmt, table, since)

    with _open_store(db_path) as store:
        if output is None:
            count = write(sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = write(out)
    one, many = {
        "runs": ("run", "runs"),
        "reviews": ("review decision", "review decisions"),
        "actions": ("action log entry", "action log entries"),
        "events": ("event", "events"),
    }[table]
    click.echo(f"exported {count} {one if count == 1 else many}", err=True)


@audit.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="HASH",
    help="A head hash recorded earlier; the chain must still contain it. Repeatable.",
)
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Append the result to the chained events (the dashboard's chain status shows the last one). "
    "Use --no-record on an auditor's copy of the file.",
)
@db_option
def verify_command(anchors: tuple[str, ...], record: bool, db_path: Path | None) -> None:
    """Re-derive the hash chain; exit status 1 and list the problems if it was tampered with.

    Record the head hash it prints somewhere else and pass it back with --anchor later: that also
    catches a chain rewritten with recomputed hashes, which the chain alone cannot.
    """
    with _open_store(db_path) as store:
        report = store.verify(anchors=anchors)
        if record:
            store.record_verification(report, actor="deskpilot audit verify")
    runs = f"{report.checked} run{'' if report.checked == 1 else 's'} checked"
    if report.ok:
        click.echo(f"OK: {runs}, the chain is intact")
    else:
        click.echo(f"TAMPERED: {runs}, {len(report.problems)} problem(s):")
        for problem in report.problems:
            click.echo(f"  - {problem}")
    click.echo(f"head hash: {report.head_hash or '(no runs yet)'}")
    if report.reviews_checked:
        click.echo(f"reviews: {report.reviews_checked} checked, head hash: {report.reviews_head_hash}")
    if report.actions_checked:
        click.echo(f"action log: {report.actions_checked} checked, head hash: {report.actions_head_hash}")
    if report.events_checked:
        click.echo(f"events: {report.events_checked} checked, head hash: {report.events_head_hash}")
    if not report.ok:
        sys.exit(1)
