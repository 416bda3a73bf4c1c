"""Stop a search cleanly before its run directory's disk fills up, and keep a copy of Ray
Tune's last good experiment state: a full disk mid-write truncates Tune's state file (Tune
rewrites it in place); `hpsearch resume` puts the copy back once space is freed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from ray.tune import Callback

from hpsearch.errors import UserError
from hpsearch.rundir import RunDir, tune_state
from hpsearch.search import lifeline

logger = logging.getLogger(__name__)
__all__ = ["DiskGuard", "ContractGuard", "min_free_mb", "check_free", "disk_errors",
           "stop_if_guarded", "fitting", "stopped_by"]

MIN_FREE_ENV = "HPSEARCH_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 100.0


def min_free_mb() -> float:
    """The free space a search keeps on its run directory's disk (MiB; HPSEARCH_MIN_FREE_MB)."""
    raw = os.environ.get(MIN_FREE_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_MIN_FREE_MB
    except ValueError:
        raise UserError(f"{MIN_FREE_ENV} must be a number of MiB, got {raw!r}") from None


def _free_mb(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**20


def check_free(path: Path, resume_hint: str | None = None) -> None:
    """UserError when `path`'s disk has less than the minimum free space."""
    free, need = _free_mb(path), min_free_mb()
    if free < need:
        tail = f"; free space, then '{resume_hint}'" if resume_hint else "; free space first"
        raise UserError(f"only {free:.0f} MiB free on the disk of {path} (a search keeps "
                        f"{need:.0f} MiB free, {MIN_FREE_ENV}){tail}")


FIRST_BACKUP_S = 0.25  # between tries until Tune's state files all have a copy


class DiskGuard(Callback):
    """Interrupts the search the way Ctrl-C does (Tune saves its state and returns, trials
    resumable) when the run directory's disk falls below the minimum free space.

    Args:
        path: the run directory.
        every_s: check at most this often (default: on every result; a statvfs costs
            ~1 us, and a driver that gets results in a burst must still see a disk
            that filled while it was busy).
    """

    # Free MiB when a guard stopped the search of a run directory, by path: a restored
    # Tuner runs a copy of the guard unpickled from Tune's state, not this object.
    TRIPPED: dict[str, float] = {}
    _all_backed_up = False  # (a class default: guards unpickled from older runs lack it)

    def __init__(self, path: str | Path, every_s: float = 0.0, backup_every_s: float = 5.0,
                 local: bool = True) -> None:
        self.path, self.every_s = Path(path), every_s
        self.backup_every_s, self.local = backup_every_s, local
        self._last = self._last_backup = 0.0
        DiskGuard.TRIPPED.pop(str(self.path), None)

    def on_step_end(self, iteration, trials, **info) -> None:
        # Tune saves its state between steps in this thread: no write is in flight here.
        # Until every state file has a copy, look every FIRST_BACKUP_S: Tune rewrites its
        # state more often than backup()'s settle time early on, and a driver killed in a
        # run's first seconds mid-copy left a cut searcher snapshot with no copy (resume
        # refused); then every backup_every_s.
        now = time.monotonic()
        every = (self.backup_every_s if self._all_backed_up
                 else min(self.backup_every_s, FIRST_BACKUP_S))
        if self.local and now - self._last_backup >= every:
            self._last_backup = now
            try:
                tune_state.backup(RunDir(self.path))
                self._all_backed_up = tune_state.backed_up(RunDir(self.path))
            except OSError as exc:  # a full disk: the previous backup stays
                logger.warning("could not back up Tune's state: %s", exc)

    @classmethod
    def tripped(cls, path: str | Path) -> float | None:
        """Free MiB at the moment the guard of `path` stopped its search, else None."""
        return cls.TRIPPED.get(str(Path(path)))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        now = time.monotonic()
        if str(self.path) in DiskGuard.TRIPPED or now - self._last < self.every_s:
            return
        self._last = now
        free = _free_mb(self.path)
        if free >= min_free_mb():  # read now: a resumed run's guard was unpickled
            return
        DiskGuard.TRIPPED[str(self.path)] = free
        logger.warning("only %.0f MiB free on the disk of %s: stopping the search", free,
                       self.path)
        _interrupt()


def _interrupt() -> None:
    """Tune's own interrupt (SIGUSR1, like Ctrl-C): state saved, trials left resumable.
    Tune handles it only when it runs in the main thread."""
    if callable(signal.getsignal(signal.SIGUSR1)):
        os.kill(os.getpid(), signal.SIGUSR1)


class ContractGuard(Callback):
    """Stops the search at the first result that shows the trainer breaks the contract
    (`trainers.contract`): every other trial would fail the same way.

    Args:
        path: the run directory (the key under which the message is kept).
    """

    MESSAGES: dict[str, str] = {}

    def __init__(self, path: str | Path) -> None:
        self.key = str(Path(path))
        ContractGuard.MESSAGES.pop(self.key, None)

    @classmethod
    def message(cls, path: str | Path) -> str | None:
        return cls.MESSAGES.get(str(Path(path)))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        msg = result.get("contract_error")
        if msg and self.key not in ContractGuard.MESSAGES:
            ContractGuard.MESSAGES[self.key] = str(msg)
            _interrupt()


# Run directories (by path) whose search a SIGTERM stopped, until `stopped_by` reads them.
TERMINATED: set[str] = set()


def stopped_by(path: str | Path) -> str | None:
    """What stopped the search of `path` (read once): "SIGTERM", the name of a private Ray's
    daemon that died (`lifeline.VITAL`), else None."""
    key = str(Path(path))
    if key in lifeline.LOST:
        TERMINATED.discard(key)
        return lifeline.LOST.pop(key)
    if key in TERMINATED:
        TERMINATED.discard(key)
        return "SIGTERM"
    return None


@contextlib.contextmanager
def sigterm_stops(rd):
    """While Tune fits: SIGTERM (a batch scheduler's time limit, `timeout`, `kill`, a
    container stopping) stops the search the way Ctrl-C does: Tune saves its state and
    returns, `hpsearch resume` finishes it. Installed after Ray started, so it replaces the
    handler Ray's core worker put there (which prints a stack and dies). A second SIGTERM
    raises KeyboardInterrupt at once. Only the main thread can handle signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    key = str(Path(rd.path))
    TERMINATED.discard(key)

    def handler(signum, frame):
        again = key in TERMINATED
        TERMINATED.add(key)
        if again or not callable(signal.getsignal(signal.SIGUSR1)):
            raise KeyboardInterrupt
        logger.warning("SIGTERM: stopping the search; Ray Tune saves its state")
        _interrupt()

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


@contextlib.contextmanager
def fitting(rd, temp_dir: str | None = None):
    """Around Tune's fit: a full disk is one line (`disk_errors`), SIGTERM a clean stop
    (`sigterm_stops`), the death of the private Ray's GCS or raylet one line at once
    (`lifeline.watched`; `temp_dir`: that Ray's, None for a joined cluster)."""
    key = str(Path(rd.path))
    with disk_errors(rd), sigterm_stops(rd), lifeline.watched(
            temp_dir, key, terminated=lambda: key in TERMINATED):
        yield


@contextlib.contextmanager
def disk_errors(rd):
    """A write that fails for lack of space (the disk filled faster than DiskGuard could
    react): one line that says what to do, not a traceback."""
    try:
        yield
    except Exception as exc:
        if not _is_disk_full(exc):
            raise
        raise UserError(f"the disk of {rd.path} is full: free space, then "
                        f"'hpsearch resume {rd.path}'") from None


def _is_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or \
                "database or disk is full" in str(exc) or "No space left" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def stop_if_guarded(rd, run):
    """Raise the one line that says why a guard stopped the search (else return `run`)."""
    broken = ContractGuard.message(rd.path)
    if broken:
        raise UserError(f"trainer {run.meta.get('trainer')!r}: {broken} (the search stopped "
                        f"at its first result; {rd.path} keeps what was written)")
    free = DiskGuard.tripped(rd.path)
    if free is None:
        return run
    raise UserError(f"stopped: only {free:.0f} MiB left on the disk of {rd.path} (a search "
                    f"keeps {min_free_mb():.0f} MiB free); free space, then "
                    f"'hpsearch resume {rd.path}'")
