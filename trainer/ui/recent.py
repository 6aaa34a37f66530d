"""A view computed at most once per interval and shared by every open tab.

Each browser tab refreshes the status line and the dashboard on its own timer. Computing them per
tab would make ten open tabs cost ten times the queries and renders, on the cores that decode
replies; sharing one recent copy makes the cost independent of how many tabs are open. A cheap
`key` (the trainer's state, the serving version) makes a change show at once, not an interval later.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(self, compute: Callable[[], T], max_age_seconds: float, key: Callable[[], Any] = lambda: None):
        self._compute, self.max_age_seconds, self._key = compute, max_age_seconds, key
        self._lock = threading.Lock()
        self._value: T | None = None
        self._computed_for: Any = None
        self._at = float("-inf")
        self.computed = 0

    def get(self) -> T:
        """The shared value, recomputed if older than `max_age_seconds` or its key changed (by one caller; the
        others wait for it)."""
        with self._lock:
            key = self._key()
            if time.monotonic() - self._at >= self.max_age_seconds or key != self._computed_for:
                self._value = self._compute()
                self._at, self._computed_for = time.monotonic(), key
                self.computed += 1
            return self._value
