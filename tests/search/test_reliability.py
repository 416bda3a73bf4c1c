"""Crashes: a killed trial worker resumes from its checkpoint; a killed driver is resumed by
`hpsearch resume` with the right trial count, no duplicates and a consistent Optuna study."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from hpsearch.config import SchedulerConfig, SearchConfig
from hpsearch.search import run_search

pytestmark = pytest.mark.slow
VIT = {"data": "digits", "dim": 32, "heads": 2}


def _result_lines(run_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for f in run_dir.glob("*/result.json"):
        out[f.parent.name] = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return out


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_worker_resumes_from_checkpoint_without_gap_or_repeat(ray_local, tmp_path):
    run_dir = tmp_path / "worker"
    cfg = SearchConfig(trainer="vit", space="vit_norm_depth", run_dir=str(run_dir), samples=1,
                       max_epochs=6, scheduler=SchedulerConfig(kind="fifo"),
                       fixed=VIT, max_failures=2)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("run", run_search(cfg)))
    thread.start()
    assert _wait(lambda: any(len(v) >= 2 for v in _result_lines(run_dir).values()))
    (rows,) = _result_lines(run_dir).values()
    os.kill(rows[-1]["pid"], signal.SIGKILL)  # the trial's worker process, mid-training
    thread.join(timeout=300)
    (rows,) = _result_lines(run_dir).values()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]  # no gap, no repeat
    assert len({r["pid"] for r in rows}) == 2  # really restarted in a new process
    assert rows[-1]["status"] == "completed"
    assert box["run"].trials.iloc[0]["status"] == "completed"


def _cli(*args):
    return [sys.executable, "-m", "hpsearch", *args]


def test_killed_driver_is_resumed(tmp_path):
    run_dir = tmp_path / "driver"
    proc = subprocess.Popen(_cli("run", "--trainer", "vit", "--space", "vit_norm_depth",
                                 "--samples", "5", "--max-epochs", "3", "--scheduler", "fifo",
                                 "--set", "dim=32", "--set", "heads=2", "--num-cpus", "2",
                                 "--out", str(run_dir)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = lambda: sum(any(r.get("status") == "completed" for r in v)  # noqa: E731
                       for v in _result_lines(run_dir).values()) >= 1
    assert _wait(done, 180)
    record = json.loads((run_dir / "ray_processes.json").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(_cli("resume", str(run_dir), "--num-cpus", "2"), capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "diverged"}
    params = [c for c in ("layers", "lr", "norm", "optimizer") if c in trials]
    assert not trials[params].duplicated().any()
    meta = json.loads((run_dir / "hpsearch.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{run_dir}/optuna.db")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 5
    # The killed run's Ray daemons are gone (by pid, only if it is still a Ray process).
    for pid in [p for group in record["pids"].values() for p in group]:
        cmd = Path(f"/proc/{pid}/cmdline")
        assert not cmd.exists() or b"ray" not in cmd.read_bytes()
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for _, g in epochs.groupby("trial_id"):
        assert list(g["epoch"]) == list(range(1, len(g) + 1))
