"""The SQLite state file: round trips, WAL and concurrent readers, refusal of corrupt and newer
files, migration of older ones, a `kill -9` in the middle of writing, and `prober export`."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from prober import store as store_module
from prober.replay import read_events
from prober.store import MIGRATIONS, SCHEMA_VERSION, StateError, StateStore
from slo.alerting import ActiveAlert, AlertState, alert_key
from slo.engine import Event
from slo.windows import Layout, Timeline
from tests.conftest import REPO, run_prober

_T = TypeVar("_T")
T0 = 1_780_000_000.0
EVENTS = (
    Event(T0 + 30.25, "chat", False, 0.84, "login", "status", {"login": 503}, {"v": "1.4.2"}),
    Event(T0, "healthcheck", True),
    Event(T0 + 10.5, "chat", True, 0.5, status_codes={"login": 200, "send": 200}),
    Event(T0 + 10.5, "healthcheck", True, 0.001, inconclusive=True),
    Event(T0 + 60, "chat", True, 1.25, captures={"tokens": 512, "nested": {"a": [1, 2]}}),
)
BY_TIME = sorted(EVENTS, key=lambda event: event.timestamp)


def run(job: Callable[[StateStore], Awaitable[_T]], path: Path) -> _T:
    """Open the store at `path`, run `job(store)` in a fresh event loop, close it."""

    async def main() -> _T:
        store = StateStore.open(path)
        try:
            return await job(store)
        finally:
            await store.close()

    return asyncio.run(main())


def append(events: tuple[Event, ...] | list[Event]) -> Callable[[StateStore], Awaitable[None]]:
    async def job(store: StateStore) -> None:
        await store.append_events(events)

    return job


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


# ---------------------------------------------------------------------- round trips


def test_events_round_trip_in_time_order(db: Path) -> None:
    """Events come back equal, oldest first (ties in insertion order), after a reopen."""
    run(append(EVENTS[:2]), db)

    async def buffered(store: StateStore) -> None:
        for event in EVENTS[2:]:
            store.add_event(event)
        await store.flush()

    run(buffered, db)

    async def since(store: StateStore) -> object:
        return await store.events_since(0)

    assert run(since, db) == BY_TIME


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (T0 - 1, BY_TIME),
        (T0 + 10.5, BY_TIME[1:]),  # inclusive
        (T0 + 10.6, BY_TIME[3:]),
        (T0 + 61, []),
    ],
    ids=["all", "inclusive-boundary", "after-boundary", "none"],
)
def test_events_since_filters_by_timestamp(db: Path, since: float, expected: list[Event]) -> None:
    """`events_since(t)` returns the events with timestamp >= t, oldest first."""

    async def job(store: StateStore) -> object:
        await store.append_events(EVENTS)
        return await store.events_since(since)

    assert run(job, db) == expected


def test_events_since_sees_buffered_events(db: Path) -> None:
    """Events added but not yet flushed are written before `events_since` reads."""

    async def job(store: StateStore) -> object:
        store.add_event(EVENTS[1])
        return await store.events_since(0)

    assert run(job, db) == [EVENTS[1]]


def _alert_records() -> list[dict[str, object]]:
    key = alert_key({"alertname": "SLOBurnRate", "severity": "critical", "slo": "chat"})
    alert = ActiveAlert("firing", T0, T0 + 30, False, {"burn_rate_long": 20.5})
    return [dict(record) for record in AlertState({key: alert}).to_records()]


LAYOUT = Layout.plan([3600.0, 86400.0], [3600.0], 30.0)


def _window_snapshot() -> bytes:
    window = Timeline(LAYOUT)
    for offset in range(100):
        window.add(T0 + offset * 7, () if offset % 5 else (0,))
    return window.snapshot()


async def _save_alerts(store: StateStore) -> None:
    await store.save_alerts(_alert_records(), T0)


async def _load_alerts(store: StateStore) -> object:
    return AlertState.from_records(await store.load_alerts()).to_records()


async def _save_windows(store: StateStore) -> None:
    await store.save_windows({"chat-availability": _window_snapshot(), "other": b""}, T0 + 5)


async def _load_window_each(store: StateStore) -> tuple[bytes | None, ...]:
    return tuple([await store.load_window(slo) for slo in ("chat-availability", "other", "none")])


async def _save_value(store: StateStore) -> None:
    await store.save_value("last_reports", {"chat": T0, "healthcheck": None})
    await store.save_value("last_reports", {"chat": T0 + 1})  # replaces


async def _load_value(store: StateStore) -> object:
    return await store.load_value("last_reports"), await store.load_value("missing")


@pytest.mark.parametrize(
    ("save", "load", "expected", "empty"),
    [
        (_save_alerts, _load_alerts, tuple(_alert_records()), ()),
        (
            _save_windows,
            _load_window_each,
            (_window_snapshot(), b"", None),
            (None, None, None),
        ),
        (_save_value, _load_value, ({"chat": T0 + 1}, None), (None, None)),
    ],
    ids=["alerts", "windows", "values"],
)
def test_aggregates_round_trip_across_reopen(
    db: Path,
    save: Callable[[StateStore], Awaitable[None]],
    load: Callable[[StateStore], Awaitable[object]],
    expected: object,
    empty: object,
) -> None:
    """What is saved loads back equal after a reopen; a fresh file loads as empty."""
    assert run(load, db) == empty
    run(save, db)
    assert run(load, db) == expected


def test_restored_window_counts_match(db: Path) -> None:
    """A window snapshot survives the file byte for byte: the restored window counts alike."""
    run(_save_windows, db)
    snapshot, _, _ = run(_load_window_each, db)
    assert snapshot is not None
    restored = Timeline.restore(snapshot, LAYOUT)
    original = Timeline.restore(_window_snapshot(), LAYOUT)
    assert restored.counts(3600.0, T0 + 700) == original.counts(3600.0, T0 + 700)


def test_events_after_windows_are_those_the_snapshot_misses(db: Path) -> None:
    """Events added before `save_windows` (even unflushed) are in the snapshot; only the later
    ones come back from `events_after_windows`, whatever their timestamps."""

    async def job(store: StateStore) -> object:
        assert await store.events_after_windows() == []
        await store.append_events(EVENTS[:2])
        store.add_event(EVENTS[2])  # still buffered: save_windows writes it first
        everything = await store.events_after_windows()
        store.add_event(EVENTS[3])
        await store.save_windows({"chat": b"snapshot"}, T0 + 100)
        store.add_event(EVENTS[4])
        store.add_event(Event(T0 - 500, "chat", True))  # older than the snapshot, still missed
        return everything

    assert run(job, db) == sorted(EVENTS[:3], key=lambda event: event.timestamp)

    async def after(store: StateStore) -> object:
        return await store.events_after_windows()

    assert run(after, db) == [Event(T0 - 500, "chat", True), EVENTS[4]]


def test_prune_deletes_older_events(db: Path) -> None:
    """`prune(t)` deletes events with timestamp < t and says how many."""

    async def job(store: StateStore) -> object:
        await store.append_events(EVENTS)
        deleted = await store.prune(T0 + 10.5)
        return deleted, await store.events_since(0), await store.prune(T0 + 10.5)

    assert run(job, db) == (1, BY_TIME[1:], 0)


def test_bad_input_is_refused_at_the_call(db: Path) -> None:
    """A non-finite timestamp or a value JSON cannot hold fails where it was passed; a closed
    store refuses work."""

    async def job(store: StateStore) -> None:
        with pytest.raises(ValueError, match="finite"):
            store.add_event(Event(float("nan"), "chat", True))
        with pytest.raises(TypeError):
            store.save_value("x", object())
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(StateError, match="closed"):
            store.add_event(EVENTS[0])
        with pytest.raises(StateError, match="closed"):
            store.load_value("x")

    run(job, db)


def test_io_runs_off_the_event_loop_thread(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQLite call happens on the store's worker thread, never the loop's."""
    threads: set[str] = set()
    original = store_module._Database.insert_events

    def spy(self: store_module._Database, batch: Sequence[Event]) -> None:
        threads.add(threading.current_thread().name)
        original(self, batch)

    monkeypatch.setattr(store_module._Database, "insert_events", spy)
    run(append(EVENTS), db)
    assert len(threads) == 1
    assert threads.pop().startswith("prober-state")


