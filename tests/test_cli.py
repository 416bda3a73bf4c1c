"""The CLI as a user runs it: one-line errors with exit 2, train, spaces, export round trip."""

import json
import subprocess
import sys

import pytest
import yaml

from hpsearch.cli import main


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["run", "--trainer", "nope"], "unknown trainer 'nope'"),
    (["run", "--space", "nope"], "unknown space 'nope'"),
    (["run", "--trainer", "vit", "--space", "mlp_optimizers"], "is for trainer 'mlp'"),
    (["run", "--set", "colour=red"], "unknown setting 'colour'"),
    (["run", "--set", "lr=3e-4"], "both searched"),
    (["run", "--set", "depth=two"], "expected int"),
    (["run", "--grace-period", "20", "--max-epochs", "5"], "grace period"),
    (["run", "--reduction-factor", "1"], "reduction factor"),
    (["run", "--samples", "0"], "samples must be"),
    (["analyze", "/nonexistent/run"], "run directory not found"),
    (["export", "/nonexistent/run"], "run directory not found"),
    (["resume", "/nonexistent/run"], "run directory not found"),
    (["train", "--trainer", "mlp", "--set", "optimizer=rmsprop"], "optimizer must be"),
    (["train", "--trainer", "nomodule:fn"], "cannot import trainer module"),
    (["train", "--config", "/nonexistent.yaml"], "file not found"),
    (["estimate", "--trainer", "vit", "--set", "layers=0"], "layers must be"),
    (["estimate", "--trainer", "vit", "--set", "data=nope"], "data must be one of"),
    (["run", "--gpu-memory-mb", "0"], "GPU memory must be > 0"),
    (["run", "--gpus-per-trial", "1.5"], "whole number"),
    (["run", "--address", "ray://127.0.0.1:9"], "through ray:// Tune runs on the head node"),
    (["run", "--address", "ray://127.0.0.1:9", "--storage", "s3://b/p"], "through ray://"),
])
def test_user_errors_are_one_line_exit_2(args, needle, tmp_path, capsys):
    # In-process (each case fails before Ray starts); the process-level exit is checked below.
    argv = [*args, "--out", str(tmp_path / "r")] if args[0] == "run" else args
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: error: "), err
    assert needle in lines[0]
    assert not (tmp_path / "r").exists()  # nothing started, nothing written


