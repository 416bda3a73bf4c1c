"""report.html renders in headless Chromium (Debian's chromium) and references real files."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from hpsearch.analysis.report import write_report


def _fake_run(path, n=12, epochs=4):
    """A run directory in the layout Ray Tune writes (params.json + result.json per trial)."""
    import json

    rng = np.random.default_rng(0)
    (path / "hpsearch.json").write_text(json.dumps({"trainer": "vit", "space": "vit_norm_depth",
                                                    "mode": "max", "metric_name": "accuracy",
                                                    "fixed": {}, "finished": True}))
    for i in range(n):
        tid = f"t{i:07d}"
        d = path / f"run_trial_{tid}_{i}_x"
        d.mkdir()
        cfg = {"norm": ["pre", "post"][i % 2], "layers": [2, 4, 6][i % 3],
               "lr": float(10 ** rng.uniform(-4, -2)), "optimizer": ["sgd", "adamw"][i % 2 // 1]}
        (d / "params.json").write_text(json.dumps(cfg))
        lines = []
        for e in range(1, epochs + 1):
            tr, va = 1 / e, 1 / e + 0.05 * e
            lines.append(json.dumps({"trial_id": tid, "epoch": e, "train_loss": tr,
                                     "val_loss": va, "gap": va - tr, "train_metric": 1 - tr / 2,
                                     "val_metric": (1 - va / 2
                                                    + (0.1 if cfg["norm"] == "pre" else 0)),
                                     "epoch_time_s": 0.5, "time_total_s": 0.5 * e,
                                     "gpu_mem_mb": None,
                                     "status": "completed" if e == epochs else "running"}))
        (d / "result.json").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def md_report(tmp_path_factory):
    """One fake run and its report (md summary), read by the tests that only look."""
    path = tmp_path_factory.mktemp("md")
    _fake_run(path)
    return path, write_report(path, "md").read_text()


def test_report_files_exist(md_report):
    tmp_path, html = md_report
    imgs = re.findall(r'src="([^"]+)"', html)
    assert len(imgs) >= 6 and all((tmp_path / "report" / i).exists() for i in imgs)
    assert "sensitivity_layers_x_norm.png" in imgs or "sensitivity_norm_x_layers.png" in imgs
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "**vit-pre**" in summary and "vit-post" in summary
    over = pd.read_csv(tmp_path / "report" / "overfitting.csv")
    assert over["flagged"].all()  # val loss rises every epoch after the first


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(md_report, tmp_path):
    page = md_report[0] / "report" / "report.html"  # (the summary's format is not drawn)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", f"file://{page}"], capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2000, 1200)
    # A rendered report is not a blank page: headings, tables and heatmaps add dark pixels.
    assert (img < 128).mean() > 0.02
    # The interactive page draws with the local plotly.js (no network): not blank either.
    inter = page.parent / "interactive_parallel_coordinate.html"
    shot2 = tmp_path / "shot2.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000",
                    f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=900,500",
                    f"--screenshot={shot2}", f"file://{inter}"], capture_output=True, timeout=120)
    drawn = np.asarray(Image.open(shot2).convert("L"))
    assert (drawn < 200).mean() > 0.01, "the plotly figure did not draw"


def test_interactive_views_are_offline_pages_beside_the_report(md_report):
    tmp_path, html = md_report
    frames = re.findall(r'<iframe src="([^"]+)"', html)
    assert {"interactive_parallel_coordinate.html", "interactive_slice.html",
            "interactive_intermediate_values.html"} <= set(frames)
    report = tmp_path / "report"
    assert (report / "plotly.min.js").stat().st_size > 1_000_000
    for f in frames:
        page = (report / f).read_text()
        assert 'src="plotly.min.js"' in page and "https://cdn" not in page


def test_partial_run_is_analyzed(tmp_path):
    import json

    _fake_run(tmp_path, n=4, epochs=3)
    meta = json.loads((tmp_path / "hpsearch.json").read_text())
    (tmp_path / "hpsearch.json").write_text(json.dumps({**meta, "finished": False}))
    trial = next(tmp_path.glob("run_trial_t0000000_*"))
    lines = (trial / "result.json").read_text().splitlines()[:2]  # still running at epoch 2
    (trial / "result.json").write_text("\n".join(lines) + "\n{\"epoch\": 3, \"trun")  # torn
    from hpsearch.rundir import load_run

    run = load_run(tmp_path)
    row = run.trials.set_index("trial_id").loc["t0000000"]
    assert row["status"] == "running" and row["epochs"] == 2
    assert "partial run" in write_report(tmp_path).read_text()


def _failed_run(path, kind):
    import json

    path.mkdir(parents=True, exist_ok=True)
    (path / "hpsearch.json").write_text(json.dumps({"trainer": "mlp", "mode": "max",
                                                    "metric_name": "accuracy",
                                                    "finished": True}))
    for i in range(6):
        tid = f"t{i:07d}"
        d = path / f"run_trial_{tid}_{i}_x"
        d.mkdir()
        cfg = {"depth": [1, 2, 4][i % 3], "lr": 10.0 ** (-i), "optimizer": ["sgd", "adam"][i % 2]}
        (d / "params.json").write_text(json.dumps(cfg))
        bad = kind == "errors" or cfg["depth"] == 4
        rows = [{"trial_id": tid, "epoch": 1, "val_metric": None if bad else 0.6,
                 "train_loss": None if bad else 0.5, "val_loss": None if bad else 0.6,
                 "gap": None if bad else 0.1, "epoch_time_s": 0.1, "time_total_s": 0.1,
                 "status": ("error" if kind == "errors" else "diverged") if bad else "completed",
                 "error": "RuntimeError: boom" if kind == "errors" else None}]
        (d / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize("kind", ["errors", "one_group_diverged"])
def test_report_of_failed_runs(tmp_path, kind):
    from hpsearch.cli import main

    _failed_run(tmp_path / "run", kind)
    assert main(["analyze", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report" / "report.html").is_file()
