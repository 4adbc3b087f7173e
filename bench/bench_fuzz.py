"""A longer schemathesis run than the test suite's (tests/test_fuzz.py): the same app, document, checks and
allowances, with more examples per operation and a seed of your choice.

Prints the operations tested, the cases run (by phase), the failures with a curl command to reproduce
each, and the run time. Exit status 1 if anything failed.

    python bench/bench_fuzz.py                      # 200 examples per operation, seed 13
    python bench/bench_fuzz.py --examples 1000 --seed 7
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_fuzz import SEED, fuzz_app, run_schemathesis


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=200, help="examples per operation (default 200)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"the seed (default {SEED}, the suite's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["DESKPILOT_HOME"] = str(home)
        os.environ["DESKPILOT_INDEX_ROOTS"] = tmp  # never the user's Documents folder
        figures = run_schemathesis(fuzz_app(home), max_examples=args.examples, seed=args.seed)
    phases = ", ".join(f"{phase} {cases}" for phase, cases in figures.by_phase.items())
    print(f"schemathesis {args.examples} examples per operation, seed {args.seed}")
    print(f"  operations  {figures.operations}")
    print(f"  cases       {figures.cases} ({phases})")
    print(f"  failures    {figures.failures}")
    print(f"  time        {figures.seconds} s")
    for line in figures.report:
        print(line)
    return 1 if figures.report else 0


if __name__ == "__main__":
    sys.exit(main())
