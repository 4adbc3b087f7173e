"""Exactly-once effects through real processes: the server, the Huey consumer (`deskpilot worker`), the
Graph stand-in and a webhook receiver on 127.0.0.1, and kill -9 at random points.

What "exactly once" means here: after the crashes, every approved action is `executed`, and each one has
exactly one effect at its receiver: one webhook applied per idempotency key, one To Do task / draft per
marker in the Graph stand-in. The receivers also get faults (a write applied and then the connection
dropped), the nastiest case for a sender.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ServerProcess
from graph_helpers import graph_env, graph_settings, sign_in, vault  # noqa: F401
from webhook_receiver import WebhookReceiver

from deskpilot.server.actions.secrets import WebhookSecrets
from deskpilot.server.connectors.standin import Faults, StandIn, generate
from deskpilot.server.lineage import LineageStore

pytestmark = [pytest.mark.process, pytest.mark.usefixtures("vault")]

SECRET = b"finance-hook-secret"
FAST = {"DESKPILOT_ACTION_BACKOFF_SECONDS": "0.05", "DESKPILOT_GRAPH_BACKOFF_SECONDS": "0.01"}
# People, as the task pane sends them.
ALICE = {"name": "Alice", "address": "alice@contoso.example"}
ADMIN = {"name": "IT Admin", "address": "it-admin@contoso.example"}


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


class Worker:
    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deskpilot.server.cli", "worker", "--threads", "4"],
            env={**os.environ, "DESKPILOT_HOME": str(home), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def world(app_home: Path) -> Iterator[tuple[StandIn, WebhookReceiver, dict[str, str]]]:
    # Writes sometimes applied and then left unanswered (and sometimes throttled): the cases where a
    # sender cannot know whether its request took effect.
    faults = Faults(rate=0.15, kinds={"drop_after": 2.0, "throttle": 1.0, "drop": 1.0}, retry_after=0, seed=7)
    with (
        StandIn(generate(messages=20, files=0, events=0), faults=faults) as standin,
        WebhookReceiver(secret=SECRET) as hook,
    ):
        settings = graph_settings(standin)
        sign_in(settings)
        WebhookSecrets().set("finance", SECRET.decode())
        allow = {"DESKPILOT_WEBHOOK_ALLOW": hook.url.rsplit("/", 1)[0] + "/"}  # the receiver, by address
        yield standin, hook, {**graph_env(standin), **FAST, **allow}


def _propose_batch(
    client: httpx.Client,
    hook: WebhookReceiver,
    message_ids: list[str],
    tag: str,
    n_hooks: int,
    n_tasks: int,
    n_drafts: int,
) -> list[dict[str, Any]]:
    out = []
    specs: list[dict[str, Any]] = (
        [
            {
                "kind": "webhook",
                "params": {
                    "url": hook.url + "/finance",
                    "secret": "finance",
                    "payload": {"n": i, "batch": tag},
                },
            }
            for i in range(n_hooks)
        ]
        + [{"kind": "todo_task", "params": {"title": f"Follow up {tag}-{i}"}} for i in range(n_tasks)]
        + [
            {
                "kind": "draft_reply",
                "params": {"messageId": message_ids[i % len(message_ids)], "body": f"Thanks ({tag}-{i})"},
            }
            for i in range(n_drafts)
        ]
    )
    for spec in specs:
        r = client.post("/v1/actions", json={**spec, "origin": f"batch-{tag}"})
        assert r.status_code == 201, r.text
        out.append(r.json()["action"])
    return out


def _approve_all_by_policy(client: httpx.Client) -> None:
    r = client.put(
        "/v1/automations/taskpane",
        json={
            "approval": {"webhook": "never", "todo_task": "never", "draft_reply": "never"},
            "actor": ADMIN,
            "confirmLoosening": True,
        },
    )
    assert r.status_code == 200, r.text


def _assert_exactly_once(standin: StandIn, hook: WebhookReceiver, actions: list[dict[str, Any]]) -> None:
    keys = {a["kind"]: set() for a in actions}
    for a in actions:
        keys[a["kind"]].add(a["key"])
    applied = Counter(e["key"] for e in hook.effects())
    assert set(applied) == keys.get("webhook", set()), (
        "a webhook action without its one effect, or a stray one"
    )
    assert max(applied.values(), default=1) == 1
    markers = Counter(m for e in standin.tenant.effects() if not e["gone"] for m in e["markers"] if m)
    for kind in ("todo_task", "draft_reply"):
        for key in keys.get(kind, set()):
            assert markers[key] == 1, f"{kind} {key}: {markers[key]} effects at the stand-in"


def _workers_of(home: Path) -> list[int]:
    """Pids of `deskpilot worker` processes serving this app data folder (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if b"worker" in cmdline and f"DESKPILOT_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


def _next_worker_recovers(
    client: httpx.Client, hook: WebhookReceiver, home: Path, env: dict[str, str], action_id: str
) -> None:
    """An action left `executing` by a worker that is gone: the next worker recovers it and runs it, and
    its history says so. The receiver answers at once from here on."""

    def status() -> str:
        return str(client.get(f"/v1/actions/{action_id}").json()["action"]["status"])

    assert status() == "executing", _stuck(client, hook)
    hook.delay_seconds = 0.0
    worker = Worker(home, env, home.parent / "worker.log")
    try:
        wait_until(lambda: status() == "executed", 30, "the next worker did not run the action again")
    finally:
        worker.stop()
    history = [h["event"] for h in client.get(f"/v1/actions/{action_id}").json()["history"]]
    assert history == ["proposed", "approved", "recovered", "executed"]


def _stuck(client: httpx.Client, hook: WebhookReceiver) -> list[tuple[Any, ...]]:
    """Each action not executed: kind, status, attempts, failures, error, its history, and the statuses
    the webhook receiver answered for its key (0: no answer)."""
    stuck = [
        a
        for a in client.get("/v1/actions", params={"limit": 1000}).json()["actions"]
        if a["status"] != "executed"
    ]
    return [
        (
            a["kind"],
            a["status"],
            a["attempts"],
            a["failures"],
            a["error"],
            [
                (h["event"], h["actor"], h.get("detail"))
                for h in client.get(f"/v1/actions/{a['id']}").json()["history"]
            ],
            [d["status"] for d in hook.deliveries if d["key"] == a["key"]],
        )
        for a in stuck
    ]


def test_kill_9_of_the_consumer_mid_batch_leaves_exactly_one_effect_per_action(
    world: tuple[StandIn, WebhookReceiver, dict[str, str]], app_home: Path
) -> None:
    standin, hook, env = world
    rng = random.Random(2026)
    server = ServerProcess(app_home, env=env)  # no consumer child: this test runs its own
    actions: list[dict[str, Any]] = []
    kills_mid_batch = 0
    try:
        server.wait_healthy(30)
        message_ids = sorted(standin.tenant.messages)[:5]
        with server.client() as client:
            _approve_all_by_policy(client)
            for round_ in range(12):
                batch = _propose_batch(client, hook, message_ids, f"r{round_}", 20, 4, 2)
                actions += batch
                # Two deliveries of this batch applied, then no answer: the sender must not apply them again.
                # Per key, not "the next two deliveries": a retry due just before a kill is the first
                # delivery of the next round, and would otherwise be dropped round after round.
                hook.drop_after_first(rng.sample([a["key"] for a in batch if a["kind"] == "webhook"], 2))
                worker = Worker(app_home, env, app_home.parent / "worker.log")
                ids = {a["id"] for a in batch}

                def executed(ids: set[str] = ids) -> int:
                    listed = client.get("/v1/actions", params={"status": "executed", "limit": 1000}).json()
                    return sum(1 for a in listed["actions"] if a["id"] in ids)

                # A random point in the batch: after 1 to half of its actions ran (the worker runs on for
                # up to one poll, so the kill still lands with actions left on a fast machine).
                at = rng.randint(1, len(ids) // 2)
                wait_until(lambda at=at: executed() >= at, 60, f"the worker did not execute {at} actions")
                worker.kill()
                if executed() < len(ids):
                    kills_mid_batch += 1
            final = Worker(app_home, env, app_home.parent / "worker.log")
            try:

                def all_done() -> bool:
                    counts = client.get("/v1/actions", params={"limit": 1}).json()["counts"]
                    return counts.get("executed", 0) == len(actions)

                try:
                    wait_until(all_done, 120, "not every action was executed after the kills")
                except TimeoutError:
                    raise AssertionError(f"not executed after the kills: {_stuck(client, hook)}") from None
            finally:
                final.stop()
            listed = client.get("/v1/actions", params={"limit": 1000}).json()["actions"]
        assert {a["status"] for a in listed} == {"executed"}
        assert kills_mid_batch >= 10, f"only {kills_mid_batch} of 12 kills landed mid-batch"
        _assert_exactly_once(standin, hook, actions)
        assert not hook.unfired_drops(), "every planted drop happened"
        recovered = sum(1 for a in listed if a["attempts"] > 1)
        print(
            f"\n12 kills ({kills_mid_batch} mid-batch), {len(actions)} actions, {recovered} ran again "
            f"after a kill or a fault, {len(hook.deliveries)} webhook deliveries "
            f"for {len(hook.effects())} effects; "
            f"failed attempts per action: {sorted(Counter(a['failures'] for a in listed).items())}"
        )
    finally:
        server.stop()
    with LineageStore(app_home / "deskpilot.db") as lineage:
        report = lineage.verify()
        assert report.ok, report.problems
        assert report.actions_checked >= 3 * len(actions)


def test_kill_9_of_the_server_while_approving_loses_no_approved_action(
    world: tuple[StandIn, WebhookReceiver, dict[str, str]], app_home: Path
) -> None:
    """The server dies at random points while people approve actions; its consumer child goes with it
    (and the next server starts a new one). Every approval that the server answered is executed once;
    approvals it never answered are either executed or still pending, never half-done."""
    standin, hook, env = world
    rng = random.Random(7)
    env = {**env, "DESKPILOT_WORKER": "true"}
    server = ServerProcess(app_home, env=env)
    answered: set[str] = set()
    cut_short = 0  # rounds in which the kill interrupted the approvals
    try:
        server.wait_healthy(30)
        with server.client() as client:
            actions = _propose_batch(client, hook, sorted(standin.tenant.messages)[:5], "srv", 300, 10, 0)
        assert {a["status"] for a in actions} == {"pending_review"}
        for _ in range(8):
            pending = [a for a in actions if a["id"] not in answered]
            # The kill comes from another thread at a random moment, so it lands mid-request too.
            killer = threading.Timer(rng.uniform(0.05, 0.3), server.proc.send_signal, [signal.SIGKILL])
            killer.start()
            with server.client() as client:
                for action in pending:
                    try:
                        r = client.post(
                            f"/v1/actions/{action['id']}/approve", json={"reviewer": ALICE}, timeout=5
                        )
                    except httpx.TransportError:
                        cut_short += 1
                        break
                    if r.status_code in (200, 409):
                        answered.add(action["id"])
            killer.join()
            server.proc.wait(10)
            server.stop()
            server = ServerProcess(app_home, env=env)
            server.wait_healthy(30)
        with server.client() as client:
            for action in actions:  # the rest, after the last crash
                r = client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ALICE})
                assert r.status_code in (200, 409), r.text

            def all_done() -> bool:
                counts = client.get("/v1/actions", params={"limit": 1}).json()["counts"]
                return counts.get("executed", 0) == len(actions)

            try:
                wait_until(all_done, 120, "approved actions were lost")
            except TimeoutError:
                raise AssertionError(f"approved actions were lost: {_stuck(client, hook)}") from None
        assert cut_short >= 6, f"only {cut_short} of 8 kills interrupted the approvals"
        _assert_exactly_once(standin, hook, actions)
        print(f"\n8 server kills ({cut_short} mid-approvals), {len(actions)} actions executed once each")
    finally:
        server.stop(signal.SIGINT)
    # Every consumer whose server was killed stopped by itself (the kernel's SIGINT on its parent's
    # death, then at most the grace period): none is left behind holding the worker lock.
    try:
        wait_until(lambda: not _workers_of(app_home), 20, "workers outlived their killed servers")
    except TimeoutError:
        left = _workers_of(app_home)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"workers outlived their killed servers: pids {left}") from None


