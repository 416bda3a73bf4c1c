"""What the seed reports needed from a run's tables: losses per grid cell, parameter counts,
wall-clock contention, GPU memory estimated on CPU, held-out test metrics (pure, no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from hpsearch.rundir.tables import Run, summarize_trials
from hpsearch.rundir.timing import concurrency


def _run(rows: list[dict], params: list[str], meta: dict | None = None) -> Run:
    ep = pd.DataFrame(rows)
    for col in ("train_loss", "val_loss", "train_metric", "gap", "time_total_s", "gpu_mem_mb",
                "gpu_mem_device_mb", "error", "epoch_time_s"):
        if col not in ep:
            ep[col] = None
    return Run(Path("."), {"metric": "val_metric", "mode": "max", **(meta or {})}, ep,
               summarize_trials(ep, params, "max"), params)


def test_concurrency_counts_trials_that_ran_at_once_per_node():
    rows = []
    # a: 0-10 s, b: 5-15 s on one node (each shares half its time); c alone later;
    # d overlaps a entirely but on another node.
    for tid, start, end, node in [("a", 0, 10, "n1"), ("b", 5, 15, "n1"), ("c", 20, 30, "n1"),
                                  ("d", 0, 10, "n2")]:
        for k in range(1, 6):
            rows.append({"trial_id": tid, "wall_end": start + k * (end - start) / 5,
                         "epoch_time_s": (end - start) / 5, "node_ip": node})
    c = concurrency(pd.DataFrame(rows))
    assert c.to_dict() == {"a": 1.5, "b": 1.5, "c": 1.0, "d": 1.0}
    assert concurrency(pd.DataFrame(rows).drop(columns="wall_end")).empty


def test_contention_note_only_when_trials_shared_the_machine():
    from hpsearch.analysis.curves import contention_note

    assert contention_note(pd.DataFrame({"concurrent": [1.0, 1.05, 1.0]})) == ""
    note = contention_note(pd.DataFrame({"concurrent": [2.0, 1.9, 2.0]}))
    assert "2.0 ran at once" in note and "contention" in note
    assert contention_note(pd.DataFrame({"x": [1]})) == ""


def _beta_grid_rows() -> list[dict]:
    rows = []
    for b1 in (0.5, 0.9, 0.99):
        for b2 in (0.6, 0.9, 0.999):
            for bs in (8, 32):
                tid = f"t{b1}-{b2}-{bs}"
                bad = b1 == 0.99 and b2 == 0.6 and bs == 8  # diverges at epoch 2
                losses = [1.0, 0.6, 0.7] if not bad else [1.0, math.nan]
                for e, loss in enumerate(losses, start=1):
                    last = e == len(losses)
                    rows.append({"trial_id": tid, "epoch": e, "beta1": b1, "beta2": b2,
                                 "batch_size": bs, "val_loss": loss + (b2 == 0.6) * 0.1,
                                 "train_loss": loss - 0.1, "n_params": 1234,
                                 "val_metric": math.nan if math.isnan(loss) else 1 - loss,
                                 "status": ("diverged" if bad and last else "completed" if last
                                            else "running")})
    return rows


def test_loss_cells_give_final_and_minimum_losses_per_grid_cell(tmp_path):
    from hpsearch.analysis import losses

    run = _run(_beta_grid_rows(), ["beta1", "beta2", "batch_size"], {"grid": True})
    cells = losses.compute_cells(run)
    assert len(cells) == 18 and set(cells["n_params"]) == {1234}
    ok = cells[(cells["beta1"] == 0.5) & (cells["beta2"] == 0.9) & (cells["batch_size"] == 8)]
    assert ok["final_val_loss"].item() == pytest.approx(0.7)
    assert ok["min_val_loss"].item() == pytest.approx(0.6)
    assert ok["min_train_loss"].item() == pytest.approx(0.5)
    bad = cells[(cells["beta1"] == 0.99) & (cells["beta2"] == 0.6) & (cells["batch_size"] == 8)]
    assert bad["diverged"].item() == 1
    # beta1 x beta2 tables (3 levels each), one per batch size.
    assert losses.pivot_layout(cells, run.params) == ("beta1", "beta2", ["batch_size"])
    html = losses.section(run, tmp_path)
    assert html.count("<h3>") == 2 and "batch_size = 8" in html and "batch_size = 32" in html
    assert "0.7 / 0.6" in html and "diverged" in html
    assert (tmp_path / "loss_cells.csv").exists()
    # A search (not a grid) points to the columns instead of drawing tables.
    assert "<h3>" not in losses.section(_run(_beta_grid_rows(), run.params), tmp_path)


def test_trials_keep_minimum_losses_and_parameter_count():
    t = _run(_beta_grid_rows(), ["beta1", "beta2", "batch_size"]).trials
    row = t[t["trial_id"] == "t0.5-0.9-32"].iloc[0]
    assert row["min_val_loss"] == pytest.approx(0.6)
    assert row["final_val_loss"] == pytest.approx(0.7)
    assert row["n_params"] == 1234
    from hpsearch.analysis.summary import compute_summary

    assert set(compute_summary(t, "mlp")["n_params"]) == {"1,234"}  # the CLI's table too


def test_memory_is_estimated_for_cpu_runs_and_marked_as_estimate(tmp_path, monkeypatch):
    from hpsearch.analysis import curves

    rows = []
    for i, (depth, width) in enumerate([(1, 16), (1, 16), (3, 64)]):
        rows.append({"trial_id": f"t{i}", "epoch": 1, "status": "completed",
                     "val_metric": 0.5, "depth": depth, "width": width, "data": "digits",
                     "lr": 0.01 * (i + 1), "time_total_s": 1.0, "epoch_time_s": 1.0})
    run = _run(rows, ["depth", "width", "lr"], {"trainer": "mlp"})
    est = curves.estimate_memory(run)
    assert set(est.index) == {"t0", "t1", "t2"}
    assert est["t0"] == est["t1"] < est["t2"]  # same shape, one estimate; a bigger net more
    html = curves.section(run, tmp_path)
    assert "<b>estimate</b>" in html and "gpu_mem_mb_estimate" in html
    mem = pd.read_csv(tmp_path / "memory.csv")
    assert mem["gpu_mem_mb"].isna().all() and mem["gpu_mem_mb_estimate"].notna().all()
    # The next analyze reuses the estimates kept beside the report.
    from hpsearch.trainers import memory

    monkeypatch.setattr(memory, "estimate", lambda *a: 1 / 0)
    again = curves.estimate_memory(run, cache=tmp_path / curves.ESTIMATES_FILE)
    assert again.to_dict() == est.to_dict()


def test_confirmed_exports_rank_by_validation_never_by_test():
    from hpsearch.analysis.export import rank_confirmed

    raw = pd.DataFrame([
        {"rank": 1, "trial_id": "a", "seed": 1000, "val_metric": 0.90, "test_metric": 0.70,
         "status": "completed"},
        {"rank": 2, "trial_id": "b", "seed": 1000, "val_metric": 0.80, "test_metric": 0.95,
         "status": "completed"}])
    ranked = rank_confirmed(raw, "max")
    assert list(ranked["trial_id"]) == ["a", "b"]
    assert list(ranked["test_mean"]) == [0.70, 0.95]
