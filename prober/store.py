"""The state file (`state_path`): one SQLite database that lets `prober run` resume its SLO
budgets and alert states after a restart, also after `kill -9`, and that `prober export`
reads while the daemon writes.

    events    every journey run, as the export JSON line (`prober.replay.event_to_json`),
              kept for the longest window any SLO or policy needs (the daemon prunes)
    windows   one `EventWindow.snapshot()` per SLO, and the last event they hold
    alerts    `AlertState.to_records()` as one JSON document
    kv        small JSON values (last capture values, last report times, ...)
    outbox    notifications to deliver, one row per message and notifier channel, in
              delivery order; `pending` until `sent` or `dead` (dead-lettered), kept a
              while after that for inspection (see `prober.notify`)
    notified  per notifier channel and alert, what the channel was told (and when), so
              that a restart neither repeats nor loses a message

**Alert state and notifications together.** `save_alerts_with_notifications` writes the
alert state, the outbox rows its changes cause and the channels' records in one
transaction: after `kill -9` either all of them are in the file or none is, so a state
change is announced exactly once (the restarted engine sees it again if it was lost).

**Threads.** Every SQLite call runs on one dedicated worker thread (a single-thread
executor) that owns the connection; the asyncio loop never waits on the disk. The I/O
methods queue their work *when called*, in call order, and return a future to await: so
`save_windows(snapshots, ...)` called right after the snapshots were taken covers exactly the
events added before it, even if the caller awaits it later.

**Durability.** WAL with `synchronous=NORMAL`: a committed transaction survives the process
dying (`kill -9`, OOM kill); an OS crash or power cut may lose the last commits but never
corrupts the file. `add_event` only buffers (it never blocks); `flush()` writes the buffer in
one transaction. So `kill -9` loses at most the events added since the last flush: the
daemon flushes at least every second. Window snapshots need no such care: on restart the
events stored after the last snapshot (`events_after_windows`) are replayed on top of it.

**One writer.** `open` holds an exclusive lock (flock) on the state file itself until
`close`: a second `prober run` on the same file, by whatever name (a symlink, a hard link),
refuses to start ("in use by prober pid N", the pid read from `/proc/locks`) instead of
both daemons counting runs and announcing alerts into one budget. The kernel drops the lock
when its process dies, `kill -9` included, so a restart never finds a stale one. Readers
(`prober export`) take no lock. (flock and SQLite's own fcntl locks are independent on
Linux' local file systems; on NFS, where flock is emulated with fcntl, SQLite's WAL mode
does not work anyway.)

**Errors.** Every SQLite error leaves this module as `StateError` naming the file and what to
do. `open` refuses a corrupt file, a file from a newer prober and a file that is not
prober's. Older files are migrated: `MIGRATIONS[n]` takes schema `n` to `n + 1`, all pending
ones in one transaction, `PRAGMA user_version` being the schema version. Never edit a
released migration; append a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import math
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, Final, Literal, NamedTuple, ParamSpec, TypeVar

from prober.errors import StateError
from prober.replay import event_to_json, parse_event
from slo.engine import Event

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "NotifiedChange",
    "OutboxEntry",
    "OutboxRow",
    "StateError",
    "StateStore",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: `PRAGMA application_id` of a prober state file ("PRBR"): tells it from other SQLite files.
APPLICATION_ID: Final = 0x50524252
BUSY_TIMEOUT_SECONDS: Final = 5.0
#: Events buffered by `add_event` beyond this (flushes failing or never called) push out the
#: oldest; `StateStore.dropped_events` counts them.
MAX_BUFFERED_EVENTS: Final = 100_000
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_TABLES: Final = frozenset({"events", "windows", "alerts", "kv", "outbox", "notified"})

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: runs, window snapshots, alert state.
    f"""
    PRAGMA application_id = {APPLICATION_ID};
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, never reused
        timestamp REAL NOT NULL,
        journey TEXT NOT NULL,
        record TEXT NOT NULL                   -- the export / replay JSON line
    );
    CREATE INDEX events_by_timestamp ON events (timestamp);
    CREATE TABLE windows (
        slo TEXT PRIMARY KEY,
        taken_at REAL NOT NULL,
        through_event INTEGER NOT NULL,        -- events.id of the last event it holds
        data BLOB NOT NULL
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        saved_at REAL NOT NULL,
        records TEXT NOT NULL
    );
    """,
    # 2: small named JSON values.
    """
    CREATE TABLE kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: the notification outbox, and what each notifier channel was told per alert.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order within a channel
        channel TEXT NOT NULL,                 -- notifier name (name@hash: one Alertmanager)
        created_at REAL NOT NULL,
        payload TEXT NOT NULL,                 -- the notification as JSON; never a secret
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        finished_at REAL
    );
    CREATE INDEX outbox_pending ON outbox (channel, id) WHERE state = 'pending';
    CREATE TABLE notified (
        channel TEXT NOT NULL,
        alert TEXT NOT NULL,                   -- the alert's labels, sorted, as JSON
        record TEXT NOT NULL,
        PRIMARY KEY (channel, alert)
    );
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class OutboxEntry(NamedTuple):
    """A notification to queue: its channel, when it was made, its JSON payload."""

    channel: str
    created_at: float
    payload: str


