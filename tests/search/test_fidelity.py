"""The equal-fidelity logic of the default search, without Ray: which epoch the sampler
learns from, what it is told, and how the scheduler reacts to curves that cross."""

import math
import random

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch import fidelity
from hpsearch.search.schedulers import AdaptiveHyperband, EpochBudget
from hpsearch.search.searcher import DIVERGED_ATTR, StudySearcher, default_min_obs, model_trials


def _crossing(n=30, epochs=27, seed=0):
    """Fast starters end worse: speed and final quality are anti-correlated."""
    rng = random.Random(seed)
    curves = {}
    for i in range(n):
        q = rng.random()  # final quality
        tau = 0.5 + 8 * q  # better configs learn slower
        curves[f"t{i}"] = {e: (0.2 + 0.7 * q) * (1 - math.exp(-e / tau))
                           for e in range(1, epochs + 1)}
    return curves


def _parallel(n=30, epochs=27, seed=0):
    rng = random.Random(seed)
    return {f"t{i}": {e: q * (1 - math.exp(-e / 4)) for e in range(1, epochs + 1)}
            for i, q in ((i, rng.random()) for i in range(n))}


def test_rank_agreement_sees_crossing_curves():
    rho, n, ref = fidelity.rank_agreement(_crossing(), 1, min_pairs=8)
    assert rho < 0 and n == 30 and ref == 27
    rho, _, _ = fidelity.rank_agreement(_parallel(), 1, min_pairs=8)
    assert rho > 0.99
    # Too few trials reached a later epoch: no verdict rather than a noisy one.
    few = {k: ({1: v[1], 3: v[3]} if i < 5 else {1: v[1]}) for i, (k, v) in
           enumerate(_parallel().items())}
    assert fidelity.rank_agreement(few, 1, min_pairs=8) is None


def test_model_epoch_is_the_highest_epoch_enough_trials_reached():
    part = {k: {e: s for e, s in v.items() if e <= (27 if i < 5 else 3)}
            for i, (k, v) in enumerate(_crossing().items())}
    assert fidelity.model_epoch(part, min_obs=8) == 3  # only 5 trials ran past epoch 3
    assert fidelity.model_epoch(part, min_obs=5) == 27
    assert fidelity.model_epoch({}, min_obs=8) is None
    assert fidelity.model_epoch(part, min_obs=5, start=8) == 27  # min_obs met: start unused
    assert fidelity.model_epoch(part, min_obs=1000, start=8) == 3  # none has 1000: start


def _study_with(curves: dict, states: dict, diverged=()):
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i, (name, curve) in enumerate(curves.items()):
        study.add_trial(optuna.trial.create_trial(
            params={"x": i / max(10, len(curves))}, distributions=dist, intermediate_values=curve,
            state=states[name], value=None if states[name] != TrialState.COMPLETE else
            curve[max(curve)], user_attrs={DIVERGED_ATTR: name in diverged}))
    return study


def test_the_model_is_told_scores_at_one_epoch_not_each_trial_last():
    # a: stopped early at epoch 1 with a fast start; b, c ran to epoch 9 and end best.
    curves = {"a": {1: 0.9}, "b": {1: 0.3, 3: 0.6, 9: 0.95}, "c": {1: 0.2, 3: 0.5, 9: 0.97},
              "d": {1: 0.5, 3: 0.4}, "e": {1: 0.1}, "f": {}}
    states = {"a": TrialState.PRUNED, "b": TrialState.COMPLETE, "c": TrialState.COMPLETE,
              "d": TrialState.PRUNED, "e": TrialState.PRUNED, "f": TrialState.RUNNING}
    study = _study_with(curves, states, diverged={"e"})
    epoch, frozen = model_trials(study.get_trials(), min_obs=3, maximize=True)
    assert epoch == 3  # the highest epoch 3 trials reached
    told = {t.params["x"]: (t.state, t.value) for t in frozen}
    # b, c, d at their epoch-3 score; a's 1-epoch 0.9 is not compared with them; e diverged
    # before epoch 3 and counts as the worst; f is pending.
    assert told == {0.1: (TrialState.COMPLETE, 0.6), 0.2: (TrialState.COMPLETE, 0.5),
                    0.3: (TrialState.COMPLETE, 0.4), 0.4: (TrialState.COMPLETE, 0.4),
                    0.5: (TrialState.RUNNING, None)}


