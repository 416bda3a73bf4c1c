"""The searcher counts the trials and, after a restore, agrees with Tune's trial list: a
driver killed while Tune copied its state can leave the searcher's snapshot ahead of the
trial list (a trial Tune lost) or behind it (a trial the searcher never saw)."""

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hpsearch.search.searcher import TUNE_TRIAL_ATTR, StudySearcher


def space(trial):
    return {"data": "digits", "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "depth": trial.suggest_int("depth", 1, 6)}


def _searcher(tmp_path, max_trials):
    return StudySearcher(space, metric="val_metric", mode="max",
                         sampler=optuna.samplers.RandomSampler(seed=0),
                         storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s",
                         max_trials=max_trials)


def _tune(trial_id, config, status="RUNNING", last_result=None):
    return SimpleNamespace(trial_id=trial_id, config=config, status=status, ERROR="ERROR",
                           last_result=last_result,
                           is_finished=lambda: status in ("TERMINATED", "ERROR"))


def _end(s, trial_id, value, epoch=3):
    row = {"val_metric": value, "epoch": epoch, "status": "completed"}
    s.on_trial_result(trial_id, row)
    s.on_trial_complete(trial_id, row)


def _record(tmp_path):
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db")
    return {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in study.trials}


def test_a_trial_tune_lost_runs_again_and_the_count_holds(tmp_path):
    s = _searcher(tmp_path, max_trials=4)
    configs = {i: s.suggest(i) for i in "abc"}
    _end(s, "a", 0.5)
    _end(s, "b", 0.6)
    s.save(str(tmp_path / "snap.pkl"))  # the searcher's snapshot: a, b ended, c running
    # Tune's saved state is older: it has a (ended) and not b (ended later) nor c.
    restored = _searcher(tmp_path, max_trials=4)
    restored.restore(str(tmp_path / "snap.pkl"))
    tune_trials = [_tune("a", configs["a"], "TERMINATED")]
    assert restored.sync(tune_trials) == ["c"]
    again = restored.suggest("d")
    assert again == configs["c"]  # the lost config goes first
    tune_trials.append(_tune("d", again))
    restored.sync(tune_trials)
    assert isinstance(restored.suggest("e"), dict)  # a, b (ended, kept), d, e
    tune_trials.append(_tune("e", {}))
    restored.sync(tune_trials)
    assert restored.suggest("f") == Searcher.FINISHED
    _end(restored, "d", 0.7)
    restored.flush()
    record = _record(tmp_path)
    assert record["d"].state == TrialState.COMPLETE and record["d"].params == \
        {"lr": configs["c"]["lr"], "depth": configs["c"]["depth"]}
    assert record["c"].state == TrialState.FAIL and record["c"].user_attrs["lost"]
    assert record["b"].state == TrialState.COMPLETE  # written before the snapshot


def test_a_trial_the_searcher_never_saw_is_adopted(tmp_path):
    s = _searcher(tmp_path, max_trials=5)
    configs = {i: s.suggest(i) for i in "ab"}
    s.save(str(tmp_path / "snap.pkl"))  # the searcher's snapshot knows a and b only
    configs.update({i: s.suggest(i) for i in "cd"})  # ... Tune's state has c and d too
    restored = _searcher(tmp_path, max_trials=5)
    restored.restore(str(tmp_path / "snap.pkl"))
    ended = {"val_metric": 0.8, "epoch": 3, "status": "completed"}
    tune_trials = [_tune("a", configs["a"]), _tune("b", configs["b"]),
                   _tune("c", configs["c"], "TERMINATED", ended), _tune("d", configs["d"])]
    assert restored.sync(tune_trials) == []
    by_id = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in restored.study.trials}
    assert by_id["c"].state == TrialState.COMPLETE and by_id["c"].value == 0.8
    assert by_id["c"].params == {k: configs["c"][k] for k in ("lr", "depth")}
    assert by_id["d"].state == TrialState.RUNNING
    restored.on_trial_result("d", {"val_metric": 0.3, "epoch": 1})  # d reports as usual
    assert restored.study.trials[by_id["d"].number].intermediate_values == {1: 0.3}
    # The snapshot's sampler would draw c's and d's configs again: it is reseeded.
    assert restored.suggest("e") not in (configs["c"], configs["d"])
    tune_trials.append(_tune("e", {}))
    restored.sync(tune_trials)
    assert restored.suggest("f") == Searcher.FINISHED
    restored.flush()
    assert _record(tmp_path)["c"].value == 0.8


