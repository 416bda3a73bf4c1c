"""The package as a user gets it: a wheel built from this tree, installed into a fresh venv
(reusing this environment's dependencies, torch included), used from another directory:
--version, spaces, and the README's own-trainer example as written."""

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import hpsearch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


README = (ROOT / "README.md").read_text()


def _block(after: str, lang: str) -> str:
    section = README[README.index(after):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, (cmd, res.stdout[-2000:], res.stderr[-3000:])
    return res


def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    import shutil

    src = tmp_path / "src"  # a copy: the build leaves build/ and egg-info behind
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "hpsearch", src / "hpsearch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("hpsearch-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip())
    # The dependencies come from this environment; hpsearch itself only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: this environment's own (editable) hpsearch is visible through
    # deps.pth and would otherwise count as already installed.
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
          "--ignore-installed", "-q", str(wheel)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    cli = [str(venv / "bin" / "hpsearch")]
    where = _run([str(py), "-c", "import hpsearch; print(hpsearch.__file__)"], cwd=work,
                 env=env).stdout
    assert str(site) in where and str(ROOT) not in where  # the wheel, not the source tree
    assert _run(cli + ["--version"], cwd=work, env=env).stdout.strip() == \
        f"hpsearch {hpsearch.__version__}"
    assert "mlp_optimizers" in _run(cli + ["spaces"], cwd=work, env=env).stdout
    # The README's own-trainer example, as written, from the user's directory.
    (work / "mytrainer.py").write_text(_block("## Writing a trainer", "python"))
    (work / "myspace.yaml").write_text(
        "params:\n  lr: {type: float, low: 0.001, high: 0.3, log: true}\n")
    cmd = _block("## Writing a trainer", "bash").split("#")[0].split()
    res = _run(cli + cmd[1:] + ["--num-cpus", "1", "--out", "runs/one"], cwd=work, env=env)
    counts = re.search(r"^trials: (.*)$", res.stdout, re.M).group(1)
    assert sum(int(n) for n in re.findall(r"(\d+) ", counts)) == 8, counts
    assert "error" not in counts and "completed" in counts, counts
    # No Ray start-up chatter, and never advice to switch authentication off.
    assert "RAY_AUTH_MODE" not in res.stdout + res.stderr
    assert "Started a local Ray instance" not in res.stdout + res.stderr
    assert (work / "runs" / "one" / "trials.csv").is_file()
