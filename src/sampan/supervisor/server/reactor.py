"""The supervisor's event loop: one ``selectors`` loop (epoll), callbacks per fd, timers.

Single-threaded on purpose: every container's stdio, every client connection and every
runtime call is a callback here, so there are no locks, and the process stays small.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import sys
import time
import traceback
from collections.abc import Callable

Callback = Callable[[], None]


class Timer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callback) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._handlers: dict[int, list[Callback | None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()

    def set_reader(self, fd: int, callback: Callback | None) -> None:
        self._set(fd, 0, callback)

    def set_writer(self, fd: int, callback: Callback | None) -> None:
        self._set(fd, 1, callback)

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (call before closing it)."""
        if self._handlers.pop(fd, None) is not None:
            self._selector.unregister(fd)

    def _set(self, fd: int, slot: int, callback: Callback | None) -> None:
        handlers = self._handlers.get(fd)
        if handlers is None:
            if callback is None:
                return
            handlers = [None, None]
            handlers[slot] = callback
            self._handlers[fd] = handlers
            self._selector.register(fd, self._mask(handlers))
            return
        handlers[slot] = callback
        if handlers[0] is None and handlers[1] is None:
            del self._handlers[fd]
            self._selector.unregister(fd)
        else:
            self._selector.modify(fd, self._mask(handlers))

    @staticmethod
    def _mask(handlers: list[Callback | None]) -> int:
        return (selectors.EVENT_READ if handlers[0] else 0) | \
            (selectors.EVENT_WRITE if handlers[1] else 0)

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._counter), timer))
        return timer

    def run_once(self, max_wait: float = 60.0) -> None:
        timeout = max_wait
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
        for key, mask in self._selector.select(timeout):
            handlers = self._handlers.get(key.fd)
            if handlers is None:
                continue
            if mask & selectors.EVENT_READ and handlers[0] is not None:
                _guarded(handlers[0])
                handlers = self._handlers.get(key.fd)  # the read may have closed it
            if handlers is not None and mask & selectors.EVENT_WRITE and handlers[1] is not None:
                _guarded(handlers[1])
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                _guarded(timer.callback)


def _guarded(callback: Callback) -> None:
    """Run a callback; a bug in one must not end the loop that serves every container."""
    try:
        callback()
    except Exception:
        sys.stderr.write(f"sampan-supervisor: callback failed\n{traceback.format_exc()}")
        sys.stderr.flush()