def test_adopting_keeps_the_points_queued_before(tmp_path):
    point = {"lr": 0.5, "depth": 2}
    s = StudySearcher(space, metric="val_metric", mode="max",
                      sampler=optuna.samplers.RandomSampler(seed=0),
                      storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s",
                      points=[point], max_trials=3)
    s.save(str(tmp_path / "snap.pkl"))  # the point still queued
    restored = _searcher(tmp_path, max_trials=3)
    restored.restore(str(tmp_path / "snap.pkl"))
    config = {"data": "digits", "lr": 0.01, "depth": 5}  # a trial Tune has, the snapshot not
    assert restored.sync([_tune("a", config)]) == []
    by_id = {t.user_attrs.get(TUNE_TRIAL_ATTR): t for t in restored.study.trials}
    assert by_id["a"].params == {"lr": 0.01, "depth": 5}
    assert restored.suggest("b") == {"data": "digits", **point}  # the point is not lost
    restored.flush()
    assert set(_record(tmp_path)) == set()  # nothing ended: nothing recorded


def test_the_searcher_stops_at_max_trials_without_tune(tmp_path):
    s = _searcher(tmp_path, max_trials=3)
    assert all(isinstance(s.suggest(i), dict) for i in "abc")
    assert s.suggest("d") == Searcher.FINISHED


def test_trials_that_ended_after_an_older_snapshot_count_from_the_record(tmp_path):
    """The snapshot is older than the record and Tune's list lost the trials: b (running in
    the snapshot) and c (unknown to it) ended in optuna.db; both count, neither runs again,
    and the model learns their values from the record."""
    s = _searcher(tmp_path, max_trials=5)
    configs = {i: s.suggest(i) for i in "ab"}
    _end(s, "a", 0.5)
    s.save(str(tmp_path / "snap.pkl"))  # a ended, b running; c not yet asked for
    configs["c"] = s.suggest("c")
    _end(s, "b", 0.6, epoch=2)
    _end(s, "c", 0.9)
    s.flush()  # b and c are in optuna.db; Tune's saved state is older still: only a
    restored = _searcher(tmp_path, max_trials=5)
    restored.restore(str(tmp_path / "snap.pkl"))
    assert restored.reconciling
    assert restored.sync([_tune("a", configs["a"], "TERMINATED")]) == []
    assert not restored.reconciling
    study = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in restored.study.trials}
    assert study["b"].state == TrialState.COMPLETE and study["b"].value == 0.6
    assert study["b"].intermediate_values == {2: 0.6}
    assert study["c"].state == TrialState.COMPLETE and study["c"].value == 0.9
    new = [restored.suggest(i) for i in "de"]  # a, b, c kept + d, e = 5
    assert all(isinstance(c, dict) for c in new) and configs["c"] not in new
    restored.sync([_tune("a", configs["a"], "TERMINATED"), _tune("d", new[0]),
                   _tune("e", new[1])])
    assert restored.suggest("f") == Searcher.FINISHED


def test_a_folder_no_saved_state_knows_is_set_aside(tmp_path):
    from hpsearch.rundir import RunDir
    from hpsearch.search.ledger import TrialLedger

    rd = RunDir(tmp_path / "run")
    for name in ("run_trial_aaaa0001_1_lr=0.1", "run_trial_bbbb0002_2_lr=0.2",
                 "run_trial_cccc0003_3_lr=0.3"):
        (rd.path / name).mkdir(parents=True)
        (rd.path / name / "params.json").write_text("{}")
    # Folders Tune made before a kill, with no params.json yet: a lost trial's goes with it;
    # one of a trial nobody knows stays (out of the tables, which read params.json).
    for name in ("run_trial_bbbb0002_2_lr=0.2_older", "run_trial_eeee0005_5_lr=0.5"):
        (rd.path / name).mkdir()
    s = _searcher(tmp_path, max_trials=5)
    configs = {i: s.suggest(i) for i in ("aaaa0001", "bbbb0002")}
    s.save(str(tmp_path / "snap.pkl"))
    restored = _searcher(tmp_path, max_trials=5)
    restored.restore(str(tmp_path / "snap.pkl"))
    ledger = TrialLedger(restored, str(rd.path), local=True)
    ledger.on_step_begin(0, [_tune("aaaa0001", configs["aaaa0001"])])
    # bbbb0002: the searcher knew it, Tune lost it (its config runs again); cccc0003: known
    # to neither. Both folders leave the tables; aaaa0001 stays.
    assert [p.name for p in rd.trial_dirs()] == ["run_trial_aaaa0001_1_lr=0.1"]
    assert sorted(p.name for p in (rd.path / ".lost-trials").iterdir()) == [
        "run_trial_bbbb0002_2_lr=0.2", "run_trial_bbbb0002_2_lr=0.2_older",
        "run_trial_cccc0003_3_lr=0.3"]
    assert (rd.path / "run_trial_eeee0005_5_lr=0.5").is_dir()
    ledger.on_step_begin(1, [_tune("aaaa0001", configs["aaaa0001"])])  # only after restore
    (rd.path / "run_trial_dddd0004_4_x").mkdir()
    (rd.path / "run_trial_dddd0004_4_x" / "params.json").write_text("{}")
    ledger.on_step_begin(2, [_tune("aaaa0001", configs["aaaa0001"])])
    assert (rd.path / "run_trial_dddd0004_4_x").exists()


