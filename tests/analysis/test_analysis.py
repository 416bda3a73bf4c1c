"""Analysis on synthetic frames with known answers (Agg backend, compute split from plot)."""

import numpy as np
import pandas as pd
import pytest

from hpsearch.analysis import curves, importance, overfitting, sensitivity, summary


@pytest.fixture
def beta1_only():
    """A frame where only beta1 matters: the metric falls off away from beta1 = 0.7."""
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)],
                       "beta1": rng.uniform(0.5, 0.99, n), "beta2": rng.uniform(0.9, 0.9999, n),
                       "batch_size": rng.choice([8, 32], n), "status": "completed"})
    df["score"] = 0.9 - 5 * (df["beta1"] - 0.7) ** 2 + rng.normal(0, 1e-3, n)
    return df


def test_importance_ranks_the_only_relevant_parameter_first(beta1_only):
    imp = importance.compute_importance(beta1_only, ["beta1", "beta2", "batch_size"])
    assert set(imp["evaluator"]) == {"fanova", "ped_anova"}
    for _, g in imp.groupby("evaluator"):
        assert g.iloc[0]["param"] == "beta1" and g.iloc[0]["importance"] > 0.8
        assert g["importance"].sum() == pytest.approx(1.0, abs=1e-6)


def test_importance_skips_conditional_and_noncompleted(beta1_only):
    df = beta1_only.copy()
    df.loc[::2, "beta2"] = np.nan  # conditional: present in only some trials
    df.loc[:5, "status"] = "stopped_early"
    imp = importance.compute_importance(df, ["beta1", "beta2", "batch_size"])
    assert "beta2" not in set(imp["param"])
    assert importance.compute_importance(df.head(2), ["beta1"]).empty


def test_sensitivity_shows_beta1_trend_and_no_beta2_trend(beta1_only):
    cells = sensitivity.compute_sensitivity(beta1_only, "beta1", "beta2", bins=4)
    assert cells["n"].sum() == len(beta1_only)
    by_b1 = cells.groupby("beta1", observed=True)["value"].mean()
    by_b2 = cells.groupby("beta2", observed=True)["value"].mean()
    assert by_b1.max() - by_b1.min() > 0.1  # beta1 moves the metric
    assert by_b2.max() - by_b2.min() < 0.05  # beta2 does not
    marg = sensitivity.compute_marginal(beta1_only, "beta2", bins=4)
    assert marg["median"].max() - marg["median"].min() < 0.05


def test_sensitivity_counts_diverged_and_uses_log_bins_for_lr():
    df = pd.DataFrame({"trial_id": list("abcdef"),
                       "lr": [1e-4, 2e-4, 1e-2, 2e-2, 1.0, 0.9],
                       "batch_size": [8, 8, 8, 32, 32, 32],
                       "score": [0.5, 0.6, 0.9, 0.8, np.nan, np.nan],
                       "status": ["completed"] * 4 + ["diverged", "error"]})
    cells = sensitivity.compute_sensitivity(df, "lr", "batch_size", bins=2)
    labels = list(cells["lr"].cat.categories)
    assert labels == ["0.0001-0.01", "0.01-1"]  # geometric edges, not linear
    bad = cells[cells["n_bad"] > 0]
    # Diverged/errored trials count in n and n_bad but not in the median.
    assert bad[["n", "n_bad"]].values.tolist() == [[3, 2]] and bad["value"].tolist() == [0.8]
    import matplotlib

    matplotlib.use("Agg")
    ax = sensitivity.plot(cells, "lr", "batch_size")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.6\nn=3", "0.8\nn=3 ✕2"]


def test_pairs_put_priority_pairs_first_without_duplicates():
    p = sensitivity.pairs(["batch_size", "lr", "beta2", "beta1", "depth"])
    assert p[:2] == [("beta1", "beta2"), ("lr", "batch_size")]
    assert len({frozenset(x) for x in p}) == len(p) == 10


def _epochs(trial, train, val):
    return pd.DataFrame({"trial_id": trial, "epoch": range(1, len(train) + 1),
                         "train_loss": train, "val_loss": val,
                         "gap": np.subtract(val, train), "status": "running", "depth": 4})


