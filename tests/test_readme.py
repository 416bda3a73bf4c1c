"""The README's examples run as written: the Python API example, and the own-trainer
example from the directory the user runs hpsearch in."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
pytestmark = pytest.mark.slow


def _block(after: str, lang: str) -> str:
    section = README[README.index(after):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_python_api_example_runs_as_written(tmp_path):
    res = subprocess.run([sys.executable, "-c", _block("## Python API", "python")],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "runs" / "api-demo" / "report" / "report.html").is_file()
    assert (tmp_path / "runs" / "api-demo-best" / "1.yaml").is_file()
    assert "completed" in res.stdout or "diverged" in res.stdout


def test_own_trainer_example_runs_from_the_current_directory(tmp_path):
    (tmp_path / "mytrainer.py").write_text(_block("## Writing a trainer", "python"))
    (tmp_path / "myspace.yaml").write_text(
        "params:\n  lr: {type: float, low: 0.001, high: 0.3, log: true}\n")
    cmd = _block("## Writing a trainer", "bash").split("#")[0].split()
    res = subprocess.run([str(Path(sys.executable).with_name("hpsearch")), *cmd[1:],
                          "--num-cpus", "2", "--out", "runs/mine"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = re.search(r"^trials: (.*)$", res.stdout, re.M).group(1)
    assert sum(int(n) for n in re.findall(r"(\d+) ", counts)) == 8, counts
    assert "error" not in counts and "completed" in counts, counts
    best = re.search(r"lr = ([0-9.e-]+)", res.stdout)
    assert best and 0.001 <= float(best.group(1)) <= 0.3
