"""`python -m prober.demo`: run the sample API in the foreground.

Prints `sample API listening on http://HOST:PORT` (flushed) once the socket
listens, then serves until SIGINT or SIGTERM and exits 0. A bad flag (such as an
unreadable `--fault`) exits 2; a port that cannot be bound exits 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from prober.demo.api import (
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    DEFAULT_VERSION,
    Fault,
    SampleAPI,
    parse_fault_spec,
)


def _fault(spec: str) -> tuple[str, Fault]:
    try:
        return parse_fault_spec(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be an integer in 0-65535, got {text!r}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prober.demo",
        description="Run the bundled sample API (a stand-in Mirror Collective API).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    add("--port", type=_port, default=8000, help="0 picks a free port (default: %(default)s)")
    add(
        "--version",
        dest="api_version",
        default=DEFAULT_VERSION,
        help="version reported by /health (default: %(default)s)",
    )
    add("--email", default=DEFAULT_EMAIL, help="login e-mail (default: %(default)s)")
    add("--password", default=DEFAULT_PASSWORD, help="login password (default: %(default)s)")
    add(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="ROUTE:error_rate=R,status=S,delay=D",
        help='inject a fault on a route ("*" for all); repeatable, the last for a route wins',
    )
    add("--seed", type=int, default=None, help="seed for the fault dice")
    add("--access-log", action="store_true", help="log each request to stderr")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Treat SIGTERM like Ctrl-C: unwind through serve_forever's clean-up.
    raise KeyboardInterrupt


def _announce(api: SampleAPI) -> None:
    print(f"sample API listening on {api.url}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until interrupted; the process exit code."""
    args = _parser().parse_args(argv)
    api = SampleAPI(
        host=args.host,
        port=args.port,
        email=args.email,
        password=args.password,
        version=args.api_version,
        faults=dict(args.fault),
        seed=args.seed,
        access_log=args.access_log,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        api.serve_forever(on_ready=_announce)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"python -m prober.demo: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
