"""The package as a user gets it: a wheel built from this tree, installed into a fresh venv
(reusing this environment's dependencies, torch included), used from another directory."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import hpsearch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, (cmd, res.stdout[-2000:], res.stderr[-3000:])
    return res


def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels), str(ROOT)])
    (wheel,) = wheels.glob("hpsearch-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip())
    # The dependencies come from this environment; hpsearch itself only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
          str(wheel)])
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
    res = _run(cli + ["run", "--trainer", "mlp", "--set", "data=digits", "--samples", "1",
                      "--max-epochs", "1", "--num-cpus", "1", "--out", "runs/one"],
               cwd=work, env=env)
    assert "best trial" in res.stdout
    # No Ray start-up chatter, and never advice to switch authentication off.
    assert "RAY_AUTH_MODE" not in res.stdout + res.stderr
    assert "Started a local Ray instance" not in res.stdout + res.stderr
    assert (work / "runs" / "one" / "trials.csv").is_file()