# ---------------------------------------------------------------------- WAL and readers


def test_file_is_wal_and_identified(db: Path) -> None:
    """The file is in WAL mode, at the current schema, marked as prober's."""
    run(append(EVENTS), db)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA application_id").fetchone()[0] == (
            store_module.APPLICATION_ID
        )
    connection.close()


def test_reader_sees_committed_rows_while_writer_is_open(db: Path) -> None:
    """`read_records` / `read_events` see flushed rows while the writer holds the file open,
    and not the ones still buffered."""

    async def job(store: StateStore) -> tuple[list[Event], list[str]]:
        await store.append_events(EVENTS[:2])
        store.add_event(EVENTS[2])
        first = list(StateStore.read_events(db))
        await store.flush()
        records = list(StateStore.read_records(db, since=T0 + 10))
        return first, records

    first, records = run(job, db)
    assert first == [EVENTS[1], EVENTS[0]]
    assert read_events(records, "export") == [
        Event(T0 + 10.5, "chat", True, 0.5, status_codes={"login": 200, "send": 200}),
        Event(T0 + 30.25, "chat", False, 0.84, "login", "status", {"login": 503}, {"v": "1.4.2"}),
    ]


# ---------------------------------------------------------------------- refusing bad files


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(4).randbytes(20_000))


