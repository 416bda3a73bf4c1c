"""Real Ray Tune searches on CPU (session-scoped local Ray): results, Optuna states, errors."""

import json
import sqlite3

import optuna
import pandas as pd
import pytest

from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
from hpsearch.search import run_search

pytestmark = pytest.mark.slow
TINY = {"data": "digits", "width": 16}
# One trial at a time where concurrency is not what a test is about: each concurrent slot
# is a Tune actor that imports Ray Tune and torch (~3.5 CPU-s) on a CPU-bound suite.
ONE_SLOT = ResourcesConfig(max_concurrent=1)
# Where the subject is the search, not the training: synthetic curves, no torch in the
# trial actor (an mlp actor costs ~3 CPU-s more: torch, torch._dynamo, the epochs).
CURVES, CURVES_SPACE = "tests.search.curves_trainer:train", "tests/search/curves_space.yaml"


def _cfg(tmp_path, name, **kw):
    max_epochs = kw.pop("max_epochs", 2)
    sched = kw.pop("scheduler", SchedulerConfig())
    return SearchConfig(trainer=kw.pop("trainer", "mlp"), space=kw.pop("space", "mlp_optimizers"),
                        run_dir=str(tmp_path / name), max_epochs=max_epochs, scheduler=sched,
                        fixed=kw.pop("fixed", TINY), **kw)


def _study(run_dir):
    storage = f"sqlite:///{run_dir}/optuna.db"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_four_trial_search_end_to_end(ray_local, tmp_path):
    run = run_search(_cfg(tmp_path, "smoke", samples=4, max_epochs=2))
    # Importance reads the distributions the study recorded (lr searched on a log scale).
    from hpsearch.analysis import importance

    dists = importance.stored_distributions(run)
    assert dists["lr"].log and dists["lr"].low == 1e-4 and "optimizer" in dists
    # The run directory is its owner's alone; hpsearch's files too.
    assert (tmp_path / "smoke").stat().st_mode & 0o777 == 0o700
    for name in ("hpsearch.json", "epochs.csv", "trials.csv"):
        assert (tmp_path / "smoke" / name).stat().st_mode & 0o077 == 0, name
    epochs = pd.read_csv(tmp_path / "smoke" / "epochs.csv")
    trials = pd.read_csv(tmp_path / "smoke" / "trials.csv")
    assert len(trials) == 4 and epochs["trial_id"].nunique() == 4
    # One row per trial per epoch, no gaps or repeats.
    for _, g in epochs.groupby("trial_id"):
        assert list(g["epoch"]) == list(range(1, len(g) + 1))
    assert len(epochs) == trials["epochs"].sum()
    assert set(trials["status"]) <= {"completed", "stopped_early", "diverged"}
    meta = json.loads((tmp_path / "smoke" / "hpsearch.json").read_text())
    assert meta["finished"] and meta["study_name"].startswith("smoke-")
    study = _study(tmp_path / "smoke")
    assert len(study.trials) == 4
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert run.trials.iloc[0]["score"] == run.trials["score"].max()  # equal-budget rank
    assert (run.trials["score_epoch"] == run.compare["epoch"]).all()
    assert {"lr", "optimizer", "batch_size", "depth"} <= set(run.params)


def test_the_same_seed_one_trial_at_a_time_repeats_the_search(ray_local, tmp_path):
    """`--seed` with `--max-concurrent 1`: the default sampler (its model included, which
    starts after 8 trials) and scheduler propose and stop the same trials, epoch by epoch.
    (A torch-free trainer whose metrics are a function of the config: that the built-in
    trainers repeat their metrics under one seed is test_loop's.)"""
    def once(name):
        run = run_search(_cfg(tmp_path, name, trainer=CURVES, space=CURVES_SPACE, fixed={},
                              samples=12, max_epochs=3, seed=5, resources=ONE_SLOT))
        cols = ["optimizer", "lr", "width", "epoch", "val_metric", "status"]
        return run.epochs.sort_values(["lr", "epoch"])[cols].reset_index(drop=True)

    first, again = once("a"), once("b")
    pd.testing.assert_frame_equal(first, again)
    assert first["lr"].nunique() == 12
    assert set(first["status"]) >= {"stopped_early", "completed"}, first["status"]