def test_overfitting_finds_the_turn_epoch():
    ep = pd.concat([_epochs("over", [1.0, 0.6, 0.3, 0.1, 0.05], [1.0, 0.7, 0.6, 0.8, 1.1]),
                    _epochs("fine", [1.0, 0.8, 0.6, 0.5, 0.45], [1.0, 0.85, 0.7, 0.6, 0.55])])
    res = overfitting.compute_overfitting(ep, ["depth"]).set_index("trial_id")
    assert res.loc["over", "turn_epoch"] == 4 and res.loc["over", "flagged"]
    assert res.loc["over", "best_val_epoch"] == 3
    assert np.isnan(res.loc["fine", "turn_epoch"]) and not res.loc["fine", "flagged"]
    assert res.loc["over", "max_gap"] == pytest.approx(1.05)
    by = overfitting.gap_by(res.reset_index(), ["depth"])
    assert list(by["param"]) == ["depth"] and by.iloc[0]["flagged_share"] == 0.5


def test_summary_marks_best_per_architecture_and_renders():
    trials = pd.DataFrame({"trial_id": list("abcd"), "model": ["lstm", "lstm", "gpt", "gpt"],
                           "layers": [1, 2, 1, 2], "optimizer": ["adam"] * 4,
                           "score": [5.0, 4.0, 3.0, 6.0],
                           "status": ["completed"] * 4})
    s = summary.compute_summary(trials, "lm", mode="min")
    best = s[s["is_best"]].set_index("architecture")["best_trial"].to_dict()
    assert best == {"lm-lstm": "b", "lm-gpt": "c"}
    md = summary.render(s, "md")
    assert "| **lm-gpt** | **1** |" in md and md.count("**") == 2 * 2 * len(s.columns[:-1])
    assert "<b>lm-lstm</b>" in summary.render(s, "html")
    assert summary.render(s, "csv").startswith("architecture,layers,optimizer")


def test_curves_are_tidy_and_limited_to_top_trials():
    ep = pd.concat([_epochs(t, [1, 0.5], [1, 0.6]) for t in "abc"])
    ep["train_metric"], ep["val_metric"], ep["time_total_s"] = 0.5, 0.6, [1.0, 2.0] * 3
    trials = pd.DataFrame({"trial_id": ["b", "a", "c"], "depth": [4, 4, 4]})
    cur = curves.compute_curves(ep, trials, ["depth"], top=2)
    assert set(cur["trial_id"]) == {"a", "b"} and set(cur["split"]) == {"train", "val"}
    assert len(cur) == 2 * 2 * 2 and set(cur["label"]) == {"#1", "#2"}  # depth does not vary


def test_memory_table_puts_estimate_next_to_measured_peak():
    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c"], "layers": [2, 6, 4],
        "gpu_share": [0.25, 0.6, 0.3], "gpu_mem_mb_estimate": [100.0, 400.0, 200.0],
        "gpu_mem_mb": [110.0, 380.0, np.nan], "gpu_mem_device_mb": [700.0, 1000.0, np.nan],
        "status": ["completed", "completed", "error"]})
    mem = curves.compute_memory(trials, ["layers"])
    assert list(mem["trial_id"]) == ["b", "c", "a"]  # by measured peak, else the estimate
    assert list(mem.columns[:5]) == ["trial_id", "layers", "gpu_share", "gpu_mem_mb_estimate",
                                     "gpu_mem_mb"]
    assert mem.set_index("trial_id")["actual_over_estimate"].to_dict() == pytest.approx(
        {"a": 1.1, "b": 0.95, "c": np.nan}, nan_ok=True)


def test_memory_table_without_estimates_has_no_ratio():
    trials = pd.DataFrame({"trial_id": ["a", "b"], "gpu_mem_mb": [np.nan, 5.0],
                           "status": ["completed", "completed"]})
    mem = curves.compute_memory(trials, [])
    assert "actual_over_estimate" not in mem and list(mem["trial_id"]) == ["b", "a"]


def _run_epochs():
    """a: stopped early after a fast first epoch; b, c completed; d diverged at epoch 2."""
    rows = []
    for t, vals, st in [("a", [0.9], "stopped_early"), ("b", [0.3, 0.6, 0.8], "completed"),
                        ("c", [0.2, 0.5, 0.85], "completed"),
                        ("d", [0.5, float("nan")], "diverged")]:
        for i, v in enumerate(vals, 1):
            rows.append({"trial_id": t, "epoch": i, "val_metric": v, "val_loss": 1 - v,
                         "train_loss": 0.1, "gap": 0.0, "time_total_s": float(i),
                         "gpu_mem_mb": None, "gpu_mem_device_mb": None, "error": None,
                         "status": st if i == len(vals) else "running", "lr": 0.1 * i})
    return pd.DataFrame(rows)


