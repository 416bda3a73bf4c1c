"""Memory-aware GPU packing end to end from the CLI, on a local Ray with one fake GPU: each
trial's GPU share comes from its config's memory estimate, so two large configs never share
the device while small ones do; `analyze` shows share, estimate and measured memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.config import ResourcesConfig
from hpsearch.search import packing

ROOT = Path(__file__).resolve().parents[2]
TRAINER = "tests.search.mem_probe_trainer:train"
BIG, SMALL = 4096, 16


def _hpsearch(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout)


def _search(tmp_path, *extra):
    points = tmp_path / "points.yaml"
    points.write_text(f"- {{width: {BIG}}}\n- {{width: {BIG}}}\n"
                      f"- {{width: {SMALL}}}\n- {{width: {SMALL}}}\n")
    out = tmp_path / "run"
    res = _hpsearch("run", "--trainer", TRAINER, "--space", "tests/search/width_space.yaml",
                    "--points", str(points), "--samples", "4", "--max-epochs", "2",
                    "--scheduler", "fifo", "--num-cpus", "4", "--num-gpus", "1",
                    "--gpus-per-trial", "0.25", "--gpu-memory-mb", "1000",
                    "--gpu-overhead-mb", "100", "--set", "sleep_s=1.5", "--out", str(out),
                    *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    epochs = pd.read_csv(out / "epochs.csv")
    return out, epochs.groupby("trial_id").last().reset_index()


def _overlap(a, b) -> bool:
    return a["t_start"] < b["t_end"] and b["t_start"] < a["t_end"]


@pytest.mark.slow
def test_large_configs_get_larger_shares_and_never_share_the_gpu(tmp_path):
    out, trials = _search(tmp_path)
    expected = {w: packing.gpu_share(packing.estimate_mb(TRAINER, {"width": w}),
                                     ResourcesConfig(gpus_per_trial=0.25, gpu_overhead_mb=100),
                                     1000.0) for w in (BIG, SMALL)}
    assert expected[SMALL] == 0.25 and 0.5 < expected[BIG] < 1  # two BIGs overfill the GPU
    for _, t in trials.iterrows():
        assert t["assigned_gpu"] == pytest.approx(expected[t["width"]])
    big = trials[trials["width"] == BIG].to_dict("records")
    assert not _overlap(*big)  # Ray serialised them: 2 x share > 1 GPU
    # Whatever ran at the same time fits in the device by the estimates.
    rows = trials.to_dict("records")
    for r in rows:  # the load peaks when some trial starts
        running = [o for o in rows if o["t_start"] <= r["t_start"] < o["t_end"]]
        assert sum(o["assigned_gpu"] for o in running) <= 1.0 + 1e-9

    res = _hpsearch("analyze", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    mem = pd.read_csv(out / "report" / "memory.csv")
    assert {"gpu_share", "gpu_mem_mb_estimate", "gpu_mem_mb", "actual_over_estimate"} <= set(mem)
    assert mem.iloc[0]["width"] == BIG  # largest estimate first (no GPU: nothing measured)
    by_width = mem.groupby("width")["gpu_share"].first().to_dict()
    assert by_width == pytest.approx({BIG: expected[BIG], SMALL: 0.25})
    assert "gpu_mem_mb_estimate" in (out / "report" / "report.html").read_text()


@pytest.mark.slow
def test_without_packing_every_trial_gets_the_fixed_share(tmp_path):
    _, trials = _search(tmp_path, "--no-memory-packing")
    assert set(trials["assigned_gpu"]) == {0.25}
    big = trials[trials["width"] == BIG].to_dict("records")
    assert _overlap(*big)  # 4 x 0.25 fit, so the two large configs ran side by side


@pytest.fixture
def no_ray(monkeypatch):
    """These errors come before any Ray starts: a private Ray's start fails the test."""
    import ray

    from hpsearch.search import runner

    def started(*a, **kw):
        raise AssertionError("a Ray was started")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # not the tests' shared Ray
    monkeypatch.setattr(runner.cluster, "connect", started)
    monkeypatch.setattr(runner.cluster, "_nvml_total_mb", lambda: None)  # no NVIDIA driver


def test_auto_share_without_gpus_is_a_user_error(tmp_path, no_ray, capsys):
    from hpsearch.cli import main

    assert main(["run", "--trainer", "mlp", "--gpus-per-trial", "auto", "--samples", "1",
                 "--num-cpus", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpsearch: error:") and "no GPUs" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("gpus, said", [("1", "--gpu-memory-mb"), ("0", "has no GPUs")])
def test_auto_share_on_fake_gpus_needs_the_gpu_memory(tmp_path, no_ray, capsys, gpus, said):
    from hpsearch.cli import main

    assert main(["run", "--trainer", "mlp", "--gpus-per-trial", "auto", "--samples", "1",
                 "--num-cpus", "1", "--num-gpus", gpus, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert not (tmp_path / "r").exists()


def test_a_fixed_share_beyond_the_local_gpus_is_refused_before_ray_starts(tmp_path, no_ray,
                                                                          capsys):
    from hpsearch.cli import main

    assert main(["run", "--trainer", "mlp", "--gpus-per-trial", "2", "--num-gpus", "1",
                 "--gpu-memory-mb", "1000", "--out", str(tmp_path / "r")]) == 2
    assert "--gpus-per-trial 2 but the cluster has 1 GPUs" in capsys.readouterr().err


def test_bad_share_is_rejected_by_argparse():
    res = _hpsearch("run", "--gpus-per-trial", "half")
    assert res.returncode == 2 and "expected a number or 'auto'" in res.stderr


@pytest.mark.slow
def test_a_measured_peak_sizes_later_trials_of_the_same_shape(tmp_path):
    # The estimate of width 16 is tiny; the first trial "measures" 600 MB (the probe trainer
    # reports it as gpu_mem_mb), so the following ones ask for (600 x 1.1 + 100) / 1000.
    points = tmp_path / "points.yaml"
    points.write_text("- {width: 16}\n" * 3)
    out = tmp_path / "run"
    res = _hpsearch("run", "--trainer", TRAINER, "--space", "tests/search/width_space.yaml",
                    "--points", str(points), "--samples", "3", "--max-epochs", "1",
                    "--scheduler", "fifo", "--num-cpus", "2", "--num-gpus", "1",
                    "--max-concurrent", "1", "--gpus-per-trial", "0.25",
                    "--gpu-memory-mb", "1000", "--gpu-overhead-mb", "100",
                    "--set", "sleep_s=0.2", "--set", "fake_gpu_mem_mb=600", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_csv(out / "epochs.csv").sort_values("t_start")
    assert list(trials["assigned_gpu"]) == [0.25, 0.76, 0.76]
    packing_log = pd.read_csv(out / "packing.csv").set_index("trial_id")
    assert list(packing_log.loc[trials["trial_id"], "share_from"]) == \
        ["estimate", "measured", "measured"]
    assert list(json.loads((out / "memory_measured.json").read_text()).values()) == [600.0]
