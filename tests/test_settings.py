"""Settings: defaults < config.toml < environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskpilot.server.settings import SettingsError, app_home, load_settings

pytestmark = pytest.mark.unit


def test_the_app_home_follows_deskpilot_home(app_home: Path) -> None:
    settings = load_settings()
    assert settings.home == app_home
    assert settings.db_path == app_home / "deskpilot.db"
    assert settings.base_url == "https://localhost:8765"


def test_platform_folder_when_not_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESKPILOT_HOME")
    assert app_home().name == "deskpilot"


def test_precedence(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app_home.mkdir(parents=True)
    (app_home / "config.toml").write_text("port = 9000\nmax_queue = 2\nhttps = false\n")
    assert load_settings().port == 9000
    monkeypatch.setenv("DESKPILOT_PORT", "9100")
    monkeypatch.setenv("DESKPILOT_RETAIN_INPUTS", "true")
    settings = load_settings(max_queue=7)
    assert (settings.port, settings.max_queue, settings.https, settings.retain_inputs) == (
        9100,
        7,
        False,
        True,
    )
    assert settings.base_url == "http://localhost:9100"


@pytest.mark.parametrize(
    ("text", "says"),
    [("port = 'x'\n", "port"), ("nonsense = 1\n", "nonsense"), ("port = [\n", "config.toml")],
)
def test_bad_config_names_the_problem(app_home: Path, text: str, says: str) -> None:
    app_home.mkdir(parents=True)
    (app_home / "config.toml").write_text(text)
    with pytest.raises(SettingsError, match=says):
        load_settings()
