"""Feature tables moved out of lineage's migration set: databases from before open and are brought to the
one stored time format; new databases get the same tables from the features' own sets."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlite_utils import Database

from deskpilot.server.actions._tables import m001_actions
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import load_settings
from deskpilot.server.workflows._tables import m001_workflows_and_events
from deskpilot.server.workflows.services import WorkflowServices

pytestmark = pytest.mark.unit

OLD_MS = "2026-11-30T08:15:02.123Z"


def _tables(db_path: Path) -> set[str]:
    with closing(sqlite3.connect(db_path)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _old_database(db_path: Path) -> None:
    """What 0.1 left: the feature tables made by lineage's m005, times with milliseconds."""
    LineageStore(db_path).close()
    with closing(sqlite3.connect(db_path)) as conn:
        db = Database(conn)
        m001_actions(db)  # the same tables m005 made
        m001_workflows_and_events(db)
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('deskpilot.lineage', 'm005_actions_and_workflows', ?)",
            [OLD_MS],
        )
        conn.execute(
            "INSERT INTO actions (id, key, kind, params, title, origin, automation, status, created_at, "
            "updated_at) VALUES ('a1', 'k1', 'webhook', '{}', 't', 'o', 'taskpane', 'pending_review', ?, ?)",
            [OLD_MS, OLD_MS],
        )
        conn.execute(
            "INSERT INTO workflows (id, definition, automation, origin, status, context, created_at, "
            "updated_at) VALUES ('w1', 'invoice_intake', 'invoice_intake', 'o', 'waiting', '{}', ?, ?)",
            [OLD_MS, OLD_MS],
        )
        conn.commit()


def test_a_database_from_before_opens_and_its_times_take_the_one_format(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    _old_database(settings.db_path)
    with LineageStore(settings.db_path) as lineage:
        services = WorkflowServices.create(settings, lineage, TaskQueue.sqlite(settings))
        try:
            action = services.outbox.get("a1")
            assert action.created_at == action.updated_at == "2026-11-30T08:15:02.123000Z"
            assert services.engine.get("w1").created_at == "2026-11-30T08:15:02.123000Z"
            assert lineage.verify().ok
        finally:
            services.queue.close()


def test_a_new_database_gets_the_feature_tables_from_the_features(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    with LineageStore(settings.db_path) as lineage:
        assert "actions" not in _tables(settings.db_path)  # lineage alone makes only its own tables
        assert lineage.verify().ok  # and verifies without them
        services = WorkflowServices.create(settings, lineage, TaskQueue.sqlite(settings))
        services.queue.close()
    assert {"actions", "action_log", "automations", "workflows", "events"} <= _tables(settings.db_path)
