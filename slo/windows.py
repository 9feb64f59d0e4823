"""Rolling-window counts of good and bad events for one SLO, in bounded memory.

The contract (DESIGN, "Replay"): at time t the error ratio over window w is bad / total over
the events with `t - w < timestamp <= t`. Keeping every event for 30 days is 172,800 events per
SLO at one run per 15 s, too much for 1,000 SLOs in 200 MiB, so `EventWindow` keeps two views
of the same events:

- **Exact events** for the last `exact_horizon` (default 6 h): their timestamps, in one sorted
  array for good events and one for bad (8 bytes an event, 11.5 KB per SLO at 15 s). Every
  window up to that long is answered exactly. 6 h is the longest *short* window of the default
  policy table (5m, 30m, 2h, 6h) and also covers the two fast *long* windows (1h, 6h) and every
  threshold-rule window (2m..1h): the windows that decide how fast a page fires and resolves.
- **Buckets** of `bucket_seconds` (default 60 s) back to `retention` (the longest window any
  SLO or policy needs). Bucket k holds the events with `k·b < timestamp <= (k+1)·b`, the same
  half-open side as the windows. A window reaching back past the exact events has its start
  rounded *down* to a bucket boundary: it counts the events in `(b·⌊(t-w)/b⌋, t]`, a window
  between w and w + b long. So an event enters every window exactly when it happens and leaves
  a bucketed window less than b late, never early; with b = 60 s that is less than two
  evaluation intervals at the default 30 s, the tolerance DESIGN grants. A larger b would
  break that bound; a smaller one costs memory (43,200 buckets per 30 days at 60 s already).

Precisely, when `now` is at or after the newest event added and the latest `prune`,
`counts(w, now)` returns the events in `(now - w, now]` if `w <= exact_horizon`, and the events
in `(b·⌊(now - w)/b⌋, now]` if `w > exact_horizon` — always that, whether the exact events or
the buckets answer it, so that a window's answer never flips between the two definitions as
time moves. (For an older `now`, both ends are rounded down to bucket boundaries.)

Buckets are kept as running totals (see `_RunningCounts`), so a 30-day window costs the same
two subtractions as a 1-hour one: evaluating 1,000 SLOs × 4 policies fits in one tick.
Memory per SLO at 30 days, one run per 15 s: about 125 KiB (bench/slo_store.py measures it):
43 KB of one-byte bucket counters for each of good and bad, 23 KB of block totals, 12 KB of
exact events. It grows with the run rate: the exact events linearly, and the counters double
when a 30-minute block sees more than 255 runs (faster than one run per 7 s).

Events may arrive out of order. An event at or before `retention` behind the newest event (or
the latest `prune`), rounded down to a bucket boundary, is ignored: no window can need it. A
late event still inside the exact horizon is kept exactly; one older than that is counted in
its bucket only, which is all an old window looks at.
"""

from __future__ import annotations

import math
import operator
import struct
import sys
from array import array
from bisect import bisect_right, insort
from itertools import islice, repeat
from typing import Final, NamedTuple, TypeVar

from slo.budget import Counts, SLOError

__all__ = [
    "DEFAULT_BUCKET_SECONDS",
    "DEFAULT_EXACT_HORIZON",
    "EventWindow",
    "StreamWindow",
]

#: Bucket width: an event leaves a bucketed window less than this late; 60 s keeps alert
#: transitions within two 30-second evaluation intervals of the exact definition.
DEFAULT_BUCKET_SECONDS: Final = 60.0
#: Windows up to this long are exact: the longest short window of the default policies.
DEFAULT_EXACT_HORIZON: Final = 6 * 3600.0

#: Buckets per block of running totals. 30 one-minute buckets hold 120 events at one run per
#: 15 s, which fits one byte per bucket (a block with more than 255 events widens its store).
BLOCK_BUCKETS: Final = 30

#: The unsigned array typecodes by item size, narrowest first; running totals widen along it.
_UNSIGNED: Final = {array(code).itemsize: code for code in reversed("BHILQ")}
_WIDTHS: Final = tuple(sorted(_UNSIGNED))