def test_searcher_suggests_from_the_equal_fidelity_model():
    def space(trial):
        return {"x": trial.suggest_float("x", 0, 1)}

    s = StudySearcher(space, "score", "max", optuna.samplers.RandomSampler(seed=0),
                      storage=None, study_name="t", equal_fidelity=True, min_obs=6,
                      random_fraction=0.0, seed=0)
    xs = []
    for i in range(40):
        x = s.suggest(f"t{i}")["x"]
        xs.append(x)
        for epoch in (1, 2, 3):  # the best x is 0.8 at every epoch
            s.on_trial_result(f"t{i}", {"score": -abs(x - 0.8) * epoch, "epoch": epoch})
        s.on_trial_complete(f"t{i}", {"score": -abs(x - 0.8) * 3, "epoch": 3,
                                      "status": "completed"})
    assert s.model_epochs[:6] == [None] * 6 and s.model_epochs[-1] == 3  # all reached 3
    late = xs[20:]
    assert sum(abs(x - 0.8) < 0.15 for x in late) >= 12  # the model found the region


def test_the_model_prefers_epochs_with_twice_as_many_trials_as_parameters():
    """With 8 trials at an epoch TPE's good set (its best 10%) is a single trial: the model
    starts at 8 but, once an epoch has twice as many trials as parameters (every branch of a
    conditional space), learns from the highest such epoch."""
    def trials(*param_sets):
        return [optuna.trial.create_trial(params=p, distributions={
            k: optuna.distributions.CategoricalDistribution([v]) for k, v in p.items()},
            value=0.0) for p in param_sets]

    assert default_min_obs([]) == 8
    assert default_min_obs(trials({"x": 1, "y": 2})) == 8  # never fewer than 8
    assert default_min_obs(trials({"opt": "sgd", "lr": 1, "momentum": 1},
                                  {"opt": "adam", "lr": 1, "beta1": 1, "beta2": 1},
                                  {"opt": "adamw", "lr": 1, "beta1": 1, "beta2": 1,
                                   "weight_decay": 1, "depth": 1})) == 14

    def space(trial):
        return {f"p{k}": trial.suggest_float(f"p{k}", 0, 1) for k in range(6)}

    s = StudySearcher(space, "score", "max", optuna.samplers.RandomSampler(seed=0),
                      storage=None, study_name="t", equal_fidelity=True,
                      random_fraction=0.0, seed=0)
    for i in range(20):
        cfg = s.suggest(f"t{i}")
        s.on_trial_result(f"t{i}", {"score": cfg["p0"], "epoch": 1})
        last = 2 if i % 2 == 0 else 1  # every other trial also reaches epoch 2
        s.on_trial_complete(f"t{i}", {"score": cfg["p0"], "epoch": last,
                                      "status": "completed"})
    # 6 parameters: the model starts once 8 trials have epoch 1; at 16 trials 8 have reached
    # epoch 2, which BOHB's plain rule would switch to, but 12 are wanted: it stays at 1.
    assert s.model_epochs == [None] * 8 + [1] * 12


def _result(epoch, value):
    return {"epoch": epoch, "score": value}


def test_scheduler_shares_rungs_and_stops_below_the_top_third():
    s = AdaptiveHyperband("score", "max", max_t=9, grace_period=1, reduction_factor=3,
                          adaptive=False)
    for i, v in enumerate([0.5, 0.6, 0.7, 0.8, 0.9]):
        s._assign(f"u{i}", 2)  # the no-stopping bracket: its epoch-1 scores still count
        assert s.decide(f"u{i}", _result(1, v)) == "CONTINUE"
    s._assign("a", 0)
    assert s.decide("a", _result(1, 0.75)) == "STOP"  # below the top third of all six
    s._assign("b", 0)
    assert s.decide("b", _result(1, 0.95)) == "CONTINUE"
    assert s.decide("b", _result(2, 0.1)) == "CONTINUE"  # not a rung
    assert s.decide("b", _result(9, 0.96)) == "STOP"  # max_t: done
    assert s.decide("b", _result(3, float("nan"))) == "CONTINUE"  # the trainable ends it