def _truncated(path: Path) -> None:
    run(
        append([Event(T0 + i, "chat", True, captures={"pad": "x" * 300}) for i in range(3000)]),
        path,
    )
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size // 2 + 1000)  # mid-page


def _damaged_page(path: Path) -> None:
    run(
        append([Event(T0 + i, "chat", True, captures={"pad": "x" * 300}) for i in range(1000)]),
        path,
    )
    with open(path, "r+b") as file:
        file.seek(4096 * 5)
        file.write(b"\xff" * 64)


def _other_program(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE songs (title TEXT)")
    connection.close()


def _newer(path: Path) -> None:
    run(append(EVENTS), path)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_garbage, "corrupt or not a prober state file (not an SQLite database)"),
        (_truncated, "corrupt or not a prober state file (database disk image is malformed)"),
        (_damaged_page, "corrupt or not a prober state file (*** in database main ***"),
        (_other_program, "is an SQLite database but not a prober state file"),
        (
            _newer,
            f"was written by a newer prober (schema {SCHEMA_VERSION + 1}, this one knows "
            f"{SCHEMA_VERSION}): upgrade prober or move the file away",
        ),
    ],
    ids=["garbage", "truncated", "damaged-page", "other-program", "newer"],
)
def test_unusable_file_is_refused_naming_it(
    db: Path, make: Callable[[Path], None], message: str
) -> None:
    """Opening (for writing or for export) refuses the file with its path and what to do."""
    make(db)
    before = db.read_bytes()
    with pytest.raises(StateError) as raised:
        StateStore.open(db)
    assert str(raised.value).startswith(str(db))
    assert message in str(raised.value)
    with pytest.raises(StateError) as raised:
        list(StateStore.read_records(db))
    assert str(db) in str(raised.value)
    assert db.read_bytes() == before  # never "repaired" behind the operator's back


