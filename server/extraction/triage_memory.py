"""Triage that learns from corrections: every accepted or edited classification review becomes a labelled
example, and the examples like a new message steer its answer (neighbours and few-shot prompts).

How an example is born: when a classification is queued for review, the message's embedding (and its
text, where `retain_inputs` allows keeping inputs) is held in `triage_examples` with no label, linked to
its run and review item. Once a person decides, `sync()` gives it the label they kept (the proposal for an
accept, their label for an edit) from the chained `reviews` table; a rejected item's example is dropped.
Sync runs before each use, so the decision needs no hook in the review API and nothing is learnt twice.

Forgetting: `delete()` removes an example (its vector and text) for good; the review decision stays in
the audit chain, but no longer steers anything. Retention applies to examples like any input: with
`retain_inputs` off, an example keeps its vector, label and the input's digest but not its text, so it
still votes as a neighbour but is never shown to the model as a few-shot example.

The table is this feature's own migration set on the lineage file (`deskpilot.triage`), like the
outbox's. Label descriptions' embeddings are cached in memory by text; an example's vector is computed
once, when it is held.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.inference.extraction.classify import FewShot, TriageLabel
from deskpilot.inference.extraction.triage import (
    Neighbour,
    label_texts,
    neighbour_scores,
    neighbour_weight,
    zero_shot_scores,
)
from deskpilot.inference.tasks import input_digest
from deskpilot.server.core.db import iso_utc, rows_as_dicts
from deskpilot.server.lineage import LineageStore, decode_content

if TYPE_CHECKING:
    import numpy as np

    from deskpilot.indexes import Embedder

__all__ = ["TRIAGE_TABLES", "TriageExample", "TriageMemory", "TriagePrior"]

TRIAGE_TABLES = Migrations("deskpilot.triage")
# Few-shot examples in a prompt: the most similar corrected examples with text, at least this similar.
FEW_SHOT = 3
FEW_SHOT_MIN_SIMILARITY = 0.3


@TRIAGE_TABLES()
def m001_triage_examples(db: Database) -> None:
    # `label` is NULL while the review is pending; `text` is NULL unless inputs are retained.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS triage_examples (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            review_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            label TEXT,
            labelled_at TEXT,
            text TEXT,
            digest TEXT NOT NULL,
            embedder TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS triage_examples_label ON triage_examples (label)")


class TriageExample(msgspec.Struct, kw_only=True):
    id: str
    run_id: str  # the classification run it came from (lineage)
    review_id: str  # the review item whose decision labelled it
    created_at: str
    label: str | None  # None while the review is pending
    labelled_at: str | None
    text: str | None  # None unless inputs are retained
    digest: str  # of the input, as lineage records it


class _Labelled(NamedTuple):
    id: str
    label: str
    text: str | None
    vector: bytes


class TriagePrior(msgspec.Struct, kw_only=True):
    """What the embeddings say about a message before the model does: per-label probabilities from the
    label descriptions and from corrected examples, the neighbours' weight in the blend, the nearest
    examples, and the few-shot examples for the prompt."""

    ids: list[str]
    zero_shot: list[float]
    neighbours: list[float]
    neighbour_weight: float
    nearest: list[tuple[str, str, float]]  # (example id, label, cosine), most similar first
    few_shot: list[FewShot]
    vector: bytes  # the message's embedding (float32), kept if it goes to review


class TriageMemory:
    """Zero-shot and example-based triage over one embedder, with examples in the lineage file."""

    def __init__(self, store: LineageStore, embedder: Embedder, *, retain_text: bool) -> None:
        self._store, self._embedder, self._retain_text = store, embedder, retain_text
        store.migrate(TRIAGE_TABLES)
        self._label_vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def embedder_id(self) -> str:
        return self._embedder.model_id

    def prepare(self, text: str, labels: Sequence[TriageLabel]) -> TriagePrior:
        """The embedding-side answer for `text` (blocking: it embeds)."""
        import numpy as np

        self.sync()
        ids = [label.id for label in labels]
        vector = self._embedder.embed([text])[0]
        zero_shot = zero_shot_scores(vector, [self._vectors(label_texts(label)) for label in labels])
        rows = self._labelled()
        matrix = (
            np.stack([np.frombuffer(row.vector, dtype=np.float32) for row in rows])
            if rows
            else np.zeros((0, vector.shape[0]), dtype=np.float32)
        )
        votes, nearest = neighbour_scores(vector, matrix, [row.label for row in rows], ids)
        return TriagePrior(
            ids=ids,
            zero_shot=[float(p) for p in zero_shot],
            neighbours=[float(p) for p in votes],
            neighbour_weight=neighbour_weight(nearest),
            nearest=[(rows[n.index].id, n.label, round(n.similarity, 4)) for n in nearest],
            few_shot=self._few_shot(rows, nearest),
            vector=np.asarray(vector, dtype=np.float32).tobytes(),
        )

    def hold(self, *, review_id: str, run_id: str, text: str, vector: bytes) -> None:
        """Keep a message queued for review, to become an example once a person decides."""
        row = {
            "id": uuid.uuid4().hex,
            "run_id": run_id,
            "review_id": review_id,
            "created_at": iso_utc(self._store.now()),
            "label": None,
            "labelled_at": None,
            "text": text if self._retain_text else None,
            "digest": input_digest(text),
            "embedder": self._embedder.model_id,
            "vector": vector,
        }
        with self._store.transaction() as conn:
            conn.execute(
                f"INSERT INTO triage_examples ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def sync(self) -> int:
        """Label held messages whose review was decided (drop those rejected); returns how many changed."""
        with self._store.transaction() as conn:
            decided = conn.execute(
                "SELECT e.id, d.decision, d.final, d.decided_at FROM triage_examples e "
                "JOIN reviews d ON d.review_id = e.review_id WHERE e.label IS NULL"
            ).fetchall()
            for example_id, decision, final, decided_at in decided:
                label = (decode_content(final) or {}).get("label")
                if decision == "reject" or not isinstance(label, str):
                    conn.execute("DELETE FROM triage_examples WHERE id = ?", [example_id])
                else:
                    conn.execute(
                        "UPDATE triage_examples SET label = ?, labelled_at = ? WHERE id = ?",
                        [label, decided_at, example_id],
                    )
        return len(decided)

    def examples(self, *, label: str | None = None, limit: int = 100) -> list[TriageExample]:
        """Labelled examples, newest first."""
        self.sync()
        where, params = "WHERE label IS NOT NULL", []
        if label is not None:
            where, params = where + " AND label = ?", [label]
        with self._store.reading() as conn:
            rows = rows_as_dicts(
                conn.execute(
                    f"SELECT id, run_id, review_id, created_at, label, labelled_at, text, digest "
                    f"FROM triage_examples {where} ORDER BY labelled_at DESC, id LIMIT ?",
                    [*params, limit],
                )
            )
            return [msgspec.convert(row, TriageExample) for row in rows]

    def delete(self, example_id: str) -> bool:
        """Forget an example (its vector and text); False if there was none."""
        with self._store.transaction() as conn:
            return conn.execute("DELETE FROM triage_examples WHERE id = ?", [example_id]).rowcount > 0

    def _labelled(self) -> list[_Labelled]:
        with self._store.reading() as conn:
            rows = conn.execute(
                "SELECT id, label, text, vector FROM triage_examples "
                "WHERE label IS NOT NULL AND embedder = ? ORDER BY id",
                [self._embedder.model_id],
            ).fetchall()
        return [_Labelled(*row) for row in rows]

    def _vectors(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        with self._lock:
            missing = [t for t in texts if t not in self._label_vectors]
        if missing:
            for text, vector in zip(missing, self._embedder.embed(missing), strict=True):
                with self._lock:
                    self._label_vectors[text] = vector
        with self._lock:
            return np.stack([self._label_vectors[t] for t in texts])

    @staticmethod
    def _few_shot(rows: list[_Labelled], nearest: list[Neighbour]) -> list[FewShot]:
        shots = []
        for n in nearest:
            text = rows[n.index].text
            if text is not None and n.similarity >= FEW_SHOT_MIN_SIMILARITY:
                shots.append(FewShot(text=text, label=n.label))
        # Most similar last: right before the message, where a small model weighs it most.
        return shots[:FEW_SHOT][::-1]
