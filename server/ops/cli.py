"""`deskpilot dashboard` (open the compliance and IT dashboard) and `deskpilot audit report` (the same views
as one self-contained HTML file for an auditor).

`audit report` reads the lineage database directly, like `audit export` and `audit verify`: the server need
not run, and `--db` may point at a copy handed to an auditor. It writes nothing to the database.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import get_args

import click

from deskpilot.server.core.db import utc_now
from deskpilot.server.core.token import ensure_token
from deskpilot.server.lineage import LineageStore
from deskpilot.server.lineage.cli import db_option
from deskpilot.server.ops.dashboard import DEFAULT_SPAN, Bucket, dashboard_data, parse_since
from deskpilot.server.ops.report import ReportError, render_report
from deskpilot.server.ops.retention import Retention
from deskpilot.server.settings import Settings, SettingsError, load_settings

__all__ = ["dashboard_command", "dashboard_url", "report_command"]


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def dashboard_url(base_url: str, token: str) -> str:
    """The dashboard's address with the token in the fragment, which the browser never sends to a server."""
    return f"{base_url}/dashboard/#token={token}"


@click.command("dashboard")
@click.option("--no-open", is_flag=True, help="Only print the address; do not open a browser.")
def dashboard_command(no_open: bool) -> None:
    """Open the compliance and IT dashboard of the running server (`deskpilot serve`) in a browser.

    The address carries the access token after `#`, so it reaches the page but never the server's logs;
    the page keeps it for the tab only. Treat the printed address like the token itself.
    """
    settings = _settings()
    url = dashboard_url(settings.base_url, ensure_token(settings.token_path))
    click.echo(url)
    if not no_open and not webbrowser.open(url):
        click.echo("no browser could be opened here: open the address above in one", err=True)


@click.command("report")
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Start of the period: an ISO 8601 date or date-time (UTC unless it has an offset). "
    f"Default: {DEFAULT_SPAN.days} days ago.",
)
@click.option(
    "--bucket",
    type=click.Choice(get_args(Bucket)),
    default="day",
    show_default=True,
    help="Group the charts by hour or by day.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@db_option
def report_command(since: str | None, bucket: Bucket, out: Path, db_path: Path | None) -> None:
    """Write the dashboard's views (latency, cost, review and override rates, SLOs, drift, chain status,
    retention events) for a period as one HTML file that opens anywhere with no server and no network."""
    settings: Settings | None = None  # another file (--db): this computer's retention policy is not its
    if db_path is None:
        settings = _settings()
        db_path = settings.db_path
    if not db_path.is_file():
        # Opening would create an empty database; a report should say there is none instead.
        raise click.ClickException(f"no lineage database at {db_path}")
    try:
        start = parse_since(since, utc_now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    with LineageStore(db_path) as lineage:
        retention = Retention(lineage, settings) if settings is not None else None
        data = dashboard_data(lineage, start, bucket, retention)
    try:
        page = render_report(data)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    out.write_text(page, encoding="utf-8")  # owner-only: `deskpilot` runs under umask 077 (cli.py)
    runs = sum(p.runs for p in data.cost)
    click.echo(f"wrote {out} ({runs} runs from {data.since} to {data.until})", err=True)
