"""`export --confirm-seeds` with a user trainer: re-trained as `hpsearch train` runs it
(keyword reports), ranked by the run's own metric in its direction, a re-training that
raises counted as failed with its line; a trainer without a seed setting is refused before
Ray starts; an exported config of a user trainer re-runs from any directory."""

import json
import os
import sys

import pandas as pd

from hpsearch.cli import main

TRAINER = "tests.search.seeded_trainer:train"


def _run(root, trainer=TRAINER, import_path=None):
    run = root / "run"
    run.mkdir()
    (run / "hpsearch.json").write_text(json.dumps(
        {"trainer": trainer, "metric": "val_loss", "mode": "min", "finished": True,
         "import_path": import_path}))
    # What the search saw: lr 0.2 looked best (a lucky seed), 0.03 second, 0.01 third.
    for i, (lr, loss) in enumerate([(0.2, 0.001), (0.03, 0.002), (0.01, 0.003)]):
        trial = run / f"run_trial_t{i}_{i}_x"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"lr": lr, "epochs": 2}))
        (trial / "result.json").write_text("".join(json.dumps(
            {"trial_id": f"t{i}", "epoch": e, "val_loss": loss, "val_metric": 1 - loss,
             "status": "completed" if e == 2 else "running"}) + "\n" for e in (1, 2)))
    return run


def test_confirmation_ranks_by_the_runs_metric_and_counts_failures(ray_local, tmp_path,
                                                                     capsys):
    run = _run(tmp_path)
    out = tmp_path / "best"
    assert main(["export", str(run), "--top", "2", "--out", str(out),
                 "--confirm-seeds", "2"]) == 0
    captured = capsys.readouterr()
    ranked = pd.read_csv(out / "confirm.csv")
    # Re-trained, lr 0.03 beats 0.2 by val_loss (minimised): not the search's order, and
    # not val_metric's ascending order either.
    assert list(ranked["trial_id"]) == ["t1", "t0"], ranked
    assert list(ranked["failed"]) == [0, 1] and list(ranked["seeds"]) == [2, 2]
    assert "mean ± std of val_loss" in captured.out
    assert "NOT the confirmed winner: trial t1" in captured.out
    assert "(1 of 2 failed)" in captured.out
    assert "1 re-training(s) failed: seeded_trainer.py:17 ValueError: boom on seed 1001" \
        in captured.err
    runs = pd.read_csv(out / "confirm_runs.csv")
    assert set(runs.loc[runs["status"] == "error", "seed"]) == {1001}


def test_no_seed_setting_is_refused_and_an_export_reruns_from_elsewhere(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the user module's dir is added:
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # undone afterwards
    home = tmp_path / "project"
    home.mkdir()
    (home / "noseed.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass Config:\n"
        "    lr: float = 0.1\n    epochs: int = 2\n\n"
        "def train(cfg, report):\n    for _ in range(cfg.epochs):\n"
        "        report(val_metric=1 - cfg.lr, val_loss=cfg.lr)\n")
    run = _run(home, trainer="noseed:train", import_path=str(home))
    monkeypatch.chdir(home)
    assert main(["export", str(run), "--out", "best", "--confirm-seeds", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no seed setting" in err[0], err
    assert not (home / "best").exists()  # refused before anything was written
    assert main(["export", str(run), "--out", "best"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sys.path.remove(str(home))  # a new process elsewhere: only the export says where
    monkeypatch.delitem(sys.modules, "noseed")
    capsys.readouterr()
    assert main(["train", "--config", str(home / "best" / "1.yaml")]) == 0
    assert "final val_metric" in capsys.readouterr().out
