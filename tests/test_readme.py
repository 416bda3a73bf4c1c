"""The README's Python API example runs as written (the own-trainer example runs from an
installed wheel in tests/test_package.py)."""

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