def test_kill_switch_mid_batch_stops_effects_and_re_enabling_resumes(
    world: tuple[StandIn, WebhookReceiver, dict[str, str]], app_home: Path
) -> None:
    standin, hook, env = world
    standin.set_faults(Faults())
    server = ServerProcess(app_home, env={**env, "DESKPILOT_WORKER": "true"})
    try:
        server.wait_healthy(30)
        with server.client() as client:
            _approve_all_by_policy(client)
            hook.delay_seconds = 0.05  # a slow receiver, so the switch lands mid-batch
            actions = _propose_batch(client, hook, [], "ks", 60, 0, 0)
            wait_until(lambda: len(hook.effects()) >= 5, 30, "the batch did not start")
            r = client.put("/v1/automations/taskpane", json={"enabled": False, "actor": ADMIN})
            assert r.status_code == 200 and r.json()["automation"]["enabled"] is False
            time.sleep(1.0)  # what was already running finishes (at most one per worker thread)
            at_switch = len(hook.effects())
            time.sleep(1.5)
            assert len(hook.effects()) == at_switch, "effects went on after the kill switch"
            held = client.get("/v1/actions", params={"status": "held", "limit": 1000}).json()["actions"]
            assert held and len(held) == len(actions) - at_switch
            assert all("kill switch" in (a["reason"] or "") for a in held)
            r = client.put("/v1/automations/taskpane", json={"enabled": True, "actor": ADMIN})
            assert sorted(r.json()["released"]) == sorted(a["id"] for a in held)
            hook.delay_seconds = 0.0

            def all_done() -> bool:
                return client.get("/v1/actions", params={"limit": 1}).json()["counts"].get(
                    "executed", 0
                ) == len(actions)

            wait_until(all_done, 60, "re-enabling did not resume")
            history = client.get(f"/v1/actions/{held[0]['id']}").json()["history"]
            assert [h["event"] for h in history] == ["proposed", "approved", "held", "released", "executed"]
        _assert_exactly_once(standin, hook, actions)
    finally:
        server.stop(signal.SIGINT)


