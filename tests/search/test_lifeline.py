"""A daemon of the run's private Ray dying mid-search (`search/lifeline.py`): one line and
exit 1 at once, not Ray's silent exit 60 s later; the trials' staged results are kept, and
`hpsearch resume` finishes the run with each trial once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.search import lifeline, reaper

ROOT = Path(__file__).resolve().parents[2]


def test_a_dead_daemon_is_reported_once_and_a_live_one_never():
    """A watched process that dies (left a zombie by its parent, as Ray's daemons are this
    driver's children) is reported within a few polls, once; the watcher stops with its
    block, so a daemon that ends after the search (Ray's own shutdown) is not reported."""
    proc = subprocess.Popen(["sleep", "60"])
    calls = []
    try:
        with lifeline.watched("unused", "/runs/r", poll_s=0.05,
                              on_death=lambda *a: calls.append(a), pids={proc.pid: "raylet"}):
            time.sleep(0.3)
            assert calls == [] and lifeline.alive(proc.pid)
            proc.kill()
            deadline = time.monotonic() + 5
            while not calls and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not lifeline.alive(proc.pid)  # a zombie until waited for
            time.sleep(0.3)
        assert calls == [("raylet", proc.pid, "/runs/r", "unused", signal.SIGKILL)]
    finally:
        proc.kill()
        proc.wait()
    other = subprocess.Popen(["sleep", "60"])
    seen = []
    with lifeline.watched("unused", "/runs/r", poll_s=0.05,
                          on_death=lambda *a: seen.append(a), pids={other.pid: "gcs_server"}):
        time.sleep(0.1)
    other.kill()
    other.wait()
    time.sleep(0.2)
    assert seen == []
    with lifeline.watched(None, "/runs/r", on_death=lambda *a: seen.append(a)):
        pass  # a joined cluster: nothing to watch
    assert seen == [] and not lifeline.alive(other.pid)


def test_salvage_copies_what_tune_staged_and_never_shrinks_a_file(tmp_path):
    temp, run = tmp_path / "hpsearch-ray-x", tmp_path / "runs" / "my run"
    staged = temp / "ray" / "session_1" / "artifacts" / "2026-12-04_18-00" / "my run" / \
        "driver_artifacts"
    for trial, text in (("run_trial_a_1", '{"epoch": 1}\n{"epoch": 2}\n'),
                        ("run_trial_b_2", '{"epoch": 1}\n')):
        (staged / trial / "checkpoint_000000").mkdir(parents=True)
        (staged / trial / "result.json").write_text(text)
        (staged / trial / "params.json").write_text("{}")
    (run / "run_trial_b_2").mkdir(parents=True)
    (run / "run_trial_b_2" / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    other = temp / "ray" / "session_1" / "artifacts" / "t" / "other" / "driver_artifacts" / "z"
    other.mkdir(parents=True)
    (other / "result.json").write_text("{}")  # another experiment's: not this run's
    assert reaper.salvage(str(temp), str(run)) == 3
    assert (run / "run_trial_a_1" / "result.json").read_text().count("epoch") == 2
    assert (run / "run_trial_b_2" / "result.json").read_text().count("epoch") == 2  # kept
    assert (run / "run_trial_b_2" / "params.json").exists()
    assert not (run / "run_trial_a_1" / "checkpoint_000000").exists()  # files only
    assert not (run / "z").exists() and not list(run.rglob("*.salvage"))


@pytest.mark.slow
def test_a_dead_gcs_ends_the_run_in_one_line_and_resume_finishes_it(ray_local, tmp_path):
    """SIGKILL to the run's GCS: the driver used to hang 60 s with its progress line frozen,
    then exit 1 without a word, and the results Tune had not yet copied from its staging
    folder were deleted with the Ray's temp dir. (A dead raylet: the unit test below, and
    `python -m benchmarks.fault_injection --kill-daemon 1`.)"""
    daemon = "gcs_server"
    run_dir = tmp_path / "lost"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "run", "--trainer", "tests.search.curves_trainer:train",
         "--space", "tests/search/curves_space.yaml", "--samples", "6", "--max-epochs", "3",
         "--scheduler", "fifo", "--set", "epoch_s=0.5", "--num-cpus", "1", "--out",
         str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        record = run_dir / "ray_processes.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(run_dir.glob("run_trial_*"))) < 2:
            time.sleep(0.1)
        temp_dir = json.loads(record.read_text())["temp_dir"]
        (pid,) = [p for p, n in lifeline.vital_pids(temp_dir).items() if n == daemon]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-2000:]
    assert time.monotonic() - killed < 14  # Ray's own exit: 60 s
    assert err.strip().splitlines()[-1] == (
        f"hpsearch: error: this run's Ray lost its {daemon} (killed from outside, or out of "
        f"memory) and cannot go on: finish with: hpsearch resume {run_dir}"), err[-2000:]
    assert "Traceback" not in err
    deadline = time.monotonic() + 30  # its watcher ends the rest of that Ray
    while time.monotonic() < deadline and os.path.exists(temp_dir):
        time.sleep(0.2)
    assert not os.path.exists(temp_dir)
    from hpsearch.cli import main

    rows = [json.loads(line) for f in run_dir.glob("run_trial_*/result.json")
            for line in f.read_text().splitlines() if line.strip()]
    ended = {r["trial_id"] for r in rows if r["epoch"] == 3}
    assert main(["resume", str(run_dir)]) == 0  # on the tests' shared Ray
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert ended <= set(trials["trial_id"])  # what had ended before the kill is kept
    assert set(trials["status"]) <= {"completed", "diverged"}


def test_the_watcher_of_a_killed_driver_keeps_what_tune_staged(tmp_path):
    """A driver killed (SIGKILL) before Tune copied its trials' results into the run
    directory: its Ray's watcher copies them before it deletes that Ray's temp dir (they
    were lost: 8 ended trials of 40 in a run killed 9 s in, the resumed run 32 trials)."""
    import tempfile

    temp = tempfile.mkdtemp(prefix=reaper.TEMP_PREFIX)  # as `cluster.connect` makes it
    staged = Path(temp) / "ray" / "session_1" / "artifacts" / "t" / "r" / "driver_artifacts"
    (staged / "run_trial_a_1").mkdir(parents=True)
    (staged / "run_trial_a_1" / "result.json").write_text('{"epoch": 1}\n')
    run = tmp_path / "r"
    run.mkdir()
    watcher = reaper.watch(temp, str(run))
    watcher.stdin.close()  # the driver's end of the pipe closed without "done": it died
    watcher.wait(timeout=30)
    assert (run / "run_trial_a_1" / "result.json").read_text() == '{"epoch": 1}\n'
    assert not os.path.exists(temp)


def test_a_dead_raylet_stops_tune_as_ctrl_c_does_and_the_cli_says_why(monkeypatch, tmp_path,
                                                                     capsys):
    """Without its raylet Ray's calls fail at once: Tune is interrupted (SIGUSR1, its own
    Ctrl-C: state saved), the run's end reads why (`stopped_by`), and the CLI says it in
    one line, exit 1; had Tune not ended the process within the grace period, the watcher
    copies what Tune staged, says it, and exits 1 itself."""
    from hpsearch import cli
    from hpsearch.search import guard

    sent, exited = [], []
    monkeypatch.setattr(lifeline.signal, "getsignal", lambda sig: print)  # Tune's handler
    monkeypatch.setattr(lifeline.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(lifeline.os, "_exit", exited.append)
    run_path = str(tmp_path / "my run")
    lifeline._stop_here("raylet", 123, run_path, str(tmp_path / "no-temp"), grace_s=0)
    assert sent == [signal.SIGUSR1] and exited == [lifeline.EXIT_CODE]
    line = capsys.readouterr().err.strip()
    assert line == lifeline.message("raylet", run_path)
    assert line.startswith("hpsearch: error: this run's Ray lost its raylet")
    lifeline.LOST[run_path] = "raylet"  # Tune did stop: the run's end reads it once
    assert guard.stopped_by(run_path) == "raylet" and guard.stopped_by(run_path) is None
    run = type("R", (), {"path": Path(run_path), "meta": {"finished": False,
                                                         "stopped_by": "raylet"}})()
    assert cli._exit_code(run) == 1
    assert capsys.readouterr().err.strip() == line  # the same line, from the CLI


def test_a_sigterm_to_the_whole_job_is_a_termination_not_a_lost_daemon(monkeypatch, tmp_path,
                                                                       capsys):
    """systemd or a batch scheduler's time limit sends SIGTERM to every process of the job:
    Ray's daemons die with the driver's search still stopping. That is exit 143 and the
    SIGTERM line, at once (the GCS is gone: Tune would block 60 s), not "lost its raylet"
    20 s on (60 s and no line before the watch)."""
    daemons = {subprocess.Popen(["sleep", "60"]).pid: n for n in ("raylet", "gcs_server")}
    calls = []
    with lifeline.watched("unused", "/runs/r", poll_s=0.05,
                          on_death=lambda *a: calls.append(a), pids=daemons):
        for pid in daemons:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
    for pid in daemons:
        os.waitpid(pid, 0)
    gcs = next(p for p, n in daemons.items() if n == "gcs_server")
    assert calls == [("gcs_server", gcs, "/runs/r", "unused", signal.SIGTERM)]
    sent, exited = [], []
    monkeypatch.setattr(lifeline.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(lifeline.os, "_exit", exited.append)
    run_path = str(tmp_path / "job")
    lifeline._stop_here("gcs_server", gcs, run_path, str(tmp_path / "no-temp"),
                        signal.SIGTERM, grace_s=60)
    assert sent == [] and exited == [143]  # no wait for a Tune blocked on the GCS
    assert capsys.readouterr().err.strip() == (
        f"terminated (SIGTERM, this run's Ray gcs_server too): finish with: hpsearch resume "
        f"{run_path}")
    # Ray's raylet handles a SIGTERM (it exits 10 s later, not by the signal): the driver's
    # own SIGTERM says what it was, and its stop, asked for then, is not waited on again.
    lifeline._stop_here("raylet", 1, run_path, str(tmp_path / "no-temp"), None, grace_s=60,
                        terminated=lambda: True)
    assert sent == [] and exited == [143, 143]
    assert capsys.readouterr().err.startswith("terminated (SIGTERM")
