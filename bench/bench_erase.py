"""Time to erase one subject from a store of 100,000 runs (server/ops/retention.py, issue 17).

The store: --runs closed runs with retained inputs and outputs (emails of a few hundred characters from 500
correspondents, so the subject appears in about 1 in 500), written in batches through the chain's own
append (every row hashed and chained as in production), plus review decisions for 1 in 50 runs and a
document index of --documents synced mails (hash embedder: the bench times the erasure, not MiniLM).

Measured: `deskpilot audit erase`'s work (`Retention.erase`), a dry run first (the search alone), then
the erasure (search, tombstones, the chained event, secure_delete, WAL checkpoint), then `verify()` of the
whole chain after it, and the same verify before, for the ratio. The load average is printed beside the
times: run it on an idle machine.
Usage: python bench/bench_erase.py [--runs 100000] [--documents 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from deskpilot.indexes import DocumentIndex
from deskpilot.indexes._types import DocumentInput
from deskpilot.indexes.embedding import HashEmbedder
from deskpilot.server.core.db import iso_utc
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.retention import Retention
from deskpilot.server.settings import load_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ("invoice", "meeting", "budget", "contract", "review", "draft", "schedule", "payment", "renewal")


def address(n: int) -> str:
    return f"person{n:03d}@example.com"


def email(rng: random.Random) -> tuple[str, str]:
    sender = address(rng.randrange(500))
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    return sender, f"From: {sender}\nTo: me@example.com\nSubject: {rng.choice(WORDS)}\n\n{body}"


def fill(lineage: LineageStore, runs: int, rng: random.Random) -> None:
    batch = 5000
    for start in range(0, runs, batch):
        with lineage.transaction() as conn:
            for n in range(start, min(start + batch, runs)):
                sender, text = email(rng)
                at = iso_utc(T0 + timedelta(minutes=n))
                row = {
                    "id": f"run{n:07d}",
                    "started_at": at,
                    "finished_at": at,
                    "task": "summarize",
                    "template_id": "summarize_email",
                    "template_hash": "sha256:" + "a" * 64,
                    "model_id": "smollm2-135m-instruct",
                    "weights_digest": "sha256:" + "b" * 64,
                    "backend": "llama.cpp",
                    "parameters": "{}",
                    "input_digest": "sha256:" + "c" * 64,
                    "input": msgspec.json.encode({"text": text}).decode(),
                    "client": "outlook",
                    "retrieved_chunks": "[]",
                    "status": "ok",
                    "output": msgspec.json.encode(f"{sender} asks about the {rng.choice(WORDS)}.").decode(),
                }
                stored = lineage.append_chained(conn, "runs", row)
                if n % 50 == 0:
                    lineage.append_chained(
                        conn,
                        "reviews",
                        {
                            "id": f"rev{n:07d}",
                            "review_id": f"q{n:07d}",
                            "run_id": stored["id"],
                            "decided_at": at,
                            "reviewer": "Bo",
                            "decision": "edit",
                            "changes": msgspec.json.encode([{"path": "vendor", "after": sender}]).decode(),
                            "final": msgspec.json.encode({"vendor": sender}).decode(),
                            "task": "extract",
                            "template_id": "t",
                            "model_id": "m",
                        },
                    )


def timed(label: str, action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s   (load average {os.getloadavg()[0]:.2f})")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=5_000)
    args = parser.parse_args()
    rng = random.Random(17)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        settings = load_settings(home=home, https=False, retain_inputs=True)
        with (
            LineageStore(settings.db_path) as lineage,
            DocumentIndex(home / "index", embedder=HashEmbedder()) as index,
        ):
            timed(f"build: {args.runs:,} runs, 1 review per 50", lambda: fill(lineage, args.runs, rng))
            docs = []
            for n in range(args.documents):
                sender, text = email(rng)
                docs.append(
                    DocumentInput(
                        source=f"graph:message:{n}", text=text, kind="email", metadata={"sender": sender}
                    )
                )
            timed(f"build: {args.documents:,} synced mails in the index", lambda: index.add_documents(docs))
            print(f"database: {settings.db_path.stat().st_size / 1e6:.0f} MB")
            retention = Retention(lineage, settings, index=lambda: index)
            subject = address(123)
            _, before = timed("verify before", lineage.verify)
            dry, _ = timed(
                f"erase {subject} --dry-run (search only)",
                lambda: retention.erase(subject, actor="bench", dry_run=True),
            )
            report, erase_s = timed(f"erase {subject}", lambda: retention.erase(subject, actor="bench"))
            report_after, after = timed("verify after", lineage.verify)
            assert report_after.ok, report_after.problems[:3]
            assert (report.runs, report.documents) == (dry.runs, dry.documents)
            print(
                f"erased: {report.runs} runs, {report.reviews} reviews, {report.documents} documents; "
                f"verify after/before: {after / before:.2f}"
            )
            print(
                f"RESULT erase of one subject from {args.runs:,} runs: {erase_s:.2f} s "
                f"on {os.cpu_count()} cores ({sys.platform})"
            )


if __name__ == "__main__":
    main()
