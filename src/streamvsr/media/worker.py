"""A single background thread that runs jobs in order, with a bounded queue.

The writers use it so that encoding and muxing (the slow part, which releases the GIL) overlap with
the caller's work: ``write()`` converts RGB->YUV in the caller's thread and hands the frame over.
An error in the worker is kept and re-raised in the caller at the next ``submit`` or at ``finish``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class OrderedWorker:
    """Runs ``fn(item)`` for each submitted item, in order, on one daemon thread.

    ``depth`` bounds the items waiting (memory stays bounded: ``submit`` blocks when full).
    After a failure the worker keeps draining (so ``submit`` never deadlocks) but runs nothing.
    """

    def __init__(self, fn: Callable[[Any], None], depth: int = 4, name: str = "streamvsr-writer") -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._cancelled = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._cancelled:
                continue
            try:
                self._fn(item)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e

    def raise_error(self) -> None:
        """Re-raise (once) an error the worker hit."""
        if self._error is not None:
            err, self._error = self._error, None
            self._cancelled = True
            raise err

    def submit(self, item: Any) -> None:
        """Queue ``item`` (blocks while ``depth`` items wait); raises the worker's error if any."""
        self.raise_error()
        self._queue.put(item)

    def finish(self) -> None:
        """Run everything queued, stop the thread, and raise the worker's error if any."""
        self._stop()
        self.raise_error()

    def cancel(self) -> None:
        """Drop what is queued, stop the thread (waits for the running job), swallow errors."""
        self._cancelled = True
        self._stop()
        self._error = None

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)
            self._thread.join()
