"""Progress of a run on standard error: a live line on a terminal, a plain line now and then
otherwise. Counts only: no path, no identifier."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .model import Outcome


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Call :meth:`add` with each outcome; :meth:`finish` at the end."""

    def __init__(self, stream: TextIO | None = None, every: float | None = None, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every if every is not None else (0.2 if self.live else 30.0)
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = self.started
        self.done = 0
        self.bytes = 0
        self.quarantined = 0
        self.skipped = 0
        self.found = 0  # discovered so far
        self.discovery_done = False
        self.resumed = 0

    def add(self, outcome: Outcome) -> None:
        self.done += 1
        self.bytes += outcome.bytes_in
        self.quarantined += outcome.status == "quarantined"
        self.skipped += outcome.status == "skipped"
        now = time.monotonic()
        if self.enabled and now - self.last >= self.every:
            self.last = now
            self._emit(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        mbps = self.bytes / elapsed / 1e6
        total = f"{self.found}" if self.discovery_done else f"{self.found}+"
        parts = [f"{self.done}/{total} objects", f"{mbps:.1f} MB/s", f"{rate:.0f} obj/s"]
        if self.discovery_done and rate > 0 and self.found > self.done:
            parts.append(f"ETA {_duration((self.found - self.done) / rate)}")
        parts.append(f"{self.quarantined} quarantined")
        if self.resumed:
            parts.append(f"{self.resumed} already done")
        return "medcloak: " + ", ".join(parts)

    def _emit(self, now: float) -> None:
        text = self.line(now)
        if self.live:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if not self.enabled:
            return
        self._emit(time.monotonic())
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
