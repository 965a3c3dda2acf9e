"""The time limit of one object in the process that does it (``--object-timeout``): a watchdog
thread interrupts the thread doing an object once its time is up, and the object is quarantined
("took longer than N s") while the process goes on with the next one.

What can be interrupted from within: Python code (a reader's loop, a sequence nested thousands
deep, a slide's tiles walked one by one), as the interruption is an exception raised in the
object's thread at its next bytecode. It is :class:`ObjectTimeout`, a BaseException, so that a
reader's ``except Exception`` cannot swallow it; it is raised again every second until the object
gives up. What cannot: code that holds the interpreter's lock and never returns to Python (a
numba kernel, a C codec's loop), or a blocking system call; the watchdog is a Python thread and
does not even run meanwhile. Such an object is stopped only by killing its process: local worker
processes are killed by the main process past the limit and a grace (:mod:`medcloak.pool`); the
main process (``--workers 1``, or the objects it does itself with a few workers) cannot kill
itself, and there only the interruption applies (see docs/operations.md).
"""

from __future__ import annotations

import ctypes
import threading
import time
from types import TracebackType

from .errors import LimitError

#: seconds between two interruptions of an object that goes on after the first
AGAIN = 1.0


class ObjectTimeout(BaseException):
    """Raised in the thread doing an object whose time is up (internal: :class:`Deadline` turns it
    into a :class:`~medcloak.errors.LimitError`)."""


# the interpreter's own call that raises an exception in another thread (and, given NULL,
# withdraws one not yet raised), with private prototypes
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))


def reason(seconds: float) -> str:
    """The quarantine reason of an object stopped after ``seconds``."""
    return f"took longer than {seconds:g} s (--object-timeout)"


class _Watchdog:
    """One thread per process, started with the first deadline, that interrupts every watched
    thread past its deadline."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.watched: dict[int, Deadline] = {}
        self.thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self.cond:
            self.watched[deadline.thread] = deadline
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, name="medcloak-deadline", daemon=True)
                self.thread.start()
            self.cond.notify()

    def remove(self, deadline: Deadline) -> None:
        """Stop watching; an interruption sent and not yet raised is withdrawn."""
        with self.cond:
            if self.watched.get(deadline.thread) is deadline:
                del self.watched[deadline.thread]
            if deadline.fired:
                _clear_async_exc(deadline.thread, None)

    def _watch(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                for d in self.watched.values():
                    if now >= d.due:
                        d.fired = True
                        d.due = now + AGAIN
                        _set_async_exc(d.thread, ObjectTimeout)
                wake = min((d.due for d in self.watched.values()), default=None)
                self.cond.wait(None if wake is None else max(0.0, wake - time.monotonic()))


_WATCHDOG = _Watchdog()


class Deadline:
    """``seconds`` for the block, in the thread that enters it (0: no limit). The block ends
    with :class:`LimitError` when its time ran out, whatever it raised meanwhile."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.thread = threading.get_ident()
        self.due = 0.0
        self.fired = False

    def __enter__(self) -> Deadline:
        if self.seconds > 0:
            self.due = time.monotonic() + self.seconds
            _WATCHDOG.add(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self.close():
            raise LimitError(reason(self.seconds)) from None
        return False

    def close(self) -> bool:
        """Stop the watch (again: the caller calls it once more when an interruption escaped the
        block's end); whether the time ran out."""
        if self.seconds <= 0:
            return False
        while True:  # an interruption may come while the watch ends: it is taken here
            try:
                _WATCHDOG.remove(self)
                break
            except ObjectTimeout:
                continue
        return self.fired
