"""The watcher of a private Ray (reaper.py), without Ray: a stand-in instance (a process
that names its private temp dir) and a stand-in driver that starts the watcher."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hpsearch.search import reaper

DRIVER = ("import sys, time\nfrom hpsearch.search import reaper\n"
          "w = reaper.watch(sys.argv[1])\n"
          "if sys.argv[2] == 'release':\n    reaper.release(w)\n"
          "print('ready', flush=True)\ntime.sleep(600)\n")


def _wait(cond, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.mark.parametrize("released", [False, True])
def test_a_driver_killed_leaves_no_process_of_its_ray(released):
    """SIGKILL (or the OOM killer, or Ray's abort when its GCS dies) runs no clean-up in the
    driver: Ray's agents outlived it, ~100 MB each, until a `resume` of that run. Its watcher
    ends them and the temp dir at once; a driver that ended its Ray itself releases the
    watcher, which then touches nothing."""
    temp = tempfile.mkdtemp(prefix=reaper.TEMP_PREFIX)
    ray_like = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", temp])
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, temp,
                               "release" if released else "watch"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "ready"
        assert ray_like.pid in reaper.instance_pids(temp)
        # The watcher itself is not one of the instance's processes (the dir is not on its
        # command line), so ending the instance never ends its watcher.
        watchers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).endswith(
            "reaper.py")]
        assert not set(map(int, watchers)) & set(reaper.instance_pids(temp))
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        if released:
            time.sleep(1.5)
            assert ray_like.poll() is None and Path(temp).is_dir()
        else:
            assert _wait(lambda: ray_like.poll() is not None, 20)
            assert _wait(lambda: not Path(temp).exists(), 10)
    finally:
        for p in (driver, ray_like):
            if p.poll() is None:
                p.kill()
                p.wait()
        reaper.end_instance(temp)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_the_watcher_imports_nothing_but_the_standard_library():
    """It starts beside every private Ray, on the way to the first trial: pandas or Ray
    would cost it a second of CPU there."""
    code = ("import runpy, sys\nsys.argv = ['reaper.py']\n"
            "sys.stdin = open('/dev/null')\n"
            f"runpy.run_path({reaper.__file__!r}, run_name='__main__')\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('hpsearch', 'pandas', 'ray', 'numpy', 'torch')]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_a_process_deleting_the_temp_dir_is_not_one_of_the_instance():
    """A process counts as the instance's when it names the temp dir or holds a file in it
    (Ray's logs and sockets), not a directory: the watcher and a `resume` of the killed run
    end the same instance at once, each deleting the temp dir with `shutil.rmtree` (which
    holds its directories open), and each took the other for one of its processes: CI saw
    the resume SIGKILLed (exit -9, nothing on stderr)."""
    temp = tempfile.mkdtemp(prefix=reaper.TEMP_PREFIX)
    sub = Path(temp) / "session" / "logs"
    sub.mkdir(parents=True)
    (sub / "raylet.out").write_text("log\n")
    # The path through the environment: a command line naming the temp dir counts anyway.
    hold = "import os, time\nfd = os.open(os.environ['HOLD'], {})\nprint('ready', flush=True)\n" \
           "time.sleep(600)\n"
    procs = {kind: subprocess.Popen(
        [sys.executable, "-c", hold.format(flag)], stdout=subprocess.PIPE, cwd="/",
        env={**os.environ, "HOLD": str(path)})
        for kind, flag, path in (("dir", "os.O_RDONLY | os.O_DIRECTORY", sub),
                                 ("file", "os.O_RDONLY", sub / "raylet.out"))}
    try:
        for p in procs.values():
            assert p.stdout.readline().strip() == b"ready"
        pids = reaper.instance_pids(temp)
        assert procs["file"].pid in pids
        assert procs["dir"].pid not in pids
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        reaper.end_instance(temp)
    assert not os.path.exists(temp)
