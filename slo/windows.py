"""Rolling-window counts of good and bad events, shared by the SLOs of one journey.

The contract (DESIGN, "Replay"): at time t the error ratio over window w is bad / total over
the events with `t - w < timestamp <= t`. Two stores answer it, both per journey, so that the
SLOs of one journey share one copy of its history; each SLO reads it through an *indicator*
(availability, or latency below a threshold) that judged every event good or bad once:

- `Stream` (replay, `--windows exact`): every event, exact for every window and every `now`,
  read with a `now` that never goes back. Memory grows with the recording.
- `Timeline` (the daemon, and replay `--windows daemon`): counts per *slot*, in bounded
  memory whatever the run rate. This module's guarantee is about it:

**Exact at the evaluation ticks.** Time is counted in whole microseconds (an event's timestamp
is rounded to the microsecond). Slot k holds the events in `(o + k·s, o + (k+1)·s]`, for an
origin o (the Unix epoch in the daemon, whose evaluations fall on multiples of the evaluation
interval E) and a slot width s that divides E and every window the fine tier answers
(`Layout.plan`: their greatest common divisor, 30 s with the defaults). At a tick `t = o + n·E`
a window w that is a multiple of s starts on a slot boundary, so the slots from
`(t - w - o)/s` to the one ending at t hold exactly the events of `(t - w, t]`: counts,
ratios, burn rates, budget and so every alert transition are those of the exact definition.

Two things bound the memory, and each is a stated departure from exactness:

- **Fine span.** Slots of width s are kept for the *fine span*: the longest burn-rate policy
  window (the windows that decide a page; 3 d with the defaults) and at least 6 h. Windows
  beyond it (the 30-day SLO window with the default policies) are answered from *coarse*
  slots of `COARSE_SECONDS` (1 h): their start is rounded down to a coarse boundary, so
  they count the events in `(c·⌊(t - w - o)/c⌋ + o, t]`, at most one hour more history. A
  policy whose long window is the SLO window makes the fine span reach it: exact again.
- **Slot ceiling.** A fine span over `SLOT_CEILING` slots of width s (an evaluation interval
  far below a second, or one sharing no large divisor with the windows) widens the slot to
  the smallest multiple of s under the ceiling; windows that are not multiples of it are
  then rounded the same way as coarse ones, to the new width.

In general, for any `now` after the newest slot with events, `counts(w, now)` is the events in
`(w0·⌊(now - w - o)/w0⌋ + o, e]`, w0 the width of the tier answering w and e the end of the
slot holding `now` (`now` itself on a slot boundary). `Layout.is_exact` says when that is
`(now - w, now]`. Memory per journey: the fine span over s, one byte a slot for the run count
and one per indicator for its bad events (wider only where a slot holds more than 255 runs),
plus the coarse slots: about 17 KiB for 3 days at 30 s, 1.5 KiB for 30 days at 1 h.

Events may arrive out of order. One in a slot that no window can reach any more (behind the
span of its tier, measured from the newest event or the latest `prune`) is not counted there.
"""

from __future__ import annotations

import math
import operator
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from slo.budget import Counts, SLOError

__all__ = [
    "COARSE_SECONDS",
    "MIN_FINE_SPAN",
    "SLOT_CEILING",
    "Layout",
    "Stream",
    "Timeline",
    "from_little_endian",
    "little_endian",
    "micros",
    "tick_at_or_before",
]

MICROS: Final = 1_000_000
#: Width of the slots that answer windows beyond the fine span (the SLO window's budget).
COARSE_SECONDS: Final = 3600.0
#: The fine span is at least this long: the usual dashboard windows up to 6 h stay exact.
MIN_FINE_SPAN: Final = 6 * 3600.0
#: The most fine slots a timeline keeps (a quarter of a MiB per counter at one byte).
SLOT_CEILING: Final = 1 << 18
#: Slots dropped at once behind the span: one memmove per block, not one per slot.
_DROP_BLOCK: Final = 256

