"""The result cache: a request already answered by the same model, template, input and parameters gets the
recorded answer at once.

The key is a SHA-256 over the profile, the model's weights digest, the prompt template's hash, the input's
digest and the sampling parameters, so a new model or a changed template misses by construction (nothing
to invalidate by hand). The table maps a key to the run that answered it; the answer itself is that run's
output in lineage, and the cache hit is recorded as a run of its own that points to it (`cache_of`).
Only text answers the model completed are cached (status ok; never an error or a cancelled run).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import iso_utc
from deskpilot.server.lineage import LineageStore, Run

__all__ = ["ResultCache", "cache_key"]

CACHE_TABLES = Migrations("deskpilot.result_cache")


@CACHE_TABLES()
def m001_result_cache(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS result_cache"
        " (key TEXT PRIMARY KEY, run_id TEXT NOT NULL, created_at TEXT NOT NULL)"
    )


def cache_key(
    *, profile: str, weights_digest: str, template_hash: str, input_digest: str, parameters: dict[str, Any]
) -> str:
    material = [profile, weights_digest, template_hash, input_digest, parameters]
    return "sha256:" + hashlib.sha256(msgspec.json.encode(material, order="sorted")).hexdigest()


class ResultCache:
    def __init__(self, lineage: LineageStore) -> None:
        self.lineage = lineage
        lineage.migrate(CACHE_TABLES)

    def get(self, key: str) -> Run | None:
        """The run whose answer `key` repeats, if it is still a complete answer in lineage."""
        with self.lineage.reading() as conn:
            row = conn.execute("SELECT run_id FROM result_cache WHERE key = ?", [key]).fetchone()
        if row is None:
            return None
        run = self.lineage.get_run(row[0])
        if run is None or run.status != "ok" or not isinstance(run.output, str):
            return None
        return run

    def put(self, key: str, run_id: str) -> None:
        with self.lineage.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO result_cache (key, run_id, created_at) VALUES (?, ?, ?)",
                [key, run_id, iso_utc(self.lineage.now())],
            )
