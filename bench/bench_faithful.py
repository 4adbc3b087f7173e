"""What the faithfulness check adds to a summary request (inference/faithful.py, issue 15).

A 400-word email (a project update with names, dates and amounts) and a three-sentence summary of it,
one sentence made up, median and 90th percentile milliseconds over --repeats runs, after a warm-up (the
server loads the embedder at start):
- added after the last token: the server splits and embeds the email while the model writes (from its
  first token), so what is left is embedding the summary's sentences, aligning, checking the facts;
- the whole check (a cached answer, or an email embedded from scratch): splitting and embedding the
  email's sentences with all-MiniLM-L6-v2 as well;
- the part that is not the embedder (the whole check over the hash embedder).
The goal is under 150 ms added per request, on 2 cores.

Timings are wall-clock on a shared machine: the load average is printed beside them; run it idle.
Usage: python bench/bench_faithful.py [--repeats 30] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from deskpilot.indexes import HashEmbedder, SentenceTransformerEmbedder
from deskpilot.inference.faithful import Faithful, FaithfulChecker, Source
from deskpilot.server.tasks.faithful import check_summary

PARAGRAPHS = [
    "Hi Dana,",
    "Here is where the warehouse move stands after this week's calls with the vendors and the landlord. "
    "The short version is that we are on track for the move on Saturday, 14 June, but two things need a "
    "decision from you before Wednesday.",
    "First, the racking. Northgate Storage quoted 48,200 euros for new pallet racking, installed, with a "
    "delivery time of three weeks. Keller Industrial quoted 41,750 euros but cannot install before 30 June, "
    "which would leave the first two weeks of stock on the floor. I would go with Northgate; the extra "
    "cost is smaller than what two weeks of double handling would cost us.",
    "Second, the lease. The landlord, Meridian Property Group, has agreed to start the rent on 1 July "
    "instead of 1 June, as long as we sign the five-year term this month. Legal has read the draft and "
    "has no objections, apart from the clause on repairs to the loading doors, which Priya Raman is "
    "negotiating with them now. She expects an answer on Monday.",
    "The IT side is in good shape. Tomas Novak has ordered the network switches and the two access points "
    "for the loading area, and the internet line will be live on 10 June. The scanners move with the "
    "team on the Friday before the move, so we can test them over the weekend.",
    "For the staff, we have booked two buses for the first week, leaving the old site at 7:15 every "
    "morning. Eleven people have asked for parking at the new site; there are only eight spaces, so we "
    "will give them out by seniority unless you prefer another rule.",
    "The budget is still within the approved 260,000 euros. Spending so far is 118,400 euros, mostly the "
    "deposit, the movers and the network equipment. If we take the Northgate quote, the forecast at the "
    "end is 254,900 euros, which leaves a small margin for surprises.",
    "One more risk: the fire inspection of the new building is booked for 11 June, three days before the "
    "move. The landlord says the sprinklers passed last year, but if the inspector asks for changes we may "
    "have to push the move by a week, and the movers charge 1,500 euros to rebook. I will call you as soon "
    "as I hear from the inspector.",
    "Could you confirm the racking choice and the parking rule by Wednesday? I will send the final "
    "timetable to the whole team on Thursday.",
    "Thanks,",
    "Alex",
]
EMAIL = "\n\n".join(PARAGRAPHS)
SUMMARY = (
    "Alex says the warehouse move is on track for Saturday, 14 June. "
    "Northgate Storage quoted 38,000 euros for the racking, installed in three weeks. "
    "Dana should confirm the racking choice and the parking rule by Wednesday."
)


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch threads for batches (default: one per core)")
    args = parser.parse_args()
    print(f"email: {len(EMAIL.split())} words; summary: 3 sentences; cores: {os.cpu_count()}")
    embedder = SentenceTransformerEmbedder(threads=args.threads)
    began = time.perf_counter()
    embedder.warm_up()
    print(f"embedder load (once, at server start): {time.perf_counter() - began:.1f} s")
    minilm = FaithfulChecker(embedder)
    source = minilm.source([EMAIL])
    print(f"email sentences: {len(source.sentences)}")
    runs: list[tuple[str, FaithfulChecker, Source | None]] = [
        ("added after the last token (email embedded while the model writes)", minilm, source),
        ("the whole check, MiniLM", minilm, None),
        ("the whole check, hash embedder (all but MiniLM)", FaithfulChecker(HashEmbedder()), None),
    ]
    for name, checker, prepared in runs:

        def run(checker: FaithfulChecker = checker, prepared: Source | None = prepared) -> Faithful:
            return check_summary(checker, [EMAIL], SUMMARY, length="sentences", sentences=3, source=prepared)

        result = run()
        median, p90 = timed(run, args.repeats)
        print(
            f"{name}: median {median:.1f} ms, p90 {p90:.1f} ms over {args.repeats} runs; "
            f"kept {[s.kind for s in result.sentences]}, dropped {len(result.dropped)}"
        )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
