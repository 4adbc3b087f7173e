"""`python -m deskpilot.server.connectors.standin --port 8910`: run the Graph stand-in until Ctrl+C."""

from __future__ import annotations

import argparse
import contextlib
import sys

from deskpilot.server.connectors.standin import FAULT_KINDS, Faults, StandIn, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deskpilot.server.connectors.standin", description=__doc__
    )
    parser.add_argument("--port", type=int, default=8910)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--page-size", type=int, default=25)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction of Graph requests that fail")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated kinds to inject")
    parser.add_argument("--retry-after", type=int, default=1, help="seconds in 429 Retry-After")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--authority-host", default="https://login.standin.test")
    args = parser.parse_args(argv)
    faults = Faults(
        rate=args.fault_rate,
        kinds=dict.fromkeys(filter(None, args.faults.split(",")), 1.0),
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
    )
    standin = StandIn(
        generate(seed=args.seed, messages=args.messages, files=args.files, events=args.events),
        port=args.port,
        faults=faults,
        authority_host=args.authority_host,
        max_page_size=args.page_size,
    )
    print(
        f"Graph stand-in on {standin.url} (Ctrl+C stops). Point Deskpilot at it with:\n"
        f"  DESKPILOT_GRAPH_CLIENT_ID=standin DESKPILOT_GRAPH_BASE_URL={standin.graph_url} "
        f"DESKPILOT_GRAPH_AUTHORITY_HOST={standin.authority_host} "
        f"DESKPILOT_GRAPH_AUTHORITY_LOOPBACK={standin.url}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        standin.serve_forever()


if __name__ == "__main__":
    main()