def test_scheduler_moves_trials_to_later_brackets_when_curves_cross():
    def fed(curves):
        s = AdaptiveHyperband("score", "max", max_t=27, grace_period=1, reduction_factor=3,
                              min_pairs=8)
        for name, curve in curves.items():
            s._assign(name, 3)  # observed without stopping
            for e, v in curve.items():
                s.decide(name, _result(e, v))
        return s.weights()

    cross, parallel = fed(_crossing()), fed(_parallel())
    assert parallel[0] > 0.5  # early epochs rank as the last: stop early, aggressively
    # They do not at epochs 1 and 3 (rho -1 and 0.66): the trials go to the brackets that
    # first judge at epoch 9 (which ranks as 27 does) or never stop early.
    assert cross[0] < 0.05 and cross[2] + cross[3] > 3 * (parallel[2] + parallel[3])
    assert min(cross) >= 0.01  # every bracket keeps being sampled


def test_epoch_budget_stops_all_once_spent(tmp_path):
    b = EpochBudget(str(tmp_path), 4)
    assert not any(b("t", {"epoch": e}) for e in (1, 2))
    b("t", {"epoch": 2, "done": True})  # the result Tune adds when the trainer returns
    b("u", {"epoch": 1})
    assert not b.stop_all()
    b("u", {"epoch": 2})
    assert b.stop_all() and EpochBudget.REACHED.pop(str(tmp_path)) == 4


