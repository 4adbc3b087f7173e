"""Action queue benchmark: webhook actions through the outbox and the Huey consumer, against sending them
directly.

Everything real: a webhook receiver on 127.0.0.1 that checks HMAC signatures and keeps idempotency keys
(tests/webhook_receiver.py), the signing secret in a keyring (a file-backed test keyring in a temporary
folder), the SQLite outbox with its chained audit log, SqliteHuey, and `deskpilot worker` as its own
process with its default thread count.

1. Baseline: the same webhook adapter sends the same number of signed actions directly, from as many
   threads as the worker has (no outbox, no queue, no audit log): actions/s.
2. Burst: N actions are proposed (approved by policy) and enqueued as the server does, as fast as it
   can; throughput = N / (first enqueue -> last executed). Ratio = queue / direct.
3. Added latency, "enqueue to start": for every action, the time from its commit to the outbox
   (`queued_ts`, just before the queue message) to the worker's claim (`started_ts`); p50 and p95 for
   the burst, and for actions sent one at a time 200 ms apart to an idle worker (polling backoff).

Usage: python bench/bench_actions.py [--actions 500] [--idle 40] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SECRET = "bench-secret"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Queued:
    """What the run through the outbox, the queue and the worker measured."""

    per_s: float
    enqueued_s: float
    elapsed_s: float
    burst_lat_ms: list[float]
    idle_lat_ms: list[float]
    effects: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=500)
    parser.add_argument("--idle", type=int, default=40, help="actions sent one at a time to an idle worker")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: the setting, 4)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-actions-"))
    env = {
        "DESKPILOT_HOME": str(tmp / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring_vault.VaultKeyring",
        "DESKPILOT_TEST_VAULT": str(tmp / "vault.json"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    # Before any Deskpilot import: the settings and the keyring backend are read from the environment.
    os.environ.update(env)
    import keyring

    keyring.core.init_backend()
    from webhook_receiver import WebhookReceiver

    from deskpilot.server.actions.secrets import WebhookSecrets
    from deskpilot.server.settings import load_settings

    settings = load_settings()
    threads = args.threads or settings.worker_threads
    WebhookSecrets().set(SECRET, "s3cret-for-the-bench")
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"worker threads {threads}; {args.actions} actions"
    )

    with WebhookReceiver(secret=b"s3cret-for-the-bench") as hook:
        # Webhooks go only to allow-listed receivers: this one, by its loopback address (the worker too).
        env["DESKPILOT_WEBHOOK_ALLOW"] = os.environ["DESKPILOT_WEBHOOK_ALLOW"] = (
            hook.url.rsplit("/", 1)[0] + "/"
        )
        settings = load_settings()
        direct = send_direct(settings, hook.url, args.actions, threads)
        assert len(hook.effects()) == args.actions
        queued = send_queued(settings, hook, env, tmp / "worker.log", args, threads)

    report(args, threads, direct, queued)


def send_direct(settings: Any, url: str, actions: int, threads: int) -> float:
    """1. Direct: the adapter alone, same threads. Returns actions/s."""
    from deskpilot.server.actions._types import WebhookParams
    from deskpilot.server.actions.adapters import build_adapters

    adapter = build_adapters(settings)["webhook"]
    todo = list(range(actions))
    lock = threading.Lock()

    def send() -> None:
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            adapter.execute(
                f"direct-{n}", WebhookParams(url=url + "/direct", payload={"n": n}, secret=SECRET)
            )

    started = time.perf_counter()
    pool = [threading.Thread(target=send) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return actions / (time.perf_counter() - started)


def send_queued(
    settings: Any, hook: Any, env: dict[str, str], log: Path, args: argparse.Namespace, threads: int
) -> Queued:
    """2. Through the outbox and the queue, with the consumer in its own process."""
    from deskpilot.server.actions.outbox import Outbox
    from deskpilot.server.actions.policy import AutomationUpdate
    from deskpilot.server.core.queue import TaskQueue
    from deskpilot.server.lineage import LineageStore

    lineage = LineageStore(settings.db_path)
    outbox = Outbox(lineage)
    outbox.update_automation(
        "taskpane", AutomationUpdate(approval={"webhook": "never"}), "bench", confirm_loosening=True
    )
    queue = TaskQueue.sqlite(settings)

    def propose(tag: str, n: int) -> str:
        record, _ = outbox.propose(
            "webhook",
            {"url": hook.url + "/queued", "payload": {"n": n, "tag": tag}, "secret": SECRET},
            title="bench",
            origin=f"bench-{tag}",
            actor="bench",
        )
        queue.execute(record.id)
        return record.id

    def wait_executed(count: int, timeout: float, poll: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while outbox.counts().get("executed", 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            time.sleep(poll)

    def wait_one(action_id: str) -> Any:
        deadline = time.monotonic() + 30
        while outbox.get(action_id).status != "executed":
            if time.monotonic() > deadline:
                raise TimeoutError("idle action did not run")
            time.sleep(0.005)
        return outbox.get(action_id)

    with open(log, "wb") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "deskpilot.server.cli", "worker", "--threads", str(threads)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=worker_log,
        )
        try:
            # Warm-up: the worker's start (imports, recovery) is not the queue's latency.
            propose("warm", 0)
            wait_executed(1, 60, 0.02, "the worker did not finish")
            base = 1
            started = time.perf_counter()
            burst = [propose("burst", n) for n in range(args.actions)]
            enqueued = time.perf_counter() - started
            wait_executed(base + len(burst), 600, 0.01, "burst did not finish")
            elapsed = time.perf_counter() - started
            records = [outbox.get(i) for i in burst]
            burst_lat = [(r.started_ts - r.queued_ts) * 1000 for r in records if r.started_ts and r.queued_ts]

            idle_lat = []
            for n in range(args.idle):
                time.sleep(0.2)
                r = wait_one(propose("idle", n))
                idle_lat.append((r.started_ts - r.queued_ts) * 1000)
            effects = len(hook.effects())
        finally:
            worker.send_signal(2)
            worker.wait(30)
            queue.close()
            lineage.close()
    return Queued(args.actions / elapsed, enqueued, elapsed, burst_lat, idle_lat, effects)


def report(args: argparse.Namespace, threads: int, direct: float, queued: Queued) -> None:
    burst_lat, idle_lat = queued.burst_lat_ms, queued.idle_lat_ms
    expected = args.actions * 2 + 1 + args.idle
    print(f"direct (adapter only, {threads} threads):   {direct:8.1f} actions/s")
    print(
        f"through outbox + Huey + worker:       {queued.per_s:8.1f} actions/s  "
        f"(enqueueing took {queued.enqueued_s:.2f} s of {queued.elapsed_s:.2f} s)"
    )
    print(f"ratio queue/direct:                   {queued.per_s / direct:8.3f}")
    print(
        f"enqueue to start, burst of {args.actions}:   p50 {statistics.median(burst_lat):8.1f} ms   "
        f"p95 {pct(burst_lat, 95):8.1f} ms"
    )
    print(
        f"enqueue to start, one at a time (idle): p50 {statistics.median(idle_lat):8.1f} ms   "
        f"p95 {pct(idle_lat, 95):8.1f} ms"
    )
    print(f"effects at the receiver: {queued.effects} (expected {expected}: one per action)")
    assert queued.effects == expected
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "direct_per_s": direct,
                    "queued_per_s": queued.per_s,
                    "ratio": queued.per_s / direct,
                    "burst_p50_ms": statistics.median(burst_lat),
                    "burst_p95_ms": pct(burst_lat, 95),
                    "idle_p50_ms": statistics.median(idle_lat),
                    "idle_p95_ms": pct(idle_lat, 95),
                    "threads": threads,
                    "actions": args.actions,
                    "load": os.getloadavg()[0],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
