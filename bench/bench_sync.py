"""A full Microsoft 365 sync from the Graph stand-in under faults (issue 16): 10,000 messages, 2,000 files
and 1,000 events, 20% of Graph requests faulted, the new real-tenant faults among them (Retry-After: 1
storms, a long Retry-After that defers a scope, files served with more bytes than `size`, delta pages
without `parentReference.path`, expired tokens answered 404 `syncStateNotFound`), plus files Graph will not
serve (403 malwareDetected, an empty 400) that are let through later.

Run 1 syncs everything it can; later runs, an hour apart by the sync's clock (so a deferred scope and
the skipped files' retries are due), finish it, until no scope is deferred (at most 5 runs). Prints per
run the time, Graph requests, retries by reason, the Retry-After waited, what was deferred and skipped;
then whether the index is exact (every document of the stand-in's truth at its latest version, nothing
extra). The hash embedder stands in for the model: this measures the sync, not embedding.

    python bench/bench_sync.py                     # 10,000 / 2,000 / 1,000, 20% faults
    python bench/bench_sync.py --messages 2000 --files 400 --events 200
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PYTHON_KEYRING_BACKEND"] = "keyring_vault.VaultKeyring"  # a file under tmp, never yours
        os.environ["DESKPILOT_TEST_VAULT"] = str(Path(tmp) / "vault.json")
        return bench(Path(tmp), args)


def bench(tmp: Path, args: argparse.Namespace) -> int:
    import keyring.core
    from graph_helpers import assert_index_holds, graph_settings, sign_in

    from deskpilot.indexes import DocumentIndex, HashEmbedder
    from deskpilot.server.connectors.auth import GraphAuth
    from deskpilot.server.connectors.graph import GraphClient
    from deskpilot.server.connectors.standin import Faults, StandIn, generate
    from deskpilot.server.connectors.state import SyncState
    from deskpilot.server.connectors.sync import GraphSync

    keyring.core.init_backend()
    now = datetime.now(UTC)
    started = time.monotonic()
    tenant = generate(seed=args.seed, messages=args.messages, files=args.files, events=args.events, now=now)
    print(
        f"tenant: {len(tenant.messages)} messages, {len(tenant.files)} drive items, "
        f"{len(tenant.events)} events (generated in {time.monotonic() - started:.1f} s)"
    )
    rng = random.Random(args.seed)
    files = sorted(f.id for f in tenant.files.values() if f.marker)
    tenant.omit_paths = True
    tenant.rewritten.update(rng.sample(files, len(files) // 20))
    blocked = rng.sample(files, max(2, len(files) // 100))
    tenant.blocked.update({f: ("malware" if i % 2 else "bad_request") for i, f in enumerate(blocked)})
    kinds = {
        "throttle": 1.0,
        "unavailable": 1.0,
        "slow": 1.0,
        "drop": 1.0,
        "malformed": 1.0,
        "unknown_fields": 1.0,
        "expired": 1.0,
        "storm": 0.25,
        "size_mismatch": 1.0,
        "no_path": 1.0,
        "long_throttle": 0.02,
    }
    faults = Faults(
        rate=args.fault_rate,
        kinds=kinds,
        retry_after=1,
        slow_seconds=0.5,
        seed=args.seed,
        expired_status=404,
        storm_length=3,
        long_retry_after=3600,
    )
    with StandIn(tenant, faults=faults, max_page_size=100) as standin:
        settings = graph_settings(
            standin,
            home=tmp / "home",
            graph_page_size=100,
            graph_backoff_seconds=0.05,
            graph_timeout_seconds=5.0,
            graph_calendar_days=60,
        )
        sign_in(settings)
        with DocumentIndex(settings.home / "index", embedder=HashEmbedder()) as index:
            # Runs an hour apart (by the sync's clock) until nothing is deferred: a long Retry-After defers
            # a scope to a later run, and the mix may draw one again in that run.
            for n in range(1, 6):
                when, note = now + timedelta(minutes=61 * (n - 1)), f"+{61 * (n - 1)} min"
                if n == 2:
                    tenant.blocked.clear()  # the flagged files were cleaned meanwhile
                load = os.getloadavg()[0]
                client, state = GraphClient(GraphAuth(settings), settings), SyncState(settings.sync_db_path)
                try:
                    s = GraphSync(client, index, state, settings, now=lambda w=when: w).run()  # type: ignore[misc]
                finally:
                    client.close()
                    state.close()
                retries = ", ".join(f"{k} {v}" for k, v in sorted(s.retries.items()))
                print(
                    f"run {n} ({note}): {s.seconds:.1f} s, {s.requests} requests, {s.pages} pages; "
                    f"indexed {s.indexed}, skipped {s.skipped}, removed {s.removed}, resyncs {s.resyncs}; "
                    f"retries: {retries}; Retry-After waited {s.throttle_seconds:.0f} s; "
                    f"deferred {s.deferred or 'none'}; errors {s.errors or 'none'}; "
                    f"load avg before {load:.2f}"
                )
                if n >= 2 and not s.deferred:
                    break
            injected = {k[6:]: v for k, v in standin.stats.items() if k.startswith("fault:")}
            print(
                f"faults injected: {dict(sorted(injected.items()))}; "
                f"storm throttles {standin.stats['storm_throttles']}"
            )
            truth = tenant.expected(max_file_bytes=settings.graph_max_file_bytes, window_days=60, now=now)
            try:
                assert_index_holds(index, truth)
            except AssertionError as exc:
                print(f"exact: NO ({exc})")
                return 1
            print(f"exact: yes ({len(truth)} documents, each at its latest version, nothing extra)")
    print(f"total {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