_SNAPSHOT_MAGIC: Final = b"SLOW"
_SNAPSHOT_VERSION: Final = 1
#: magic, version, good/bad item sizes, bucket seconds, newest, floor bucket, exact-floor
#: bucket, first bucket, good/bad exact counts, buckets, blocks; little-endian throughout.
_SNAPSHOT_HEADER: Final = struct.Struct("<4sHBBddqqqIIII")
_Number = TypeVar("_Number", int, float)

#: Stands for "no floor yet": below any bucket number a finite timestamp can have.
_NO_BUCKET: Final = -(2**62)


class _RunningCounts:
    """Counts per bucket, stored as running totals so any range of buckets sums in O(1).

    Position p stores the events of its block (`BLOCK_BUCKETS` buckets) up to and including
    p, in the narrowest unsigned array type that holds them; `_before[j]` stores the events in
    all blocks before block j (int64). Events in positions 0..p are `_before[p // B] +
    _within[p]`. Adding at p touches the rest of p's block and the later blocks' totals: O(1)
    for the newest bucket, where almost every event lands.
    """

    __slots__ = ("_before", "_within")

    def __init__(self, within: array[int] | None = None, before: array[int] | None = None) -> None:
        self._within: array[int] = array("B") if within is None else within
        self._before: array[int] = array("q") if before is None else before

    def __len__(self) -> int:
        return len(self._within)

    @property
    def itemsize(self) -> int:
        return self._within.itemsize

    def between(self, first: int, last: int) -> int:
        """Events in positions first..last inclusive (first >= 0), clamped to the stored ones."""
        within, before = self._within, self._before
        last = min(last, len(within) - 1)
        if last < first:
            return 0
        total = before[last // BLOCK_BUCKETS] + within[last]
        if first:
            total -= before[(first - 1) // BLOCK_BUCKETS] + within[first - 1]
        return total

    def grow_to(self, length: int) -> None:
        """Append empty buckets until `length` are stored (callers bound it by the retention)."""
        within, before = self._within, self._before
        size = len(within)
        if size >= length:
            return
        if size % BLOCK_BUCKETS:
            fill = min(length, size - size % BLOCK_BUCKETS + BLOCK_BUCKETS) - size
            within.extend(repeat(within[size - 1], fill))
            size += fill
        while size < length:
            before.append(before[-1] + within[size - 1] if size else 0)
            fill = min(length - size, BLOCK_BUCKETS)
            within.frombytes(bytes(fill * within.itemsize))
            size += fill

    def add(self, position: int, count: int) -> None:
        """Count `count` events in the bucket at `position` (already stored)."""
        within = self._within
        block = position // BLOCK_BUCKETS
        end = min((block + 1) * BLOCK_BUCKETS, len(within))
        needed = within[end - 1] + count
        if needed >= 1 << (8 * within.itemsize):
            within = self._widen(needed)
        for index in range(position, end):
            within[index] += count
        before = self._before
        for index in range(block + 1, len(before)):
            before[index] += count

    def _widen(self, needed: int) -> array[int]:
        """Move to the narrowest unsigned type that holds `needed` (a busy block, rare)."""
        width = next(size for size in _WIDTHS if needed < 1 << (8 * size))
        self._within = array(_UNSIGNED[width], self._within)
        return self._within

    def drop_blocks(self, blocks: int) -> None:
        """Forget the oldest `blocks` blocks (all of them when there are fewer)."""
        del self._within[: blocks * BLOCK_BUCKETS]
        del self._before[:blocks]

    def to_bytes(self) -> tuple[bytes, bytes]:
        return _dump(self._within), _dump(self._before)

    @classmethod
    def from_bytes(cls, itemsize: int, within: bytes, before: bytes) -> _RunningCounts:
        return cls(_load(array(_UNSIGNED[itemsize]), within), _load(array("q"), before))


class EventWindow:
    """Good and bad events of one SLO over its rolling windows (see the module docstring).

    Call `add` for every run the indicator judged, `counts` at each evaluation, and `prune`
    once per evaluation so that an SLO whose journey stopped also lets go of its history
    (adding events prunes behind the newest one already).
    """

    __slots__ = (
        "_bad",
        "_bad_times",
        "_bucket",
        "_exact_floor",
        "_exact_floor_bucket",
        "_first",
        "_floor",
        "_floor_bucket",
        "_good",
        "_good_times",
        "_horizon",
        "_newest",
        "_retention",
    )

    def __init__(
        self,
        retention: float,
        *,
        bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
        exact_horizon: float = DEFAULT_EXACT_HORIZON,
    ) -> None:
        _check_seconds("retention", retention, allow_zero=False)
        _check_seconds("bucket_seconds", bucket_seconds, allow_zero=False)
        _check_seconds("exact_horizon", exact_horizon, allow_zero=True)
        self._retention = float(retention)
        self._bucket = float(bucket_seconds)
        self._horizon = float(exact_horizon)
        self._good = _RunningCounts()
        self._bad = _RunningCounts()
        # Bucket number of position 0: a block start, never after the floor bucket.
        self._first = 0
        self._good_times: array[float] = array("d")
        self._bad_times: array[float] = array("d")
        self._newest = -math.inf
        # Events at or before `_floor` are ignored; `_exact_*` hold every event after theirs.
        self._floor_bucket = _NO_BUCKET
        self._floor = -math.inf
        self._exact_floor_bucket = _NO_BUCKET
        self._exact_floor = -math.inf

    @property
    def retention(self) -> float:
        return self._retention

    @property
    def bucket_seconds(self) -> float:
        return self._bucket

    @property
    def exact_horizon(self) -> float:
        return self._horizon

    def add(self, timestamp: float, good: bool) -> None:
        """Count one event judged good or bad by the indicator; one too old is ignored."""
        if not math.isfinite(timestamp):
            raise SLOError(f"event timestamp must be a finite number, got {timestamp!r}")
        if timestamp <= self._floor:
            return
        if timestamp > self._newest:
            self._newest = timestamp
            self._advance(timestamp)
        if not len(self._good):
            self._first = self._floor_bucket - self._floor_bucket % BLOCK_BUCKETS
        position = math.ceil(timestamp / self._bucket) - 1 - self._first
        self._good.grow_to(position + 1)
        self._bad.grow_to(position + 1)
        (self._good if good else self._bad).add(position, 1)
        if timestamp > self._exact_floor:
            times = self._good_times if good else self._bad_times
            if not times or timestamp >= times[-1]:
                times.append(timestamp)
            else:
                insort(times, timestamp)

    def counts(self, window: float, now: float) -> Counts:
        """Good and bad events in `(now - window, now]`, within the bound the module states."""
        if not 0 < window <= self._retention:
            raise SLOError(
                f"window must be positive and at most the retention ({self._retention:g} s), "
                f"got {window!r}"
            )
        if not math.isfinite(now):
            raise SLOError(f"now must be a finite number, got {now!r}")
        start = now - window
        good_times, bad_times = self._good_times, self._bad_times
        # Exact events up to now: all of them when now is past the newest (nearly always).
        good_end = len(good_times) if now >= self._newest else bisect_right(good_times, now)
        bad_end = len(bad_times) if now >= self._newest else bisect_right(bad_times, now)
        if window > self._horizon or start < self._exact_floor:
            # A bucketed window starts on a bucket boundary whichever view answers it, so
            # that its answer does not flip as the exact horizon moves past its start.
            start_bucket = math.floor(start / self._bucket)
            if start_bucket < self._exact_floor_bucket:
                return self._from_buckets(start_bucket, now, good_end, bad_end)
            start = start_bucket * self._bucket
        return Counts(
            good_end - bisect_right(good_times, start), bad_end - bisect_right(bad_times, start)
        )

    def bad_and_total(self, window: float, now: float) -> tuple[int, int]:
        """`counts` as two plain integers."""
        counts = self.counts(window, now)
        return counts.bad, counts.good + counts.bad

    def prune(self, now: float) -> None:
        """Forget what no window ending at `now` or later can need."""
        if not math.isfinite(now):
            raise SLOError(f"now must be a finite number, got {now!r}")
        self._advance(now)

    def snapshot(self) -> bytes:
        """The whole store as one little-endian blob (a BLOB column), for `restore`."""
        good_within, good_before = self._good.to_bytes()
        bad_within, bad_before = self._bad.to_bytes()
        good_times = _dump(self._good_times)
        bad_times = _dump(self._bad_times)
        header = _SNAPSHOT_HEADER.pack(
            _SNAPSHOT_MAGIC,
            _SNAPSHOT_VERSION,
            self._good.itemsize,
            self._bad.itemsize,
            self._bucket,
            self._newest,
            self._floor_bucket,
            self._exact_floor_bucket,
            self._first,
            len(self._good_times),
            len(self._bad_times),
            len(self._good),
            len(good_before) // 8,
        )
        parts = (header, good_times, bad_times, good_within, bad_within, good_before, bad_before)
        return b"".join(parts)

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        retention: float,
        *,
        bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
        exact_horizon: float = DEFAULT_EXACT_HORIZON,
    ) -> EventWindow:
        """A store from `snapshot()` bytes; the retention and horizon may differ from before.

        The bucket width may not: counts per minute cannot be re-cut into other buckets. A
        longer horizon than the snapshot's becomes exact as new events arrive (until then those
        windows are bucket-aligned); a shorter retention or horizon lets go of the excess now.
        """
        window = cls(retention, bucket_seconds=bucket_seconds, exact_horizon=exact_horizon)
        header = _read_header(snapshot)
        if header.bucket_seconds != window._bucket:
            raise SLOError(
                f"window snapshot has {header.bucket_seconds:g}-second buckets, "
                f"not {window._bucket:g}"
            )
        sizes = (
            8 * header.good_events,
            8 * header.bad_events,
            header.good_itemsize * header.buckets,
            header.bad_itemsize * header.buckets,
            8 * header.blocks,
            8 * header.blocks,
        )
        if len(snapshot) != _SNAPSHOT_HEADER.size + sum(sizes):
            raise SLOError("corrupt window snapshot: its length does not match its header")
        if header.first_bucket % BLOCK_BUCKETS or header.blocks != -(
            -header.buckets // BLOCK_BUCKETS
        ):
            raise SLOError("corrupt window snapshot: inconsistent bucket layout")
        pieces = []
        offset = _SNAPSHOT_HEADER.size
        for size in sizes:
            pieces.append(snapshot[offset : offset + size])
            offset += size
        window._good_times = _load(array("d"), pieces[0])
        window._bad_times = _load(array("d"), pieces[1])
        if not (_is_sorted(window._good_times) and _is_sorted(window._bad_times)):
            raise SLOError("corrupt window snapshot: event times out of order")
        window._good = _RunningCounts.from_bytes(header.good_itemsize, pieces[2], pieces[4])
        window._bad = _RunningCounts.from_bytes(header.bad_itemsize, pieces[3], pieces[5])
        window._first = header.first_bucket
        window._newest = header.newest
        if header.floor_bucket != _NO_BUCKET:
            window._floor_bucket = header.floor_bucket
            window._floor = header.floor_bucket * window._bucket
        if header.exact_floor_bucket != _NO_BUCKET:
            window._exact_floor_bucket = header.exact_floor_bucket
            window._exact_floor = header.exact_floor_bucket * window._bucket
        if math.isfinite(header.newest):
            window._advance(header.newest)
        return window

    def _from_buckets(self, start_bucket: int, now: float, good_end: int, bad_end: int) -> Counts:
        """Counts from bucket `start_bucket` on: buckets to the exact floor, exact events after.

        A `now` before the exact floor (a query into the past) ends at a bucket boundary too.
        """
        first = max(start_bucket - self._first, 0)
        if now >= self._exact_floor:
            last = self._exact_floor_bucket - 1 - self._first
            return Counts(
                self._good.between(first, last) + good_end, self._bad.between(first, last) + bad_end
            )
        last = math.floor(now / self._bucket) - 1 - self._first
        return Counts(self._good.between(first, last), self._bad.between(first, last))

    def _advance(self, reference: float) -> None:
        """Move the floors up to `reference` (the newest event, or `prune`'s now)."""
        floor_bucket = math.floor((reference - self._retention) / self._bucket)
        if floor_bucket > self._floor_bucket:
            self._floor_bucket = floor_bucket
            self._floor = floor_bucket * self._bucket
            blocks = (floor_bucket - self._first) // BLOCK_BUCKETS
            if blocks > 0 and len(self._good):
                self._good.drop_blocks(blocks)
                self._bad.drop_blocks(blocks)
                self._first += blocks * BLOCK_BUCKETS
        exact_bucket = math.floor((reference - self._horizon) / self._bucket)
        if exact_bucket > self._exact_floor_bucket:
            self._exact_floor_bucket = exact_bucket
            self._exact_floor = exact_bucket * self._bucket
            for times in (self._good_times, self._bad_times):
                del times[: bisect_right(times, self._exact_floor)]


def _check_seconds(name: str, value: float, *, allow_zero: bool) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise SLOError(f"{name} must be a {bound} number of seconds, got {value!r}")


class _Header(NamedTuple):
    """The fixed-size start of a snapshot, in `_SNAPSHOT_HEADER` order."""

    magic: bytes
    version: int
    good_itemsize: int
    bad_itemsize: int
    bucket_seconds: float
    newest: float
    floor_bucket: int
    exact_floor_bucket: int
    first_bucket: int
    good_events: int
    bad_events: int
    buckets: int
    blocks: int


def _read_header(snapshot: bytes) -> _Header:
    if len(snapshot) < _SNAPSHOT_HEADER.size:
        raise SLOError("corrupt window snapshot: shorter than its header")
    header = _Header._make(_SNAPSHOT_HEADER.unpack_from(snapshot))
    if header.magic != _SNAPSHOT_MAGIC:
        raise SLOError("not a window snapshot (bad magic)")
    if header.version != _SNAPSHOT_VERSION:
        raise SLOError(f"window snapshot version {header.version} is not supported")
    if header.good_itemsize not in _UNSIGNED or header.bad_itemsize not in _UNSIGNED:
        raise SLOError("corrupt window snapshot: unknown item size")
    return header


def _is_sorted(values: array[float]) -> bool:
    return all(map(operator.le, values, islice(values, 1, None)))


def _dump(values: array[_Number]) -> bytes:
    """Little-endian bytes, whatever the machine (a state file may move between them)."""
    if sys.byteorder == "little":
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def _load(values: array[_Number], data: bytes) -> array[_Number]:
    """Append little-endian `data` to `values` (empty, of the right type) and return it."""
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values


class StreamWindow:
    """Exact counts for a replay, where events arrive in time order and `now` never goes
    back: each window keeps a pointer to its oldest event, so a count is O(1) amortized and
    exact for every window length (DESIGN's definition, no buckets). It keeps every event,
    so it is for replays (a recording's length), not for the daemon (`EventWindow`)."""

    __slots__ = ("_bad_before", "_end", "_now", "_starts", "_times")

    def __init__(self) -> None:
        self._times: array[float] = array("d")
        self._bad_before: array[int] = array("q", [0])  # bad events among the first i
        self._starts: dict[float, int] = {}
        self._end = 0
        self._now = -math.inf

    def add(self, timestamp: float, good: bool) -> None:
        if not math.isfinite(timestamp):
            raise SLOError(f"event timestamp must be a finite number, got {timestamp!r}")
        if self._times and timestamp < self._times[-1]:
            raise SLOError("a StreamWindow takes events in time order")
        self._times.append(timestamp)
        self._bad_before.append(self._bad_before[-1] + (0 if good else 1))

    def counts(self, window: float, now: float) -> Counts:
        """Good and bad events in `(now - window, now]`, exactly."""
        bad, total = self.bad_and_total(window, now)
        return Counts(total - bad, bad)

    def bad_and_total(self, window: float, now: float) -> tuple[int, int]:
        """`counts` as two plain integers: the replay's hot path builds no object."""
        if now < self._now:
            raise SLOError("a StreamWindow is read with a `now` that never goes back")
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
        return self._bad_before[end] - self._bad_before[start], end - start