def test_one_writer_per_state_file(db: Path) -> None:
    """A second writer on the same file is refused, naming the holder; closing frees it."""

    async def second_writer_while_open(store: StateStore) -> str:
        with pytest.raises(StateError) as raised:
            StateStore.open(db)
        return str(raised.value)

    message = run(second_writer_while_open, db)
    assert message == (
        f"state file {db} is in use by prober pid {os.getpid()}: give each daemon its own"
        " state file (state_path or --state)"
    )

    async def nothing(store: StateStore) -> None:
        return None

    run(nothing, db)  # closed by the first run(): open again
    assert list(StateStore.read_records(db)) == []  # readers take no lock


@pytest.mark.parametrize(
    "link",
    [os.symlink, os.link],
    ids=["symlink", "hard-link"],
)
def test_one_writer_per_state_file_through_any_name(
    db: Path, tmp_path: Path, link: Callable[[Path, Path], None]
) -> None:
    """The lock is on the file, not its name: a second writer through a symlink or a hard
    link to a held state file is refused with the same message."""
    run(lambda store: store.flush(), db)  # the file exists now
    other = tmp_path / "other-name.db"
    link(db, other)

    async def second_writer_while_open(store: StateStore) -> str:
        with pytest.raises(StateError) as raised:
            StateStore.open(other)
        return str(raised.value)

    message = run(second_writer_while_open, db)
    assert message == (
        f"state file {other} is in use by prober pid {os.getpid()}: give each daemon its own"
        " state file (state_path or --state)"
    )


def test_missing_or_unwritable_location_is_a_state_error(tmp_path: Path) -> None:
    """A state path in a missing directory, or a missing file for export, is a StateError."""
    with pytest.raises(StateError, match="no-such-dir"):
        StateStore.open(tmp_path / "no-such-dir" / "state.db")
    with pytest.raises(StateError, match=r"no state file at .*missing\.db"):
        StateStore.read_records(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


# ---------------------------------------------------------------------- migrations


def _schema_file(path: Path, version: int) -> None:
    """A file as a prober knowing only the first `version` migrations left it."""
    connection = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:version]:
        connection.executescript(script)
    connection.execute(f"PRAGMA user_version = {version}")
    connection.execute(
        "INSERT INTO events (timestamp, journey, record) VALUES (?, ?, ?)",
        (T0, "chat", json.dumps({"timestamp": T0, "journey": "chat", "success": True})),
    )
    connection.close()


def test_old_schema_is_migrated(db: Path) -> None:
    """A schema-1 file is brought to the current schema with its data kept."""
    assert SCHEMA_VERSION >= 2
    _schema_file(db, 1)
    assert list(StateStore.read_events(db)) == [Event(T0, "chat", True)]  # export reads it as is

    async def job(store: StateStore) -> object:
        await store.save_value("k", [1])
        return await store.events_since(0), await store.load_value("k")

    assert run(job, db) == ([Event(T0, "chat", True)], [1])
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_failed_migration_leaves_the_file_unchanged(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails half-way is rolled back whole: same version, no new table."""
    run(append(EVENTS), db)
    broken = "CREATE TABLE added (x); CREATE TABLE events (x);"  # the second statement fails
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StateError, match=f"cannot migrate {db} from schema {SCHEMA_VERSION}"):
        StateStore.open(db)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert "added" not in tables


# ---------------------------------------------------------------------- kill -9

CRASH_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from prober.store import StateStore
    from slo.engine import Event

    async def main() -> None:
        store = StateStore.open(sys.argv[1])
        written, batch = 0, int(sys.argv[2])
        while written < 20_000:
            await store.append_events([
                Event(1.78e9 + (written + i) * 0.5, "chat", (written + i) % 7 != 0, 0.25,
                      captures={"n": written + i, "pad": "x" * 100})
                for i in range(batch)
            ])
            written += batch
            print(written, flush=True)
        await asyncio.sleep(60)  # wait for the kill

    asyncio.run(main())
    """
)