def test_trials_are_compared_at_one_epoch_never_a_stopped_trials_first_epoch():
    from hpsearch.rundir.tables import comparison_epoch, summarize_trials

    ep = _run_epochs()
    assert comparison_epoch(ep) == (2, 3)  # b, c and d reached epoch 2
    t = summarize_trials(ep, ["lr"], "max").set_index("trial_id")
    # a's 0.9 after one epoch is not compared with the others' epoch-2 scores.
    assert list(t.index)[:2] == ["b", "c"]
    assert t.loc["b", "score"] == 0.6 and pd.isna(t.loc["a", "score"])
    assert (t["score_epoch"] == 2).all() and t.loc["c", "final_score"] == 0.85
    # At the last epoch c is best; at epoch 1 a is.
    assert summarize_trials(ep, ["lr"], "max", at_epoch=3)["trial_id"].iloc[0] == "c"
    assert summarize_trials(ep, ["lr"], "max", at_epoch=1)["trial_id"].iloc[0] == "a"
    # The search's own metric and direction: val_loss, min; val_metric keeps its own.
    by_loss = summarize_trials(ep, ["lr"], "min", metric="val_loss", at_epoch=3)
    assert by_loss["trial_id"].iloc[0] == "c" and by_loss["score"].iloc[0] == pytest.approx(0.15)
    assert by_loss.set_index("trial_id").loc["a", "best_val_metric"] == 0.9  # accuracy: max
    assert not t["runaway_loss"].any()
    runaway = ep.copy()
    runaway.loc[(runaway["trial_id"] == "b") & (runaway["epoch"] == 3), "val_loss"] = 27.6
    flagged = summarize_trials(runaway, ["lr"], "max").set_index("trial_id")["runaway_loss"]
    assert flagged.to_dict() == {"b": True, "c": False, "a": False, "d": False}


def test_sensitivity_cells_hold_only_trials_compared_at_the_epoch():
    from hpsearch.rundir.tables import summarize_trials

    t = summarize_trials(_run_epochs(), ["lr"], "max")
    t["depth"] = [1, 1, 2, 2]
    cells = sensitivity.compute_sensitivity(t, "lr", "depth")
    assert cells["n"].sum() == 3  # a (never reached epoch 2) is not in a cell; d counts as bad
    assert cells["n_bad"].sum() == 1


def _run_of(rows: list[dict], params: list[str]):
    """A Run (maximising val_metric) from per-epoch rows holding epoch, status, val_metric
    and `params`; the schema's other columns empty."""
    from pathlib import Path

    from hpsearch.rundir.tables import Run, summarize_trials

    ep = pd.DataFrame(rows)
    for col in ("train_loss", "val_loss", "gap", "time_total_s", "gpu_mem_mb",
                "gpu_mem_device_mb", "error"):
        ep[col] = None
    return Run(Path("."), {"metric": "val_metric", "mode": "max"}, ep,
               summarize_trials(ep, params, "max"), params)


def test_early_stopping_reliability_warns_when_early_ranks_mislead():
    import math

    from hpsearch.analysis import stopping

    rows = []
    for i in range(12):  # better configs learn slower: epoch-1 ranks are reversed at 9
        q = i / 11
        last = 9 if i % 2 == 0 else 1
        for e in range(1, last + 1):
            rows.append({"trial_id": f"t{i}", "epoch": e, "status": "completed" if e == 9
                         else ("stopped_early" if e == last else "running"),
                         "val_metric": (0.2 + 0.7 * q) * (1 - math.exp(-e / (0.5 + 8 * q))),
                         "lr": q})
    run = _run_of(rows, ["lr"])
    agree = stopping.compute_agreement(run)
    assert list(agree["epoch"]) == [1] and agree["spearman"].iloc[0] < 0
    (text,) = stopping.warnings(agree)
    assert "epoch-1 ranks predict epoch-9 ranks poorly" in text and "--grace-period" in text


def test_grid_values_are_cells_of_their_own_and_seed_is_a_replicate():
    trials = pd.DataFrame({"lr": [0.001, 0.01, 0.05, 0.1] * 2, "depth": [1] * 4 + [2] * 4,
                           "score": np.linspace(0.5, 0.9, 8), "status": "completed"})
    cells = sensitivity.compute_sensitivity(trials, "lr", "depth", categorical=True)
    assert sorted(cells["lr"].astype(str).unique()) == ["0.001", "0.01", "0.05", "0.1"]



