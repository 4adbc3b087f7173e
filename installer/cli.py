"""`deskpilot install`, `deskpilot uninstall`, `deskpilot doctor`, `deskpilot token`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from deskpilot.addin_manifest import taskpane_url
from deskpilot.installer._doctor import doctor as run_doctor
from deskpilot.installer._install import InstallOptions, log, rewrite_manifests
from deskpilot.installer._install import install as run_install
from deskpilot.installer._install import uninstall as run_uninstall
from deskpilot.server.core.token import ensure_token, rotate_token
from deskpilot.server.settings import SettingsError, load_settings

__all__ = ["doctor", "install", "token_group", "uninstall"]

# `[install]` keys of a --config file; `[settings]` is merged into <app data>/config.toml.
_INSTALL_KEYS = {"machine", "allow_local_network_access", "health_check", "health_timeout"}


def _console_log() -> None:
    if not any(
        isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stdout
        for h in log.handlers
    ):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = msgspec.toml.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--config") from exc
    unknown = set(data) - {"install", "settings"} | (set(data.get("install", {})) - _INSTALL_KEYS)
    if unknown:
        raise click.BadParameter(f"{path}: unknown keys {sorted(unknown)}", param_hint="--config")
    return dict(data)


@click.command("install")
@click.option("--machine", is_flag=True, default=None, help="Machine-wide locations where the OS has them.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file for an unattended install: [install] options and [settings] for config.toml.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port of the local server.")
@click.option(
    "--allow-local-network-access",
    "lna",
    is_flag=True,
    default=None,
    help="Write the Chrome/Edge LocalNetworkAccessAllowedForUrls policy (needs root/admin).",
)
@click.option(
    "--health-check/--no-health-check", default=None, help="Start the server and check it at the end."
)
def install(
    machine: bool | None,
    config_path: Path | None,
    port: int | None,
    lna: bool | None,
    health_check: bool | None,
) -> None:
    """Set up certificates, trust, autostart and the add-in manifests (safe to run again)."""
    _console_log()
    config = _read_config(config_path)
    opts = InstallOptions(**config.get("install", {}), settings=dict(config.get("settings", {})))
    if machine is not None:
        opts.machine = machine
    if lna is not None:
        opts.allow_local_network_access = lna
    if health_check is not None:
        opts.health_check = health_check
    if port is not None:
        opts.settings["port"] = port
    sys.exit(run_install(opts))


@click.command("uninstall")
@click.option("--keep-data", is_flag=True, help="Keep settings, the database and logs.")
def uninstall(keep_data: bool) -> None:
    """Remove everything `deskpilot install` set up (and, unless --keep-data, the data)."""
    _console_log()
    sys.exit(run_uninstall(keep_data=keep_data))


@click.command("doctor")
def doctor() -> None:
    """Check the installation; print what is wrong and how to fix it (exit 1 if anything is)."""
    sys.exit(run_doctor(click.echo))


@click.group("token")
def token_group() -> None:
    """The access token every client presents: the CLI reads it, the pane gets it from its manifest."""


def _token_path() -> Path:
    try:
        return load_settings().token_path
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


@token_group.command("rotate")
def rotate() -> None:
    """Replace the token: the old one is refused from the next request on, without a restart.

    The add-in manifests `deskpilot install` wrote are written again with the new token; an open pane
    says so and asks to be closed and reopened. A manifest uploaded elsewhere (Outlook's "Add from file",
    the admin center) must be uploaded again.
    """
    path = _token_path()
    rotate_token(path)
    click.echo(f"new access token in {path}; the old one no longer works")
    for manifest in rewrite_manifests():
        click.echo(f"rewritten {manifest}")
    click.echo("Close and reopen the Deskpilot pane in Outlook and Word to use the new token.", err=True)


@token_group.command("show")
@click.option("--path", "as_path", is_flag=True, help="Print where the token is kept instead of the token.")
@click.option("--url", "as_url", is_flag=True, help="Print the pane's URL with the token, for a browser.")
def show(as_path: bool, as_url: bool) -> None:
    """Print the token (for scripts: `Authorization: Bearer $(deskpilot token show)`); created if missing."""
    path = _token_path()
    if as_path:
        click.echo(str(path))
        return
    token = ensure_token(path)
    click.echo(taskpane_url(None, load_settings().base_url, token) if as_url else token)
