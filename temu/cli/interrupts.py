"""Ctrl-C (SIGINT) and SIGTERM during ``temu score``: stop between rows, keep what was written.

Inside :class:`InterruptGuard` both signals raise :class:`Interrupted` in the main thread (a
``KeyboardInterrupt``, so DataLoader workers, which inherit the handler, end quietly). Code that
must not be cut in half (writing one row, renaming the output) runs under :meth:`InterruptGuard.protect`:
a signal that arrives there is raised when the block ends. The command then closes its output
(a JSON array gets its closing bracket), prints one line and exits with 128 + the signal's number
(130 for SIGINT, 143 for SIGTERM), as a shell reports a process ended by that signal.

A signal that is ignored when the guard starts stays ignored: a background job of a script
(``nohup temu score ... &``) or a command after ``trap '' INT`` starts with SIGINT ignored (the
shell's way of saying Ctrl-C in the terminal is not for this job), so such a run goes on after
SIGINT and stops on SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class InterruptGuard:
    """A context manager: while it is active, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only;
    elsewhere signal handlers cannot be set and nothing changes). A signal ignored (``SIG_IGN``) at entry is
    left ignored. The previous handlers come back on exit."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # a background job of a script, trap '' INT: the caller asked for it to be ignored
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.pending is None:
            self.pending = signum
        if self._depth == 0:
            raise Interrupted(signum)

    @contextmanager
    def protect(self) -> Iterator[None]:
        """Signals arriving inside the block are raised when it ends (if it ends without another exception)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self.pending is not None:
            raise Interrupted(self.pending)

    def hold(self) -> None:
        """From now on signals are only recorded, never raised: the command is already ending."""
        self._depth += 1
