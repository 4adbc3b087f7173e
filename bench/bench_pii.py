"""What PII tokenization costs and how much it finds (inference/pii.py, issue 14).

1. Load: a fresh interpreter builds the detector (imports Presidio, which imports spaCy, and torch and
   transformers where they are installed, as they are here) and masks one line; then, in that process,
   the same after torch is already loaded, as it is in the server once the index has been used.
2. A 2,000-word email (business prose with a header, greeting, signature and 12 personal values): median
   and 90th percentile milliseconds to mask it, over --repeats runs; restore of the masked text; streaming
   restore of it in 4-character deltas, against joining the deltas with no restorer.
3. The planted set (tests/data/pii/planted.jsonl): recall per category, the PERSON figure split by whether
   the first name is in the shipped given-name list, and precision (detections overlapping no planted
   value of their category count against it).

Timings are wall-clock on a shared machine: the load average is printed beside them; run it idle.
Usage: python bench/bench_pii.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_pii import planted, score

from deskpilot.inference.pii import PiiDetector, Redaction

HEADER = """From: "Okafor, Ngozi" <ngozi.okafor@northwind.example.com>
To: Priya Shah <priya.shah@example.com>
Subject: Q3 vendor review: open items before the renewal

Hi Priya,

"""
PERSONAL = (
    "If anything is unclear, call me on +44 20 7946 0958 or my mobile 07700 900461. The refund goes to "
    "IBAN GB82 WEST 1234 5698 7654 32; the card we hold on file, 4111 1111 1111 1111, will not be charged "
    "again. Returns go to 221B Baker Street, London NW1 6XE, attention of Marco Rossi "
    "(m.rossi@acme.example). "
)
SENTENCES = [
    "The quarterly review covered revenue, churn and the hiring plan for the next two quarters.",
    "We agreed to move the vendor renewal to the spring and to revisit pricing after the pilot ends.",
    "Invoice INV-2024-0457 for $12,480.00 was approved on 12/03/2024; three line items stay open.",
    "The migration of the reporting stack slipped by two weeks because the data contracts were late.",
    "Support tickets fell by 14% after the new onboarding guide went out in version 3.2.",
    "Legal asked for the updated data processing agreement before anything else is signed.",
    "Purchase order 4500123456 covers the first 2,500 seats; the rest follows in the next budget cycle.",
    "Our team will send the revised forecast by Thursday, with the assumptions spelled out in the appendix.",
    "The steering committee meets on 15 March at 14:30 to decide on the second phase.",
    "Please treat the attached figures as preliminary until finance has closed the month.",
]
SIGNATURE = "\n\nBest regards,\nNgozi Okafor\nHead of Procurement\n"


def email_of(words: int) -> str:
    body: list[str] = []
    count = len(HEADER.split()) + len(PERSONAL.split()) + len(SIGNATURE.split())
    index = 0
    while count < words:
        sentence = SENTENCES[index % len(SENTENCES)]
        body.append(sentence + ("\n\n" if index % 5 == 4 else " "))
        count += len(sentence.split())
        index += 1
    middle = len(body) // 2
    return HEADER + "".join(body[:middle]) + PERSONAL + "".join(body[middle:]) + SIGNATURE


def load_seconds(prelude: str = "") -> float:
    """Seconds for a fresh interpreter, after `prelude`, to import and build the detector and mask a line."""
    code = (
        f"{prelude}import time; t = time.perf_counter(); "
        "from deskpilot.inference.pii import PiiDetector, Redaction; "
        "Redaction(PiiDetector()).mask('Hi Priya,'); print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def timed(repeats: int, work: Callable[[], object]) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        runs.append((time.perf_counter() - start) * 1000)
    return runs


def summary(runs: list[float]) -> str:
    ordered = sorted(runs)
    return (
        f"median {statistics.median(ordered):7.2f} ms, p90 {ordered[int(0.9 * (len(ordered) - 1))]:7.2f} ms"
    )


def timings(detector: PiiDetector, repeats: int) -> None:
    text = email_of(2000)
    masked = Redaction(detector).mask(text)
    redaction = Redaction(detector)
    redaction.mask(text)
    print(f"2,000-word email ({len(text.split())} words, {len(text)} characters): {redaction.counts}")
    print(f"  find:    {summary(timed(repeats, lambda: detector.find(text)))}")
    masking = summary(timed(repeats, lambda: Redaction(detector).mask(text)))
    print(f"  mask:    {masking}   <- the time added to a request")
    print(f"  restore: {summary(timed(repeats, lambda: redaction.restore(masked)))}")
    deltas = [masked[i : i + 4] for i in range(0, len(masked), 4)]

    def streamed() -> None:
        restorer = redaction.restorer()
        "".join(restorer.feed(delta) for delta in deltas) + restorer.flush()

    plain = statistics.median(timed(repeats, lambda: "".join(deltas)))
    restored = statistics.median(timed(repeats, streamed))
    print(
        f"  stream:  {len(deltas)} deltas of 4 characters, {restored:.2f} ms with the restorer vs "
        f"{plain:.3f} ms joined plainly = {(restored - plain) * 1000 / len(deltas):.2f} us per delta"
    )


def quality(detector: PiiDetector) -> None:
    recall, detected, spurious = score(detector)
    records = list(planted())
    print(f"planted set: {len(records)} texts, {sum(len(r['pii']) for r in records)} values")
    for category, (hit, total) in recall.items():
        found = detected[category]
        precision = (found - spurious[category]) / found if found else float("nan")
        rate = f"{hit:4}/{total:<4} = {hit / total:.3f}"
        print(f"  {category:8} recall {rate}   precision {precision:.3f} ({found} found)")
    given = set(
        resources.files("deskpilot.inference").joinpath("data", "given_names.txt").read_text().split()
    )
    split: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}
    for record in records:
        spans = detector.find(record["text"])
        for start, end, category in record["pii"]:
            if category != "PERSON":
                continue
            covered = {i for s in spans if s.category == "PERSON" for i in range(s.start, s.end)}
            listed = record["text"][start:end].split()[0] in given
            split[listed][0] += set(range(start, end)) <= covered
            split[listed][1] += 1
    for listed, (hit, total) in split.items():
        where = "in" if listed else "not in"
        print(f"  PERSON, first word {where} the given-name list: {hit}/{total} = {hit / total:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"load, fresh interpreter (Presidio imports spaCy, torch, transformers): {load_seconds():.2f} s")
    warm = load_seconds("import torch, transformers; ")
    print(f"load, torch and transformers already imported (the server after indexing): {warm:.2f} s")
    detector = PiiDetector()
    detector.load()
    timings(detector, args.repeats)
    quality(detector)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