class OutboxRow(NamedTuple):
    """A queued notification as read back for delivery."""

    id: int
    channel: str
    created_at: float
    attempts: int
    payload: str


class NotifiedChange(NamedTuple):
    """A channel's record of one alert to write (`record` None: delete it)."""

    channel: str
    alert: str
    record: str | None


class StateStore:
    """One SQLite state file; all of its I/O on one worker thread. Create with `open`.

    The I/O methods queue their work when called and return a future; a write once queued
    happens even if the awaiting task is cancelled."""

    def __init__(self, database: _Database, executor: ThreadPoolExecutor) -> None:
        self.path = database.path
        #: Events pushed out of a full buffer (`MAX_BUFFERED_EVENTS`), never written.
        self.dropped_events = 0
        self._database = database
        self._executor = executor
        self._buffer: deque[Event] = deque(maxlen=MAX_BUFFERED_EVENTS)
        self._closed = False

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> StateStore:
        """Open the state file, creating, checking (`quick_check`) and migrating it; blocks,
        so call it at start-up. Raises `StateError`."""
        name = os.fspath(path)
        lock = _lock_for_writing(name)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prober-state")
        try:
            connection = executor.submit(_open_for_writing, name).result()
        except BaseException:
            executor.shutdown(wait=False)
            if lock is not None:
                os.close(lock)
            raise
        return cls(_Database(connection, name, lock), executor)

    def close(self) -> asyncio.Future[None]:
        """Write the buffer and close the file; the worker thread then ends. Idempotent."""
        if self._closed:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        closing = self._submit(self._database.close, self._take_buffer())
        self._closed = True
        self._executor.shutdown(wait=False)  # after the queued work
        return closing

    # ------------------------------------------------------------------ events

    def add_event(self, event: Event) -> None:
        """Buffer one run for the next write; never blocks. Lost on `kill -9` until flushed."""
        if self._closed:
            raise StateError(f"state file {self.path} is closed: event not saved")
        if not math.isfinite(event.timestamp):
            raise ValueError(f"event timestamp must be finite, got {event.timestamp!r}")
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped_events += 1
        self._buffer.append(event)

    def flush(self) -> asyncio.Future[None]:
        """Write the buffered events in one transaction. When that fails (`StateError`: a
        full disk, say) the batch goes back to the front of the buffer for the next write,
        within the buffer's bound (`MAX_BUFFERED_EVENTS`; beyond it the oldest are dropped
        and counted)."""
        return self._submit_with_buffer(self._database.insert_events)

    def append_events(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Write the buffer and then `events` in one transaction."""
        for event in events:
            self.add_event(event)
        return self.flush()

    def events_since(self, since: float) -> asyncio.Future[list[Event]]:
        """Every event added so far with `timestamp >= since`, oldest first."""
        return self._submit_with_buffer(self._database.select_events, since)

    def events_after_windows(self) -> asyncio.Future[list[Event]]:
        """The events the last saved window snapshots do not hold (all of them when none
        were saved), oldest first: replay them on top of the restored windows."""
        return self._submit_with_buffer(self._database.select_events, None)

    def prune(self, before: float) -> asyncio.Future[int]:
        """Delete the stored events with `timestamp < before`; how many were deleted."""
        return self._submit(self._database.prune, before)

    # ------------------------------------------------------------------ aggregates

    def save_windows(self, snapshots: Mapping[str, bytes], taken_at: float) -> asyncio.Future[None]:
        """Replace the stored snapshots with these (SLO name → `EventWindow.snapshot()`).
        They must hold exactly the events added before this call: take them and call this
        in one synchronous step, with no `await` in between."""
        rows = [(slo, taken_at, bytes(data)) for slo, data in snapshots.items()]
        return self._submit_with_buffer(self._database.replace_windows, rows)

    def load_window(self, slo: str) -> asyncio.Future[bytes | None]:
        """One SLO's stored snapshot, or None. Restoring many SLOs one at a time keeps only
        one snapshot in memory (30 days of one SLO: ~120 kB; of 1,000 at once: ~120 MB)."""
        return self._submit(self._database.select_window, slo)

    def save_alerts(
        self, records: Sequence[Mapping[str, object]], now: float
    ) -> asyncio.Future[None]:
        """Replace the stored alert state with `AlertState.to_records()`."""
        text = json.dumps([dict(record) for record in records])
        return self._submit(self._database.replace_alerts, now, text)

    def save_alerts_with_notifications(
        self,
        records: Sequence[Mapping[str, object]],
        now: float,
        outbox: Sequence[OutboxEntry],
        notified: Sequence[NotifiedChange] = (),
    ) -> asyncio.Future[None]:
        """`save_alerts`, the notifications the changes cause and the channels' records of
        what they were told, in one transaction (all or nothing)."""
        text = json.dumps([dict(record) for record in records])
        return self._submit(
            self._database.replace_alerts_and_notify, now, text, list(outbox), list(notified)
        )

    def load_alerts(self) -> asyncio.Future[list[dict[str, object]]]:
        """The records last saved, for `AlertState.from_records`; `[]` when none."""
        return self._submit(self._database.select_alerts)

    def save_value(self, name: str, value: object) -> asyncio.Future[None]:
        """Store a small JSON-ready value under `name`, replacing the old one."""
        return self._submit(self._database.replace_value, name, json.dumps(value))

    def load_value(self, name: str) -> asyncio.Future[object | None]:
        """The value stored under `name`, or None."""
        return self._submit(self._database.select_value, name)

    # ------------------------------------------------------------------ outbox

    def pending_notifications(self, channel: str, limit: int) -> asyncio.Future[list[OutboxRow]]:
        """The channel's oldest `limit` undelivered notifications, in delivery order."""
        return self._submit(self._database.select_pending, channel, limit)

    def note_attempt(self, ids: Sequence[int], error: str) -> asyncio.Future[None]:
        """One failed delivery attempt of these notifications (they stay pending)."""
        return self._submit(self._database.note_attempt, list(ids), error)

    def finish_notifications(
        self,
        ids: Sequence[int],
        state: Literal["sent", "dead"],
        at: float,
        error: str | None = None,
    ) -> asyncio.Future[None]:
        """Mark notifications delivered (`sent`) or given up on (`dead`, with the reason)."""
        return self._submit(self._database.finish, list(ids), state, at, error)

    def sent_then_pending(
        self, ids: Sequence[int], at: float, channel: str, limit: int
    ) -> asyncio.Future[list[OutboxRow]]:
        """Mark these notifications sent and read the channel's next ones, in one trip to
        the worker thread (the sender's steady state)."""
        return self._submit(self._database.sent_then_pending, list(ids), at, channel, limit)

    def outbox_counts(self) -> asyncio.Future[dict[str, tuple[int, int]]]:
        """Per channel: (pending, dead-lettered) notifications in the file."""
        return self._submit(self._database.outbox_counts)

    def dead_letter_orphans(
        self, channels: Collection[str], created_before: float, at: float
    ) -> asyncio.Future[dict[str, int]]:
        """Dead-letter pending notifications of channels no longer configured that were
        made before `created_before`; how many, per channel."""
        return self._submit(self._database.dead_letter_orphans, set(channels), created_before, at)

    def prune_outbox(self, before: float) -> asyncio.Future[int]:
        """Delete sent and dead-lettered notifications finished before `before`."""
        return self._submit(self._database.prune_outbox, before)

    def load_notified(self) -> asyncio.Future[list[tuple[str, str, str]]]:
        """Every channel's records: (channel, alert, record) as written."""
        return self._submit(self._database.select_notified)

    # ------------------------------------------------------------------ export (sync)

    @staticmethod
    def read_records(path: str | os.PathLike[str], since: float | None = None) -> Iterator[str]:
        """The stored events as export JSON lines (`timestamp >= since`), oldest first.
        Read-only and safe while a daemon writes (WAL). Raises `StateError` at once for a
        missing or unusable file, and while iterating for a page found corrupt."""
        name = os.fspath(path)
        rows = _iterate_rows(_open_read_only(name), name, since)
        return (record for _, record in rows)

    @staticmethod
    def read_events(path: str | os.PathLike[str], since: float | None = None) -> Iterator[Event]:
        """Like `read_records`, parsed into events."""
        name = os.fspath(path)
        rows = _iterate_rows(_open_read_only(name), name, since)
        return (_parse_record(record, name, stamp) for stamp, record in rows)

    # ------------------------------------------------------------------ internals

    def _take_buffer(self) -> list[Event]:
        batch = list(self._buffer)
        self._buffer.clear()
        return batch

    def _submit_with_buffer(
        self,
        function: Callable[Concatenate[list[Event], _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> asyncio.Future[_T]:
        """`function(buffered events, ...)` on the worker, which writes them first in its
        transaction. If that fails, the events go back before what was buffered since
        (the transaction rolled back: none of them was stored)."""
        batch = self._take_buffer()
        write = self._submit(function, batch, *args, **kwargs)
        if not batch:
            return write

        def done(future: asyncio.Future[_T]) -> None:
            if future.cancelled() or future.exception() is None or self._closed:
                return
            combined = [*batch, *self._buffer]
            limit = MAX_BUFFERED_EVENTS
            self.dropped_events += max(0, len(combined) - limit)
            self._buffer = deque(combined[-limit:], maxlen=limit)

        write.add_done_callback(done)
        return write

    def _submit(
        self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise StateError(f"state file {self.path} is closed")
        job = self._executor.submit(self._guarded, functools.partial(function, *args, **kwargs))
        return asyncio.shield(asyncio.wrap_future(job, loop=loop))

    def _guarded(self, call: Callable[[], _T]) -> _T:
        """On the worker: SQLite errors become `StateError` here, and only here."""
        try:
            return call()
        except sqlite3.Error as error:
            raise _state_error(self.path, error) from None


# ---------------------------------------------------------------------- opening


def _lock_for_writing(path: str) -> int | None:
    """Hold the state file exclusively (see "One writer"), creating it empty if missing; the
    descriptor, None for memory. The lock is on the file, so every name of it shares it."""
    if path == ":memory:" or path.startswith("file:"):
        return None
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise StateError(f"cannot open state file {path}: {error.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _lock_holder(os.fstat(descriptor))
        # Only reached when another process (or store) holds the file; closing this
        # descriptor would also drop SQLite's fcntl locks were that holder in this process,
        # which only a test does.
        os.close(descriptor)
        by = f"prober pid {holder}" if holder is not None else "another prober"
        raise StateError(
            f"state file {path} is in use by {by}: give each daemon its own state file"
            " (state_path or --state)"
        ) from None
    return descriptor


def _lock_holder(stat: os.stat_result) -> int | None:
    """The pid holding a flock on the file, from Linux' /proc/locks; None elsewhere."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    wanted = (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->")
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(inode))
            if found == wanted:
                return int(fields[4])
        except ValueError:
            continue
    return None


def _open_for_writing(path: str) -> sqlite3.Connection:
    _check_header(path)
    try:
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=True
        )
    except sqlite3.Error as error:
        raise _state_error(path, error) from None
    try:
        version = _check_identity(connection, path)
        _quick_check(connection, path)
        connection.execute("PRAGMA journal_mode = WAL").fetchone()
        connection.execute("PRAGMA synchronous = NORMAL")
        _migrate(connection, path, version)
        _check_tables(connection, path)
    except sqlite3.Error as error:
        connection.close()
        raise _state_error(path, error) from None
    except BaseException:
        connection.close()
        raise
    return connection


def _open_read_only(path: str) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise StateError(
            f"no state file at {path}: check state_path in the config (or --state); "
            "`prober run` creates it"
        )
    _check_header(path)
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as error:
        raise _state_error(path, error) from None
    try:
        if _check_identity(connection, path) == 0:
            raise StateError(f"{path} holds no prober data yet: is it the right state file?")
        _check_tables(connection, path, {"events"})
        _quick_check(connection, path)
    except sqlite3.Error as error:
        connection.close()
        raise _state_error(path, error) from None
    except BaseException:
        connection.close()
        raise
    return connection


def _check_header(path: str) -> None:
    """An existing, non-empty file must start like an SQLite database."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as error:
        raise StateError(f"cannot read state file {path}: {error.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise _corrupt(path, "not an SQLite database")


def _check_identity(connection: sqlite3.Connection, path: str) -> int:
    """The schema version, after refusing newer files and other programs' databases."""
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    application = int(connection.execute("PRAGMA application_id").fetchone()[0])
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application != APPLICATION_ID and (application != 0 or version != 0 or tables):
        raise StateError(
            f"{path} is an SQLite database but not a prober state file: "
            "point state_path at another file, or move this one away"
        )
    if version > len(MIGRATIONS):
        raise StateError(
            f"{path} was written by a newer prober (schema {version}, this one knows "
            f"{len(MIGRATIONS)}): upgrade prober or move the file away"
        )
    return version


def _quick_check(connection: sqlite3.Connection, path: str) -> None:
    """`PRAGMA quick_check`: the b-tree structure, without `integrity_check`'s index-content
    comparison (O(file size), about a second per few hundred MB)."""
    problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise _corrupt(path, "; ".join(str(problem) for problem in problems))


def _check_tables(
    connection: sqlite3.Connection, path: str, needed: frozenset[str] | set[str] = _TABLES
) -> None:
    found = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    missing = sorted(set(needed) - found)
    if missing:
        raise _corrupt(path, f"missing table(s) {', '.join(missing)}")


def _migrate(connection: sqlite3.Connection, path: str, version: int) -> None:
    """Apply every pending migration in one transaction (all or nothing)."""
    if version >= len(MIGRATIONS):
        return
    try:
        with _transaction(connection):
            # Another process may have migrated since we looked: read again under the lock.
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    except sqlite3.Error as error:
        raise StateError(
            f"cannot migrate {path} from schema {version} to {len(MIGRATIONS)} ({error}); "
            "the file is unchanged: check that it is writable, or move it away"
        ) from None


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (`executescript` would commit)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def _corrupt(path: str, detail: str) -> StateError:
    return StateError(
        f"{path} is corrupt or not a prober state file ({detail}): restore it from a backup, "
        "or move it away to start with empty history"
    )


def _state_error(path: str, error: sqlite3.Error) -> StateError:
    code = getattr(error, "sqlite_errorname", "")
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _corrupt(path, str(error))
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StateError(f"{path} is locked by another process ({error}): is a prober running?")
    if code.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        # A full disk shows as SQLITE_FULL, or as a write I/O error when the file may not
        # grow (a quota, a file size limit): say how much room there is.
        return StateError(
            f"state file {path}: {error}: cannot write; is the disk full?"
            f" ({_free_space(path)} free there)"
        )
    return StateError(f"state file {path}: {error}: check state_path and the file's permissions")


def _free_space(path: str) -> str:
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return "unknown"
    free = float(stats.f_bavail * stats.f_frsize)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"  # pragma: no cover - the loop always returns


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


# ---------------------------------------------------------------------- worker-thread work


class _Database:
    """The connection and what is done with it; used only on the worker thread. Every
    write of buffered events (`batch`) shares the transaction of what follows it."""

    def __init__(self, connection: sqlite3.Connection, path: str, lock: int | None) -> None:
        self.connection = connection
        self.path = path
        self.lock = lock  # the descriptor holding the file's flock, released by close()

    def insert_events(self, batch: Sequence[Event]) -> None:
        if batch:
            with _transaction(self.connection):
                self._insert(batch)

    def select_events(self, batch: Sequence[Event], since: float | None) -> list[Event]:
        """Since a time, or (`since` None) after the last window snapshot."""
        self.insert_events(batch)
        if since is None:
            rows = self.connection.execute(
                "SELECT timestamp, record FROM events WHERE id > "
                "(SELECT coalesce(min(through_event), 0) FROM windows) ORDER BY timestamp, id"
            )
        else:
            rows = self.connection.execute(
                "SELECT timestamp, record FROM events WHERE timestamp >= ? ORDER BY timestamp, id",
                (since,),
            )
        return [_parse_record(record, self.path, stamp) for stamp, record in rows]

    def prune(self, before: float) -> int:
        with _transaction(self.connection):
            cursor = self.connection.execute("DELETE FROM events WHERE timestamp < ?", (before,))
            return cursor.rowcount

    def replace_windows(
        self, batch: Sequence[Event], rows: Sequence[tuple[str, float, bytes]]
    ) -> None:
        with _transaction(self.connection):
            self._insert(batch)
            last = self.connection.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
            self.connection.execute("DELETE FROM windows")
            self.connection.executemany(
                "INSERT INTO windows (slo, taken_at, through_event, data) VALUES (?, ?, ?, ?)",
                [(slo, taken_at, last[0], data) for slo, taken_at, data in rows],
            )

    def select_window(self, slo: str) -> bytes | None:
        row = self.connection.execute("SELECT data FROM windows WHERE slo = ?", (slo,)).fetchone()
        return bytes(row[0]) if row is not None else None

    def replace_alerts(self, now: float, text: str) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO alerts (id, saved_at, records) VALUES (1, ?, ?)", (now, text)
        )

    def replace_alerts_and_notify(
        self,
        now: float,
        text: str,
        outbox: Sequence[OutboxEntry],
        notified: Sequence[NotifiedChange],
    ) -> None:
        kept = [change for change in notified if change.record is not None]
        gone = [(change.channel, change.alert) for change in notified if change.record is None]
        with _transaction(self.connection):
            self.replace_alerts(now, text)
            if outbox:
                self.connection.executemany(
                    "INSERT INTO outbox (channel, created_at, payload) VALUES (?, ?, ?)", outbox
                )
            if kept:
                self.connection.executemany(
                    "INSERT OR REPLACE INTO notified (channel, alert, record) VALUES (?, ?, ?)",
                    kept,
                )
            if gone:
                self.connection.executemany(
                    "DELETE FROM notified WHERE channel = ? AND alert = ?", gone
                )

    def select_pending(self, channel: str, limit: int) -> list[OutboxRow]:
        rows = self.connection.execute(
            "SELECT id, channel, created_at, attempts, payload FROM outbox"
            " WHERE channel = ? AND state = 'pending' ORDER BY id LIMIT ?",
            (channel, limit),
        )
        return [OutboxRow(*row) for row in rows]

    def note_attempt(self, ids: Sequence[int], error: str) -> None:
        with _transaction(self.connection):
            self.connection.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error, row_id) for row_id in ids],
            )

    def finish(self, ids: Sequence[int], state: str, at: float, error: str | None) -> None:
        """One statement (atomic by itself): a batch is at most a few hundred ids."""
        if not ids:
            return
        self.connection.execute(
            "UPDATE outbox SET state = ?, finished_at = ?,"
            " attempts = attempts + 1, last_error = coalesce(?, last_error)"
            f" WHERE state = 'pending' AND id IN ({', '.join('?' * len(ids))})",
            (state, at, error, *ids),
        )

    def sent_then_pending(
        self, ids: Sequence[int], at: float, channel: str, limit: int
    ) -> list[OutboxRow]:
        self.finish(ids, "sent", at, None)
        return self.select_pending(channel, limit)

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        for channel, state, count in self.connection.execute(
            "SELECT channel, state, count(*) FROM outbox WHERE state != 'sent'"
            " GROUP BY channel, state"
        ):
            pending, dead = counts.get(channel, (0, 0))
            counts[channel] = (count, dead) if state == "pending" else (pending, count)
        return counts

    def dead_letter_orphans(
        self, channels: set[str], created_before: float, at: float
    ) -> dict[str, int]:
        found: dict[str, int] = {}
        with _transaction(self.connection):
            rows = self.connection.execute(
                "SELECT id, channel FROM outbox WHERE state = 'pending' AND created_at < ?",
                (created_before,),
            ).fetchall()
            orphans = [(row_id, channel) for row_id, channel in rows if channel not in channels]
            self.connection.executemany(
                "UPDATE outbox SET state = 'dead', finished_at = ?,"
                " last_error = 'its notifier is no longer configured' WHERE id = ?",
                [(at, row_id) for row_id, _ in orphans],
            )
        for _, channel in orphans:
            found[channel] = found.get(channel, 0) + 1
        return found

    def prune_outbox(self, before: float) -> int:
        with _transaction(self.connection):
            cursor = self.connection.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?", (before,)
            )
            return cursor.rowcount

    def select_notified(self) -> list[tuple[str, str, str]]:
        return [
            (channel, alert, record)
            for channel, alert, record in self.connection.execute(
                "SELECT channel, alert, record FROM notified ORDER BY channel, alert"
            )
        ]

    def select_alerts(self) -> list[dict[str, object]]:
        row = self.connection.execute("SELECT records FROM alerts WHERE id = 1").fetchone()
        if row is None:
            return []
        records = self._json(row[0], "the alert state")
        if not isinstance(records, list) or not all(isinstance(item, dict) for item in records):
            raise _corrupt(self.path, "the alert state is not a list of objects")
        return records

    def replace_value(self, name: str, text: str) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)", (name, text)
        )

    def select_value(self, name: str) -> object | None:
        row = self.connection.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._json(row[0], f"value {name!r}")

    def close(self, batch: Sequence[Event]) -> None:
        try:
            self.insert_events(batch)
            with contextlib.suppress(sqlite3.Error):
                self.connection.execute("PRAGMA optimize")
        finally:
            self.connection.close()
            if self.lock is not None:
                os.close(self.lock)
                self.lock = None

    def _insert(self, batch: Sequence[Event]) -> None:
        self.connection.executemany(
            "INSERT INTO events (timestamp, journey, record) VALUES (?, ?, ?)",
            [(event.timestamp, event.journey, event_to_json(event)) for event in batch],
        )

    def _json(self, text: str, what: str) -> object:
        try:
            return json.loads(text)
        except ValueError as error:
            raise _corrupt(self.path, f"{what} is unreadable: {error}") from None


def _iterate_rows(
    connection: sqlite3.Connection, path: str, since: float | None
) -> Iterator[tuple[float, str]]:
    try:
        query = "SELECT timestamp, record FROM events WHERE timestamp >= ? ORDER BY timestamp, id"
        yield from connection.execute(query, (-math.inf if since is None else since,))
    except sqlite3.Error as error:
        raise _state_error(path, error) from None
    finally:
        connection.close()


def _parse_record(record: str, path: str, timestamp: float) -> Event:
    """A stored JSON line back into an event, with the column's exact timestamp (the line's
    is rounded to milliseconds)."""
    try:
        data = json.loads(record)
        if isinstance(data, dict):
            data["timestamp"] = timestamp
        return parse_event(data)
    except ValueError as error:
        raise _corrupt(path, f"unreadable event {record[:80]!r}: {error}") from None
