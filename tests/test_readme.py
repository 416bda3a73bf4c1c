"""The README's Python API example runs as written (the own-trainer example runs from an
installed wheel in tests/test_package.py)."""

import os
import re
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


def test_python_api_example_runs_as_written(ray_local, tmp_path, monkeypatch, capsys):
    # In-process on the tests' shared Ray: hpsearch.run uses a Ray that is already running.
    monkeypatch.chdir(tmp_path)
    exec(compile(_block("## Python API", "python"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "api-demo" / "report" / "report.html").is_file()
    assert (tmp_path / "runs" / "api-demo-best" / "1.yaml").is_file()
    assert "completed" in out or "diverged" in out
