"""Wiring the Tuner: hpsearch's Optuna searcher (define-by-run) + ASHA or FIFO + RunConfig,
with metric and mode set once (SearchConfig -> TuneConfig and the searcher)."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import optuna
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from hpsearch import spaces, trainers
from hpsearch.config import SearchConfig
from hpsearch.rundir import RunDir
from hpsearch.search import cluster, packing, storage
from hpsearch.search.checks import BUILTIN_METRICS, validate  # noqa: F401 (tuner's names)
from hpsearch.search.grid import GridSearcher, grid_points
from hpsearch.search.ledger import SlotLimiter, TrialLedger
from hpsearch.search.schedulers import AdaptiveHyperband, EpochBudget
from hpsearch.search.searcher import StudySearcher
from hpsearch.search.trainable import run_trial
from hpsearch.spaces import scales

__all__ = ["build_tuner", "validate", "experiment_path", "make_trainable",
           "grid_size", "quiet_loggers"]

_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


def _searcher(cfg: SearchConfig, space) -> StudySearcher:
    # "tpe": TPE fitted at one epoch (searcher.py); the study's sampler draws the random
    # share. "optuna-tpe": Optuna's TPE on the whole study as Optuna ranks it.
    sampler = (optuna.samplers.TPESampler(seed=cfg.seed) if cfg.sampler == "optuna-tpe"
               else optuna.samplers.RandomSampler(seed=cfg.seed))
    # A partial of a module-level function pickles by reference: Tuner.restore can reload it.
    fn = functools.partial(spaces.with_fixed, space_fn=space.fn, fixed=dict(cfg.fixed))
    return StudySearcher(fn, metric=cfg.metric, mode=cfg.mode, sampler=sampler,
                         storage=RunDir(cfg.run_dir).study_url, study_name=cfg.study_name,
                         points=[scales.optuna_point(p) for p in cfg.points],
                         equal_fidelity=cfg.sampler == "tpe", seed=cfg.seed,
                         max_trials=cfg.samples, budget_epochs=cfg.budget_epochs,
                         max_epochs=cfg.max_epochs)


def _scheduler(cfg: SearchConfig):
    s = cfg.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    if s.kind == "hyperband":
        return AdaptiveHyperband(cfg.metric, cfg.mode, cfg.max_epochs, s.grace_period,
                                 s.reduction_factor, seed=cfg.seed)
    return ASHAScheduler(time_attr="epoch", max_t=cfg.max_epochs, grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor)


def make_trainable(cfg: SearchConfig, import_path: str | None = None):
    """The Tune function trainable with the trial's resources (packed GPU shares).
    `import_path`: where the workers import a `module:function` trainer from (default: the
    current directory, as the driver did)."""
    if ":" in cfg.trainer and import_path is None:
        import_path = os.getcwd()
    fn = tune.with_parameters(run_trial, trainer_name=cfg.trainer, metric=cfg.metric,
                              mode=cfg.mode, import_path=import_path)
    res = cfg.resources
    return tune.with_resources(fn, packing.resources_for(cfg.trainer, res, res.gpu_memory_mb,
                                                         str(cfg.run_dir)))


def experiment_path(cfg: SearchConfig) -> str:
    """Where Ray Tune keeps the trials: the run directory, or STORAGE_URI/NAME."""
    if storage.is_uri(cfg.storage):
        return storage.experiment_uri(cfg.storage, Path(cfg.run_dir).name)
    return str(cfg.run_dir)


def _run_config(cfg: SearchConfig, callbacks: list) -> tune.RunConfig:
    run_dir = Path(cfg.run_dir)
    uri = storage.is_uri(cfg.storage)
    return tune.RunConfig(
        name=run_dir.name, storage_path=cfg.storage if uri else str(run_dir.parent),
        # Upload the experiment state at most every 30 s rather than Ray's 300 s, so a
        # driver killed hard loses little; the file is tens of KB.
        sync_config=tune.SyncConfig(sync_period=30) if uri else None,
        callbacks=callbacks, verbose=0,
        stop=EpochBudget(cfg.run_dir, cfg.budget_epochs) if cfg.budget_epochs else None,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures))


def quiet_loggers():
    """While a Tuner fits: no default CSV/TensorBoard loggers (build_tuner adds the JSON one)."""
    return cluster.env_var(_NO_AUTO_LOGGERS, "1")


def grid_size(space) -> int:
    n = 1
    for values in (space.grid or {}).values():
        n *= len(values)
    return n


def build_tuner(cfg: SearchConfig, space, callbacks: list | None = None,
                grid: bool = False) -> tune.Tuner:
    """The Tuner for a validated `cfg` (see `validate`). Ray must already be initialised
    (see `search.cluster.connect`)."""
    res = cfg.resources
    slots = res.max_concurrent or cluster.concurrent_slots(
        res.cpus_per_trial, 0.0 if res.gpu_auto else res.gpus_per_trial, res.gpu_auto)
    # result.json/params.json are what the run's tables read; Tune's CSV and TensorBoard
    # loggers (added unless told not to, see `quiet_loggers`) would only cost time.
    callbacks = [JsonLoggerCallback(), *(callbacks or [])]
    if res.uses_gpus:
        callbacks.append(packing.PackingLog(cfg.run_dir, cfg.trainer))
    trainer = trainers.get(cfg.trainer)
    # A Config with an `epochs` field (or a plain-dict config) gets the epoch budget.
    fixed = {**cfg.fixed, **({"epochs": cfg.max_epochs} if trainer.has_field("epochs") else {})}
    if grid:
        # A YAML space's own `fixed:` settings hold for its grid too (its sampler adds them).
        yaml_fixed = getattr(space.fn, "fixed", None) or {}
        search_alg = GridSearcher(grid_points(space.grid, {**yaml_fixed, **fixed}),
                                  cfg.metric, cfg.mode)
    else:
        search_alg = _searcher(dataclasses.replace(cfg, fixed=fixed), space)
    # The limiter Tune would wrap around it for max_concurrent_trials, made here so that the
    # ledger can give back the slots of trials a restored snapshot still holds (ledger.py).
    limiter = SlotLimiter(search_alg, max_concurrent=slots)
    callbacks.append(TrialLedger(search_alg, str(cfg.run_dir),
                                 local=not storage.is_uri(cfg.storage), limiter=limiter))
    tune_config = tune.TuneConfig(
        metric=cfg.metric, mode=cfg.mode, search_alg=limiter, scheduler=_scheduler(cfg),
        num_samples=-1, reuse_actors=True)  # the searchers count the trials
    return tune.Tuner(make_trainable(cfg), tune_config=tune_config,
                      run_config=_run_config(cfg, callbacks))