def test_a_seed_in_the_grid_is_a_replicate_not_a_hyperparameter(tmp_path):
    import json

    from hpsearch.rundir import RunDir, load_run

    rd = RunDir(tmp_path / "run")
    rd.create()
    rd.write_meta({"trainer": "mlp", "space": "s", "metric": "val_metric", "mode": "max",
                   "finished": True, "fixed": {}})
    for i, (lr, seed) in enumerate([(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]):
        d = rd.path / f"run_trial_{i}"
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"lr": lr, "seed": seed}))
        (d / "result.json").write_text(json.dumps(
            {"trial_id": f"t{i}", "epoch": 1, "val_metric": 0.5 + lr, "status": "completed"}))
    run = load_run(rd)
    assert run.params == ["lr"] and "seed" in run.trials  # kept as a column, not plotted
    assert run.compare["epoch"] == 1 and run.compare["trials_reached"] == 4


def test_fair_comparison_puts_each_optimizer_at_its_own_best_lr():
    # adam is best at small lr, sgd at large lr: pooled over lr, sgd would look worse.
    rows = []
    for opt, best_lr in (("adam", 1e-3), ("sgd", 1e-1)):
        for lr in (1e-3, 1e-2, 1e-1):
            for k in range(3):
                rows.append({"optimizer": opt, "lr": lr, "status": "completed",
                             "score": 0.9 - 0.2 * abs(np.log10(lr / best_lr)) - 0.01 * k})
    rows.append({"optimizer": "sgd", "lr": 1.0, "status": "diverged", "score": np.nan})
    t = pd.DataFrame(rows)
    fair = summary.compute_fair(t, "optimizer").set_index("level")
    assert fair.loc["adam", "best"] == pytest.approx(0.89) and fair.loc["sgd", "n"] == 3
    assert fair.loc["sgd", "best"] == pytest.approx(0.89) and fair.loc["sgd", "bad"] == 1
    (line,) = summary.fair_lines(t)
    assert line.startswith("optimizer: ") and "1 diverged/failed" in line and " vs " in line


def test_heatmaps_are_chosen_and_sparse_pairs_listed_not_drawn():
    rng = np.random.default_rng(0)
    n = 60
    t = pd.DataFrame({"lr": 10 ** rng.uniform(-4, -1, n), "batch_size": rng.choice([8, 32], n),
                      "depth": rng.choice([1, 2, 4], n), "noise1": rng.uniform(0, 1, n),
                      "noise2": rng.uniform(0, 1, n), "status": "completed"})
    t["score"] = 0.9 - 0.1 * (np.log10(t["lr"]) + 2.5) ** 2 - 0.05 * (t["depth"] == 4)
    chosen = sensitivity.chosen_pairs(t, ["lr", "batch_size", "depth", "noise1", "noise2"])
    assert chosen[0] == ("lr", "batch_size") and len(chosen) <= sensitivity.MAX_PAIRS
    assert ("lr", "depth") in chosen or ("depth", "lr") in chosen
    few = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1], "depth": [1, 2, 4, 1],
                        "score": [0.1, 0.2, 0.3, 0.4], "status": "completed"})
    cells = sensitivity.compute_sensitivity(few, "lr", "depth")
    assert "most cells hold one trial" in sensitivity.sparse_reason(cells)
    assert sensitivity.sparse_reason(sensitivity.compute_sensitivity(t, "lr", "depth")) is None


def test_heatmap_cells_compare_at_the_best_optimizer_not_pooled():
    # gpt beats lstm when pooled over optimizers (sgd drags lstm down), lstm wins with adam.
    rows = []
    for model, adam, sgd, n_sgd in (("lstm", 0.9, 0.1, 4), ("gpt", 0.8, 0.7, 1)):
        rows += [{"model": model, "layers": 2, "optimizer": "adam", "score": adam}]
        rows += [{"model": model, "layers": 2, "optimizer": "sgd", "score": sgd}] * n_sgd
    t = pd.DataFrame(rows).assign(status="completed")
    pooled = sensitivity.compute_sensitivity(t, "model", "layers").set_index("model")
    assert pooled.loc["gpt", "value"] > pooled.loc["lstm", "value"]
    cond = sensitivity.compute_sensitivity(t, "model", "layers", condition="optimizer")
    cond = cond.set_index("model")
    assert cond.loc["lstm", "value"] == 0.9 and cond.loc["gpt", "value"] == 0.8
    assert (cond["at"] == "adam").all() and cond.loc["lstm", "n"] == 5
    sensitivity.plot(cond.reset_index(), "model", "layers")  # the level is drawn in the cell