def test_minimising_a_loss_searches_as_maximising_its_accuracy(ray_local, tmp_path):
    """The whole path (trainer plugin, Tune, the searcher and its model, the scheduler, the
    Optuna study, diverged trials) run once on accuracy (max) and once on 1 - accuracy
    (min), one trial at a time with one seed: the same configs, epochs and stops. Neither
    SearchConfig names a mode: each takes its trainer's MODE."""
    def once(trainer, name):
        run = run_search(_cfg(tmp_path, name, trainer=f"tests.search.{trainer}:train",
                              space=CURVES_SPACE, fixed={}, samples=14,
                              max_epochs=9, seed=2, resources=ONE_SLOT))
        return run.epochs.sort_values(["lr", "epoch"]).reset_index(drop=True)

    up, down = once("curves_trainer", "acc"), once("curves_loss_trainer", "loss")
    cols = ["optimizer", "lr", "width", "epoch", "status"]
    pd.testing.assert_frame_equal(up[cols], down[cols])
    pd.testing.assert_series_equal(up["val_metric"], 1 - down["val_metric"],
                                   check_names=False, atol=1e-12)
    assert set(up["status"]) >= {"stopped_early", "completed", "diverged"}, up["status"]


def test_the_epoch_budget_counts_trained_epochs(ray_local, tmp_path):
    """`budget_epochs` (`--budget-epochs`) is epochs trained: the result Tune adds when a
    trainer returns repeats its last epoch, and counting results ended this search after 8
    epochs with 10 reported spent. The remainder goes to a new trial when nothing runs."""
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optimizer: {type: categorical, choices: [sgd, adam]}\n"
                     "  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    cfg = _cfg(tmp_path, "budget", trainer=CURVES,
               space=str(space), fixed={"epoch_s": 0.1}, samples=50, max_epochs=4,
               budget_epochs=10, seed=0, sampler="random",
               scheduler=SchedulerConfig(kind="fifo"), resources=ONE_SLOT)
    run = run_search(cfg)
    meta = json.loads((tmp_path / "budget" / "hpsearch.json").read_text())
    assert meta["finished"] and meta["budget_spent"] == 10 == len(run.epochs)
    assert sorted(run.trials["status"]) == ["completed", "completed", "stopped_early"]


def test_asha_stopped_trials_reach_optuna_as_pruned(ray_local, tmp_path):
    space = tmp_path / "space.yaml"  # no lr that diverges (those are PRUNED too)
    space.write_text("params:\n  optimizer: {type: categorical, choices: [sgd, adam]}\n"
                     "  lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}\n")
    cfg = _cfg(tmp_path, "asha", trainer=CURVES, space=str(space), fixed={}, samples=6,
               max_epochs=3, sampler="random", seed=3,
               scheduler=SchedulerConfig("asha", grace_period=1, reduction_factor=2),
               resources=ONE_SLOT)
    run = run_search(cfg)
    stopped = run.trials[run.trials["status"] == "stopped_early"]
    assert len(stopped) >= 1, run.trials[["trial_id", "status", "epochs"]]
    assert (stopped["epochs"] < 3).all()
    states = {t.number: t.state for t in _study(tmp_path / "asha").trials}
    pruned = [s for s in states.values() if s == optuna.trial.TrialState.PRUNED]
    complete = [s for s in states.values() if s == optuna.trial.TrialState.COMPLETE]
    assert len(pruned) == len(stopped)
    assert len(complete) == (run.trials["status"] == "completed").sum()
    # Pruned trials keep their intermediate values, so TPE can rank them by progress.
    for t in _study(tmp_path / "asha").trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.intermediate_values


