"""Compaction after HTTP writes, in its own process at a lower CPU priority.

Why a process and not a thread of the server: a base build at a million
images holds the interpreter lock for much of two minutes and takes a core,
and a search thread of the same process would wait on both; measured, the
searches' p99 grew about seven-fold with an in-process thread (BENCHMARKS.md).
A separate ``imagesearch compact --if-due --nice 10`` takes only the CPU
searches leave.  One runs at a time; the next write starts another if still due.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from ..config import Settings

log = logging.getLogger("imagesearch.errors")
#: How much lower than the server a background compaction runs (nice increment).
NICENESS = 10


class BackgroundCompaction:
    """Starts ``imagesearch compact --if-due`` for one data directory, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._running: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        """Start a compaction unless one is running; True when one was started."""
        with self._lock:
            if self._running is not None and self._running.poll() is None:
                return False
            # The server's settings come from its environment (serve passes them there for its workers too).
            environment = {**os.environ, "IMAGESEARCH_DATA_DIR": str(self.settings.data_dir), "IMAGESEARCH_INDEX_THREADS": "1"}
            self._running = subprocess.Popen(
                [sys.executable, "-m", "imagesearch.cli", "compact", "--if-due", "--nice", str(NICENESS)],
                env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            threading.Thread(target=self._wait, args=(self._running,), name="compaction", daemon=True).start()
            return True

    @staticmethod
    def _wait(process: subprocess.Popen[bytes]) -> None:
        """Reap the process; a failure is logged (the index in force is untouched, the next write tries again)."""
        _, errors = process.communicate()
        if process.returncode:
            log.error("background compaction failed (exit %s): %s", process.returncode, errors.decode(errors="replace")[-2000:])
