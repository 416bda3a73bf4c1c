"""A user's own trainer in a search: a contract mistake stops the search at its first result,
failures show the trainer's own error line, and a search interrupted before any result
resumes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hpsearch.cli import main

pytestmark = pytest.mark.slow
HEADER = ("import time\nfrom dataclasses import dataclass\n\n@dataclass(frozen=True)\n"
          "class Config:\n    x: float = 0.5\n    epochs: int = 3\n    wait_s: float = 0.0\n\n")
SPACE = "params:\n  x: {type: float, low: 0.0, high: 1.0}\n"


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "space.yaml").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*extra):
    return main(["run", "--space", "space.yaml", "--samples", "6", "--max-epochs", "3",
                 "--scheduler", "fifo", *extra])


def test_contract_mistake_stops_the_search_at_once(ray_local, user_dir, capsys):
    (user_dir / "nometric.py").write_text(HEADER + "def train(cfg, report):\n"
                                          "    for e in range(cfg.epochs):\n"
                                          "        report(accuracy=cfg.x)\n")
    started = time.monotonic()
    assert _run("--trainer", "nometric:train", "--out", "runs/nm") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hpsearch: error: trainer 'nometric:train': the first report "
                              "has no 'val_metric' (it has accuracy)"), err
    assert "--metric KEY" in err[-1]
    ran = [d for d in (user_dir / "runs" / "nm").iterdir() if d.name.startswith("run_trial")]
    assert len(ran) < 6  # stopped, not every trial failed one after another
    assert time.monotonic() - started < 120


def test_every_trial_failing_exits_non_zero_with_the_trainers_line(ray_local, user_dir,
                                                                    capsys):
    (user_dir / "crash.py").write_text(HEADER + "def train(cfg, report):\n"
                                       "    report(val_metric=cfg.x)\n"
                                       "    raise ValueError('bad batch shape')\n")
    assert _run("--trainer", "crash:train", "--samples", "2", "--out", "runs/cr") == 1
    captured = capsys.readouterr()
    assert "2 of 2 trials failed: crash.py:12 ValueError: bad batch shape" in captured.err
    assert main(["analyze", "runs/cr"]) == 0
    assert "every trial of this run failed: crash.py:12" in capsys.readouterr().err


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_interrupt_before_the_first_result_then_resume(ray_local, user_dir, capsys, sig, code,
                                                      said):
    """Ctrl-C, or SIGTERM (a batch scheduler's time limit, `timeout`, `kill`): Tune saves its
    state, one line says how to finish, `resume` does (SIGTERM used to end the driver in
    Ray's own handler: a stack dump, exit code 1). The run is a process of its own (it gets
    the signal); the resume runs in-process on the tests' shared Ray."""
    (user_dir / "slow.py").write_text(HEADER + "def train(cfg, report):\n"
                                      "    time.sleep(cfg.wait_s)\n"
                                      "    for e in range(cfg.epochs):\n"
                                      "        report(val_metric=cfg.x * (e + 1))\n")
    hpsearch = os.path.join(os.path.dirname(sys.executable), "hpsearch")
    proc = subprocess.Popen([hpsearch, "run", "--trainer", "slow:train", "--space", "space.yaml",
                             "--samples", "2", "--max-epochs", "2", "--scheduler", "fifo",
                             "--set", "wait_s=4", "--num-cpus", "1", "--out", "runs/slow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((user_dir / "runs" / "slow").glob(
            "run_trial_*")):
        time.sleep(0.2)
    time.sleep(1)  # one trial runs (one slot: the other waits), none has reported (4 s wait)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert f"{said}: finish with: hpsearch resume" in err and "Tuner.restore" not in out + err
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-2000:]
    assert main(["resume", "runs/slow"]) == 0, capsys.readouterr().err[-2000:]
    assert "trials: 2 completed" in capsys.readouterr().out
