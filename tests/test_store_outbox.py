"""The state file's outbox (schema 3): alert state and notifications in one transaction,
the sender's bookkeeping, counts, housekeeping, and the migration of a schema-2 file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from prober.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    NotifiedChange,
    OutboxEntry,
    StateError,
    StateStore,
)
from tests.test_store import run

T0 = 1_780_000_000.0
RECORDS = [
    {
        "labels": {"alertname": "ApiDown"},
        "phase": "firing",
        "active_since": T0,
        "fired_at": T0,
        "one_shot": False,
        "values": {},
    }
]


def entries(channel: str, *payloads: str) -> list[OutboxEntry]:
    return [OutboxEntry(channel, T0, payload) for payload in payloads]


def test_alert_state_and_notifications_are_written_together(tmp_path: Path) -> None:
    """One call writes the alert state, the outbox rows and the channel records."""
    db = tmp_path / "state.db"

    async def write(store: StateStore) -> None:
        await store.save_alerts_with_notifications(
            RECORDS,
            T0,
            [*entries("slack", "a", "b"), *entries("webhook", "c")],
            [NotifiedChange("slack", '{"alertname": "ApiDown"}', '{"state": "firing"}')],
        )

    async def read(store: StateStore) -> object:
        return (
            await store.load_alerts(),
            [row.payload for row in await store.pending_notifications("slack", 10)],
            await store.load_notified(),
            await store.outbox_counts(),
        )

    run(write, db)
    assert run(read, db) == (
        RECORDS,
        ["a", "b"],
        [("slack", '{"alertname": "ApiDown"}', '{"state": "firing"}')],
        {"slack": (2, 0), "webhook": (1, 0)},
    )


def test_a_failing_notification_write_keeps_the_old_alert_state(tmp_path: Path) -> None:
    """All or nothing: when the outbox insert fails, the alert state is not replaced
    either, so the restarted engine sees the change again and it is announced then."""
    db = tmp_path / "state.db"

    async def job(store: StateStore) -> object:
        await store.save_alerts(RECORDS, T0)
        broken = [OutboxEntry("slack", T0, None)]  # type: ignore[arg-type]  # payload NOT NULL
        with pytest.raises(StateError, match="NOT NULL"):
            await store.save_alerts_with_notifications([], T0 + 1, broken)
        return await store.load_alerts(), await store.outbox_counts()

    assert run(job, db) == (RECORDS, {})


def test_sender_bookkeeping(tmp_path: Path) -> None:
    """Pending rows come in order per channel; attempts and errors are noted; sent rows
    leave the queue (the next ones come with the marking); dead letters are counted."""
    db = tmp_path / "state.db"

    async def job(store: StateStore) -> object:
        await store.save_alerts_with_notifications(RECORDS, T0, entries("hook", "1", "2", "3"))
        first = await store.pending_notifications("hook", 2)
        await store.note_attempt([row.id for row in first], "webhook answered 503")
        following = await store.sent_then_pending([row.id for row in first], T0 + 5, "hook", 2)
        await store.finish_notifications(
            [row.id for row in following], "dead", T0 + 6, "refused: 400"
        )
        return (
            [row.payload for row in first],
            [(row.payload, row.attempts) for row in following],
            await store.pending_notifications("hook", 2),
            await store.outbox_counts(),
        )

    assert run(job, db) == (["1", "2"], [("3", 0)], [], {"hook": (0, 1)})
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT payload, state, attempts, last_error FROM outbox ORDER BY id"
        ).fetchall()
    connection.close()
    assert rows == [
        ("1", "sent", 2, "webhook answered 503"),
        ("2", "sent", 2, "webhook answered 503"),
        ("3", "dead", 1, "refused: 400"),
    ]


def test_housekeeping(tmp_path: Path) -> None:
    """Finished rows are pruned by age; pending rows of a channel no longer configured are
    dead-lettered once old enough; the configured channel's rows are left alone."""
    db = tmp_path / "state.db"

    async def job(store: StateStore) -> object:
        await store.save_alerts_with_notifications(
            RECORDS, T0, [*entries("gone", "x"), *entries("kept", "y", "z")]
        )
        (y, _) = await store.pending_notifications("kept", 2)
        await store.finish_notifications([y.id], "sent", T0 + 10)
        too_young = await store.dead_letter_orphans({"kept"}, T0, T0 + 20)
        orphans = await store.dead_letter_orphans({"kept"}, T0 + 1, T0 + 20)
        pruned_early = await store.prune_outbox(T0 + 10)
        pruned = await store.prune_outbox(T0 + 11)
        return too_young, orphans, pruned_early, pruned, await store.outbox_counts()

    assert run(job, db) == ({}, {"gone": 1}, 0, 1, {"gone": (0, 1), "kept": (1, 0)})


def test_schema_2_file_gains_the_outbox(tmp_path: Path) -> None:
    """A file written before the outbox existed is migrated, its data kept."""
    db = tmp_path / "state.db"
    connection = sqlite3.connect(db, isolation_level=None)
    for script in MIGRATIONS[:2]:
        connection.executescript(script)
    connection.execute("PRAGMA user_version = 2")
    connection.execute(
        "INSERT INTO alerts (id, saved_at, records) VALUES (1, ?, ?)", (T0, json.dumps(RECORDS))
    )
    connection.close()

    async def job(store: StateStore) -> object:
        await store.save_alerts_with_notifications(RECORDS, T0, entries("slack", "p"))
        return await store.load_alerts(), await store.outbox_counts()

    assert run(job, db) == (RECORDS, {"slack": (1, 0)})
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    check.close()
