"""A hand grid as a searcher: each point once, counted by the searcher, and after a restore
in agreement with Tune's trial list (a point Tune lost runs again, none runs twice)."""

from types import SimpleNamespace

from ray.tune.search import Searcher

from hpsearch.search.grid import GridSearcher, grid_points


def _tune(trial_id, config):
    return SimpleNamespace(trial_id=trial_id, config=config)


def test_points_cover_the_grid_with_the_fixed_settings():
    points = grid_points({"depth": [1, 3], "lr": [0.1, 0.01]}, {"data": "digits"})
    assert points == [{"data": "digits", "depth": 1, "lr": 0.1},
                      {"data": "digits", "depth": 1, "lr": 0.01},
                      {"data": "digits", "depth": 3, "lr": 0.1},
                      {"data": "digits", "depth": 3, "lr": 0.01}]


def test_each_point_once_then_finished(tmp_path):
    s = GridSearcher(grid_points({"depth": [1, 2, 3]}, {}), "val_metric", "max")
    assert [s.suggest(t)["depth"] for t in "abc"] == [1, 2, 3]
    assert s.suggest("d") == Searcher.FINISHED


def test_after_a_restore_a_lost_point_runs_again_and_an_unknown_trial_keeps_its_point(
        tmp_path):
    s = GridSearcher(grid_points({"depth": [1, 2, 3, 4]}, {"w": 8}), "val_metric", "max")
    given = {t: s.suggest(t) for t in "ab"}
    s.save(str(tmp_path / "snap.pkl"))  # the snapshot: a and b handed out
    given["c"] = s.suggest("c")  # ... Tune's list has c, and lost b
    restored = GridSearcher([], "val_metric", "max")
    restored.restore(str(tmp_path / "snap.pkl"))
    assert restored.reconciling
    assert restored.sync([_tune("a", given["a"]), _tune("c", given["c"])]) == ["b"]
    assert restored.known_ids() == {"a", "c"}
    assert restored.suggest("d") == given["b"]  # the lost point first
    assert restored.suggest("e") == {"w": 8, "depth": 4}  # not c's point again
    assert restored.suggest("f") == Searcher.FINISHED
    assert restored.sync([_tune("a", {})]) == []  # only once after a restore


def test_a_lost_point_gets_the_slot_its_trial_held_in_the_restored_limiter(tmp_path):
    """One slot: the restored limiter's live set holds the trial Tune lost. The grid's
    searcher forgets lost trials, and the slot stayed held: `hpsearch resume` of a killed
    one-slot grid run waited for ever."""
    from hpsearch.search.ledger import SlotLimiter, TrialLedger

    s = GridSearcher(grid_points({"depth": [1, 2, 3]}, {}), "val_metric", "max")
    limiter = SlotLimiter(s, max_concurrent=1)
    given = {"a": limiter.suggest("a")}
    limiter.on_trial_complete("a", {"val_metric": 0.5})
    given["b"] = limiter.suggest("b")
    assert limiter.suggest("x") is None  # b holds the slot
    s.save(str(tmp_path / "snap.pkl"))
    saved = limiter.get_state()  # live: b
    restored = GridSearcher([], "val_metric", "max")
    restored.restore(str(tmp_path / "snap.pkl"))
    again = SlotLimiter(restored, max_concurrent=1)
    again.set_state(saved)
    ledger = TrialLedger(restored, str(tmp_path), local=False, limiter=again)
    ended = SimpleNamespace(trial_id="a", config=given["a"], status="TERMINATED",
                            ERROR="ERROR", last_result={"val_metric": 0.5},
                            is_finished=lambda: True)
    ledger.on_step_begin(0, [ended])  # Tune's list: a ended, b lost
    assert again.suggest("c") == given["b"]  # the lost point runs again, in the freed slot
    assert again.suggest("d") is None  # one slot still
    again.on_trial_complete("c", {"val_metric": 0.6})
    assert again.suggest("d") == {"depth": 3}
