"""The registry's style list as the online ingress sees it (no Ray): served from memory,
refreshed in the background, and kept while the registry cannot be read.

A registry hiccup must not take the API down. So:

* a request never waits for a refresh while the copy it has is younger than ``max_stale_s``:
  the copy is served and one refresh runs in the background;
* a failed read is remembered for ``retry_s``: no read is tried again before then, so a flood
  of requests cannot repeat a failing (or hanging) listing;
* only when there is no copy young enough, or a style is not in it, does a request wait for a
  read, at most ``wait_s``; then it gets :class:`RegistryUnavailable` (503);
* when the registry answers again, the next refresh restores the list: no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fsg_ray.distributed.api import ApiError, unknown_style
from fsg_ray.io import registry

log = logging.getLogger(__name__)


class RegistryUnavailable(ApiError):
    """The style list cannot be read now and no copy young enough is held (503)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            503,
            "unavailable",
            "the style registry cannot be read now; retry later",
            {"Retry-After": str(retry_after_s)},
        )


class StyleCatalog:
    """The published styles: re-read in the background after ``ttl_s``, the last good list
    served up to ``max_stale_s`` when reads fail. Thread-safe.

    A style that is not in the list triggers one re-read (at most every ``miss_every_s``), so
    a just-published style is found at once while unknown names cannot hammer the storage.

    Args:
        read: Reads the list (:func:`fsg_ray.io.registry.list_styles` on the registry).
        ttl_s: Seconds a list is trusted before a background refresh.
        max_stale_s: Seconds the last good list is served while refreshes fail.
        retry_s: Seconds a failed read is remembered before another is tried.
        wait_s: Longest a request waits for a read it needs.
        miss_every_s: Least seconds between two re-reads caused by unknown styles.
        clock: Monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        read: Callable[[], dict[str, registry.StyleIndex]],
        ttl_s: float,
        max_stale_s: float = 600.0,
        retry_s: float = 2.0,
        wait_s: float = 5.0,
        miss_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._clock = read, clock
        self.ttl_s, self.max_stale_s, self.retry_s = ttl_s, max_stale_s, retry_s
        self.wait_s, self.miss_every_s = wait_s, miss_every_s
        self._styles: dict[str, registry.StyleIndex] | None = None
        self._read_at = float("-inf")  # when the copy was read
        self._tried_at = float("-inf")  # when the last read started
        self._failed_at = float("-inf")  # when the last read failed
        self._running: threading.Event | None = None  # set when the read in flight ends
        self._lock = threading.Lock()

    def styles(self) -> dict[str, registry.StyleIndex]:
        """The published styles: the held copy, refreshed in the background once older than
        ``ttl_s``.

        Raises:
            RegistryUnavailable: No copy younger than ``max_stale_s``, and none could be read
                within ``wait_s``.
        """
        with self._lock:
            if self._usable(self.ttl_s):
                return self._copy()
            done = self._start_refresh()
            if self._usable(self.max_stale_s):
                return self._copy()
        if done is not None:
            done.wait(self.wait_s)
        with self._lock:
            if self._usable(self.max_stale_s):
                return self._copy()
        raise RegistryUnavailable(max(1, round(self.retry_s)))

    def current(self, style: str) -> str:
        """The current version of ``style``; an unknown style waits for one re-read.

        Raises:
            ApiError: 404 if no such style is published.
            RegistryUnavailable: The list, or the re-read for an unknown style, failed.
        """
        styles = self.styles()
        if style in styles:
            return styles[style].current
        with self._lock:
            done = self._running
            if done is None and self._clock() - self._tried_at >= self.miss_every_s:
                done = self._start_refresh()
            read_before = self._read_at
        if done is not None:
            done.wait(self.wait_s)
        with self._lock:
            unread = self._read_at == read_before
            # The re-read failed, was not allowed (a failure under retry_s ago), or hangs.
            if unread and (self._running is not None or self._failed_at >= self._tried_at):
                raise RegistryUnavailable(max(1, round(self.retry_s)))
            styles = self._copy()
        if style not in styles:
            raise unknown_style(style)
        return styles[style].current

    def _usable(self, max_age_s: float) -> bool:
        return self._styles is not None and self._clock() - self._read_at < max_age_s

    def _copy(self) -> dict[str, registry.StyleIndex]:
        return self._styles or {}

    def _start_refresh(self) -> threading.Event | None:
        """Starts a background read unless one runs or the last failed under ``retry_s``
        ago; returns the event set when the running read ends, or None. Holds the lock."""
        if self._running is not None:
            return self._running
        if self._clock() - self._failed_at < self.retry_s:
            return None
        done = threading.Event()
        self._running, self._tried_at = done, self._clock()
        threading.Thread(target=self._refresh, args=(done,), daemon=True).start()
        return done

    def _refresh(self, done: threading.Event) -> None:
        """Reads the list; a failure is logged and remembered, the old copy kept."""
        try:
            styles = self._read()
        except Exception as e:  # any failure: the copy stays, the API stays up
            log.warning("the style registry cannot be read (%s: %s)", type(e).__name__, e)
            with self._lock:
                self._failed_at = self._clock()
        else:
            with self._lock:
                self._styles, self._read_at = styles, self._clock()
        finally:
            with self._lock:
                self._running = None
            done.set()
