"""`prober run`: wiring, reload, signals, shutdown.

- **Reload** on SIGHUP and when the config file changes (its mtime/size, polled every
  `RELOAD_POLL` seconds; a deleted file keeps the running config): the new config is
  validated completely first, then swapped in; unchanged journeys keep their schedule
  and state. A bad config keeps the old one running, logs every error, and sets
  `prober_config_last_reload_successful 0`.
- **Shutdown** on SIGTERM/SIGINT: stop scheduling, let in-flight runs finish within
  `grace` seconds (default 10, inside Kubernetes' default 30 s termination grace), stop
  the server, flush the logs, exit 0.
- **Inconclusive runs**: with `connectivity_check` set, a failed run is followed by a GET
  of that URL (cached 5 s); if it fails too, the prober's own network is down: the run is
  kept out of every SLI and rule, counted in `prober_inconclusive_runs_total`, and logged.
  So is a run that failed on the prober's own setup (`results.SETUP_FAULTS`: an unset
  `${env.X}`, an unreadable CA file), which says nothing about the target.
- **State** (`--state` or `state_path`, SQLite, see `prober.store`): runs of journeys that
  an SLO or rule watches are written every second, window snapshots, alert states and last
  reports every minute (and alert states at every transition), at shutdown too; start-up
  restores them, so budgets and alerts survive a restart, also after kill -9 (which loses
  at most the last second of runs). A failing write is logged and counted
  (`prober_state_errors_total`); probing goes on.
- **Alert delivery** (`alerting.notifiers`, see `prober.notify`): each evaluation's alert
  changes become outbox rows written in the same transaction as the alert state (an
  in-memory outbox without a state file); one sender task per notifier channel delivers
  them. The notifiers are built (their `${secret.X}` read) at start-up, where a problem is
  a config error (exit 2), and at each reload, where it keeps the running ones. At
  shutdown the senders get up to `grace` seconds to deliver what is queued; what is left
  stays in the state file for the next start.
- **Event-loop lag** is measured by a task that wakes every `LAG_TICK` seconds and
  notes how late it woke. A run that overlapped a lag spike above `LAG_SPIKE`, or a render
  of the server's (which holds the interpreter lock on another thread, and shows as loop
  lag only coarsely), is marked (`lag_affected` in its log line and status,
  `prober_lag_affected_runs_total`): latency the prober caused itself is never silently
  blamed on the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from prober.config import Journey, ProberConfig, load_config
from prober.errors import ConfigError, StateError, UsageError
from prober.http import HttpClient, HttpRequest, HttpResponse
from prober.journey import JourneyRunner
from prober.logs import LOGGER, log_run
from prober.metrics import ProberMetrics
from prober.notify import Channel, NotificationService, build_channels
from prober.ratelimit import HostRateLimits
from prober.results import SETUP_FAULTS, RunResult
from prober.scheduler import Scheduler
from prober.server import DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT, StatusServer
from prober.slos import engine_spec, event_from_run
from prober.status import StatusBoard, render_page
from prober.store import StateStore
from prober.wiring import build_runner
from slo.budget import SLOError
from slo.engine import Checkpoint, Engine
from slo.windows import Timeline, tick_at_or_before

__all__ = ["DEFAULT_GRACE", "DEFAULT_LISTEN", "Daemon", "LagMonitor"]

DEFAULT_LISTEN = ("0.0.0.0", 9469)
DEFAULT_GRACE = 10.0
RELOAD_POLL = 2.0
# Sampled finely: the monitor's wake-up is a timer and a subtraction, and a 20 ms stall
# must not hide between samples when the canary it delays takes 1 ms.
LAG_TICK = 0.01
LAG_SPIKE = 0.01
CONNECTIVITY_CACHE = 5.0
FLUSH_INTERVAL = 1.0  # seconds between writes of buffered runs: what kill -9 may lose
SNAPSHOT_EVERY = 60  # flushes between window snapshots
PRUNE_EVERY = 3600  # flushes between prunes of runs older than any window needs
PRUNE_MARGIN = 3600.0
GC_THRESHOLD_GEN0 = 50_000


class LagMonitor:
    """How late the event loop wakes up, and when the prober's other threads were busy
    (`busy`, e.g. the server rendering /metrics): remembers both to mark affected runs."""

    def __init__(
        self,
        on_lag: Callable[[float], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spikes: deque[tuple[float, float]] = deque(maxlen=256)  # (end, lag) in monotonic s
        # (start, end) of work on other threads; appended there, read here: a deque's append
        # and tuple() copy are atomic under the interpreter lock.
        self.busy_spans: deque[tuple[float, float]] = deque(maxlen=256)
        self.worst_recent = 0.0
        self._on_lag = on_lag
        self._clock = clock
        self._last_wakeup = clock()
        self._window_start, self._worst = self._last_wakeup, 0.0

    async def run(self) -> None:
        while True:
            expected = self._clock() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            self.note_wakeup(expected, self._clock())

    def note_wakeup(self, expected: float, woke: float) -> None:
        """The monitor meant to wake at `expected` and woke at `woke`."""
        lag = max(0.0, woke - expected)
        self._last_wakeup = woke
        if lag > LAG_SPIKE:
            self.spikes.append((woke, lag))
        self._worst = max(self._worst, lag)
        if woke - self._window_start >= 1.0:
            self.worst_recent, self._worst, self._window_start = self._worst, 0.0, woke
            if self._on_lag is not None:
                self._on_lag(self.worst_recent)

    def busy(self, started: float, ended: float) -> None:
        """Another thread of the prober held the CPU (and the interpreter lock) meanwhile;
        thread-safe."""
        self.busy_spans.append((started, ended))

    def affected(self, started: float, ended: float) -> bool:
        """Did a spike or busy span overlap [started, ended] (monotonic seconds), or is the
        loop late right now?"""
        if self._clock() - self._last_wakeup > LAG_TICK + LAG_SPIKE:
            return True
        if any(end - lag <= ended and end >= started for end, lag in tuple(self.spikes)):
            return True
        return any(start <= ended and end >= started for start, end in tuple(self.busy_spans))


class ConnectivityCheck:
    """Is the prober's own network up? Asked when a run fails; the answer is shared for
    `CONNECTIVITY_CACHE` seconds, so a hundred journeys failing together cost one check."""

    def __init__(self, url: str | None, client: HttpClient | None, *, timeout: float = 5.0) -> None:
        self.url = url
        self.client = client
        self.timeout = timeout
        self._checked_at = -math.inf
        self._ok = True
        self._lock = asyncio.Lock()

    async def ok(self) -> bool:
        if self.url is None or self.client is None:
            return True
        async with self._lock:
            if time.monotonic() - self._checked_at > CONNECTIVITY_CACHE:
                async with self.client.session(keep_alive=False) as session:
                    outcome = await session.send(HttpRequest("GET", self.url, timeout=self.timeout))
                self._ok = isinstance(outcome, HttpResponse) and outcome.status_code < 500
                self._checked_at = time.monotonic()
            return self._ok


class Daemon:
    def __init__(
        self,
        config_path: str,
        config: ProberConfig,
        *,
        listen: tuple[str, int] = DEFAULT_LISTEN,
        grace: float = DEFAULT_GRACE,
        version: str = "0",
        reload_poll: float = RELOAD_POLL,
        state_path: str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.grace = grace
        self.reload_poll = reload_poll
        self.metrics = ProberMetrics(version)
        self.board = StatusBoard(config.service, config_path=config_path)
        self.lag = LagMonitor(on_lag=self.metrics.loop_lag.set)
        self._listen = listen
        self._stop = asyncio.Event()
        self._file_stamp = _stamp(config_path)
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        # Bound here, before the loop runs: a taken port is a usage error (exit 2).
        self.server = _bind_server(
            listen,
            self,
            max_connections=max_connections,
            read_timeout=read_timeout,
        )
        self._runner: JourneyRunner | None = None
        self._scheduler: Scheduler | None = None
        # One for the daemon's life, retuned on reload: new cells would forget the requests
        # just sent and let a reload burst past max_requests_per_second.
        self._limits = HostRateLimits(config.defaults.max_requests_per_second)
        self.engine = Engine(engine_spec(config))
        self._connectivity = ConnectivityCheck(None, None)
        # Built here, before the loop runs: an unset notifier secret is a config error (exit 2).
        self._channels = build_channels(config)
        self.notify = NotificationService(self.metrics, publish=self.board.record_notifiers)
        # Opened here, before the loop runs: a bad state file is a start-up error (exit 2).
        try:
            self.store = StateStore.open(state_path) if state_path else None
        except StateError:
            self.server.stop()
            raise
        #: Where alert state and the outbox are written: the state file, else memory.
        self._alert_store = self.store if self.store is not None else StateStore.open(":memory:")

    def _build_runner(self, config: ProberConfig) -> JourneyRunner:
        self._limits.retune(config.defaults.max_requests_per_second)
        return build_runner(config, limits=self._limits)

    def _apply(self, config: ProberConfig, channels: tuple[Channel, ...] = ()) -> None:
        self.config = config
        self._runner = self._build_runner(config)
        self._connectivity = ConnectivityCheck(
            config.connectivity_check, self._runner.client, timeout=config.defaults.timeout
        )
        engine = Engine(engine_spec(config))
        engine.adopt(self.engine)
        self.engine = engine
        self.metrics.configure(config)
        self.metrics.configure_slos((slo.name, slo.objective) for slo in config.slos)
        self.board.configure(
            config.service, {j.name: j.interval_or(config.defaults) for j in config.journeys}
        )
        self.notify.configure(channels, self._external_url(config))
        assert self._scheduler is not None
        self._scheduler.update(config.journeys, config.defaults)

    async def _run_journey(self, journey: Journey) -> None:
        assert self._runner is not None
        started = time.monotonic()
        result: RunResult = await self._runner.run(journey)
        affected = self.lag.affected(started, time.monotonic())
        failure = result.failure
        inconclusive = not result.success and (
            (failure is not None and failure.reason in SETUP_FAULTS)  # the prober's own fault
            or not await self._connectivity.ok()
        )
        self.metrics.observe(result, lag_affected=affected)
        if inconclusive:
            self.metrics.inconclusive.labels(result.journey).inc()
        event = event_from_run(result, inconclusive=inconclusive)
        self.metrics.observe_slo_events(self.engine.record(event))
        if self.store is not None and event.journey in self.engine.journeys_tracked:
            self.store.add_event(event)
        self.board.record(result, lag_affected=affected)
        log_run(result, lag_affected=affected, inconclusive=inconclusive)

    def _external_url(self, config: ProberConfig) -> str:
        """`alerting.external_url`, else this daemon's own address."""
        if config.alerting.external_url:
            return config.alerting.external_url
        host, port = self.server.address if self.server is not None else self._listen
        if host in ("0.0.0.0", "", "::"):
            host = socket.gethostname()
        return f"http://{host}:{port}/"

    def evaluate(self, now: float | None = None) -> None:
        """One SLO evaluation (at `now`, by default the latest tick of the evaluation grid):
        figures to metrics and status, transitions to the log, and
        when alerts changed, the alert state and the notifications the changes cause to the
        state file in one transaction (then the senders are woken)."""
        if now is None:
            now = tick_at_or_before(time.time(), self.config.alerting.evaluation_interval)
        tick = self.engine.evaluate(now)
        entries, notified = self.notify.plan(tick, self.engine.annotations)
        if tick.transitions or entries or notified:
            write = self._alert_store.save_alerts_with_notifications(
                tick.alerts.to_records(), tick.now, entries, notified
            )
            self._persist(write)
            if entries:
                write.add_done_callback(
                    lambda done: (
                        None
                        if done.cancelled() or done.exception()
                        else self.notify.queued(entries)
                    )
                )
        self.metrics.observe_tick(tick)
        self.board.record_tick(tick, self.engine.annotations)
        for transition in tick.transitions:
            labels = dict(transition.labels)
            LOGGER.log(
                logging.WARNING if transition.state == "firing" else logging.INFO,
                f"alert {labels.get('alertname')} {transition.state}",
                extra={
                    "alert": labels,
                    "journey": labels.get("journey"),
                    "values": {name: round(value, 4) for name, value in transition.values.items()},
                },
            )

    async def restore(self) -> None:
        """Resume budgets, alert states, recent runs and last reports from the state file:
        timeline snapshots plus the runs stored after them; a journey without a usable
        snapshot is rebuilt from the stored runs of its whole retention."""
        store = self.store
        if store is None:
            return
        now = time.time()
        engine = self.engine
        timelines: dict[str, bytes | Timeline] = {}
        unusable = {}
        for journey in engine.timelines:
            data = await store.load_window(journey)  # one at a time: bounded memory
            if data is None:
                continue
            try:
                timelines[journey] = engine.load_timeline(journey, data)
            except SLOError as error:
                unusable[journey] = str(error)
        captures = await store.load_value("last_captures")
        reports = await store.load_value("last_reports")
        checkpoint = Checkpoint(
            timelines=timelines,
            alerts=tuple(await store.load_alerts()),
            last_reports=(
                {str(k): float(v) for k, v in reports.items()} if isinstance(reports, dict) else {}
            ),
            last_captures=tuple(
                (str(item[0]), str(item[1]), item[2])
                for item in (captures if isinstance(captures, list) else ())
                if isinstance(item, list) and len(item) == 3
            ),
        )
        history = await store.events_since(engine.history_since(checkpoint, now))
        unusable.update(engine.resume(checkpoint, await store.events_after_windows(), history, now))
        for journey, reason in unusable.items():
            LOGGER.warning(f"window snapshot of journey {journey} unusable ({reason}); rebuilt it")
        LOGGER.info(
            "state restored", extra={"path": store.path, "alerts": len(engine.alerts.alerts)}
        )

    def _persist(
        self, write: asyncio.Future[object] | asyncio.Future[None] | asyncio.Future[int]
    ) -> None:
        """Let a state-file write finish in the background; a failure is logged and counted,
        and probing goes on (the live engine still has everything)."""

        def done(
            future: asyncio.Future[object] | asyncio.Future[None] | asyncio.Future[int],
        ) -> None:
            error = future.exception()
            if error is not None:
                self.metrics.state_errors.inc()
                LOGGER.error(f"state file write failed: {error}")

        write.add_done_callback(done)

    def save_state(self, now: float) -> None:
        """Snapshot the windows (taken now, synchronously, so they match the runs stored so
        far), the alert state and the last reports."""
        if self.store is None:
            return
        checkpoint = self.engine.checkpoint()
        snapshots = {j: data for j, data in checkpoint.timelines.items() if isinstance(data, bytes)}
        self._persist(self.store.save_windows(snapshots, now))
        self._persist(self.store.save_alerts(list(checkpoint.alerts), now))
        self._persist(self.store.save_value("last_reports", dict(checkpoint.last_reports)))
        self._persist(
            self.store.save_value(
                "last_captures", [list(item) for item in checkpoint.last_captures]
            )
        )

    async def _persist_forever(self) -> None:
        """Flush runs every second, snapshot every minute, prune every hour."""
        assert self.store is not None
        ticks = 0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            ticks += 1
            self._persist(self.store.flush())
            if ticks % SNAPSHOT_EVERY == 0:
                self.save_state(time.time())
            if ticks % PRUNE_EVERY == 0:
                keep = max(
                    [*(slo.retention for slo in self.engine.spec.slos), self.engine.rule_retention]
                )
                self._persist(self.store.prune(time.time() - keep - PRUNE_MARGIN))

    async def _evaluate_forever(self) -> None:
        """Evaluate on the grid of multiples of the evaluation interval since the epoch,
        where the timelines are exact (`slo.windows`); a tick the loop was too late for is
        skipped, never evaluated twice."""
        interval = self.config.alerting.evaluation_interval
        # The first tick is a whole interval after start-up at least, as the runs of a
        # restart need that long to arrive (ProberNoData would fire on the old reports).
        first = time.time() + interval
        last = tick_at_or_before(first, interval)
        last -= interval if last == first else 0
        while True:
            interval = self.config.alerting.evaluation_interval
            now = time.time()
            await asyncio.sleep(max(last + interval - now, 0.0))
            last = max(tick_at_or_before(time.time(), interval), last + interval)
            self.evaluate(last)

    def ready(self) -> bool:
        return self.board.ready

    def status(self) -> dict[str, object]:
        return self.board.snapshot(self.metrics.latency_quantiles)

    def page(self) -> str:
        return render_page(self.status())

    def request_stop(self) -> None:
        self._stop.set()

    def _load(self) -> tuple[ProberConfig, tuple[Channel, ...]]:
        config = load_config(self.config_path)
        return config, build_channels(config)

    def request_reload(self, reason: str) -> None:
        """Reload in the background (from a signal handler)."""
        task = asyncio.get_running_loop().create_task(self.reload(reason))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self, reason: str) -> bool:
        """Validate the config file, then swap it in; keep the old one if it is bad.
        Reading, parsing and validating run on a worker thread, so the loop goes on probing
        while a big config loads (a thread, not a process: the parser yields the interpreter
        lock every switch interval, and a process would hand back a config to unpickle on
        the loop); the swap runs on the loop. One reload at a time, in request order."""
        async with self._reload_lock:
            try:
                config, channels = await asyncio.to_thread(self._load)
            except ConfigError as error:
                return self._reload_failed(reason, error)
            self._apply(config, channels)
            self.metrics.reload_ok.set(1)
            LOGGER.info(f"config reloaded ({reason})", extra={"path": self.config_path})
            return True

    def _reload_failed(self, reason: str, error: ConfigError) -> bool:
        self.metrics.reload_ok.set(0)
        LOGGER.error(
            f"config reload ({reason}) failed; keeping the running config",
            extra={"path": self.config_path, "errors": [str(issue) for issue in error.issues]},
        )
        return False

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(self.reload_poll)
            stamp = _stamp(self.config_path)
            if stamp is None:
                if self._file_stamp is not None:  # say it once, not every poll
                    LOGGER.warning(
                        "config file is gone; keeping the running config until it is back",
                        extra={"path": self.config_path},
                    )
                self._file_stamp = None
                continue
            if stamp == self._file_stamp:
                continue
            self._file_stamp = stamp
            await self.reload("file changed")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.request_reload("SIGHUP"))
        self._scheduler = Scheduler(
            self._run_journey,
            max_concurrency=self.config.defaults.max_concurrency,
            on_lag=self.metrics.schedule_lag.observe,
            on_overrun=lambda name: self.metrics.overruns.labels(name).inc(),
        )
        lag_task = loop.create_task(self.lag.run())  # first: it times every run from here
        self.server.start()
        host, port = self.server.address
        LOGGER.info("prober started", extra={"listen": f"{host}:{port}", "path": self.config_path})
        self._apply(self.config, self._channels)
        await self.restore()
        await self.notify.start(self._alert_store)
        tune_garbage_collector()
        background = [
            lag_task,
            loop.create_task(self._watch_file()),
            loop.create_task(self._evaluate_forever()),
        ]
        if self.store is not None:
            background.append(loop.create_task(self._persist_forever()))
        await self._stop.wait()
        LOGGER.info(
            "shutting down: draining in-flight runs", extra={"duration_ms": self.grace * 1000}
        )
        drained = await self._scheduler.stop(self.grace)
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not await self.notify.drain(self.grace):
            LOGGER.warning(
                "shutting down with notifications queued: they are sent at the next start"
            )
        await self.notify.stop()
        self.server.stop()
        if self.store is not None:
            self.save_state(time.time())
        try:
            await self._alert_store.close()
        except StateError as error:
            LOGGER.error(f"state file not saved at shutdown: {error}")
        LOGGER.info("stopped" if drained else "stopped; some runs were cut off at the grace period")
        for handler in LOGGER.handlers:
            handler.flush()
        logging.shutdown()
        return 0


def _bind_server(
    listen: tuple[str, int], daemon: Daemon, *, max_connections: int, read_timeout: float
) -> StatusServer:
    """The endpoints' server, bound (not started); a port that cannot be had is a UsageError
    naming the address."""
    try:
        return StatusServer(
            listen,
            daemon.metrics.registry,
            ready=daemon.ready,
            status=daemon.status,
            page=daemon.page,
            max_connections=max_connections,
            read_timeout=read_timeout,
            on_busy=daemon.lag.busy,
        )
    except OSError as error:
        host, port = listen
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise UsageError(
            f"--listen: cannot listen on {shown}: {error.strerror or error}"
        ) from None
    except OverflowError:  # a port above 65535 that parse_listen did not see
        raise UsageError(f"--listen: port {listen[1]} is out of range") from None


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections: a run allocates many short-lived objects, and with the
    default thresholds the cyclic collector walks the whole heap often enough to show as
    schedule-lag spikes. Objects alive after start-up (config, metrics, modules) are frozen
    out of collection; generation 0 is collected every 50,000 allocations, not 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_GEN0, 20, 100)


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size)
