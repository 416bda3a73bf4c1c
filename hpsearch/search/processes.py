"""What a run's private local Ray is made of, found through the temp directory `connect`
made for it (never by process name): recording it in the run directory, and ending it,
whether it is this driver's or what a killed driver left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

from hpsearch.rundir import RunDir, layout

logger = logging.getLogger(__name__)
TEMP_PREFIX = "hpsearch-ray-"
# A private Ray's trial workers stage each checkpoint in a folder under this one (inside the
# private temp dir, which ending the Ray removes), named to them by this variable.
WORKER_TMP_ENV, WORKER_TMP = "HPSEARCH_WORKER_TMP", "work"


def record_processes(rundir: RunDir, temp_dir: str | None) -> None:
    """Record the private temp directory of the local Ray this run started, so that
    `hpsearch resume` can end what a killed driver left behind. Joined clusters are not
    ours to record."""
    if temp_dir:
        rundir.write_json(layout.PROCESSES, {"temp_dir": temp_dir, "uid": os.getuid()})


def _is_private_temp(path: str) -> bool:
    """True for a directory `connect` made: under the temp root, our prefix, ours, 0700."""
    p = Path(path)
    try:
        st = p.lstat()
    except OSError:
        return False
    return (p.parent == Path(tempfile.gettempdir()) and p.name.startswith(TEMP_PREFIX)
            and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
            and stat.S_IMODE(st.st_mode) == 0o700)


def _uses(pid: str, temp_dir: str) -> bool:
    """True when process `pid` (ours) names `temp_dir` in its command line or holds a
    file inside it: Ray's daemons and workers of that instance do, nothing else does."""
    base = f"/proc/{pid}"
    try:
        if os.stat(base).st_uid != os.getuid():
            return False
        with open(f"{base}/cmdline", "rb") as f:
            if temp_dir.encode() in f.read():
                return True
        return any(os.readlink(f"{base}/fd/{fd}").startswith(temp_dir + "/")
                   for fd in os.listdir(f"{base}/fd"))
    except OSError:
        return False


def _instance_pids(temp_dir: str) -> list[int]:
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != os.getpid() and _uses(e, temp_dir)]


def _monitor_pids(temp_dir: str) -> list[int]:
    """The autoscaler monitor of the private instance at `temp_dir` (by its script)."""
    found = []
    for pid in _instance_pids(temp_dir) if _is_private_temp(temp_dir) else []:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if any(a.endswith(b"/autoscaler/_private/monitor.py") for a in
                   f.read().split(b"\0")):
                found.append(pid)
    return found


def cleanup_stale(rundir: RunDir, timeout_s: float = 5.0) -> list[int]:
    """End the processes of the local Ray a killed driver of this run started (found by the
    private temp directory it recorded, never by name). Returns the pids signalled."""
    record = rundir.read_json(layout.PROCESSES, {})
    temp_dir = record.get("temp_dir") if isinstance(record, dict) else None
    if not isinstance(temp_dir, str) or not _is_private_temp(temp_dir):
        if temp_dir:
            logger.warning("ignoring %s: %r is not a Ray temp directory hpsearch made",
                           layout.PROCESSES, temp_dir)
        rundir.remove(layout.PROCESSES)
        return []
    pids = end_instance(temp_dir, timeout_s)
    if pids:
        logger.warning("ended %d Ray processes left by the interrupted run", len(pids))
    rundir.remove(layout.PROCESSES)
    return pids


def end_instance(temp_dir: str, timeout_s: float = 5.0) -> list[int]:
    """End every process of the local Ray whose private temp dir is `temp_dir` (SIGTERM,
    then SIGKILL for what remains or was started meanwhile), then delete the directory.
    Returns the pids signalled."""
    if not _is_private_temp(temp_dir):
        return []
    pids: set[int] = set()
    alive = _instance_pids(temp_dir)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pids.update(alive)
    deadline = time.monotonic() + timeout_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = _instance_pids(temp_dir)
    deadline = time.monotonic() + 2 * timeout_s
    while alive and time.monotonic() < deadline:  # a raylet may respawn an agent once
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pids.update(alive)
        time.sleep(0.2)
        alive = _instance_pids(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return sorted(pids)