def test_divergence_and_errors_do_not_stop_the_search(ray_local, tmp_path):
    space = tmp_path / "faulty.yaml"
    space.write_text(
        "trainer: mlp\nparams:\n"
        "  lr: {type: categorical, choices: [0.001, 1.0e+12]}\n"
        "  fault: {type: categorical, choices: ['', 'error@2', 'oom@2', 'exit@2']}\n")
    points = ({"lr": 1e12, "fault": ""}, {"lr": 0.001, "fault": "error@2"},
              {"lr": 0.001, "fault": ""}, {"lr": 0.001, "fault": "oom@2"},
              {"lr": 0.001, "fault": "exit@2"})
    cfg = _cfg(tmp_path, "faults", space=str(space), samples=5, max_epochs=3,
               scheduler=SchedulerConfig(kind="fifo"), points=points,
               fixed={**TINY, "optimizer": "sgd"}, resources=ONE_SLOT)
    run = run_search(cfg)
    by_fault = {(r.lr, r.fault): r for r in run.trials.itertuples()}
    assert by_fault[(1e12, "")].status == "diverged"
    err = by_fault[(0.001, "error@2")]
    assert err.status == "error" and "injected failure" in err.error
    assert by_fault[(0.001, "")].status == "completed"
    oom = by_fault[(0.001, "oom@2")]
    assert oom.status == "error" and oom.error.startswith("CUDA OOM: ")
    assert "OutOfMemoryError" in oom.error
    # A trainer's sys.exit (a script's argparse, say) ends its trial at once, in its worker,
    # with its own line: not a dead worker retried --max-failures times.
    ex = by_fault[(0.001, "exit@2")]
    assert ex.status == "error" and "SystemExit: 3 (the trainer called sys.exit)" in ex.error
    states = sorted(t.state.name for t in _study(tmp_path / "faults").trials)
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL", "PRUNED"]
    db = sqlite3.connect(tmp_path / "faults" / "optuna.db")
    assert db.execute("select count(*) from trials where state='RUNNING'").fetchone() == (0,)
    # How the run decides it finished: Tune's saved statuses, read as Tune reads them.
    from ray import tune

    from hpsearch.rundir import tune_state

    saved = tune_state.saved_statuses(tmp_path / "faults")
    told = {t.trial_id: t.status for t in tune.ExperimentAnalysis(str(tmp_path / "faults")).trials}
    assert saved == told and len(saved) == 5


def test_grid_mode_runs_the_hand_grid(ray_local, tmp_path):
    space = tmp_path / "g.yaml"
    space.write_text("params:\n  width: {type: float, low: 0.0, high: 1.0}\n"
                     "grid: {width: [0.25, 0.75], optimizer: [sgd]}\n")
    run = run_search(_cfg(tmp_path, "grid", trainer=CURVES, space=str(space), fixed={},
                          max_epochs=1, resources=ONE_SLOT), grid=True)
    assert sorted(run.trials["width"]) == [0.25, 0.75]


@pytest.mark.slow
def test_nan_metric_is_diverged_whatever_the_trainer_says(ray_local, tmp_path):
    points = ({"x": 0.9}, {"x": 0.2})
    run = run_search(_cfg(tmp_path, "nan", trainer="tests.search.nan_trainer:train",
                          space="tests/search/probe_space.yaml", samples=2, max_epochs=3,
                          scheduler=SchedulerConfig(kind="fifo"), points=points, fixed={},
                          resources=ONE_SLOT))
    status = dict(zip(run.trials["x"].round(2), run.trials["status"]))
    assert status == {0.9: "diverged", 0.2: "completed"}
    study = optuna.load_study(study_name=run.meta["study_name"],
                              storage=f"sqlite:///{run.path}/optuna.db")
    states = {round(t.params["x"], 2): t.state for t in study.trials}
    assert states[0.9] == optuna.trial.TrialState.PRUNED  # never COMPLETE with -inf
    assert states[0.2] == optuna.trial.TrialState.COMPLETE
