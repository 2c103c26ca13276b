"""Bounded caches of verified results, keyed by the exact bytes that were verified (the byte
strings themselves, or frozen objects that compare them, in full on lookup) and bounded by the
validity window that the verification established.

A cached value is returned only for a verification time inside its window; outside it the
caller verifies again (and gets the precise error). Nothing here reads the clock. The caches
are process-wide, thread-safe and small (least recently used entries are evicted).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["WindowCache", "all_caches"]

V = TypeVar("V")

_REGISTRY: list[WindowCache[object]] = []


class WindowCache(Generic[V]):
    """``key -> (value, not_before, not_after)`` with LRU eviction."""

    __slots__ = ("_data", "_lock", "maxsize", "name")

    def __init__(self, name: str, maxsize: int = 256) -> None:
        self.name = name
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, tuple[V, datetime, datetime]] = OrderedDict()
        self._lock = threading.Lock()
        _REGISTRY.append(self)  # type: ignore[arg-type]

    def get(self, key: Hashable, at: datetime) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            value, not_before, not_after = entry
            if not not_before <= at <= not_after:
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V, not_before: datetime, not_after: datetime) -> None:
        if not_before > not_after:
            return
        with self._lock:
            self._data[key] = (value, not_before, not_after)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def all_caches() -> tuple[WindowCache[object], ...]:
    return tuple(_REGISTRY)
