"""The vital daemons of a run's private Ray (its GCS and raylet), watched while Tune fits.

When one of them dies (killed from outside, the OOM killer), the search cannot go on, and
Ray's own driver library ends this process with exit code 1 and no word of why: ~15 s later
for a raylet, 60 s later for the GCS (its reconnect timeout), the progress line frozen
meanwhile. `watched` says it at once instead, in one line that names the daemon and how to
finish (`hpsearch resume`, as after Ctrl-C), copies into the run what Tune had staged
(`reaper.salvage`), writes what the searchers still hold for optuna.db, and exits; the rest
of that Ray is its watcher's (reaper.py) to end. A SIGTERM to the whole job (systemd, a
batch scheduler) ends the daemons too: that is the SIGTERM line and exit 143. The daemons
are found through the private temp dir, never by name alone (Linux /proc; elsewhere nothing
is watched and Ray's own exit stands)."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import sys
import threading
import time

from hpsearch.search import reaper, record

__all__ = ["EXIT_CODE", "LOST", "VITAL", "alive", "death_signal", "message", "vital_pids",
           "watched"]

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


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """False once `pid` has exited, also while it is a zombie nobody has reaped yet (Ray
    started its daemons as this process's children)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def death_signal(pid: int) -> int | None:
    """The signal that ended `pid`, while it is an unreaped zombie (its exit status is in
    /proc since Linux 3.5); None if it exited, or is gone."""
    fields = _stat(pid)
    if not fields or fields[0] != "Z" or len(fields) < 50:
        return None
    return int(fields[49]) & 0x7F or None


def message(name: str, run_path: str, sig: int | None = None) -> str:
    """The line for a daemon that died; a SIGTERM (a batch scheduler or systemd ending the
    whole job, the driver included) is a termination, as for the driver alone."""
    again = f"finish with: hpsearch resume {shlex.quote(run_path)}"
    if sig == signal.SIGTERM:
        return f"terminated (SIGTERM, this run's Ray {name} too): {again}"
    return (f"hpsearch: error: this run's Ray lost its {name} (killed from outside, or out of "
            f"memory) and cannot go on: {again}")


# Run directories (by path) whose search stopped because a daemon died -> its name, or
# "SIGTERM" when a SIGTERM ended it, until the run's end reads it (`guard.stopped_by`).
LOST: dict[str, str] = {}


def _stop_here(name: str, pid: int, run_path: str, temp_dir: str, sig: int | None = None,
               grace_s: float = 10.0, terminated=lambda: False) -> None:
    """Without its raylet (the GCS alive), Ray's calls fail at once: stop the search as
    Ctrl-C does (Tune saves its state and copies the trials' results into the run
    directory), and the run ends with the line (`message`). Without its GCS, Tune blocks
    in its next call to it for 60 s, and without a raylet Ray ends the process itself
    ~15 s on: then (or once `grace_s` has passed) copy what Tune had staged, write what
    the searchers hold, and exit, with the line unless the run's end has said it.
    `terminated()`: whether this process got a SIGTERM (the daemons' own exit under a
    job-wide SIGTERM is not a signal: they handle it)."""
    term = sig == signal.SIGTERM or terminated()
    LOST[run_path] = "SIGTERM" if term else name
    # (after a SIGTERM Tune was told to stop already, and a raylet ending under it had
    # blocked that stop for the 10 s it takes: nothing more to wait for)
    if name == "raylet" and not term and callable(signal.getsignal(signal.SIGUSR1)):
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own interrupt (it runs in the main thread)
        time.sleep(grace_s)
        if terminated() and run_path in LOST:  # the driver's SIGTERM came meanwhile
            term, LOST[run_path] = True, "SIGTERM"
    reaper.salvage(temp_dir, run_path)
    if LOST.pop(run_path, None):
        print(message(name, run_path, signal.SIGTERM if term else sig), file=sys.stderr,
              flush=True)
    flusher = threading.Thread(target=record.flush_all, daemon=True)  # trials for optuna.db
    flusher.start()
    flusher.join(timeout=10)
    os._exit(128 + signal.SIGTERM if term else EXIT_CODE)


@contextlib.contextmanager
def watched(temp_dir: str | None, run_path: str, poll_s: float = 0.25,
            on_death=None, pids: dict[int, str] | None = None, terminated=lambda: False):
    """While the block runs, watch the vital daemons of the private Ray at `temp_dir` (None:
    a cluster this process joined, not watched) and call `on_death(name, pid, run_path,
    temp_dir, signal or None)` once if one dies (default: `_stop_here`; the GCS when both
    did). `pids` replaces the lookup; `terminated()` says whether a SIGTERM reached this
    process (`guard.sigterm_stops`)."""
    pids = vital_pids(temp_dir) if pids is None and temp_dir else (pids or {})
    if not pids:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(poll_s):
            if all(alive(p) for p in pids) or stop.wait(0.2):  # (let a group's signal land)
                continue
            dead = {n: p for p, n in pids.items() if not alive(p)}
            if not dead:  # (a /proc read that failed once)
                continue
            name = "gcs_server" if "gcs_server" in dead else "raylet"  # the GCS decides
            handler = on_death or functools.partial(_stop_here, terminated=terminated)
            handler(name, dead[name], run_path, temp_dir, death_signal(dead[name]))
            return

    thread = threading.Thread(target=loop, name="hpsearch-lifeline", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2 * poll_s + 1)
