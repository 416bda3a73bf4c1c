"""Ray Tune's saved state in a run directory: a last good copy of each file, put back when a
full disk or a kill during Tune's copy cut the live one short."""

import json
import os
import pickle
import time

import pytest

from hpsearch.errors import UserError
from hpsearch.rundir import RunDir, tune_state
from hpsearch.rundir.layout import TUNE_STATE_BACKUP, TUNE_STATE_LOST

FILES = {"experiment_state-2026-01-01_00-00-00.json":
         json.dumps({"trial_data": [["{}", "x"]] * 50}).encode(),
         "search_gen_state-2026-01-01_00-00-00.json":
         pickle.dumps({"counter": 7, "pad": "a.b.c." * 200}, protocol=5),
         "searcher-state-2026-01-01_00-00-00.pkl":
         pickle.dumps({"trials": list(range(500)), "note": "x." * 300}, protocol=5)}


@pytest.fixture
def rd(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    for name, data in FILES.items():
        _write(rd, name, data)
    return rd


def _write(rd, name, data):
    """Write a state file as Tune's copy would, finished a while ago."""
    (rd.path / name).write_bytes(data)
    then = time.time() - 10
    os.utime(rd.path / name, (then, then))


def _cut_after_a_dot(data: bytes) -> bytes:
    """A prefix that ends with b"." (STOP's byte) but is not the whole pickle."""
    return data[:data.rindex(b".", 0, len(data) // 2) + 1]


def test_each_cut_file_is_put_back_from_its_last_good_copy(rd):
    assert tune_state.backup(rd) == 3
    assert tune_state.backup(rd) == 0  # unchanged files are not copied again
    for name, data in FILES.items():
        _write(rd, name, data[: len(data) // 2])
    # A cut pickle that happens to end with STOP's byte is caught by the full check.
    name = "searcher-state-2026-01-01_00-00-00.pkl"
    _write(rd, name, _cut_after_a_dot(FILES[name]))
    assert sorted(tune_state.repair(rd)) == sorted(FILES)
    for name, data in FILES.items():
        assert (rd.path / name).read_bytes() == data
    assert tune_state.repair(rd) == []


def test_a_copy_of_a_cut_file_costs_one_generation_not_the_state(rd):
    tune_state.backup(rd)
    name = "search_gen_state-2026-01-01_00-00-00.json"
    _write(rd, name, FILES[name][:-2])  # cut short: not copied
    assert tune_state.backup(rd) == 0
    _write(rd, name, _cut_after_a_dot(FILES[name]))  # passes the quick check: copied
    assert tune_state.backup(rd) == 1
    assert tune_state.repair(rd) == [name]  # ... but the copy before it is put back
    assert (rd.path / name).read_bytes() == FILES[name]


def test_a_file_tune_may_still_be_copying_is_left_alone(rd):
    name = "experiment_state-2026-01-01_00-00-00.json"
    (rd.path / name).write_bytes(FILES[name])  # just written
    assert tune_state.backup(rd) == 2
    assert not (rd.path / TUNE_STATE_BACKUP / name).exists()


def test_a_missing_file_comes_back_from_its_copy(rd):
    tune_state.backup(rd)
    name = "experiment_state-2026-01-01_00-00-00.json"
    (rd.path / name).unlink()
    assert tune_state.repair(rd) == [name]


def test_a_cut_file_without_a_good_copy_is_one_clear_error(rd):
    name = "searcher-state-2026-01-01_00-00-00.pkl"
    _write(rd, name, FILES[name][:100])
    with pytest.raises(UserError, match="cut short and has no good copy"):
        tune_state.repair(rd)


def test_with_nothing_ended_a_state_beyond_repair_is_set_aside_whole(rd):
    """A kill in a run's first seconds can cut a file Tune has not let settle for a copy yet;
    with no trial ended, the state (and the copies of the files that had one) goes aside and
    the run has no trial list, so `resume` starts it again (the CLI path: test_reliability)."""
    tune_state.backup(rd)
    cut = "searcher-state-2026-01-01_00-00-00.pkl"
    (rd.path / TUNE_STATE_BACKUP / cut).unlink()  # the file Tune had not let settle
    _write(rd, cut, FILES[cut][:100])
    asked = []
    with pytest.raises(UserError, match="cut short and has no good copy"):
        tune_state.repair(rd, discard=lambda: asked.append(1) or False)  # a trial had ended
    assert asked and tune_state.saved(rd) and (rd.path / cut).is_file()
    assert tune_state.repair(rd, discard=lambda: True) == []
    assert not tune_state.saved(rd) and not (rd.path / TUNE_STATE_BACKUP).exists()
    aside = [p.relative_to(rd.path / TUNE_STATE_LOST) for p in
             (rd.path / TUNE_STATE_LOST).rglob("*") if p.is_file()]
    assert sorted(p.name for p in aside) == sorted([*FILES, *set(FILES) - {cut}])
    assert tune_state.repair(rd) == []  # nothing comes back from the set-aside copies
    (rd.path / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    assert tune_state.repair(rd, discard=lambda: pytest.fail("asked with nothing wrong")) == []


def test_an_empty_trial_list_is_no_state_to_restore(rd):
    """A kill as Tune saved its first trial list can leave it empty beside a searcher
    snapshot that had handed a trial out. Tune's restore fails on an empty list and starts a
    new experiment of one trial: a resumed one-slot grid ran 1 of its 3 points and ended
    "interrupted" on every `resume`. With nothing ended the state goes aside and the search
    starts again; with a trial ended (discard says no) it stays, and `resume` refuses."""
    name = "experiment_state-2026-01-01_00-00-00.json"
    assert tune_state.saved(rd)
    _write(rd, name, json.dumps({"trial_data": []}).encode())
    assert not tune_state.saved(rd)
    assert tune_state.repair(rd, discard=lambda: False) == []
    assert (rd.path / name).is_file()
    assert tune_state.repair(rd, discard=lambda: True) == []
    assert not [p for p in rd.path.glob("*state-*") if p.is_file()]
    assert sorted(p.name for p in (rd.path / TUNE_STATE_LOST).rglob("*-*")
                  if p.is_file()) == sorted(FILES)


def test_a_trial_whose_params_json_was_cut_short_keeps_its_config(tmp_path):
    from hpsearch.rundir.results import trial_rows

    trial = tmp_path / "run_trial_abc12345_1_lr=0.1"
    trial.mkdir()
    (trial / "params.json").write_text("")  # created, never written: the copy was killed
    config = {"lr": 0.1, "depth": 3}
    rows = [{"epoch": e, "val_metric": e / 10, "status": "completed" if e == 2 else "running",
             "trial_id": "abc12345", "config": config} for e in (1, 2)]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = set()
    out = trial_rows(trial, finished=True, config_keys=keys)
    assert keys == {"lr", "depth"} and [(r["epoch"], r["lr"], r["depth"]) for r in out] == \
        [(1, 0.1, 3), (2, 0.1, 3)]


def test_a_failure_tune_recovered_from_is_not_the_trials_end(tmp_path):
    """error.txt lists every failure of a trial, also one Tune retried from its checkpoint
    (--max-failures) or one that came while the scheduler was stopping it: Tune's saved
    status says how the trial ended (a stopped-early trial was reported as 'error')."""
    from hpsearch.rundir.results import trial_rows

    trial = tmp_path / "run_trial_abc12345_1_lr=0.1"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"lr": 0.1}))
    rows = [{"epoch": e, "val_metric": 0.1, "status": "running", "trial_id": "abc12345"}
            for e in (1, 2, 3)]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (trial / "error.txt").write_text("Failure # 1 (occurred at 2026-12-01_09-15-19)\n"
                                     "The actor died unexpectedly before finishing this task.\n")

    def last(statuses, finished=True):
        out = trial_rows(trial, finished=finished, config_keys=set(), tune_statuses=statuses)
        return out[-1]["status"], out[-1]["error"]

    assert last({"abc12345": "TERMINATED"}) == ("stopped_early", None)
    assert last({"abc12345": "TERMINATED"}, finished=False) == ("stopped_early", None)
    assert last({"abc12345": "ERROR"})[0] == "error"
    assert last({}) == ("error", "The actor died unexpectedly before finishing this task.")


def test_a_search_algorithm_state_without_its_searcher_is_one_clear_error(rd):
    (rd.path / "searcher-state-2026-01-01_00-00-00.pkl").unlink()  # never copied, no backup
    with pytest.raises(UserError, match="no searcher snapshot"):
        tune_state.repair(rd)


def _trial_state(rd, trials):
    """An experiment state whose trials' pickled checkpoint managers name `path`s."""
    data = [[json.dumps({"trial_id": tid, "status": status}),
             json.dumps({"checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK", "value":
                         pickle.dumps({"latest": {"path": path, "fs": "file:///_"}},
                                      protocol=5).hex()}})]
            for tid, status, path in trials]
    _write(rd, "experiment_state-2026-01-01_00-00-00.json",
           json.dumps({"trial_data": data}).encode())


def _checkpoint(folder, n, epoch):
    ckpt = folder / f"checkpoint_{n:06d}"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"state of epoch %d" % epoch)
    (ckpt / "row.json").write_text(json.dumps({"epoch": epoch, "val_metric": epoch / 10}))
    return ckpt


def _logged(folder, epochs):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text("".join(
        json.dumps({"epoch": e, "trial_id": folder.name[10:13]}) + "\n" for e in epochs))


def _epochs(folder):
    return [json.loads(x)["epoch"] for x in (folder / "result.json").read_text().splitlines()]


def test_a_checkpoint_tune_deleted_under_its_lagging_state_is_mended(rd, tmp_path):
    """Tune's state names checkpoint 1; num_to_keep=1 left only 3 (the newest): the trial
    gets its newest state under the name Tune will restore."""
    lagging, empty, done = (rd.path / f"run_trial_{t}_x" for t in ("aaa", "bbb", "ccc"))
    _logged(lagging, [1, 2, 3, 4])
    newest = _checkpoint(lagging, 3, epoch=4)
    empty.mkdir()
    _checkpoint(done, 2, epoch=3)
    outside = tmp_path / "elsewhere" / "run_trial_ddd" / "checkpoint_000001"
    _checkpoint(outside.parent, 5, epoch=6)
    _trial_state(rd, [("aaa", "PAUSED", str(lagging / "checkpoint_000001")),
                      ("bbb", "RUNNING", str(empty / "checkpoint_000000")),
                      ("ccc", "TERMINATED", str(done / "checkpoint_000001")),
                      ("ddd", "RUNNING", str(outside))])
    mended = tune_state.mend_checkpoints(rd)
    assert mended == [str(lagging / "checkpoint_000001"), str(empty / "checkpoint_000000")]
    assert (lagging / "checkpoint_000001" / "state.pt").read_bytes() == b"state of epoch 4"
    assert not newest.exists()  # moved, not copied: no stale newer folder left behind
    assert _epochs(lagging) == [1, 2, 3, 4]  # nothing added: epoch 4 was logged
    assert list((empty / "checkpoint_000000").iterdir()) == []  # no state: starts over
    assert not (done / "checkpoint_000001").exists()  # ended trials are not restored
    assert not outside.exists()  # a path outside the run is never touched
    assert tune_state.mend_checkpoints(rd) == []  # nothing left to mend


def test_the_restored_checkpoint_leaves_no_gap_in_the_logged_epochs(rd):
    """The newest checkpoint by its saved epoch, if at most one past the last logged row
    (that row, saved with it, is logged); one further ahead is dropped, never a gap."""
    one_ahead, far_ahead = rd.path / "run_trial_aaa_x", rd.path / "run_trial_bbb_x"
    _logged(one_ahead, [1, 2, 3])
    _checkpoint(one_ahead, 9, epoch=2)  # a stale folder with a higher number
    _checkpoint(one_ahead, 5, epoch=4)  # the driver died before logging epoch 4
    _logged(far_ahead, [1, 2])
    _checkpoint(far_ahead, 5, epoch=5)
    _trial_state(rd, [("aaa", "PAUSED", str(one_ahead / "checkpoint_000003")),
                      ("bbb", "PAUSED", str(far_ahead / "checkpoint_000001"))])
    tune_state.mend_checkpoints(rd)
    assert (one_ahead / "checkpoint_000003" / "state.pt").read_bytes() == b"state of epoch 4"
    assert sorted(p.name for p in one_ahead.iterdir() if p.is_dir()) == ["checkpoint_000003"]
    assert _epochs(one_ahead) == [1, 2, 3, 4]
    last = json.loads((one_ahead / "result.json").read_text().splitlines()[-1])
    assert last == {"epoch": 4, "val_metric": 0.4, "trial_id": "aaa"}
    assert _epochs(far_ahead) == [1, 2]
    assert [p.name for p in far_ahead.iterdir() if p.is_dir()] == ["checkpoint_000001"]
    assert list((far_ahead / "checkpoint_000001").iterdir()) == []  # starts over


def test_a_finished_search_is_reopened_for_configs_tune_lost(tmp_path):
    """Tune saves whether its searcher said FINISHED; restored, it never asks again, so a
    config re-queued for a trial Tune lost would never run. resume clears the flag (in place,
    the pickle never loaded)."""
    import ray.cloudpickle as cloudpickle

    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    state = {"counter": 3, "total_samples": 2**63 - 1, "finished": True,
             "name:ConcurrencyLimiter": {"max_concurrent": 2, "finished": 1}}
    path = rd.path / "search_gen_state-2026-12-01_07-01-54.json"
    path.write_bytes(cloudpickle.dumps(state))
    assert tune_state.reopen_search(rd)
    assert pickle.loads(path.read_bytes()) == {**state, "finished": False}
    assert not tune_state.reopen_search(rd)  # nothing left to clear


def test_saved_statuses_come_from_the_newest_state_and_none_when_unreadable(tmp_path):
    def state(name, statuses):
        (tmp_path / name).write_text(json.dumps({"trial_data": [
            [json.dumps({"trial_id": t, "status": st}), "{}"] for t, st in statuses.items()]}))

    assert tune_state.saved_statuses(tmp_path) is None
    state("experiment_state-2026-12-01_07-00-00.json", {"a": "RUNNING"})
    state("experiment_state-2026-12-01_08-00-00.json", {"a": "TERMINATED", "b": "ERROR"})
    assert tune_state.saved_statuses(tmp_path) == {"a": "TERMINATED", "b": "ERROR"}
    (tmp_path / "experiment_state-2026-12-01_09-00-00.json").write_text('{"trial_data": [[')
    assert tune_state.saved_statuses(tmp_path) is None  # cut short: Tune is asked instead
