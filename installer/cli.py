"""`deskpilot install`, `deskpilot uninstall`, `deskpilot doctor`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from deskpilot.installer._doctor import doctor as run_doctor
from deskpilot.installer._install import InstallOptions, log
from deskpilot.installer._install import install as run_install
from deskpilot.installer._install import uninstall as run_uninstall

__all__ = ["doctor", "install", "uninstall"]

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