def test_importance_has_bootstrap_ranges_and_doubts_are_said(beta1_only):
    boot = importance.bootstrap(beta1_only, ["beta1", "beta2"], "max", "score", rounds=4)
    row = boot[(boot["param"] == "beta1") & (boot["evaluator"] == "ped_anova")].iloc[0]
    assert 0 <= row["low"] <= row["high"] <= 1 and row["high"] > 0.5  # beta1 drives the score
    few = importance.warnings_for(pd.DataFrame(columns=["param", "evaluator", "importance"]), 4)
    assert few and "only 4 trials" in few[0]
    split = pd.DataFrame({"param": list("abcd") * 2,
                          "evaluator": ["fanova"] * 4 + ["ped_anova"] * 4,
                          "importance": [0.4, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4]})
    assert "rank the parameters differently" in importance.warnings_for(split, 50)[0]


def test_predicted_final_scores_rank_stopped_trials_by_their_config():
    import math

    from hpsearch.analysis import predicted

    rows = []
    for i in range(30):
        q = 0.3 + 0.6 * i / 29  # the final score rises with x
        last = 6 if i % 3 == 0 else 1
        for e in range(1, last + 1):
            rows.append({"trial_id": f"t{i}", "epoch": e, "x": q,
                         "status": "completed" if e == 6 else
                         ("stopped_early" if e == last else "running"),
                         "val_metric": q * (1 - math.exp(-e / 2))})
    run = _run_of(rows, ["x"])
    pred = predicted.predict_final(run).set_index("trial_id")
    stopped = pred[pred["status"] == "stopped_early"]
    assert stopped["measured"].isna().all()  # no epoch-6 measurement: only a prediction
    assert stopped["predicted"].corr(stopped.index.map(lambda t: int(t[1:])).to_series(
        index=stopped.index), method="spearman") > 0.9
    assert (pred["low"] <= pred["predicted"]).all() and (pred["predicted"] <= pred["high"]).all()


def test_beta2_sampled_on_log_one_minus_is_binned_and_judged_on_that_scale():
    """Bins of beta2 sampled as log(1 - beta2) split 0.9 / 0.99 / 0.999 evenly (linear bins
    would put three quarters of the trials in the last one), and importance reads the
    study's log distribution of 1 - beta2."""
    import optuna

    from hpsearch.analysis._common import bin_param

    rng = np.random.default_rng(1)
    n = 120
    beta2 = 1 - 10 ** rng.uniform(-4, -1, n)
    bins = bin_param("beta2", pd.Series(beta2), bins=3)
    assert list(bins.cat.categories)[0].startswith("0.9") and bins.value_counts().min() > 25
    uniform = bin_param("beta2", pd.Series(rng.uniform(0.9, 0.9999, n)), bins=3)
    assert uniform.value_counts().min() > 25  # a uniform sample keeps linear bins
    df = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "beta2": beta2,
                       "beta1": rng.uniform(0.5, 0.99, n), "status": "completed"})
    df["score"] = 0.9 - 0.01 * (np.log10(1 - df["beta2"]) + 3) ** 2 + rng.normal(0, 1e-4, n)
    stored = {"one_minus_beta2": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True),
              "beta1": optuna.distributions.FloatDistribution(0.5, 0.99)}
    study, names = importance._to_study(df, ["beta1", "beta2"], "score", "max", stored)
    t = study.trials[0]
    assert t.distributions["beta2"].log and t.params["beta2"] == pytest.approx(1 - beta2[0])
    imp = importance.compute_importance(df, ["beta1", "beta2"], distributions=stored)
    assert (imp.groupby("evaluator").first()["param"] == "beta2").all()


def test_a_damaged_study_file_leaves_the_analysis_to_the_trials_values(tmp_path, caplog):
    """optuna.db is only where the parameters' distributions come from: a damaged one is
    said once and the analysis goes on (it was a SQLAlchemy traceback)."""
    import json

    from hpsearch.analysis import importance
    from hpsearch.rundir import load_run

    run_dir = tmp_path / "run"
    trial = run_dir / "run_trial_t1_1_x"
    trial.mkdir(parents=True)
    (run_dir / "hpsearch.json").write_text(json.dumps(
        {"trainer": "mlp", "mode": "max", "finished": True, "study_name": "s"}))
    (trial / "params.json").write_text(json.dumps({"lr": 0.01}))
    (trial / "result.json").write_text(json.dumps(
        {"trial_id": "t1", "epoch": 1, "val_metric": 0.5, "status": "completed"}) + "\n")
    (run_dir / "optuna.db").write_bytes(b"garbage")
    run = load_run(run_dir)
    assert importance.stored_distributions(run) == {}
    assert importance.stored_distributions(run) == {}
    assert caplog.text.count("cannot read the Optuna study") == 1