def test_slots_a_restored_limiter_still_holds_are_given_back(tmp_path):
    """Tune's concurrency limiter is restored with the live set saved beside the searcher's
    snapshot; trials Tune's newer list has ended, or lost, never end in Tune again. A resumed
    run with 2 slots hung in Tune's wait for a suggestion once both were held so."""
    from ray.tune.search import ConcurrencyLimiter

    from hpsearch.search.ledger import TrialLedger

    s = _searcher(tmp_path, max_trials=5)
    limiter = ConcurrencyLimiter(s, max_concurrent=2)
    configs = {i: limiter.suggest(i) for i in "ab"}
    assert limiter.suggest("x") is None  # both slots held
    s.save(str(tmp_path / "snap.pkl"))
    saved = limiter.get_state()  # live: a, b
    restored = _searcher(tmp_path, max_trials=5)
    restored.restore(str(tmp_path / "snap.pkl"))
    again = ConcurrencyLimiter(restored, max_concurrent=2)
    again.set_state(saved)
    ledger = TrialLedger(restored, str(tmp_path), local=False, limiter=again)
    row = {"val_metric": 0.5, "epoch": 3, "status": "completed"}
    # Tune's list: a ended (after the limiter's state was saved), b lost.
    ledger.on_step_begin(0, [_tune("a", configs["a"], "TERMINATED", row)])
    assert again.suggest("c") == configs["b"]  # the lost config runs again, first
    assert isinstance(again.suggest("d"), dict)
    assert again.suggest("e") is None  # and the limit still holds
    told = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in restored.study.trials}
    assert told["a"].state == TrialState.COMPLETE and told["a"].value == 0.5


def test_a_trial_the_restored_limiter_never_held_holds_a_slot_and_reaches_the_record(tmp_path):
    """The converse: Tune's newer list has a trial running that started after the limiter's
    live set (and the searcher's snapshot) was saved. Tune's plain ConcurrencyLimiter
    neither counted it nor passed its end on, so it never reached optuna.db."""
    from hpsearch.search.ledger import SlotLimiter, TrialLedger

    s = _searcher(tmp_path, max_trials=5)
    limiter = SlotLimiter(s, max_concurrent=2)
    configs = {"a": limiter.suggest("a")}
    s.save(str(tmp_path / "snap.pkl"))
    saved = limiter.get_state()  # live: a
    configs["b"] = limiter.suggest("b")  # started after the snapshot; in Tune's list only
    restored = _searcher(tmp_path, max_trials=5)
    restored.restore(str(tmp_path / "snap.pkl"))
    again = SlotLimiter(restored, max_concurrent=2)
    again.set_state(saved)
    ledger = TrialLedger(restored, str(tmp_path), local=False, limiter=again)
    ledger.on_step_begin(0, [_tune("a", configs["a"]), _tune("b", configs["b"])])
    assert again.suggest("c") is None  # a and b hold both slots
    row = {"val_metric": 0.7, "epoch": 3, "status": "completed"}
    again.on_trial_result("b", row)
    again.on_trial_complete("b", result=row)
    restored.flush()
    assert _record(tmp_path)["b"].value == 0.7  # b's end was told, and written
    assert isinstance(again.suggest("c"), dict)  # its slot is free again
    assert again.suggest("d") is None


def test_a_damaged_record_is_set_aside_and_written_again_from_the_snapshot(tmp_path, caplog):
    """optuna.db cut or overwritten (not a database any more): `resume` sets it aside and
    the restored searcher writes every ended trial it knows into a new one, each once;
    the snapshot's cached record (Optuna's cached storage) is not trusted for what the file
    holds."""
    from hpsearch.rundir import RunDir
    from hpsearch.search import ledger

    s = _searcher(tmp_path, max_trials=4)
    for i in "ab":
        s.suggest(i)
        _end(s, i, 0.5)
    s.flush()
    s.save(str(tmp_path / "snap.pkl"))
    assert set(_record(tmp_path)) == {"a", "b"}
    (tmp_path / "optuna.db").write_bytes(b"garbage")
    rd = RunDir(tmp_path)
    assert ledger.mend_record(rd, "s", "max") == "optuna.db.damaged"
    assert (tmp_path / "optuna.db.damaged").read_bytes() == b"garbage"
    assert "is damaged (set aside as optuna.db.damaged)" in caplog.text
    assert ledger.mend_record(rd, "s", "max") is None  # readable now: left alone
    restored = _searcher(tmp_path, max_trials=4)
    restored.restore(str(tmp_path / "snap.pkl"))
    restored.suggest("c")
    _end(restored, "c", 0.7)
    restored.flush()
    record = _record(tmp_path)
    assert sorted(record) == ["a", "b", "c"] and all(
        t.state == TrialState.COMPLETE for t in record.values())
