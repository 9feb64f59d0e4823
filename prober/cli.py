"""The `prober` command: parses arguments and calls into the parts; no logic of its own.

Exit codes: 0 success; 1 a journey failed or a gate was missed; 2 a config or usage
error (printed as `path: message`, never a traceback). Every flag has a `PROBER_*`
environment twin (`--base-url` ↔ `PROBER_BASE_URL`, `--journey` ↔ `PROBER_JOURNEY`
as a comma-separated list); a flag on the command line wins. A twin is checked like its
flag, but only by the commands that have the flag: a malformed one is a usage error naming
the variable. A usage error is one line on stderr (`prober COMMAND: what is wrong`), no
usage text: `prober COMMAND --help` has that.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from prober.errors import ConfigError, StateError, UsageError
from prober.redaction import redact

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"PROBER_{name}")
    return default if value is None else _EnvValue(value, f"PROBER_{name}")


class _EnvValue(str):
    """A default taken from the environment: remembers its variable for error messages."""

    variable: str

    def __new__(cls, value: str, variable: str) -> _EnvValue:
        text = super().__new__(cls, value)
        text.variable = variable
        return text


def _checked(kind: str, convert: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse `type=` that converts a flag's value or its env twin's (argparse
    converts a string default too), naming the variable when the twin is wrong."""

    def check(text: str) -> object:
        try:
            return convert(text)
        except ValueError as error:
            detail = str(error) or f"expected {kind}, got {text!r}"
            if isinstance(text, _EnvValue):
                raise argparse.ArgumentTypeError(f"{text.variable}: {detail}") from None
            raise argparse.ArgumentTypeError(detail) from None

    check.__name__ = kind
    return check


def _integer(minimum: int) -> Callable[[str], object]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return _checked("a whole number", convert)


def _one_of(*choices: str) -> Callable[[str], object]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return _checked("one of " + ", ".join(choices), convert)


def _duration(text: str) -> float:
    from prober.units import parse_duration

    return parse_duration(text)


