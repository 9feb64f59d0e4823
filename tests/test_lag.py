"""The lag monitor marks a run `lag_affected` when the prober itself may have slowed it:
an event-loop lag spike, or server work (a render holding the interpreter lock) that
overlapped the run. Time comes from an injected clock."""

from __future__ import annotations

import pytest

from prober.daemon import LAG_SPIKE, LAG_TICK, LagMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("busy", "run", "affected"),
    [
        ((100.0, 100.2), (100.1, 100.15), True),
        ((100.0, 100.2), (100.15, 100.3), True),
        ((100.1, 100.12), (100.0, 100.5), True),
        ((100.0, 100.2), (100.25, 100.3), False),
        ((100.3, 100.4), (100.0, 100.25), False),
    ],
    ids=["inside", "overlaps-end", "contains", "after", "before"],
)
def test_server_work_overlapping_a_run_marks_it(
    busy: tuple[float, float], run: tuple[float, float], affected: bool
) -> None:
    """A render on a server thread that overlapped the run marks it; one that did not, not."""
    clock = Clock()
    monitor = LagMonitor(clock=clock)
    monitor.busy(*busy)
    clock.now = run[1]
    monitor.note_wakeup(expected=clock.now, woke=clock.now)  # the loop is on time now
    assert monitor.affected(*run) is affected


def test_lag_spike_marks_overlapping_runs_only() -> None:
    """A loop wake-up later than LAG_SPIKE marks the runs it overlapped."""
    clock = Clock()
    monitor = LagMonitor(clock=clock)
    monitor.note_wakeup(expected=100.0, woke=100.0 + LAG_SPIKE * 2)
    clock.now = 101.0
    monitor.note_wakeup(expected=clock.now, woke=clock.now)
    assert monitor.affected(100.0, 100.05)
    assert not monitor.affected(100.5, 100.6)


def test_spikes_finer_than_the_old_sampling_are_seen() -> None:
    """The loop is sampled finely enough that a 20 ms stall (the old sampling needed 50 ms
    and 100 ms ticks) is a spike."""
    assert LAG_TICK <= 0.02
    clock = Clock()
    monitor = LagMonitor(clock=clock)
    monitor.note_wakeup(expected=100.0, woke=100.02)
    clock.now = 100.5
    monitor.note_wakeup(expected=clock.now, woke=clock.now)
    assert monitor.affected(99.99, 100.01)


def test_a_loop_late_right_now_marks_the_run() -> None:
    """A run ending while the monitor's next wake-up is overdue is marked (the spike is not
    recorded yet)."""
    clock = Clock()
    monitor = LagMonitor(clock=clock)
    monitor.note_wakeup(expected=100.0, woke=100.0)
    clock.now = 100.0 + LAG_TICK + LAG_SPIKE * 3
    assert monitor.affected(100.0, 100.0 + LAG_TICK)
