"""Threads per request from the free CPU (inference/threads.py) and the llama.cpp backend applying them.

The rule is pure arithmetic (unit). The measurement is checked against real CPU load: a child process
spinning on a core must cost the chooser a thread (process), and this process's own busy threads must
not (integration: our own llama.cpp threads must never look like a busy neighbour). The model test checks
that the count chosen is the one llama.cpp runs with, and that it does not change the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from deskpilot.inference import Email, Finished, GenerationRequest, Token, summarize_job
from deskpilot.inference.threads import (
    MARGIN,
    CpuSampler,
    ThreadChoice,
    choose_threads,
    free_cores,
    threads_for,
    usable_cpus,
)

# --- the rule -------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("free", "max_threads", "threads"),
    [
        (2.0, 2, 2),  # idle 2-core laptop: both cores
        (2.0 - MARGIN, 2, 2),  # light background work keeps both
        (1.7, 2, 1),  # most of a core taken: one thread
        (1.0, 2, 1),  # one core held by a busy process
        (0.3, 2, 1),  # everything busy: still one thread, never zero
        (0.0, 8, 1),
        (5.9, 8, 6),
        (16.0, 8, 8),  # never more than the backend's most
        (3.0, 1, 1),
    ],
)
def test_threads_follow_the_free_cores(free: float, max_threads: int, threads: int) -> None:
    assert threads_for(free, max_threads) == threads


@pytest.mark.unit
def test_max_threads_must_allow_one() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1, got 0"):
        threads_for(2.0, 0)


@pytest.mark.unit
def test_a_choice_describes_itself() -> None:
    chosen = ThreadChoice(threads=1, cores=2, free=1.08, max_threads=2)
    assert chosen.describe() == "2 cores, 1.1 free → 1 thread"
    both = ThreadChoice(threads=2, cores=2, free=1.96, max_threads=2)
    assert both.describe() == "2 cores, 2.0 free → 2 threads"
    fixed = ThreadChoice(threads=3, cores=4, free=None, max_threads=3)
    assert fixed.describe() == "3 threads (fixed by the `threads` setting)"


@pytest.mark.unit
def test_the_sampler_answers_at_once_and_stops() -> None:
    sampler = CpuSampler()
    try:
        free = sampler.free_cores()  # right after start it waits for a 50 ms window, no longer
        assert 0.0 <= free <= sampler.cores == len(usable_cpus())
        time.sleep(0.3)  # a background snapshot exists now
        start = time.perf_counter()
        chosen = choose_threads(sampler.cores, sampler)
        assert time.perf_counter() - start < 0.005  # the goal is < 1 ms; generous for a loaded machine
        assert 1 <= chosen.threads <= sampler.cores and chosen.free is not None
    finally:
        sampler.close()
    assert not any(t.name == "deskpilot-cpu-sampler" for t in threading.enumerate())


# --- the measurement ------------------------------------------------------------------------------------


@pytest.fixture
def busy_neighbour() -> Iterator[None]:
    """Another process keeping one core busy, as a compiler or a video call would."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs at least 2 CPUs: with one, a busy neighbour leaves no thread to take away")
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # started and spinning
        yield
    finally:
        child.kill()
        child.wait()


@pytest.mark.process
def test_a_busy_neighbour_costs_a_thread(busy_neighbour: None) -> None:
    cores = len(usable_cpus())
    sampler = CpuSampler()
    try:
        time.sleep(1.3)  # a full window of snapshots with the neighbour spinning
        chosen = choose_threads(cores, sampler)
    finally:
        sampler.close()
    assert chosen.free is not None and chosen.free <= cores - 0.75, chosen.describe()
    assert chosen.threads < cores, chosen.describe()  # on a 2-core laptop: 1
    assert choose_threads(cores).threads < cores  # the one-off measurement (doctor) agrees


@pytest.mark.integration
def test_our_own_busy_threads_are_not_a_neighbour() -> None:
    """A thread of this process spinning through the sample counts as free, although the machine as a
    whole (measured over the same second) saw it busy: so our own llama.cpp threads, still finishing a
    request, never make the next one take fewer threads."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.1)
        cpus = usable_cpus()
        mine, before, start = os.times(), psutil.cpu_times(percpu=True), time.monotonic()
        free = free_cores(1.0)
        mine_after, after, elapsed = os.times(), psutil.cpu_times(percpu=True), time.monotonic() - start
    finally:
        stop.set()
        spinner.join()
    own = (mine_after.user + mine_after.system - mine.user - mine.system) / elapsed
    idle = sum(after[c].idle + after[c].iowait - before[c].idle - before[c].iowait for c in cpus) / elapsed
    assert own > 0.2, f"the spinner hardly ran ({own:.2f} cores): the machine is saturated"
    assert free - idle >= 0.7 * own, f"free {free:.2f}, idle {idle:.2f}, ours {own:.2f}: ours counted as busy"


# --- the llama.cpp backend ------------------------------------------------------------------------------


def _summary_request() -> GenerationRequest:
    body = (
        "Hi team, the quarterly review moves to Thursday at 10:00 in room 4B. Please bring the updated "
        "sales figures and the hiring plan; Maria will present the budget. Lunch is provided."
    )
    return summarize_job(context_length=2048, email=Email(body=body, subject="Review moved")).request


async def _text(backend: object, request: GenerationRequest) -> str:
    parts = []
    async for item in backend.stream(request):  # type: ignore[attr-defined]
        if isinstance(item, Token):
            parts.append(item.text)
        assert isinstance(item, Token | Finished)
    return "".join(parts)


@pytest.mark.model
@pytest.mark.anyio
async def test_llama_runs_with_the_threads_it_chose(busy_neighbour: None) -> None:
    """Beside a busy neighbour the adaptive backend runs on fewer threads than cores, llama.cpp reports
    that count, and the summary is the same as with a fixed count (ggml splits work by rows, so the
    thread count does not change the arithmetic)."""
    from llama_cpp import llama_n_threads, llama_n_threads_batch

    from deskpilot.inference.llama import LlamaCppBackend, default_threads

    request = _summary_request()
    most = default_threads()
    fixed = LlamaCppBackend(context_length=2048, threads=most)
    try:
        expected = await _text(fixed, request)
        assert fixed.last_threads is not None and fixed.last_threads.free is None
        assert fixed.last_threads.threads == most == llama_n_threads(fixed._llm._ctx.ctx)
    finally:
        fixed.close()

    adaptive = LlamaCppBackend(context_length=2048)  # no `threads`: chosen per request
    try:
        time.sleep(1.3)  # the sampler's window covers the neighbour
        assert adaptive.threads_for_next().threads < most
        assert await _text(adaptive, request) == expected
        chosen = adaptive.last_threads
        assert chosen is not None and chosen.free is not None and chosen.threads < most, chosen
        ctx = adaptive._llm._ctx.ctx
        assert llama_n_threads(ctx) == llama_n_threads_batch(ctx) == chosen.threads
    finally:
        adaptive.close()
