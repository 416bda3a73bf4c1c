"""The vital daemons of a run's private Ray (its GCS and raylet), watched while Tune fits.

When one of them dies (killed from outside, the OOM killer), the search cannot go on, and
Ray's own driver library ends this process with exit code 1 and no word of why: ~15 s later
for a raylet, 60 s later for the GCS (its reconnect timeout), the progress line frozen
meanwhile. `watched` says it at once instead, in one line that names the daemon and how to
finish (`hpsearch resume`, as after Ctrl-C), writes what the searchers still hold for
optuna.db, and exits; the rest of that Ray is its watcher's (reaper.py) to end. The daemons
are found through the private temp dir, never by name alone (Linux /proc; elsewhere nothing
is watched and Ray's own exit stands)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
import time

from hpsearch.search import reaper, record

__all__ = ["EXIT_CODE", "LOST", "VITAL", "alive", "message", "vital_pids", "watched"]

VITAL = ("gcs_server", "raylet")  # their /proc comm names
EXIT_CODE = 1  # a failed search (2 is a user's mistake, 130/143 an interruption)


def vital_pids(temp_dir: str) -> dict[int, str]:
    """pid -> daemon name, for the GCS and raylet of the private Ray at `temp_dir`."""
    found = {}
    for pid in reaper.instance_pids(temp_dir) if reaper.is_private_temp(temp_dir) else []:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
            if name in VITAL:
                found[pid] = name
    return found


def alive(pid: int) -> bool:
    """False once `pid` has exited, also while it is a zombie nobody has reaped yet (Ray
    started its daemons as this process's children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def message(name: str, run_path: str) -> str:
    return (f"this run's Ray lost its {name} (killed from outside, or out of memory) and "
            f"cannot go on: finish with: hpsearch resume {shlex.quote(run_path)}")


# Run directories (by path) whose search stopped because a daemon died -> its name, until
# the run's end reads it (`guard.stopped_by`).
LOST: dict[str, str] = {}


def _stop_here(name: str, pid: int, run_path: str, temp_dir: str,
               grace_s: float = 10.0) -> None:
    """Without its raylet, Ray's calls fail at once: stop the search as Ctrl-C does (Tune
    saves its state and copies the trials' results into the run directory), and the run
    ends with the line (`message`). Without its GCS, Tune blocks in its next call to it
    for 60 s, and without a raylet Ray ends the process itself ~15 s on: then (or once
    `grace_s` has passed) copy what Tune had staged, write what the searchers hold, and
    exit, with the line unless the run's end has said it."""
    LOST[run_path] = name
    if name == "raylet" and callable(signal.getsignal(signal.SIGUSR1)):
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own interrupt (it runs in the main thread)
        time.sleep(grace_s)
    reaper.salvage(temp_dir, run_path)
    if LOST.pop(run_path, None):
        print(f"hpsearch: error: {message(name, run_path)}", file=sys.stderr, flush=True)
    flusher = threading.Thread(target=record.flush_all, daemon=True)  # trials for optuna.db
    flusher.start()
    flusher.join(timeout=10)
    os._exit(EXIT_CODE)


@contextlib.contextmanager
def watched(temp_dir: str | None, run_path: str, poll_s: float = 0.25,
            on_death=None, pids: dict[int, str] | None = None):
    """While the block runs, watch the vital daemons of the private Ray at `temp_dir` (None:
    a cluster this process joined, not watched) and call `on_death(name, pid, run_path,
    temp_dir)` once if one dies (default: `_stop_here`). `pids` replaces the lookup."""
    pids = vital_pids(temp_dir) if pids is None and temp_dir else (pids or {})
    if not pids:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(poll_s):
            dead = next(((p, n) for p, n in pids.items() if not alive(p)), None)
            if dead and not stop.is_set():
                (on_death or _stop_here)(dead[1], dead[0], run_path, temp_dir)
                return

    thread = threading.Thread(target=loop, name="hpsearch-lifeline", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2 * poll_s + 1)