@pytest.mark.parametrize("args", [["run", "--trainer", "nope"], ["analyze", "/nonexistent/run"]])
def test_user_error_exit_status_of_the_process(args):
    res = _cli(*args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().startswith("hpsearch: error: ") and "Traceback" not in res.stderr


def test_malformed_yaml_space_and_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: {lr: {type: float, low: 1, high: [}\n")
    assert main(["run", "--space", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert main(["train", "--config", str(bad)]) == 2
    assert "malformed" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "hpsearch.json").write_text('{"keep": true}')
    assert main(["run", "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert json.loads((run / "hpsearch.json").read_text()) == {"keep": True}


def test_analyze_empty_run_is_a_user_error(tmp_path, capsys):
    (tmp_path / "hpsearch.json").write_text(json.dumps({"trainer": "mlp", "mode": "max"}))
    assert main(["analyze", str(tmp_path)]) == 2
    assert "no trial has reported" in capsys.readouterr().err


def test_train_prints_epochs_and_accepts_overrides(capsys):
    rc = main(["train", "--trainer", "vit", "--set", "layers=1", "--set", "norm=post",
               "--set", "dim=16", "--set", "heads=2", "--set", "epochs=2", "--json"])
    out = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in out if line.startswith("{")]
    assert rc == 0 and [r["epoch"] for r in rows] == [1, 2]
    assert "norm=post" in out[0] and "layers=1" in out[0]


def test_user_trainer_module_function(tmp_path, monkeypatch, capsys):
    (tmp_path / "mytrainer.py").write_text(
        "from dataclasses import dataclass\n"
        "MODE = 'min'\n"
        "@dataclass\nclass Config:\n    lr: float = 0.1\n    epochs: int = 2\n"
        "def fit(cfg, report):\n"
        "    for e in range(1, cfg.epochs + 1):\n"
        "        report({'epoch': e, 'val_metric': cfg.lr / e, 'status': 'running'})\n"
        "    return {'val_metric': cfg.lr / cfg.epochs}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["train", "--trainer", "mytrainer:fit", "--set", "lr=0.5"]) == 0
    assert "0.25" in capsys.readouterr().out


def test_spaces_lists_and_shows(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("adam_betas", "mlp_optimizers", "mlp_activations", "lm_optimizers_depth",
                 "vit_norm_depth"):
        assert name in out
    assert out.count("reproduces: ") == 5
    assert main(["spaces", "vit_norm_depth"]) == 0
    out = capsys.readouterr().out
    assert "norm           one of pre, post" in out
    assert "lr             float from 0.0001 to 0.01, log scale" in out
    assert "beta1" in out and "only when optimizer is adamw" in out


@pytest.mark.slow
def test_run_analyze_export_train_round_trip(ray_local, tmp_path, capsys, caplog):
    """In-process on the tests' shared Ray (the process-level exit codes are checked in
    test_user_error_exit_status_of_the_process and the subprocess search tests)."""
    run = tmp_path / "rt"
    assert main(["run", "--samples", "3", "--max-epochs", "2", "--scheduler", "fifo",
                 "--max-concurrent", "1", "--set", "data=digits", "--set", "width=16",
                 "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "3/3 done" in out and "best trial" in out
    tables = {f: (run / f).stat().st_mtime_ns for f in ("trials.csv", "epochs.csv")}
    assert main(["resume", str(run)]) == 0  # finished: said, and nothing rewritten
    assert "finished already; nothing to resume" in caplog.text
    capsys.readouterr()
    assert tables == {f: (run / f).stat().st_mtime_ns for f in tables}
    assert main(["analyze", str(run), "--format", "html"]) == 0
    assert "compared at epoch 2 (" in capsys.readouterr().out
    report = run / "report"
    html = (report / "report.html").read_text()
    import re

    imgs = re.findall(r'src="([^"]+)"', html)
    assert imgs and all((report / i).exists() for i in imgs)
    # 3 trials: every pair is too sparse for a heatmap, and the report says so.
    assert "Not drawn (too sparse to read)" in html and "marginal_lr.png" in html
    assert (report / "summary.html").exists() and "interactive_slice.html" in html
    # CPU trials: memory is estimated and said to be; parameter counts are listed; the
    # held-out test split is nowhere in a search's tables.
    assert "<b>estimate</b>" in html and "n_params" in html
    assert "test_metric" not in (report / "epochs.csv").read_text().splitlines()[0]
    assert main(["analyze", str(run), "--at-epoch", "1", "--predicted"]) == 0
    assert "predicted" in (run / "report" / "predicted.csv").read_text()
    assert "compared at epoch 1 (chosen with --at-epoch; 3 of 3" in capsys.readouterr().out
    assert main(["analyze", str(run), "--at-epoch", "5"]) == 2  # one line, nothing lost
    assert "ran epochs 1 to 2" in capsys.readouterr().err
    assert main(["export", str(run), "--top", "2", "--out", str(tmp_path / "best"),
                 "--confirm-seeds", "1", "--save-models", str(tmp_path / "weights")]) == 0
    out = capsys.readouterr().out
    assert "confirmation on 1 fresh seeds" in out and "test_metric" in out
    confirmed = (tmp_path / "best" / "confirm.csv").read_text().splitlines()
    assert len(confirmed) == 3 and "test_mean" in confirmed[0]  # header + the two exported
    assert main(["analyze", str(run)]) == 0
    capsys.readouterr()
    assert "Exported configs on held-out test data" in (report / "report.html").read_text()
    import torch

    weights = sorted((tmp_path / "weights").glob("*.pt"))
    assert [w.name for w in weights] == ["1-seed1000.pt", "2-seed1000.pt"]
    assert all(isinstance(v, torch.Tensor)
               for v in torch.load(weights[0], weights_only=True).values())
    doc = yaml.safe_load((tmp_path / "best" / "1.yaml").read_text())
    assert doc["config"]["data"] == "digits" and doc["config"]["epochs"] == 2
    assert doc["hpsearch_version"] and doc["trial_id"]
    # The trial ran with one thread (one CPU); this process has two. The thread count changes
    # float rounding (digits' val loss from the 7th digit), so the export records it.
    assert doc["config"]["threads"] == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["train", "--config", str(tmp_path / "best" / "1.yaml"), "--json"]) == 0
        assert torch.get_num_threads() == 2  # the caller's count is its own again
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    # Same config, same seed, same threads: the trial's metrics are reproduced exactly; the
    # test split is reported.
    assert rows[-1]["val_metric"] == doc["metrics"]["final_val_metric"]
    assert rows[-1]["val_loss"] == doc["metrics"]["final_val_loss"]
    assert 0 < rows[-1]["test_metric"] <= 1 and "held-out test_metric" in out


def test_points_file_must_be_a_list(tmp_path, capsys):
    pts = tmp_path / "points.yaml"
    pts.write_text("lr: 0.1\n")
    assert main(["run", "--points", str(pts), "--out", str(tmp_path / "r")]) == 2
    assert "expected a list of configs" in capsys.readouterr().err
    pts.write_text("- {lr: 0.1, colour: red}\n")
    assert main(["run", "--points", str(pts), "--out", str(tmp_path / "r")]) == 2
    assert "colour" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_estimate_prints_the_breakdown_and_gpu_share(capsys):
    from hpsearch.trainers import memory, vit

    assert main(["estimate", "--trainer", "vit", "--set", "data=digits", "--set", "layers=2",
                 "--gpu-memory-mb", "16000", "--gpu-overhead-mb", "400"]) == 0
    out = capsys.readouterr().out
    est = memory.estimate(vit, vit.Config(data="digits", layers=2))
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert float(total.split()[-1]) == pytest.approx(est.total_mb, abs=0.05)
    import math
    import re

    need = (est.total_mb * 1.1 + 400) / 16000
    share = float(re.search(r"GPU share on a 16000 MB GPU: ([0-9.]+)", out).group(1))
    assert share == pytest.approx(math.ceil(need * 100) / 100)


def test_a_loss_is_minimised_unless_mode_says_otherwise():
    """`--metric val_loss` without `--mode` minimises it (it used to take the trainer's
    direction, which is its val_metric's: an MLP search maximised its validation loss).
    The trainer's MODE still decides for val_metric, train_metric and a plugin's own keys."""
    import hpsearch
    from hpsearch.config import default_mode

    def mode(trainer, **kw):
        return hpsearch.search_config(trainer=trainer, out="runs/x", **kw).mode

    assert mode("mlp", metric="val_loss") == "min"
    assert mode("mlp", metric="gap") == "min"
    assert mode("mlp") == "max" and mode("mlp", metric="train_metric") == "max"
    assert mode("lm") == "min"  # perplexity
    assert mode("mlp", metric="val_loss", mode="max") == "max"  # asked for
    assert default_mode("my_loss", "max") == "min" and default_mode("bleu", "max") == "max"


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path, monkeypatch, capsys):
    """`hpsearch spaces | head -1`: the pipe closes under the CLI's output."""
    class Closed:
        def __init__(self):
            self.file = (tmp_path / "out").open("w")

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.file.fileno()

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["spaces"]) == 141
    assert capsys.readouterr().err == ""


def test_printed_commands_can_be_pasted_for_any_path(tmp_path, capsys):
    """The next command the CLI prints is shell-quoted: a path with a space still works."""
    import shlex

    from hpsearch import cli

    run = type("R", (), {"path": tmp_path / "my run", "meta": {"finished": False,
                                                              "stopped_by": None}})()
    assert cli._exit_code(run) == 130
    line = capsys.readouterr().err.strip()
    assert shlex.split(line.split(": ", 1)[1])[-1] == str(tmp_path / "my run"), line


def test_a_run_where_every_trial_diverged_names_no_best(capsys):
    import math
    from types import SimpleNamespace

    import pandas as pd

    from hpsearch import cli

    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": ["diverged", "diverged"],
                           "score": [math.nan, math.nan], "final_score": [math.nan] * 2,
                           "epochs": [1, 1], "lr": [1e3, 1e4]})
    run = SimpleNamespace(trials=trials, compare={"epoch": 1, "trials_reached": 2, "trials": 2},
                          score_label="val_metric", params=["lr"], path="runs/x")
    cli._print_best(run)
    out = capsys.readouterr().out
    assert "trials: 2 diverged" in out and "no trial has a finite score" in out
    assert "best trial" not in out and "lr = " not in out


def test_the_api_takes_one_setting_as_a_string():
    """`fixed="data=digits"` (one key=value, not a list of them) was read letter by letter."""
    import hpsearch

    cfg = hpsearch.search_config("mlp", "mlp_optimizers", fixed="data=digits", out="runs/x")
    assert cfg.fixed == {"data": "digits"}