def _listen(text: str) -> tuple[str, int]:
    from prober.server import parse_listen

    return parse_listen(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage text (`--help` has it)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {redact(message)}\n")


def _prober_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~40 ms: only when asked

    try:
        return version("prober")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class _VersionAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"prober {_prober_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prober",
        description="Synthetic journey probing and SLO evaluation.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "-c",
            "--config",
            default=_env("CONFIG"),
            required=_env("CONFIG") is None,
            metavar="FILE",
            help="config file (PROBER_CONFIG)",
        )

    validate = commands.add_parser("validate", help="check a config file and explain it")
    with_config(validate)

    run_once = commands.add_parser("run-once", help="run journeys now and exit 0 if all passed")
    with_config(run_once)
    journeys = _env("JOURNEY")
    run_once.add_argument(
        "--journey",
        action="append",
        metavar="NAME",
        default=[name for name in (journeys or "").split(",") if name] or None,
        help="run only this journey (repeatable; default all) (PROBER_JOURNEY)",
    )
    run_once.add_argument(
        "--iterations",
        type=_integer(1),
        default=_env("ITERATIONS", "1"),
        metavar="N",
        help="runs of each journey (PROBER_ITERATIONS)",
    )
    run_once.add_argument(
        "--base-url",
        default=_env("BASE_URL"),
        metavar="URL",
        help="override target.base_url (PROBER_BASE_URL)",
    )
    run_once.add_argument(
        "--json",
        default=_env("JSON"),
        metavar="FILE",
        dest="json_path",
        help="write the JSON report here (PROBER_JSON)",
    )
    run_once.add_argument(
        "--junit",
        default=_env("JUNIT"),
        metavar="FILE",
        dest="junit_path",
        help="write a JUnit XML report here (PROBER_JUNIT)",
    )
    run_once.add_argument(
        "--wait-ready",
        default=_env("WAIT_READY"),
        metavar="DURATION",
        help="first poll the first step until it passes, e.g. 2m (PROBER_WAIT_READY)",
    )
    run = commands.add_parser(
        "run", help="the daemon: probe on schedule, serve /metrics and status"
    )
    with_config(run)
    run.add_argument(
        "--state",
        default=_env("STATE"),
        metavar="FILE",
        help="the state file (SQLite; default: the config's state_path) (PROBER_STATE)",
    )
    _daemon_flags(run, default_listen=_env("LISTEN", "0.0.0.0:9469") or "0.0.0.0:9469")

    demo = commands.add_parser(
        "demo", help="start the bundled sample API and the daemon against it"
    )
    _daemon_flags(demo, default_listen=_env("LISTEN", "127.0.0.1:9469") or "127.0.0.1:9469")
    demo.add_argument(
        "--api-port",
        type=_integer(0),
        default=_env("API_PORT", "0"),
        metavar="PORT",
        help="sample API port (default: a free one) (PROBER_API_PORT)",
    )
    demo.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE:SPEC",
        help="start the sample API broken, e.g. /health:error_rate=0.5,status=503,delay=0.2",
    )
    replay = commands.add_parser(
        "replay",
        help="feed recorded journey results through the SLO engine; print the alert timeline",
    )
    with_config(replay)
    replay.add_argument(
        "--events",
        default=_env("EVENTS"),
        required=_env("EVENTS") is None,
        metavar="FILE.jsonl",
        help="recorded results, one JSON object a line (PROBER_EVENTS)",
    )
    replay.add_argument(
        "--windows",
        type=_one_of("exact", "daemon"),
        metavar="{exact,daemon}",
        default=_env("WINDOWS", "exact"),
        help="exact: DESIGN's definition, every event kept (default); daemon: the bounded "
        "timelines `prober run` keeps, to backtest what the daemon would do (PROBER_WINDOWS)",
    )
    replay.add_argument(
        "--restart-every",
        default=_env("RESTART_EVERY"),
        metavar="DURATION",
        help="checkpoint and resume the engine this often, as a pod restart does "
        "(PROBER_RESTART_EVERY)",
    )
    rules = commands.add_parser(
        "rules", help="Prometheus recording and alerting rules for every SLO and rule"
    )
    with_config(rules)
    rules.add_argument(
        "--format",
        type=_one_of("prometheus", "prometheusrule"),
        metavar="{prometheus,prometheusrule}",
        default=_env("FORMAT", "prometheus"),
        dest="rule_format",
        help="a rule file (default) or a Prometheus Operator PrometheusRule (PROBER_FORMAT)",
    )
    rules.add_argument(
        "--inhibit-rules",
        action="store_true",
        default=_env_flag("INHIBIT_RULES"),
        help="write the Alertmanager inhibit_rules snippet instead (PROBER_INHIBIT_RULES)",
    )
    _output_flag(rules)
    dashboard = commands.add_parser("dashboard", help="a Grafana dashboard for the config")
    with_config(dashboard)
    _output_flag(dashboard)
    export = commands.add_parser(
        "export", help="write the recorded journey results as JSON lines (the replay input)"
    )
    with_config(export)
    export.add_argument(
        "--state",
        default=_env("STATE"),
        metavar="FILE",
        help="the state file (default: the config's state_path) (PROBER_STATE)",
    )
    export.add_argument(
        "--since",
        default=_env("SINCE"),
        metavar="DURATION",
        help="only the results of the last DURATION, e.g. 2h (default all) (PROBER_SINCE)",
    )
    return parser


def _env_flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _output_flag(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "-o",
        "--output",
        default=_env("OUTPUT"),
        metavar="FILE",
        help="write here instead of to standard output (PROBER_OUTPUT)",
    )


def _daemon_flags(sub: argparse.ArgumentParser, *, default_listen: str) -> None:
    sub.add_argument(
        "--listen",
        type=_checked("HOST:PORT", _listen),
        default=default_listen,
        metavar="HOST:PORT",
        help=f"serve /metrics and status here (default {default_listen}) (PROBER_LISTEN)",
    )
    sub.add_argument(
        "--log-format",
        type=_one_of("json", "text"),
        metavar="{json,text}",
        default=_env("LOG_FORMAT", "json"),
        help="json lines (default) or text for people (PROBER_LOG_FORMAT)",
    )
    sub.add_argument(
        "--log-level",
        type=_one_of("debug", "info", "warning", "error"),
        metavar="{debug,info,warning,error}",
        default=_env("LOG_LEVEL", "info"),
        help="(PROBER_LOG_LEVEL)",
    )
    sub.add_argument(
        "--grace",
        type=_checked("a duration", _duration),
        default=_env("GRACE", "10s"),
        metavar="DURATION",
        help="how long in-flight runs may finish at shutdown (PROBER_GRACE)",
    )
    sub.add_argument(
        "--max-connections",
        type=_integer(1),
        default=_env("MAX_CONNECTIONS", str(DEFAULT_MAX_CONNECTIONS)),
        metavar="N",
        help="connections the endpoints serve at once; more are closed "
        f"(default {DEFAULT_MAX_CONNECTIONS}) (PROBER_MAX_CONNECTIONS)",
    )
    sub.add_argument(
        "--read-timeout",
        type=_checked("a duration", _positive_duration),
        default=_env("READ_TIMEOUT", f"{DEFAULT_READ_TIMEOUT:g}s"),
        metavar="DURATION",
        help="time a connection has to send each request head, and for each write "
        f"(default {DEFAULT_READ_TIMEOUT:g}s) (PROBER_READ_TIMEOUT)",
    )


