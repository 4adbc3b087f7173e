"""The `deskpilot` command: `serve` and `worker` here; every feature attaches its own commands."""

from __future__ import annotations

import contextlib
import logging

import click
from rich.console import Console

from deskpilot.addin_manifest.cli import manifest
from deskpilot.installer.cli import doctor, install, token_group, uninstall
from deskpilot.server.actions.cli import webhook_secret
from deskpilot.server.connectors.cli import login, logout, sync, whoami
from deskpilot.server.core.cli import cli_parts, settings_or_usage_error
from deskpilot.server.core.private import make_private, private_umask
from deskpilot.server.documents.cli import index_command
from deskpilot.server.extraction.cli import eval_group, extract
from deskpilot.server.extraction.triage_cli import eval_triage
from deskpilot.server.lineage.cli import audit
from deskpilot.server.models.cli import models_group
from deskpilot.server.ops.cli import dashboard_command, report_command
from deskpilot.server.ops.drift_cli import drift_group
from deskpilot.server.ops.retention_cli import erase_command, hold_group, purge_command
from deskpilot.server.settings import SettingsError
from deskpilot.server.tasks.cli import summarize
from deskpilot.server.tasks.eval_cli import eval_summaries
from deskpilot.server.workflows.cli import events_group

__all__ = ["main"]

err = Console(stderr=True)


@click.group()
@click.version_option(package_name="deskpilot")
def main() -> None:
    """Deskpilot: a private AI assistant for Outlook and Word, running on this computer."""
    # Whatever a command creates in the app data folder (databases, index, logs) is its user's only.
    private_umask()


@main.command()
@click.option("--http", "plain_http", is_flag=True, help="Serve plain HTTP (tests and development only).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port on the loopback interface.")
@click.option("--host", help="Loopback address to listen on (default 127.0.0.1).")
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file."
)
@click.option(
    "--worker/--no-worker",
    "with_worker",
    default=None,
    help="Start the action and workflow consumer as a child process (default: the `worker` setting).",
)
def serve(
    plain_http: bool, port: int | None, host: str | None, model_path: str | None, with_worker: bool | None
) -> None:
    """Start the local server with the task pane and the model."""
    from deskpilot.server.app import create_app
    from deskpilot.server.services import Services
    from deskpilot.server.web.runner import serve as run
    from deskpilot.server.web.runner import worker_process

    settings = settings_or_usage_error(
        port=port, host=host, model_path=model_path, https=False if plain_http else None, worker=with_worker
    )
    app = create_app(Services(settings, **cli_parts()))
    err.print(f"Deskpilot on [bold]{settings.base_url}[/] (data in {settings.home})")
    try:
        with worker_process(settings):
            run(app, settings)
    except SettingsError as exc:  # found when binding: a host that is not a loopback address
        raise click.UsageError(str(exc)) from exc


@main.command()
@click.option(
    "--threads", type=click.IntRange(1, 64), help="Worker threads (default: the `worker_threads` setting)."
)
def worker(threads: int | None) -> None:
    """Run the queue's consumer: executes approved actions and workflow steps (Ctrl+C stops it gracefully)."""
    from deskpilot.server.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_usage_error()
    make_private(settings.home)  # as the server does at start: fixes an install made before
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(settings, threads=threads)


for _command in (
    summarize,
    extract,
    eval_group,
    index_command,
    audit,
    manifest,
    install,
    uninstall,
    doctor,
    token_group,
    events_group,
    webhook_secret,
    login,
    logout,
    whoami,
    sync,
    models_group,
    dashboard_command,
    drift_group,
):
    main.add_command(_command)
audit.add_command(report_command)
for _command in (purge_command, erase_command, hold_group):
    audit.add_command(_command)
eval_group.add_command(eval_triage)
eval_group.add_command(eval_summaries)

if __name__ == "__main__":
    main()
