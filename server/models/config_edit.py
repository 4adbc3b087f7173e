"""Edits of `config.toml` by `deskpilot models`: comments, order and everything else in the file are kept
(tomlkit), the result is checked by loading it as settings before it replaces the file, and the file is
written atomically and owner-only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from deskpilot.server.settings import Settings, SettingsError, load_settings

__all__ = ["edit_config"]


def _section(doc: Any, name: str) -> Table:
    """`[name]` as a table of tables (`[name.X]` headers), created when missing."""
    if name not in doc:
        doc[name] = tomlkit.table(is_super_table=True)
    section = doc[name]
    assert isinstance(section, Table)
    return section


def edit_config(settings: Settings, change: Callable[[Table, Table], None]) -> Settings:
    """Apply `change(models, routes)` to `<home>/config.toml` and return the settings it now gives.
    Raises `SettingsError` (the file untouched) when the result would not load."""
    path = settings.home / "config.toml"
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    change(_section(doc, "models"), _section(doc, "routes"))
    for name in ("models", "routes"):
        if not doc[name]:
            del doc[name]
    text = tomlkit.dumps(doc)
    settings.home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=settings.home, prefix=".config.", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        try:
            updated = load_settings(Path(tmp), home=settings.home)
            from deskpilot.server.models.registry import profiles_from, routes_from

            routes_from(updated, profiles_from(updated))
        except SettingsError as exc:
            raise SettingsError(f"{path} was not changed: {exc}") from exc
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return updated