def test_a_resumed_budget_counts_the_epochs_trained_before(tmp_path):
    """Tune saves the stopper with its experiment state now and then; `hpsearch resume`
    gets it back as last saved. Epochs the trial folders have beyond that count, and a
    trial that goes on is not counted twice."""
    import json
    import pickle

    saved = EpochBudget(str(tmp_path), 8)
    saved("a", {"epoch": 1})  # the state Tune saved: a at epoch 1
    for name, tid, epochs in (("trial_a", "a", 4), ("trial_b", "b", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.json").write_text("{}")
        (tmp_path / name / "result.json").write_text("".join(
            json.dumps({"trial_id": tid, "epoch": e}) + "\n" for e in range(1, epochs + 1)))
    assert saved.spent == 1  # the live stopper does not read the folders again
    b = pickle.loads(pickle.dumps(saved))
    assert not b.stop_all() and b.spent == 6
    b("b", {"epoch": 2})  # a result the folder already has
    b("b", {"epoch": 3})
    assert b.spent == 7 and not b.stop_all()
    b("c", {"epoch": 1})
    assert b.stop_all() and EpochBudget.REACHED.pop(str(tmp_path)) == 8


def test_room_for_a_trial_counts_what_the_running_ones_still_need():
    # Budget 20, 4 epochs a trial: 6 spent, two running at epochs 1 and 2 need 3 + 2 more.
    reached = {"a": 3, "b": 1, "c": 2}
    assert fidelity.room_for_trial(20, 4, reached, ["b", "c"])  # 20 - 6 - 5 = 9 >= 4
    assert not fidelity.room_for_trial(14, 4, reached, ["b", "c"])  # 14 - 6 - 5 = 3 < 4
    assert fidelity.room_for_trial(14, 4, reached, ["b"])  # c ended: 14 - 6 - 3 = 5
    assert fidelity.room_for_trial(7, 4, reached, [])  # nothing running: never waits
    assert fidelity.room_for_trial(15, 4, {**reached, "d": 0}, ["b", "c", "d"]) is False


def _budget_searcher(budget):
    def space(trial):
        return {"x": trial.suggest_float("x", 0, 1)}

    return StudySearcher(space, "score", "max", optuna.samplers.RandomSampler(seed=0),
                         storage=None, study_name="t", budget_epochs=budget, max_epochs=4)


def test_near_the_budget_end_a_new_trial_waits_for_the_running_ones():
    s = _budget_searcher(12)
    assert s.suggest("t0") and s.suggest("t1")
    for t in ("t0", "t1"):
        s.on_trial_result(t, {"score": 0.5, "epoch": 1})
    # 2 spent, 6 still needed by t0 and t1: room for one more trial (12 - 2 - 6 = 4).
    assert s.suggest("t2") and s.suggest("t3") is None
    s.on_trial_complete("t2", {"score": float("nan"), "epoch": 1, "status": "diverged"})
    assert s.suggest("t3") is None  # the NaN epoch was trained: 12 - 3 - 6 = 3 < 4
    s.on_trial_complete("t1", {"score": 0.4, "epoch": 1, "status": "running"})  # stopped
    assert s.suggest("t3")  # 12 - 3 - 3 = 6
    assert s.suggest("t4") is None  # t3 needs 4 too: 12 - 3 - 7 = 2
    for t in ("t0", "t3"):
        for e in (2, 3, 4) if t == "t0" else (1, 2, 3, 4):
            s.on_trial_result(t, {"score": 0.6, "epoch": e})
        assert s.suggest("t4") is None  # 2 left after t0's or t3's last epoch
        s.on_trial_complete(t, {"score": 0.6, "epoch": 4, "status": "completed"})
    # 10 spent, nothing running: the last 2 epochs are not left unused.
    assert s.suggest("t4")


def test_without_a_budget_every_slot_gets_a_trial():
    s = _budget_searcher(None)
    assert all(s.suggest(f"t{i}") for i in range(20))


def test_the_model_keeps_the_best_trials_when_capped():
    from hpsearch.search import model

    curves = {f"t{i}": {1: i / 1000} for i in range(1000)}
    study = _study_with(curves, {k: TrialState.COMPLETE for k in curves})
    _, frozen = model_trials(study.get_trials(), min_obs=8, maximize=True)
    assert model.MODEL_MAX_TRIALS / 2 < len(frozen) <= model.MODEL_MAX_TRIALS
    values = [t.value for t in frozen]
    assert sorted(values, reverse=True)[:30] == [i / 1000 for i in range(999, 969, -1)]
    assert values == sorted(values)  # in the trials' order (their values grow with it here)
    # One more trial, not among the best: every kept trial stays kept (the kept model
    # study only appends), unless the mark's limit halves.
    curves["t1000"] = {1: 0.0005}
    study = _study_with(curves, {k: TrialState.COMPLETE for k in curves})
    _, more = model_trials(study.get_trials(), min_obs=8, maximize=True)
    assert [t.value for t in more][:len(frozen)] == values


def test_the_kept_model_study_equals_a_fresh_one_and_suggests_the_same():
    """The searcher keeps the model's study between suggestions and only tells it what
    changed; what TPE reads from it, and so what it suggests, must be what a study built
    anew from the same trials gives."""
    from hpsearch.search.model import ModelStudy, frozen, model_picks

    rng = random.Random(3)
    curves, states = {}, {}
    kept = ModelStudy(optuna.study.StudyDirection.MAXIMIZE)
    for step in range(60):
        curves[f"t{step}"] = {}
        states[f"t{step}"] = TrialState.RUNNING
        for name in curves:  # running trials move on; some stop
            if states[name] == TrialState.RUNNING and rng.random() < 0.5:
                curves[name][len(curves[name]) + 1] = rng.random()
                if len(curves[name]) == 3 or rng.random() < 0.2:
                    states[name] = (TrialState.COMPLETE if len(curves[name]) == 3
                                    else TrialState.PRUNED)
        trials = _study_with(curves, states, diverged={"t7"}).get_trials()
        trials = [optuna.trial.create_trial(  # a trial's params never change: x by number
            params={"x": t.number / 100}, distributions=t.distributions,
            intermediate_values=t.intermediate_values, state=t.state, value=t.value,
            user_attrs=t.user_attrs) for t in trials]
        for i, t in enumerate(trials):
            t.number = i
        epoch, picked = model_picks(trials, min_obs=4, maximize=True)
        if epoch is None:
            continue
        fresh = optuna.create_study(direction="maximize")
        fresh.add_trials([frozen(t, v) for t, v in picked])
        model = kept.study(epoch, picked)
        read = [(t.state, t.value, t.params) for t in model.get_trials(deepcopy=False)
                if t.state != TrialState.FAIL]
        assert read == [(t.state, t.value, t.params) for t in fresh.get_trials()], step
        said = []
        for study in (model, fresh):
            study.sampler = optuna.samplers.TPESampler(seed=step, n_startup_trials=0,
                                                       multivariate=True, constant_liar=True)
            trial = study.ask()
            said.append(trial.suggest_float("x", 0, 1))
            study.tell(trial, state=TrialState.FAIL)
        assert said[0] == said[1], step


def test_scheduler_with_one_bracket_is_asha_or_no_early_stopping():
    """brackets="asha" judges every trial from the grace period; "none" stops nothing
    before max_t (the simulator's random+ASHA and FIFO baselines use these)."""
    asha = AdaptiveHyperband("score", "max", max_t=9, grace_period=1, reduction_factor=3,
                             brackets="asha")
    fifo = AdaptiveHyperband("score", "max", max_t=9, grace_period=1, reduction_factor=3,
                             brackets="none")
    assert asha.weights() == [1.0] and fifo.weights() == [1.0]
    asha_says = [asha.decide(f"a{i}", _result(1, v)) for i, v in enumerate([5, 4, 3, 6])]
    assert asha_says == ["CONTINUE", "STOP", "STOP", "CONTINUE"]  # the top third so far
    fifo_says = {fifo.decide(f"f{i}", _result(e, float(i))) for i in range(6) for e in (1, 3)}
    assert fifo_says == {"CONTINUE"}
    assert fifo.decide("f0", _result(9, 0.0)) == "STOP"  # max_t: done
    with pytest.raises(ValueError, match="brackets"):
        AdaptiveHyperband("score", "max", max_t=9, brackets="bohb")


def test_a_rung_decides_by_rank_the_same_when_minimising():
    """ASHA's rule by rank: a trial goes on if at most (n - 1) / eta of the n scores at its
    rung beat it, at every rung size, and minimising a loss decides as maximising the same
    ranking. With the quantile cutoff, (1 - 1/3) * 18 = 12.000000000000002, the 7th best of
    19 was kept or stopped by rounding, differently when minimising."""
    def both(scores):
        up = AdaptiveHyperband("score", "max", max_t=9, brackets="asha")
        down = AdaptiveHyperband("score", "min", max_t=9, brackets="asha")
        said = [(up.decide(f"t{i}", _result(1, v)), down.decide(f"t{i}", _result(1, 1 - v)))
                for i, v in enumerate(scores)]
        assert all(a == b for a, b in said), said
        return [a for a, _ in said]

    assert both([i / 100 for i in range(1, 19)] + [0.125])[-1] == "CONTINUE"  # 6 of 18
    assert both([i / 100 for i in range(1, 19)] + [0.115])[-1] == "STOP"  # 7 better
    assert both([0.3, 0.2, 0.1, 0.15]) == ["CONTINUE", "STOP", "STOP", "STOP"]
    assert both([0.3, 0.2, 0.1, 0.25]) == ["CONTINUE", "STOP", "STOP", "CONTINUE"]  # 1 of 4
    rng = random.Random(3)
    for n in range(2, 60):
        scores = [rng.random() for _ in range(n)]
        said = both(scores)
        last = sorted(scores, reverse=True).index(scores[-1])  # how many beat the last one
        assert (said[-1] == "CONTINUE") == (last * 3 <= n - 1)
