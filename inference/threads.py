"""How many threads llama.cpp should use for the next request: as many as there are cores free right now.

A llama.cpp forward pass splits every layer over its threads and waits at a barrier after each step, so
the pass runs at the pace of its slowest thread. On a 2-core laptop where another process keeps one core
busy, a second llama.cpp thread shares that core and gets half of it: measured for issue 14, a 400-word
summary took 5.65 s with 2 threads and 2.73 s with 1 (1.57 s on 2 idle cores). No fixed count is right
for both moments, so the count is chosen per request from the CPU that is free when it starts.

"Free" is what the CPUs this process may run on did not spend on other processes' work over the last
second or so: their busy time (from `/proc/stat` through psutil) minus this process's own CPU time. Our
own time is taken out because the threads of the previous request would otherwise count as a busy
neighbour and make the next request pick fewer threads on an idle machine. (Other work in this process,
an embedding batch say, is therefore counted as free; it is ours to schedule, not a neighbour's.)

The rule: threads = floor(free + MARGIN), between 1 and the most the backend was set up for. The margin
absorbs measuring noise and light background work (a browser tab, the sampler itself), so that an idle
machine gets all its cores; a process holding a core, or most of one, takes one away. It is small on
purpose: the two ways of being wrong are not alike. One thread too few on an idle 2-core machine costs
about 1.7x; one too many beside a neighbour stalls at every barrier. Beside a process spinning half the
time, 1 and 2 threads tie on a quiet machine (2.67 s and 2.68 s, bench/bench_threads.py --half), but
while other load came and went 2 threads took 2.2-17 s and 1 thread 2.7-4.5 s.

The request path must not wait for a measurement: `CpuSampler` takes a snapshot of the counters in a
background thread four times a second, and a choice compares a fresh snapshot (about 0.1 ms) with the
oldest one kept, about a second old. `free_cores()` and `choose_threads()` without a sampler measure
once, blocking for `sample_s`: for one-off reports such as `deskpilot doctor`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from typing import NamedTuple

import msgspec
import psutil

__all__ = [
    "MARGIN",
    "CpuSampler",
    "ThreadChoice",
    "choose_threads",
    "free_cores",
    "threads_for",
    "usable_cpus",
]

# Added to the free cores before rounding down: 1.8 free cores still get 2 threads, 1.0-1.7 get 1.
MARGIN = 0.25
# Seconds between background snapshots, and how many are kept: a choice looks back about a second, long
# enough that the 10 ms resolution of the kernel's counters is noise of 1-2%, short enough to see a
# neighbour that has just started.
_PERIOD = 0.25
_KEPT = 5
# A window shorter than this is mostly counter resolution; a choice waits until it has this much.
_MIN_WINDOW = 0.05


class ThreadChoice(msgspec.Struct, frozen=True, kw_only=True):
    """A thread count and why: what `doctor` and `models test` print, and what a backend applied."""

    threads: int
    cores: int  # CPUs this process may run on
    free: float | None  # cores other processes left free; None when the count is fixed by configuration
    max_threads: int

    def describe(self) -> str:
        plural = "" if self.threads == 1 else "s"
        if self.free is None:
            return f"{self.threads} thread{plural} (fixed by the `threads` setting)"
        return f"{self.cores} cores, {self.free:.1f} free → {self.threads} thread{plural}"


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity where the OS has one, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(psutil.cpu_count() or 1))


def threads_for(free: float, max_threads: int) -> int:
    """The rule: as many threads as there are free cores (plus `MARGIN`), at least 1, at most
    `max_threads`."""
    if max_threads < 1:
        raise ValueError(f"max_threads must be at least 1, got {max_threads}")
    return max(1, min(max_threads, math.floor(free + MARGIN)))


class _Snapshot(NamedTuple):
    at: float  # time.monotonic()
    busy: float  # CPU seconds the usable CPUs have spent busy, all processes
    own: float  # CPU seconds this process has used, all its threads


def _snapshot(cpus: list[int]) -> _Snapshot:
    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for cpu in cpus:
        if cpu < len(per_cpu):
            t = per_cpu[cpu]
            # psutil's own notion of busy: everything but idle and I/O wait. Steal (time the hypervisor
            # gave away) counts as busy, since we cannot have it; guest time is already inside user.
            total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
            busy += total - t.idle - getattr(t, "iowait", 0.0)
    own = os.times()
    return _Snapshot(time.monotonic(), busy, own.user + own.system)


def _free_between(old: _Snapshot, new: _Snapshot, cores: int) -> float:
    """Cores left free by other processes between two snapshots, within [0, cores]."""
    elapsed = new.at - old.at
    if elapsed <= 0:
        return float(cores)
    others = ((new.busy - old.busy) - (new.own - old.own)) / elapsed
    return min(float(cores), max(0.0, cores - others))


def free_cores(sample_s: float = 0.05) -> float:
    """Cores other processes leave free, measured now over `sample_s` seconds (blocking). Noisy below
    ~0.05 s: the kernel counts CPU time in 10 ms ticks."""
    cpus = usable_cpus()
    first = _snapshot(cpus)
    time.sleep(sample_s)
    return _free_between(first, _snapshot(cpus), len(cpus))


class CpuSampler:
    """Snapshots of CPU time in a background thread, so that `free_cores()` answers without waiting.

    One per backend that chooses its threads; `close()` stops the thread (it is a daemon, so a sampler
    that is never closed does not keep the process alive).
    """

    def __init__(self) -> None:
        self._cpus = usable_cpus()
        self._kept: deque[_Snapshot] = deque([_snapshot(self._cpus)], maxlen=_KEPT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deskpilot-cpu-sampler", daemon=True)
        self._thread.start()

    @property
    def cores(self) -> int:
        return len(self._cpus)

    def _run(self) -> None:
        while not self._stop.wait(_PERIOD):
            self._kept.append(_snapshot(self._cpus))

    def free_cores(self) -> float:
        """Cores other processes left free over about the last second (less just after start)."""
        oldest = self._kept[0]  # deque reads and appends are atomic; there is always one
        now = _snapshot(self._cpus)
        if now.at - oldest.at < _MIN_WINDOW:  # only right after start
            time.sleep(_MIN_WINDOW - (now.at - oldest.at))
            now = _snapshot(self._cpus)
        return _free_between(oldest, now, len(self._cpus))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def choose_threads(max_threads: int, sampler: CpuSampler | None = None) -> ThreadChoice:
    """The thread count for a request starting now (`threads_for` of the free cores). With a `sampler`
    this costs about 0.1 ms; without, it measures for 50 ms."""
    free = sampler.free_cores() if sampler is not None else free_cores()
    cores = sampler.cores if sampler is not None else len(usable_cpus())
    return ThreadChoice(
        threads=threads_for(free, max_threads), cores=cores, free=free, max_threads=max_threads
    )