@pytest.mark.integration
def test_kill_9_while_writing_leaves_a_sound_file(db: Path) -> None:
    """SIGKILL in the middle of writing: the file passes integrity_check, holds every batch
    confirmed before the kill, and only whole batches (no partial rows)."""
    batch = 25
    target = random.randrange(1_000, 8_000)
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, str(db), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    watchdog = threading.Timer(15.0, writer.kill)  # the deadline: readline then sees EOF
    watchdog.start()
    confirmed = 0
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            confirmed = int(line)
            if confirmed >= target:
                break
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        watchdog.cancel()
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert confirmed >= target, f"the writer confirmed only {confirmed} events in time"
    assert writer.returncode == -signal.SIGKILL
    assert (db.parent / f"{db.name}-wal").exists()  # killed with its write-ahead log open

    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    connection.close()
    events = list(StateStore.read_events(db))
    assert len(events) >= confirmed
    assert len(events) % batch == 0
    assert [event.captures["n"] for event in events] == list(range(len(events)))

    async def reopen(store: StateStore) -> object:
        return len(await store.events_since(0))

    assert run(reopen, db) == len(events)


# ---------------------------------------------------------------------- prober export


@pytest.fixture
def exported_state(tmp_path: Path) -> tuple[Path, Path, float]:
    """A config whose state_path holds events from 3 h, 1 h and 10 min ago."""
    now = time.time()
    state = tmp_path / "recorded.db"
    events = [
        Event(now - 3 * 3600, "chat", True, 0.4),
        Event(now - 3600, "chat", False, 2.5, "send", "status", {"login": 200, "send": 503}),
        Event(now - 600, "healthcheck", True, captures={"version": "1.4.2"}),
    ]
    run(append(events), state)
    config = tmp_path / "prober.yaml"
    config.write_text(
        "journeys: [{name: chat, steps: [{name: s, method: GET, url: /}]}]\n"
        f"state_path: {json.dumps(str(state))}\n"
    )
    return config, state, now


@pytest.mark.integration
def test_export_writes_replay_input(exported_state: tuple[Path, Path, float]) -> None:
    """`prober export -c FILE` writes the config's state file as replay JSON lines."""
    config, state, _ = exported_state
    result = run_prober("export", "-c", str(config))
    assert result.returncode == 0, result.stderr
    events = read_events(result.stdout.splitlines(), "stdout")
    assert [event.journey for event in events] == ["chat", "chat", "healthcheck"]
    assert events[1].status_codes == {"login": 200, "send": 503}
    assert result.stdout.splitlines() == list(StateStore.read_records(state))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "env"),
    [(["--since", "2h"], {}), ([], {"PROBER_SINCE": "2h"})],
    ids=["flag", "env-twin"],
)
def test_export_since(
    exported_state: tuple[Path, Path, float], args: list[str], env: dict[str, str]
) -> None:
    """`--since 2h` (or PROBER_SINCE) keeps only the last two hours."""
    config, _, now = exported_state
    result = run_prober("export", "-c", str(config), *args, env=env)
    assert result.returncode == 0, result.stderr
    events = read_events(result.stdout.splitlines(), "stdout")
    assert [round(now - event.timestamp) for event in events] == [3600, 600]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "no state file at"),
        (_garbage, "is corrupt or not a prober state file"),
        (_newer, "was written by a newer prober"),
    ],
    ids=["missing", "garbage", "newer"],
)
def test_export_refuses_unusable_state(
    tmp_path: Path, make: Callable[[Path], None] | None, message: str
) -> None:
    """A missing, corrupt or newer state file (`--state`) exits 2 with a message, no traceback."""
    state = tmp_path / "given.db"
    if make is not None:
        make(state)
    result = run_prober("export", "-c", str(tmp_path / "unused.yaml"), "--state", str(state))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"prober: {state}" if make else "prober: no state file")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert os.path.exists(state) == (make is not None)
