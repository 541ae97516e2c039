"""The clock of one answer: its deadlines, and calls bounded by the time that is left.

An answer must come in time (CRAG-MM's limits are the default: a first token within 10 s, the
whole answer within 30 s; `DecodeConfig.first_token_s` / `deadline_s`, None = no limit). The
engine asks `Deadline.expired()` before every token and before starting a search, and runs
each search through `call_with_timeout`, bounded by `DecodeConfig.search_timeout_s` and by the
time left — so a slow search back-end costs at most that, never a hung request.

Python cannot stop a thread, so a call that times out is abandoned, not killed: it runs on in
a daemon thread (it never keeps the process from exiting) and its result is dropped. Back-ends
should bound their own work too (`HTTPSearch`'s HTTP timeout does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class CallTimeout(TimeoutError):
    """A bounded call did not finish in time (it was abandoned)."""


class Deadline:
    """The deadlines of one answer, from the moment it started.

    Attributes:
        total_s: seconds for the whole answer (None: no limit).
        first_token_s: seconds until the first generated token (None: no limit).
    """

    def __init__(self, total_s: float | None, first_token_s: float | None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total_s, self.first_token_s, self.clock = total_s, first_token_s, clock
        self.start = clock()
        self.first_token_at: float | None = None

    def elapsed(self) -> float:
        return self.clock() - self.start

    def token(self) -> None:
        """Note that a token was generated (the first one stops the first-token clock)."""
        if self.first_token_at is None:
            self.first_token_at = self.elapsed()

    def remaining(self) -> float | None:
        """Seconds left before the nearest deadline still running (None: no limit)."""
        limits = [self.total_s]
        if self.first_token_at is None:
            limits.append(self.first_token_s)
        left = [t - self.elapsed() for t in limits if t is not None]
        return min(left) if left else None

    def expired(self) -> str | None:
        """Why the answer is out of time, or None while there is time left."""
        elapsed = self.elapsed()
        if self.total_s is not None and elapsed >= self.total_s:
            return f"the answer took longer than its deadline of {self.total_s:g} s"
        if (self.first_token_at is None and self.first_token_s is not None
                and elapsed >= self.first_token_s):
            return f"no token within the first-token deadline of {self.first_token_s:g} s"
        return None

    def budget(self, timeout_s: float | None) -> float | None:
        """The time a call may take: `timeout_s`, cut to what is left (None: unbounded)."""
        left = self.remaining()
        if left is None:
            return timeout_s
        return max(0.0, left) if timeout_s is None else max(0.0, min(timeout_s, left))


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None,
                      name: str = "pixsearch-call") -> T:
    """`fn()`, or `CallTimeout` after `timeout_s` seconds (None: wait as long as it takes,
    in this thread). `fn`'s own exceptions propagate unchanged."""
    if timeout_s is None:
        return fn()
    future: Future = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as e:  # handed to the waiting caller, re-raised there
            future.set_exception(e)

    # a daemon thread, not an executor's: an abandoned call must not block interpreter exit
    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        future.cancel()
        raise CallTimeout(f"no answer within {timeout_s:.3g} s") from None
