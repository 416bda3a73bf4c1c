"""What a run's private local Ray is made of, found through the temp directory `connect`
made for it (never by process name): recording it in the run directory, and ending it,
whether it is this driver's or what a killed driver left behind (its watcher, reaper.py,
ends that at once; the record lets `resume` make sure)."""

from __future__ import annotations

import contextlib
import logging
import os

from hpsearch.rundir import RunDir, layout
from hpsearch.search.reaper import TEMP_PREFIX, end_instance, salvage  # noqa: F401
from hpsearch.search.reaper import instance_pids as _instance_pids
from hpsearch.search.reaper import is_private_temp as _is_private_temp

logger = logging.getLogger(__name__)
# A private Ray's trial workers stage each checkpoint in a folder under this one (inside the
# private temp dir, which ending the Ray removes), named to them by this variable.
WORKER_TMP_ENV, WORKER_TMP = "HPSEARCH_WORKER_TMP", "work"


def record_processes(rundir: RunDir, temp_dir: str | None) -> None:
    """Record the private temp directory of the local Ray this run started, so that
    `hpsearch resume` can end what a killed driver left behind. Joined clusters are not
    ours to record."""
    if temp_dir:
        rundir.write_json(layout.PROCESSES, {"temp_dir": temp_dir, "uid": os.getuid()})


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
    private temp directory it recorded, never by name), once the trials' results Tune had
    staged there are copied into the run. Returns the pids signalled."""
    record = rundir.read_json(layout.PROCESSES, {})
    temp_dir = record.get("temp_dir") if isinstance(record, dict) else None
    if not isinstance(temp_dir, str) or not _is_private_temp(temp_dir):
        if temp_dir and os.path.lexists(str(temp_dir)):  # (gone: its watcher ended it)
            logger.warning("ignoring %s: %r is not a Ray temp directory hpsearch made",
                           layout.PROCESSES, temp_dir)
        rundir.remove(layout.PROCESSES)
        return []
    salvage(temp_dir, str(rundir.path))  # (its watcher did, unless it was killed too)
    pids = end_instance(temp_dir, timeout_s)
    if pids:
        logger.warning("ended %d Ray processes left by the interrupted run", len(pids))
    rundir.remove(layout.PROCESSES)
    return pids
