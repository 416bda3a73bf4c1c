"""The live progress display: on a terminal a bar over the epoch budget redrawn at least
once a second with the time left; elsewhere plain lines."""

import io
import types

from hpsearch.search import progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _trial(tid, status="RUNNING"):
    return types.SimpleNamespace(trial_id=tid, status=status)


def test_terminal_bar_redraws_every_half_second_with_time_left(monkeypatch):
    out = _Tty()
    monkeypatch.setattr(progress.sys, "stdout", out)
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    p = progress.Progress(total=4, metric="val_metric", mode="max", max_epochs=5)
    a, b = _trial("a"), _trial("b")
    p.on_trial_result(0, [a, b], a, {"epoch": 1, "val_metric": 0.5, "status": "running"})
    drawn = out.getvalue()
    assert "epochs" in drawn and "2 running: a@1 b@0" in drawn
    assert "best@1 val_metric=0.5 (a)" in drawn
    for step in range(1, 5):  # no result for two seconds: the bar still moves on
        clock[0] += 0.5
        before = len(out.getvalue())
        p.on_step_end(0, [a, b])
        assert len(out.getvalue()) > before, f"no redraw at step {step}"
    p.on_trial_result(0, [a, b], a, {"epoch": 2, "val_metric": 0.7, "status": "running"})
    clock[0] += 0.6
    p.on_step_end(0, [a, b])
    assert "<" in out.getvalue().splitlines()[-1] or "<" in out.getvalue()  # [elapsed<left]
    p.on_experiment_end([a, b])


def test_plain_lines_when_not_a_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress.sys, "stdout", out)
    p = progress.Progress(total=2, metric="loss", mode="min", max_epochs=3)
    a = _trial("a")
    p.on_trial_result(0, [a], a, {"epoch": 3, "loss": 0.2, "status": "completed"})
    p.on_trial_complete(0, [_trial("a", "TERMINATED")], a)
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("1/2 done (1 completed) | 0 running | best@3 loss=0.2 (a)")
    assert "\r" not in out.getvalue()


def test_restored_search_counts_trials_that_ended_before_it_and_its_own_clock(monkeypatch):
    """`hpsearch resume`: the callback comes back from Tune's saved state in a new process.
    Trials that had ended get no callback there (they counted 0/N done), and the saved
    monotonic clock is another process's."""
    import pickle

    out = io.StringIO()
    monkeypatch.setattr(progress.sys, "stdout", out)
    clock = [5000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    p = progress.Progress(total=4, metric="loss", mode="min", max_epochs=3)
    clock[0] = 10.0  # the restoring process's clock
    p = pickle.loads(pickle.dumps(p))
    done = [types.SimpleNamespace(trial_id=t, status=s, last_result=r) for t, s, r in (
        ("a", "TERMINATED", {"status": "completed"}),
        ("b", "TERMINATED", {"status": "running"}),  # stopped early
        ("c", "ERROR", {"status": "running"}))]
    p.on_step_end(0, [*done, _trial("d")])
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("[    0s] 3/4 done (1 completed, 1 error, 1 stopped early)"), line
    assert "1 running: d@0" in line


def test_best_so_far_is_compared_at_one_epoch_never_a_fast_starters_peak(monkeypatch):
    """Crossing curves: a fast starter leads at epoch 1 and is stopped there; the others end
    higher at epoch 3. The line's best is the best at the epoch the analysis compares trials
    at now (the highest that max(3, 1/4 of) them reached), not the highest value seen."""
    import pandas as pd

    from hpsearch.rundir.tables import comparison_epoch

    out = io.StringIO()
    monkeypatch.setattr(progress.sys, "stdout", out)
    p = progress.Progress(total=5, metric="acc", mode="max", max_epochs=3, every_s=0.0)
    curves = {"fast": [0.9], "b": [0.5, 0.7, 0.8], "c": [0.4, 0.6, 0.85], "d": [0.3, 0.5, 0.6],
              "e": [0.2, float("nan")]}  # e diverged at epoch 2: it reached 2
    rows = []
    for tid, values in curves.items():
        t = _trial(tid)
        for epoch, v in enumerate(values, 1):
            p.on_trial_result(0, [t], t, {"epoch": epoch, "acc": v, "status": "running"})
            rows.append({"trial_id": tid, "epoch": epoch, "val_metric": v})
        if tid == "fast":  # alone so far: its epoch-1 score is the best at epoch 1
            assert out.getvalue().splitlines()[-1].endswith("best@1 acc=0.9 (fast)")
    assert p.leader() == (3, 0.85, "c")
    assert out.getvalue().splitlines()[-1].endswith("best@3 acc=0.85 (c)")
    assert comparison_epoch(pd.DataFrame(rows))[0] == 3  # the analysis' epoch, same rule
    # Two of five at epoch 3 would not be enough (max(3, 5/4) = 3): compared at epoch 2.
    q = progress.Progress(total=5, metric="loss", mode="min")
    for tid, epochs in (("a", 3), ("b", 3), ("c", 2), ("d", 1), ("e", 1)):
        for e in range(1, epochs + 1):
            q.on_trial_result(0, [], _trial(tid), {"epoch": e, "loss": 1.0 / e + ord(tid) / 1e3})
    assert q.leader()[:2] == (2, 0.5 + ord("a") / 1e3)


def test_a_progress_saved_before_scores_existed_restores(monkeypatch):
    import pickle

    p = progress.Progress(total=2, metric="acc", mode="max")
    state = p.__dict__.copy()
    del state["scores"]
    state["best"] = (0.5, "a")  # what earlier versions kept: the best value at any epoch
    old = progress.Progress.__new__(progress.Progress)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.leader() is None and "best -" in old.summary([])


def test_resume_gets_the_scores_reported_before_the_interruption():
    """Tune pickles the callback at the start (no results) and restores its saved state:
    the best so far after `resume` still counts the trials that ended before."""
    import pickle

    p = progress.Progress(total=4, metric="acc", mode="max")
    fresh = pickle.loads(pickle.dumps(p))  # what Tune.restore rebuilds the callback from
    for tid, values in (("a", [0.5, 0.9]), ("b", [0.6, 0.7]), ("c", [0.4, 0.8])):
        for epoch, v in enumerate(values, 1):
            p.on_trial_result(0, [], _trial(tid), {"epoch": epoch, "acc": v})
    fresh.set_state(pickle.loads(pickle.dumps(p.get_state())))
    assert fresh.leader() == p.leader() == (2, 0.9, "a")
    fresh.on_trial_result(0, [], _trial("d"), {"epoch": 1, "acc": 0.95})
    assert fresh.leader() == (2, 0.9, "a")  # d's epoch-1 score is not compared with those