# Kept in step with prober.server (pinned by a test), which is not imported for --help.
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_READ_TIMEOUT = 10.0


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got {text!r}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "run-once":
            return _run_once(args)
        if args.command == "run":
            return _run(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "export":
            return _export(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "dashboard":
            return _dashboard(args)
    except ConfigError as error:
        for issue in error.issues:
            print(redact(str(issue)), file=sys.stderr)
        print(f"prober: {len(error.issues)} config error(s)", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, StateError) as error:
        print(f"prober: {redact(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


def _validate(args: argparse.Namespace) -> int:
    from prober.config import load_config
    from prober.explain import explain_config

    config = load_config(args.config)
    print(redact(explain_config(config)), end="")
    return EXIT_OK


def _run_once(args: argparse.Namespace) -> int:
    from prober.config import load_config
    from prober.run_once import RunOnceOptions, run_once
    from prober.units import parse_duration

    wait_ready = None
    if args.wait_ready:
        try:
            wait_ready = parse_duration(args.wait_ready)
        except ValueError as error:
            raise UsageError(f"--wait-ready: {error}") from None
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url must be an http:// or https:// URL, got {args.base_url!r}")
    config = load_config(args.config)
    options = RunOnceOptions(
        journeys=tuple(args.journey or ()),
        iterations=args.iterations,
        base_url=args.base_url,
        json_path=args.json_path,
        junit_path=args.junit_path,
        wait_ready=wait_ready,
    )
    return run_once(config, options, out=sys.stdout, err=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    import json

    from prober.config import load_config
    from prober.replay import read_events, replay, transition_records
    from prober.units import parse_duration

    config = load_config(args.config)
    try:
        with open(args.events, encoding="utf-8") as lines:
            events = read_events(lines, args.events)
    except OSError as error:
        raise UsageError(f"--events: cannot read {args.events}: {error.strerror}") from None
    known = {journey.name for journey in config.journeys}
    unknown = sorted({event.journey for event in events} - known)
    if unknown:
        print(
            f"prober: skipping events of journeys not in the config: {', '.join(unknown)}",
            file=sys.stderr,
        )
    restart_every = None
    if args.restart_every is not None:
        try:
            restart_every = parse_duration(args.restart_every)
        except ValueError as error:
            raise UsageError(f"--restart-every: {error}") from None
        if restart_every <= 0:
            raise UsageError("--restart-every must be a positive duration")
    for tick in replay(config, events, windows=args.windows, restart_every=restart_every):
        for record in transition_records(tick):
            sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    import time

    from prober.config import load_config
    from prober.store import StateError, StateStore
    from prober.units import parse_duration

    since = None
    if args.since:
        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as error:
            raise UsageError(f"--since: {error}") from None
    # With --state the config only names the file, so it is not even read (no secrets needed).
    path = args.state or load_config(args.config).state_path
    try:
        for record in StateStore.read_records(path, since):
            sys.stdout.write(record + "\n")
        sys.stdout.flush()
    except StateError as error:
        raise UsageError(str(error)) from None
    except BrokenPipeError:  # `prober export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from prober.config import load_config
    from prober.slos import engine_spec
    from slo.promrules import generate_rules, render_inhibit_rules, render_rules

    if args.inhibit_rules and args.rule_format != "prometheus":
        raise UsageError("--inhibit-rules writes an Alertmanager snippet: it takes no --format")
    _check_output(args.output)
    spec = engine_spec(load_config(args.config))
    if args.inhibit_rules:
        return _write_output(args.output, render_inhibit_rules(spec))
    rule_set = generate_rules(spec)
    for skipped in rule_set.skipped:
        print(
            f"prober: rule {skipped.name} ({skipped.expression}) is not translated:"
            f" {skipped.reason}",
            file=sys.stderr,
        )
    return _write_output(args.output, render_rules(rule_set, args.rule_format))


def _dashboard(args: argparse.Namespace) -> int:
    from prober.config import load_config
    from prober.slos import engine_spec
    from slo.dashboard import generate_dashboard, render_dashboard

    _check_output(args.output)
    spec = engine_spec(load_config(args.config))
    return _write_output(args.output, render_dashboard(generate_dashboard(spec)))


def _check_output(path: str | None) -> None:
    """An unwritable `--output` is refused before anything is generated or printed."""
    from prober.run_once import check_report_path

    if path is not None:
        check_report_path("--output", path)


def _write_output(path: str | None, text: str) -> int:
    """`text` to the file, or to standard output without one."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return EXIT_OK
    try:
        with open(path, "w", encoding="utf-8") as output:
            output.write(text)
    except OSError as error:
        raise UsageError(f"--output: cannot write {path}: {error.strerror}") from None
    return EXIT_OK


def _daemon_settings(args: argparse.Namespace) -> tuple[tuple[str, int], float]:
    """`--listen` and `--grace`, converted (and checked) by the parser."""
    listen: tuple[str, int] = args.listen
    grace: float = args.grace
    return listen, grace


def _run(args: argparse.Namespace) -> int:
    from prober import eventloop
    from prober.config import load_config
    from prober.daemon import Daemon
    from prober.logs import configure_logging

    listen, grace = _daemon_settings(args)
    config = load_config(args.config)
    configure_logging(service=config.service, fmt=args.log_format, level=args.log_level)
    daemon = Daemon(
        args.config,
        config,
        listen=listen,
        grace=grace,
        version=_prober_version(),
        state_path=args.state or config.state_path,
        max_connections=args.max_connections,
        read_timeout=args.read_timeout,
    )
    return eventloop.run(daemon.run())


def _demo(args: argparse.Namespace) -> int:
    import tempfile
    from importlib.resources import files

    from prober import eventloop
    from prober.config import load_config
    from prober.daemon import Daemon
    from prober.demo import DEFAULT_PASSWORD, SampleAPI
    from prober.demo.api import parse_fault_spec
    from prober.logs import configure_logging

    listen, grace = _daemon_settings(args)
    try:
        faults = dict(parse_fault_spec(spec) for spec in args.fault)
    except ValueError as error:
        raise UsageError(f"--fault: {error}") from None
    try:
        api = SampleAPI(port=args.api_port, faults=faults).start()
    except OSError as error:
        raise UsageError(
            f"--api-port: cannot listen on 127.0.0.1:{args.api_port}: {error.strerror or error}"
        ) from None
    try:
        os.environ["PROBER_TARGET__BASE_URL"] = api.url
        os.environ.setdefault("DEMO_PASSWORD", DEFAULT_PASSWORD)
        config_path = str(files("prober.demo") / "demo.yaml")
        config = load_config(config_path)
        configure_logging(service=config.service, fmt=args.log_format, level=args.log_level)
        # A fresh state file per demo: a newcomer expects a fresh start.
        state = tempfile.mkdtemp(prefix="prober-demo-")
        daemon = Daemon(
            config_path,
            config,
            listen=listen,
            grace=grace,
            version=_prober_version(),
            state_path=os.path.join(state, "prober-state.db"),
            max_connections=args.max_connections,
            read_timeout=args.read_timeout,
        )
        host = "127.0.0.1" if listen[0] in ("0.0.0.0", "") else listen[0]
        print(
            f"sample API     {api.url}\n"
            f"status page    http://{host}:{listen[1]}/\n"
            f"metrics        http://{host}:{listen[1]}/metrics\n"
            f"status JSON    http://{host}:{listen[1]}/api/status\n"
            "break it:      curl -X PUT " + api.url + "/_admin/faults -d "
            '\'{"route": "/api/chat/message", "error_rate": 0.5, "status": 503}\'\n'
            "slow it:       curl -X PUT " + api.url + "/_admin/faults -d "
            '\'{"route": "*", "delay": 0.3}\'\n'
            f"heal it:       curl -X DELETE {api.url}/_admin/faults\n"
            "stop:          Ctrl-C\n",
            flush=True,
        )
        return eventloop.run(daemon.run())
    finally:
        api.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
