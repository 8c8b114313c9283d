"""One thread that fires callbacks at given times: the deadlines of every open answer.

A deadline must be enforced from outside the answer's session (the answer can `SET
statement_timeout = 0`), so the alarms live here, not in the engine. One thread for all
answers rather than a `threading.Timer` each: parallel workers open many sessions a second.
A callback runs on the watchdog thread and must not block for long; it may re-arm itself by
returning a delay in seconds (to escalate or repeat), or None to stop.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

Alarm = Callable[[], float | None]


class Watchdog:
    """Fire `alarm()` at monotonic time `when`; `cancel(handle)` before that stops it."""

    def __init__(self, name: str = "plumber-watchdog") -> None:
        self._heap: list[tuple[float, int]] = []
        self._alarms: dict[int, Alarm] = {}
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._name = name

    def schedule(self, when: float, alarm: Alarm) -> int:
        """Arm an alarm for monotonic time `when`; returns a handle for `cancel`."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            handle = next(self._ids)
            self._alarms[handle] = alarm
            heapq.heappush(self._heap, (when, handle))
            self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        """Disarm (a no-op when it already fired for good)."""
        with self._cond:
            self._alarms.pop(handle, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._alarms.clear()
            self._heap.clear()
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    while self._heap and self._heap[0][1] not in self._alarms:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, handle = heapq.heappop(self._heap)
                alarm = self._alarms.get(handle)
            if alarm is None:
                continue
            try:
                again = alarm()
            except Exception:  # an alarm must never kill the thread that serves all the others
                again = None
            with self._cond:
                if handle not in self._alarms:
                    continue
                if again is None:
                    del self._alarms[handle]
                else:
                    heapq.heappush(self._heap, (time.monotonic() + again, handle))