def test_huey_alone_loses_a_task_killed_while_running_and_the_outbox_brings_it_back(
    world: tuple[StandIn, WebhookReceiver, dict[str, str]], app_home: Path
) -> None:
    """Why the outbox exists, measured: Huey removes a message from its queue when a worker takes it, so
    a worker killed mid-task leaves nothing in the queue to run it again (at most once)."""
    from deskpilot.server.core.queue import TaskQueue
    from deskpilot.server.settings import load_settings

    _, hook, env = world
    server = ServerProcess(app_home, env=env)
    try:
        server.wait_healthy(30)
        with server.client() as client:
            _approve_all_by_policy(client)
            hook.delay_seconds = 5.0  # the delivery hangs, so the kill lands while the task runs
            [action] = _propose_batch(client, hook, [], "once", 1, 0, 0)
            worker = Worker(app_home, env, app_home.parent / "worker.log")
            wait_until(lambda: hook.deliveries, 30, "the worker never delivered")
            worker.kill()
            queue = TaskQueue.sqlite(load_settings(home=app_home))
            try:
                assert queue.pending() == 0 and queue.huey.scheduled_count() == 0  # Huey has nothing left
            finally:
                queue.close()
            _next_worker_recovers(client, hook, app_home, env, action["id"])
        assert len(hook.effects()) == 1  # the hung first delivery and the retry: one effect
    finally:
        server.stop()