_WIDER: Final = {"B": "H", "H": "I", "I": "Q", "L": "Q"}
_SNAPSHOT_MAGIC: Final = b"SLOT"
_SNAPSHOT_VERSION: Final = 2
#: magic, version, indicators, origin, fine width, fine span, coarse width, retention (all
#: µs), newest event (µs, or the "none" sentinel); little-endian. Then each tier.
_HEADER: Final = struct.Struct("<4sHHqqqqqq")
#: per tier: first slot, floor slot, slots, item size of the run counts, then one item size
#: per indicator (read separately).
_TIER_HEADER: Final = struct.Struct("<qqIB")
_NONE: Final = -(2**62)
#: Past every slot: "to the newest stored one".
_EVER: Final = 2**62


def micros(seconds: float) -> int:
    """Seconds as whole microseconds, the unit every slot boundary is computed in."""
    if not math.isfinite(seconds):
        raise SLOError(f"a time must be a finite number of seconds, got {seconds!r}")
    return round(seconds * MICROS)


def tick_at_or_before(now: float, interval: float, origin: float = 0.0) -> float:
    """The latest evaluation tick `origin + n × interval` at or before `now`: where the
    daemon evaluates, so that its timelines are exact (counted in microseconds)."""
    step, base = micros(interval), micros(origin)
    if step <= 0:
        raise SLOError(f"evaluation interval must be positive, got {interval!r}")
    return (base + (micros(now) - base) // step * step) / MICROS


@dataclass(frozen=True, slots=True)
class Layout:
    """How a `Timeline` slices time: all in microseconds. `coarse_width` 0: no coarse tier
    (the fine span reaches the retention)."""

    origin: int
    fine_width: int
    fine_span: int
    coarse_width: int
    retention: int

    @classmethod
    def plan(
        cls,
        windows: Iterable[float],
        decision_windows: Iterable[float],
        evaluation_interval: float,
        origin: float = 0.0,
    ) -> Layout:
        """The layout that makes `windows` exact at ticks `origin + n × evaluation_interval`
        (see the module docstring): the fine span covers the `decision_windows` (burn-rate
        policy windows) and at least `MIN_FINE_SPAN`; the slot divides the interval and
        every window the fine span answers."""
        spans = sorted({micros(window) for window in windows})
        if not spans or spans[0] <= 0:
            raise SLOError("a timeline needs at least one window, and every window is positive")
        interval = micros(evaluation_interval)
        if interval <= 0:
            raise SLOError(f"evaluation interval must be positive, got {evaluation_interval!r}")
        retention = spans[-1]
        decisive = max((micros(window) for window in decision_windows), default=0)
        fine_span = min(retention, max(micros(MIN_FINE_SPAN), decisive))
        width = math.gcd(interval, *(span for span in spans if span <= fine_span))
        if fine_span > width * SLOT_CEILING:
            needed = -(-fine_span // SLOT_CEILING)
            # The smallest round width that is enough and a multiple of the divisor, so
            # that the windows (whole minutes) stay whole slots where they can.
            round_widths = (n * MICROS for n in (1, 2, 5, 10, 15, 30, 60, 300, 600, 900, 3600))
            width = next(
                (w for w in round_widths if w >= needed and w % width == 0),
                width * -(-needed // width),
            )
        coarse = 0 if fine_span >= retention else max(micros(COARSE_SECONDS), width)
        return cls(micros(origin), width, fine_span, coarse, retention)

    def tier_of(self, window: int) -> tuple[int, int]:
        """(width, span) of the tier that answers a window of `window` µs."""
        if window <= self.fine_span:
            return self.fine_width, self.fine_span
        return self.coarse_width, self.retention

    def is_exact(self, window: float, now: float) -> bool:
        """Whether `counts(window, now)` is exactly the events of `(now - window, now]`."""
        span, moment = micros(window), micros(now) - self.origin
        width = self.tier_of(span)[0]
        return span % width == 0 and moment % width == 0


class _Tier:
    """Slots of one width: run counts, bad counts per indicator, and a running sum per
    window (its *cursor*: the first slot it counts, and the sums of every stored slot from
    there on), so that a count at a tick costs a few additions whatever the window's length.
    """

    __slots__ = ("bads", "cursors", "first", "floor", "origin", "span", "totals", "width")

    def __init__(self, width: int, span: int, origin: int, indicators: int) -> None:
        self.width = width
        self.span = span
        self.origin = origin
        self.first = _NONE  # slot number of position 0 (_NONE while nothing is stored)
        self.floor = _NONE  # slots below it are out of every window's reach
        self.totals: array[int] = array("B")
        self.bads: list[array[int]] = [array("B") for _ in range(indicators)]
        #: window µs -> [first slot counted, runs, bad per indicator...]
        self.cursors: dict[int, list[int]] = {}

    def slot(self, moment: int) -> int:
        """The slot holding an event at `moment` µs: `(o + k·s, o + (k+1)·s]`."""
        return (moment - self.origin - 1) // self.width

    def add(self, slot: int, bad: Sequence[int]) -> None:
        if slot < self.floor:
            return
        position = self._position(slot)
        self._bump(self.totals, position, 0)
        for indicator in bad:
            self._bump(self.bads[indicator], position, indicator + 1)
        for cursor in self.cursors.values():
            if cursor[0] <= slot:
                cursor[1] += 1
                for indicator in bad:
                    cursor[indicator + 2] += 1

    def _position(self, slot: int) -> int:
        """The array position of `slot`, growing the arrays to hold it."""
        if self.first == _NONE:
            self.first = slot
        elif slot < self.first:  # late event before every stored slot: prepend empties
            missing = self.first - slot
            for values in (self.totals, *self.bads):
                values[0:0] = array(values.typecode, bytes(missing * values.itemsize))
            self.first = slot
        position = slot - self.first
        size = len(self.totals)
        if position >= size:
            for values in (self.totals, *self.bads):
                values.frombytes(bytes((position + 1 - size) * values.itemsize))
        return position

    def _bump(self, values: array[int], position: int, which: int) -> None:
        try:
            values[position] += 1
        except OverflowError:  # a busy slot: one wider item size for this counter
            wider = array(_WIDER[values.typecode], values)
            wider[position] += 1
            if which == 0:
                self.totals = wider
            else:
                self.bads[which - 1] = wider

    def advance(self, reference: int) -> None:
        """Raise the floor to what windows ending at `reference` or later can need."""
        floor = (reference - self.span - self.origin) // self.width
        if floor <= self.floor:
            return
        self.floor = floor
        if self.first == _NONE or floor - self.first < _DROP_BLOCK:
            return
        for cursor in self.cursors.values():
            if cursor[0] < floor:
                self._move(cursor, floor)
        drop = min(floor - self.first, len(self.totals))
        for values in (self.totals, *self.bads):
            del values[:drop]
        self.first += drop
        if not self.totals:
            self.first = _NONE

    def _sums(self, start: int, stop: int) -> list[int]:
        """[runs, bad per indicator...] over the stored slots `start <= k < stop`."""
        if self.first == _NONE:
            return [0] * (len(self.bads) + 1)
        begin = max(start - self.first, 0)
        end = max(min(stop - self.first, len(self.totals)), begin)
        if end - begin == 1:
            return [self.totals[begin], *(values[begin] for values in self.bads)]
        return [sum(self.totals[begin:end]), *(sum(values[begin:end]) for values in self.bads)]

    def _move(self, cursor: list[int], start: int) -> None:
        """Move a cursor forward to `start`, dropping the slots it passes from its sums."""
        first = self.first
        if first == _NONE or start <= first:
            pass  # it passes only slots before the first stored one: nothing to drop
        elif start - cursor[0] == 1 and 0 <= cursor[0] - first < len(self.totals):
            # A tick moves every cursor by one slot: no list, no slice.
            position = cursor[0] - first
            cursor[1] -= self.totals[position]
            for index, values in enumerate(self.bads, start=2):
                cursor[index] -= values[position]
        else:
            passed = self._sums(cursor[0], start)
            for index, value in enumerate(passed, start=1):
                cursor[index] -= value
        cursor[0] = start

    def count(self, window: int, now: int, indicator: int) -> tuple[int, int]:
        """(bad, runs) over the slots from the one holding `now - window` (exclusive when it
        ends there) to the one holding `now`."""
        start = (now - window - self.origin) // self.width
        last = (now - self.origin - 1) // self.width
        cursor = self.cursors.get(window)
        if cursor is None:
            cursor = self.cursors[window] = [start, *self._sums(start, _EVER)]
        elif start > cursor[0]:
            self._move(cursor, start)
        elif start < cursor[0]:  # a look back in time: counted directly, cursor kept
            sums = self._sums(start, last + 1)
            return sums[indicator + 1], sums[0]
        runs, bad = cursor[1], cursor[indicator + 2]
        if self.first != _NONE and self.first + len(self.totals) - 1 > last:
            newer = self._sums(last + 1, _EVER)
            runs -= newer[0]
            bad -= newer[indicator + 1]
        return bad, runs

    def counts(self, windows: Sequence[int], now: int, indicator: int) -> list[tuple[int, int]]:
        """`count` for several windows at one `now`: the daemon's tick, where each cursor
        stays or moves one slot, done inline; anything else goes through `count`."""
        first, totals, cursors = self.first, self.totals, self.cursors
        base = now - self.origin
        width = self.width
        if first == _NONE or first + len(totals) - 1 > (base - 1) // width:
            return [self.count(window, now, indicator) for window in windows]
        size = len(totals)
        found = []
        for window in windows:
            start = (base - window) // width
            cursor = cursors.get(window)
            if cursor is not None:
                at = cursor[0]
                if start == at:
                    found.append((cursor[indicator + 2], cursor[1]))
                    continue
                if start == at + 1 and 0 <= at - first < size:
                    position = at - first
                    cursor[1] -= totals[position]
                    for index, values in enumerate(self.bads, start=2):
                        cursor[index] -= values[position]
                    cursor[0] = start
                    found.append((cursor[indicator + 2], cursor[1]))
                    continue
            found.append(self.count(window, now, indicator))
        return found

    def dump(self) -> bytes:
        sizes = bytes(values.itemsize for values in self.bads)
        parts = [
            _TIER_HEADER.pack(self.first, self.floor, len(self.totals), self.totals.itemsize),
            sizes,
            little_endian(self.totals),
            *(little_endian(values) for values in self.bads),
        ]
        return b"".join(parts)

    def load(self, data: memoryview, offset: int) -> int:
        """Read what `dump` wrote at `offset`; returns the offset after it."""
        try:
            first, floor, slots, size = _TIER_HEADER.unpack_from(data, offset)
        except struct.error:
            raise SLOError("corrupt window snapshot: truncated") from None
        offset += _TIER_HEADER.size
        sizes = bytes(data[offset : offset + len(self.bads)])
        offset += len(self.bads)
        arrays = []
        for itemsize in (size, *sizes):
            code = _TYPECODES.get(itemsize)
            if code is None:
                raise SLOError("corrupt window snapshot: unknown item size")
            end = offset + slots * itemsize
            if end > len(data):
                raise SLOError("corrupt window snapshot: truncated")
            arrays.append(from_little_endian(code, data[offset:end]))
            offset = end
        if (first == _NONE) != (slots == 0):
            raise SLOError("corrupt window snapshot: inconsistent slots")
        self.first, self.floor = first, floor
        self.totals, self.bads = arrays[0], arrays[1:]
        totals = self.totals
        if any(any(map(operator.gt, values, totals)) for values in self.bads):
            raise SLOError("corrupt window snapshot: more bad events than runs in a slot")
        return offset


_TYPECODES: Final = {array(code).itemsize: code for code in "QIHB"}


class Timeline:
    """One journey's events over its SLOs' windows, in slots (see the module docstring).

    `add` every run with the indicators that judged it bad, `bad_and_total` at each tick,
    `prune` once per tick so that a journey that stopped also lets go of its history.
    """

    __slots__ = ("_coarse", "_fine", "_newest", "_split", "indicators", "layout")

    def __init__(self, layout: Layout, indicators: int = 1) -> None:
        if indicators < 1:
            raise SLOError("a timeline needs at least one indicator")
        self.layout = layout
        self.indicators = indicators
        self._fine = _Tier(layout.fine_width, layout.fine_span, layout.origin, indicators)
        self._coarse = (
            _Tier(layout.coarse_width, layout.retention, layout.origin, indicators)
            if layout.coarse_width
            else None
        )
        self._newest = _NONE
        #: windows -> (the fine tier's, the coarse tier's): `bad_and_totals` splits once
        self._split: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def add(self, timestamp: float, bad: Sequence[int] = ()) -> None:
        """Count one run at `timestamp`, bad for the indicators numbered in `bad`."""
        moment = micros(timestamp)
        if moment > self._newest:
            self._newest = moment
            self._advance(moment)
        self._fine.add(self._fine.slot(moment), bad)
        if self._coarse is not None:
            self._coarse.add(self._coarse.slot(moment), bad)

    def bad_and_total(self, indicator: int, window: int, now: int) -> tuple[int, int]:
        """(bad, runs) for one indicator over `window` µs ending at `now` µs, as the module
        docstring states; `window` must be positive and at most the retention."""
        if not 0 < window <= self.layout.retention:
            raise SLOError(
                f"window must be positive and at most the retention "
                f"({self.layout.retention / MICROS:g} s), got {window / MICROS:g} s"
            )
        if window <= self.layout.fine_span or self._coarse is None:
            return self._fine.count(window, now, indicator)
        return self._coarse.count(window, now, indicator)

    def bad_and_totals(
        self, indicator: int, windows: Sequence[int], now: int
    ) -> list[tuple[int, int]]:
        """`bad_and_total` for several windows (µs, shortest first) at once: the daemon's
        figures, one call per SLO and tick."""
        if type(windows) is not tuple:
            windows = tuple(windows)
        tiers = self._split.get(windows)
        if tiers is None:
            if windows and not 0 < windows[0] <= windows[-1] <= self.layout.retention:
                raise SLOError("windows must be positive, shortest first, within the retention")
            split = bisect_right(windows, self.layout.fine_span)
            tiers = self._split[windows] = (windows[:split], windows[split:])
        fine, coarse = tiers
        if not coarse or self._coarse is None:
            return self._fine.counts(windows, now, indicator)
        found = self._fine.counts(fine, now, indicator)
        found += self._coarse.counts(coarse, now, indicator)
        return found

    def counts(self, window: float, now: float, indicator: int = 0) -> Counts:
        """Good and bad events for one indicator over `window` seconds ending at `now`."""
        bad, total = self.bad_and_total(indicator, micros(window), micros(now))
        return Counts(total - bad, bad)

    def prune(self, now: float) -> None:
        """Forget what no window ending at `now` or later can need."""
        self._advance(micros(now))

    def select(self, indicators: Sequence[int]) -> Timeline:
        """A copy that keeps only these indicators, in this order (a reload that dropped
        or reordered a journey's SLOs keeps the history of the ones left)."""
        copy = Timeline(self.layout, len(indicators))
        copy._newest = self._newest
        for mine, theirs in ((self._fine, copy._fine), (self._coarse, copy._coarse)):
            if mine is not None and theirs is not None:
                theirs.first, theirs.floor = mine.first, mine.floor
                theirs.totals = array(mine.totals.typecode, mine.totals)
                theirs.bads = [array(mine.bads[i].typecode, mine.bads[i]) for i in indicators]
        return copy

    def _advance(self, reference: int) -> None:
        self._fine.advance(reference)
        if self._coarse is not None:
            self._coarse.advance(reference)

    def snapshot(self) -> bytes:
        """The whole timeline as one little-endian blob (a BLOB column), for `restore`."""
        layout = self.layout
        header = _HEADER.pack(
            _SNAPSHOT_MAGIC,
            _SNAPSHOT_VERSION,
            self.indicators,
            layout.origin,
            layout.fine_width,
            layout.fine_span,
            layout.coarse_width,
            layout.retention,
            self._newest,
        )
        tiers = [self._fine.dump()]
        if self._coarse is not None:
            tiers.append(self._coarse.dump())
        return b"".join([header, *tiers])

    @classmethod
    def restore(cls, snapshot: bytes, layout: Layout, indicators: int = 1) -> Timeline:
        """A timeline from `snapshot()` bytes, for the same slots and indicators: counts per
        slot cannot be re-cut into other slots, nor judged again by another indicator (the
        caller rebuilds from stored runs then). Raises SLOError naming what does not fit."""
        data = memoryview(snapshot)
        if len(data) < _HEADER.size:
            raise SLOError("corrupt window snapshot: shorter than its header")
        magic, version, stored_indicators, *sizes, newest = _HEADER.unpack_from(data)
        if magic != _SNAPSHOT_MAGIC:
            raise SLOError("not a window snapshot (bad magic)")
        if version != _SNAPSHOT_VERSION:
            raise SLOError(f"window snapshot version {version} is not supported")
        stored = Layout(*sizes)
        if stored != layout:
            raise SLOError(f"window snapshot slices time differently ({stored} vs {layout})")
        if stored_indicators != indicators:
            raise SLOError(f"window snapshot has {stored_indicators} indicators, not {indicators}")
        timeline = cls(layout, indicators)
        offset = timeline._fine.load(data, _HEADER.size)
        if timeline._coarse is not None:
            offset = timeline._coarse.load(data, offset)
        if offset != len(data):
            raise SLOError("corrupt window snapshot: its length does not match its header")
        timeline._newest = newest
        if newest != _NONE:
            timeline._advance(newest)
        return timeline


class Stream:
    """Exact counts for a replay, where events arrive in time order and `now` never goes
    back: each window keeps a pointer to its oldest event, so a count is O(1) amortized and
    exact for every window and every `now` (DESIGN's definition, no slots). It keeps every
    event (8 bytes, and 8 per indicator), so it is for replays, not for the daemon."""

    __slots__ = ("_bad_before", "_end", "_now", "_starts", "_times", "indicators")

    def __init__(self, indicators: int = 1) -> None:
        self.indicators = indicators
        self._times: array[int] = array("q")
        # bad events among the first i, per indicator
        self._bad_before: list[array[int]] = [array("q", [0]) for _ in range(indicators)]
        self._starts: dict[int, int] = {}
        self._end = 0
        self._now = _NONE

    def add(self, timestamp: float, bad: Sequence[int] = ()) -> None:
        moment = micros(timestamp)
        if self._times and moment < self._times[-1]:
            raise SLOError("a Stream takes events in time order")
        self._times.append(moment)
        for indicator, before in enumerate(self._bad_before):
            before.append(before[-1] + (indicator in bad))

    def bad_and_total(self, indicator: int, window: int, now: int) -> tuple[int, int]:
        """(bad, runs) over `(now - window, now]` (µs), exactly."""
        if now < self._now:
            raise SLOError("a Stream is read with a `now` that never goes back")
        self._now = now
        times = self._times
        size = len(times)
        end = self._end
        while end < size and times[end] <= now:
            end += 1
        self._end = end
        start = self._starts.get(window, 0)
        limit = now - window
        while start < end and times[start] <= limit:
            start += 1
        self._starts[window] = start
        before = self._bad_before[indicator]
        return before[end] - before[start], end - start

    def bad_and_totals(
        self, indicator: int, windows: Sequence[int], now: int
    ) -> list[tuple[int, int]]:
        return [self.bad_and_total(indicator, window, now) for window in windows]

    def counts(self, window: float, now: float, indicator: int = 0) -> Counts:
        bad, total = self.bad_and_total(indicator, micros(window), micros(now))
        return Counts(total - bad, bad)


def little_endian(values: array[int]) -> bytes:
    """An integer array's bytes, little-endian whatever the machine (a state file may move
    between machines): the timelines' snapshots and the latency sketches' packed slots."""
    if sys.byteorder == "little" or values.itemsize == 1:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def from_little_endian(typecode: str, data: bytes | memoryview) -> array[int]:
    """The array of `typecode` that `little_endian` wrote as `data`."""
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values
