"""Ends a private local Ray whose driver died without ending it (SIGKILL, the OOM killer, or
Ray's own abort when its GCS dies): Ray's agents (~100 MB each) and the temp dir otherwise
stay until `hpsearch resume` of that run, and for good if none comes.

`watch(temp_dir)` starts this file as a script beside the Ray, in a session of its own,
holding the read end of a pipe whose write end only the driver holds. The driver's
`release` writes "done" before closing it; end of file without it means the driver is gone,
and the watcher ends every process of that Ray (found through its private temp dir, never
by name) and removes the dir. Standard library only: the script imports nothing of
hpsearch, pandas or Ray, so it starts in milliseconds."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMP_PREFIX = "hpsearch-ray-"
DONE = b"done"


def is_private_temp(path: str) -> bool:
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
    file inside it (its logs, sockets): Ray's daemons and workers of that instance do,
    nothing else does. A directory held open there does not count: the watcher and a
    `resume` ending the same instance hold them while they delete it (`shutil.rmtree`),
    and each took the other for one of the instance's processes and killed it."""
    base = f"/proc/{pid}"
    try:
        if os.stat(base).st_uid != os.getuid():
            return False
        with open(f"{base}/cmdline", "rb") as f:
            if temp_dir.encode() in f.read():
                return True
        return any(_holds_file(f"{base}/fd/{fd}", temp_dir) for fd in os.listdir(f"{base}/fd"))
    except OSError:
        return False


def _holds_file(fd_link: str, temp_dir: str) -> bool:
    try:
        return (os.readlink(fd_link).startswith(temp_dir + "/")
                and not stat.S_ISDIR(os.stat(fd_link).st_mode))
    except OSError:  # closed meanwhile
        return False


def instance_pids(temp_dir: str) -> list[int]:
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != os.getpid() and _uses(e, temp_dir)]


def end_instance(temp_dir: str, timeout_s: float = 5.0) -> list[int]:
    """End every process of the local Ray whose private temp dir is `temp_dir` (SIGTERM,
    then SIGKILL for what remains or was started meanwhile), then delete the directory.
    Returns the pids signalled."""
    if not is_private_temp(temp_dir):
        return []
    pids: set[int] = set()
    alive = instance_pids(temp_dir)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pids.update(alive)
    deadline = time.monotonic() + timeout_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = instance_pids(temp_dir)
    deadline = time.monotonic() + 2 * timeout_s
    while alive and time.monotonic() < deadline:  # a raylet may respawn an agent once
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pids.update(alive)
        time.sleep(0.2)
        alive = instance_pids(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return sorted(pids)


def salvage(temp_dir: str, run_path: str) -> int:
    """Copy into the run directory the trials' result files that Tune's driver had written
    to its staging folder inside the private Ray's temp dir but not yet copied (the Ray's
    watcher deletes that dir). Best effort: Tune's staging layout is its own, and a file
    that cannot be read or written is left out (never raises). Returns the files copied."""
    pattern = os.path.join(glob.escape(temp_dir), "ray", "session_*", "artifacts", "*",
                           glob.escape(os.path.basename(run_path)), "driver_artifacts", "*")
    copied = 0
    for staged in glob.glob(pattern):
        target = os.path.join(run_path, os.path.basename(staged))
        try:
            entries = list(os.scandir(staged))
        except OSError:  # not a folder, or gone meanwhile
            continue
        for entry in entries:
            dest = os.path.join(target, entry.name)
            with contextlib.suppress(OSError):
                if not entry.is_file(follow_symlinks=False) or (
                        os.path.exists(dest) and os.path.getsize(dest) >= entry.stat().st_size):
                    continue
                os.makedirs(target, exist_ok=True)
                shutil.copyfile(entry.path, dest + ".salvage")
                os.replace(dest + ".salvage", dest)
                copied += 1
    return copied


def watch(temp_dir: str, run_path: str | None = None) -> subprocess.Popen | None:
    """Start the watcher of the private Ray at `temp_dir` (None if it cannot start: the
    run goes on, and `resume` still ends what a killed driver leaves); with `run_path`, it
    first copies into that run directory the trials' results Tune had staged (`salvage`).
    The paths go through the pipe, not the command line, so the watcher is not one of the
    instance's processes."""
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        proc.stdin.write(temp_dir.encode() + b"\n" + (run_path or "").encode() + b"\n")
        proc.stdin.flush()
        return proc
    except OSError:
        return None


def release(proc: subprocess.Popen | None) -> None:
    """The driver ended its Ray itself: the watcher leaves without doing anything."""
    if proc is None:
        return
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.write(DONE)
        proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session; be sure all the same
    temp_dir = sys.stdin.buffer.readline().decode().strip()
    run_path = sys.stdin.buffer.readline().decode().rstrip("\n")
    said = sys.stdin.buffer.read()  # until the driver closes the pipe, or dies
    if temp_dir and not said.startswith(DONE):
        if run_path and is_private_temp(temp_dir):
            salvage(temp_dir, run_path)
        end_instance(temp_dir)


if __name__ == "__main__":
    _main()