def test_a_graceful_stop_waits_for_a_hung_delivery_only_so_long(
    world: tuple[StandIn, WebhookReceiver, dict[str, str]], app_home: Path
) -> None:
    """SIGINT lets running actions finish, but not forever: a worker whose server crashed (it gets
    SIGINT from the kernel) must let go of the worker lock even when a receiver hangs. What it cut short
    runs again under the next worker, with one effect."""
    _, hook, env = world
    env = {**env, "DESKPILOT_GRAPH_TIMEOUT_SECONDS": "60"}  # the webhook's timeout too: the delivery hangs
    server = ServerProcess(app_home, env=env)
    try:
        server.wait_healthy(30)
        with server.client() as client:
            _approve_all_by_policy(client)
            hook.delay_seconds = 12.0  # longer than the grace period (3 s)
            [action] = _propose_batch(client, hook, [], "hung", 1, 0, 0)
            worker = Worker(app_home, env, app_home.parent / "worker.log")
            wait_until(lambda: hook.deliveries, 30, "the worker never delivered")
            started = time.monotonic()
            worker.proc.send_signal(signal.SIGINT)
            worker.proc.wait(15)  # shutdown_grace_seconds (3 s) plus the consumer's own stop
            assert time.monotonic() - started < 10, "the worker waited for the hung delivery"
            worker.stop()
            _next_worker_recovers(client, hook, app_home, env, action["id"])
        wait_until(
            lambda: len(hook.deliveries) == 2 and all(d["status"] for d in hook.deliveries),
            40,
            "the hung delivery never finished",
        )
        assert len(hook.effects()) == 1  # the hung delivery and the second one: one effect
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_server_stops_its_worker_cleanly(app_home: Path, sig: int) -> None:
    from deskpilot.server.worker import WorkerLock

    server = ServerProcess(app_home, env={"DESKPILOT_WORKER": "true"})
    try:
        server.wait_healthy(30)
        lock = WorkerLock(app_home / "worker.lock")
        pid = wait_until(
            lambda: lock.holder() if (app_home / "queue.db").exists() and lock.holder() else None,
            30,
            "the worker did not start",
        )
    finally:
        server.stop(sig)
    assert server.proc.returncode in (0, 1)  # 1: click's "Aborted!" after Ctrl+C
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker went with the server, not after it
    assert not list(app_home.glob("*-wal")), "a database was left open"


def test_a_worker_whose_server_died_without_a_signal_stops_by_itself(app_home: Path) -> None:
    """The parent-death signal can be lost (a server killed between fork and prctl, or a SIGINT swallowed
    while the worker still imports): a worker started for a server stops once it is reparented. Here the
    'server' is a plain process that never asks for the signal at all."""
    app_home.mkdir(parents=True, exist_ok=True)
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "env = {**os.environ, 'DESKPILOT_SERVER_PID': str(os.getpid())}\n"
            "subprocess.Popen([sys.executable, '-m', 'deskpilot.server.cli', 'worker'], env=env)\n"
            "time.sleep(120)\n",
        ],
        env={**os.environ, "DESKPILOT_HOME": str(app_home)},
    )
    try:
        wait_until(lambda: len(_workers_of(app_home)) == 1, 30, "the worker never started")
        (worker,) = _workers_of(app_home)
        wait_until(lambda: (app_home / "worker.lock").exists(), 30, "the worker never took its lock")
        starter.kill()
        starter.wait(10)
        wait_until(lambda: not _workers_of(app_home), 20, f"worker {worker} outlived its server")
    finally:
        starter.kill()
        for pid in _workers_of(app_home):
            os.kill(pid, signal.SIGKILL)
