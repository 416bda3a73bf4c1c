"""Run and resume a search: validate, hold the run directory's lock, start a private Ray
(or join one), fit the Tuner, write the run's tables."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune

from hpsearch import __version__, trainers
from hpsearch.config import SearchConfig, config_from_dict, config_to_dict, default_mode
from hpsearch.errors import UserError
from hpsearch.rundir import Run, RunDir, layout, load_run, tune_state
from hpsearch.search import cluster, guard, ledger, searcher, storage
from hpsearch.search.checks import validate
from hpsearch.search.guard import ContractGuard, DiskGuard, check_free, fitting, stop_if_guarded
from hpsearch.search.progress import Progress
from hpsearch.search.schedulers import EpochBudget
from hpsearch.search.tuner import (
    build_tuner,
    experiment_path,
    grid_size,
    make_trainable,
    quiet_loggers,
)

logger = logging.getLogger(__name__)
__all__ = ["run_search", "resume_search", "pull_results"]


def _resolve_gpu_memory(cfg: SearchConfig) -> SearchConfig:
    """Fill in the GPU size memory packing divides by (NVML on the GPU nodes), once, before
    hpsearch.json is written, so `resume` packs the same way."""
    res = cfg.resources
    # Before anything is written: a cluster without the GPUs asked for is a user error.
    cluster.check_gpus(res.gpus_per_trial, res.gpu_auto)
    if not (res.uses_gpus and res.memory_packing) or res.gpu_memory_mb:
        return cfg
    found = cluster.gpu_memory_mb()
    if found is None:
        if res.gpu_auto:
            raise UserError(cluster.NO_GPU_MEMORY)
        logger.warning("GPU memory unknown (NVML found no device): every trial gets "
                       "--gpus-per-trial %s with no memory check; pass --gpu-memory-mb to "
                       "pack by memory", res.gpus_per_trial)
        return cfg
    return dataclasses.replace(cfg, resources=dataclasses.replace(res, gpu_memory_mb=found))


def _meta(cfg: SearchConfig, trainer, grid: bool, total: int) -> dict:
    """What hpsearch.json records: the full SearchConfig plus facts analysis needs."""
    return {**config_to_dict(cfg), "grid": grid, "trials_planned": total,
            "metric_name": trainer.metric, "hpsearch_version": __version__,
            # Where `module:function` trainers were imported from, for resume and export.
            "import_path": os.getcwd() if ":" in cfg.trainer else None,
            "experiment": experiment_path(cfg),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": False}


def _all_ended(rd: RunDir, meta: dict, experiment: str, expected: int) -> bool:
    """Whether Tune's saved state has every planned trial ended (plus those only optuna.db
    has, see ledger.py). (Tune's ResultGrid counts trials it stopped on Ctrl-C as
    terminated; the state saved before that says PENDING.)"""
    statuses = None if storage.is_uri(experiment) else tune_state.saved_statuses(
        Path(experiment))
    if statuses is None:  # in a bucket (or unreadable here): Tune reads it
        try:
            statuses = {t.trial_id: t.status for t in tune.ExperimentAnalysis(experiment).trials}
        except Exception as exc:  # no readable state: not finished, `resume` will say more
            logger.warning("cannot read Tune's experiment state: %s", exc)
            return False
    ended = sum(s in ("TERMINATED", "ERROR") for s in statuses.values())
    return ended >= expected or ended + ledger.ended_outside_tune(
        rd, meta.get("study_name"), set(statuses)) >= expected


def _finish(rd: RunDir, meta: dict, experiment: str, expected: int) -> Run:
    """Write epochs.csv/trials.csv; mark the run finished unless Ctrl-C or a guard cut it
    short, so `hpsearch resume` can complete it."""
    budget = EpochBudget.REACHED.pop(str(rd.path), None)
    if budget is not None:
        meta["budget_spent"] = budget
    finished = (DiskGuard.tripped(rd.path) is None and not ContractGuard.message(rd.path)
                and (budget is not None or _all_ended(rd, meta, experiment, expected)))
    by = guard.stopped_by(rd.path)  # (read even when every trial had ended: it is read once)
    meta["finished"], meta["stopped_by"] = finished, None if finished else by
    if not finished:
        logger.warning("search interrupted before its %d trials ended; finish it with "
                       "'hpsearch resume %s'", expected, rd.path)
    run = load_run(rd, require_trials=False, meta=meta)
    rd.write_table(layout.EPOCHS, run.epochs)
    rd.write_table(layout.TRIALS, run.trials)
    rd.write_meta(meta)  # last: a run marked finished has its tables (`RunDir.settled`)
    return run


def _check_storage(cfg: SearchConfig) -> None:
    if (cfg.address or "").startswith("ray://"):
        storage.check_shared(cfg, Path(cfg.run_dir))  # before connecting
    if storage.is_uri(cfg.storage):
        storage.check_uri(cfg.storage)
        if tune.Tuner.can_restore(experiment_path(cfg)):
            raise UserError(f"{storage.redact(experiment_path(cfg))} already holds a run; "
                            "choose another --out name")


def run_search(cfg: SearchConfig, stream: str | None = "stdout", grid: bool = False,
               num_cpus: int | None = None, num_gpus: int | None = None, verbose: bool = False,
               announce: Callable[[SearchConfig], Any] | None = None) -> Run:
    """Run a search end to end: validate, lock the run directory, start a private Ray (or
    join `cfg.address`), fit, write epochs.csv/trials.csv.

    Args:
        cfg: the search.
        stream: where the progress line goes ("stdout", "stderr"), or None for none.
        grid: evaluate the space's hand grid instead of sampling.
        num_cpus, num_gpus: local Ray only.
        verbose: let Ray log at INFO.
        announce: called with the config once it is accepted, before anything is written.

    Returns:
        The loaded run.
    """
    rd = RunDir(cfg.run_dir)
    if rd.exists():
        raise UserError(f"{rd.path} already holds a run; choose another --out "
                        f"(or 'hpsearch resume {rd.path}' if it was interrupted)")
    trainer, space = validate(cfg, grid, num_cpus)
    if cfg.mode is None:  # a SearchConfig built without one: the metric's own direction
        cfg = dataclasses.replace(cfg, mode=default_mode(cfg.metric, trainer.mode))
    _check_storage(cfg)
    if cfg.address is None and not ray.is_initialized():  # a private Ray: check before it starts
        found = cluster.local_gpu_memory_mb(cfg.resources, num_gpus)
        if found:
            cfg = dataclasses.replace(cfg, resources=dataclasses.replace(
                cfg.resources, gpu_memory_mb=found))
    if not cfg.study_name:
        cfg = dataclasses.replace(cfg, study_name=f"{rd.name}-{uuid.uuid4().hex[:8]}")
    total = grid_size(space) if grid else cfg.samples
    if announce is not None:
        announce(cfg)
    rd.create()
    try:
        check_free(rd.path)
        return _locked_run(rd, cfg, trainer, space, grid, total, stream, num_cpus, num_gpus,
                           verbose)
    except BaseException:
        if not rd.exists():  # failed before anything was written: leave nothing
            rd.discard()
        raise


def _preload_study_storage() -> None:
    """Open a throwaway in-memory study storage in a thread while Ray starts: SQLAlchemy,
    its mappers and alembic's scripts load (~1.2 s); the run's optuna.db then opens in 0.1 s."""
    def load() -> None:
        with contextlib.suppress(Exception):  # Optuna says what it lacks when it needs it
            optuna.storages.RDBStorage("sqlite:///:memory:")
    threading.Thread(target=load, name="hpsearch-preload", daemon=True).start()


def _start_over(rd, cfg, meta, stream, num_cpus, verbose) -> Run:
    """`resume` of a run whose driver was killed before Ray Tune saved any state, with no
    trial ended: nothing can be restored and nothing is lost by running the search again
    from its start, in its own directory (under the lock the caller holds). Folders of
    trials begun meanwhile go to .lost-trials/."""
    logger.warning("%s: the search was stopped before Ray Tune saved its state, and no trial "
                   "had ended; it starts again", rd.path)
    for folder in rd.trial_dirs(begun=True):
        tune_state.set_aside_folder(rd, folder)
    if meta.get("import_path"):
        trainers.add_import_path(meta["import_path"])
    grid = bool(meta.get("grid"))
    trainer, space = validate(cfg, grid)
    return _locked_run(rd, cfg, trainer, space, grid, meta.get("trials_planned") or cfg.samples,
                       stream, num_cpus, None, verbose, again=meta)


def _locked_run(rd, cfg, trainer, space, grid, total, stream, num_cpus, num_gpus, verbose,
                again: dict | None = None):
    """The search itself, holding the run directory's lock (`again`: the recorded meta of a
    run started over by `resume`, which holds the lock already)."""
    with contextlib.nullcontext() if again else rd.lock():
        if rd.exists() and not again:  # another run took the directory meanwhile
            raise UserError(f"{rd.path} already holds a run; choose another --out")
        started_here = not ray.is_initialized()
        if started_here:  # (only a connect that does work has time to overlap the preload)
            _preload_study_storage()
            cluster.cleanup_stale(rd)  # a run killed while its Ray started, before hpsearch.json
        temp_dir = cluster.connect(cfg.address, num_cpus=num_cpus, num_gpus=num_gpus,
                                   verbose=verbose, rundir=rd,
                                   cpus_per_trial=cfg.resources.cpus_per_trial)
        try:
            cfg = _resolve_gpu_memory(cfg)
            storage.check_shared(cfg, rd.path)
            meta = _meta(cfg, trainer, grid, total)
            if again:  # where a user trainer was imported from, and when the run began
                meta.update({k: again[k] for k in ("import_path", "created") if k in again})
            rd.write_meta(meta)
            guard = DiskGuard(rd.path, local=not storage.is_uri(cfg.storage))
            callbacks = ([Progress(total, cfg.metric, cfg.mode, stream, cfg.max_epochs)]
                         if stream else [])
            tuner = build_tuner(cfg, space, callbacks + [guard, ContractGuard(rd.path)], grid)
            with storage.credentials_hidden(), quiet_loggers(), fitting(rd, temp_dir):
                try:
                    tuner.fit()
                finally:
                    searcher.flush_all()  # every ended trial in optuna.db
            pull_results(cfg)
            return stop_if_guarded(rd, _finish(rd, meta, experiment_path(cfg), total))
        finally:
            if started_here and temp_dir:
                cluster.shutdown(temp_dir)
                rd.remove(layout.PROCESSES)


def pull_results(cfg: SearchConfig, source: str | None = None) -> None:
    """With cloud storage, copy the trials' result files into the local run directory."""
    if storage.is_uri(cfg.storage):
        storage.pull_results(source or experiment_path(cfg), RunDir(cfg.run_dir))


def resume_search(run_dir: str | Path, stream: str | None = "stdout",
                  num_cpus: int | None = None, verbose: bool = False) -> Run:
    """Finish an interrupted run with `Tuner.restore` (errored trials resumed too). The run
    directory is trusted input: Ray Tune's restore unpickles its state."""
    rd = RunDir(run_dir)
    meta = rd.read_meta()
    rd.check_trusted()
    cfg = config_from_dict(meta)
    # Restore only into the directory the user named, never a path from inside the file.
    cfg = dataclasses.replace(cfg, run_dir=str(rd.path))
    source, was = str(rd.path), meta.get("experiment")
    if not storage.is_uri(cfg.storage) and was and Path(was).resolve() != rd.path.resolve():
        raise UserError(f"{rd.path} was moved from {was}: Ray Tune's saved state would put "
                        "new trials there; move it back to resume (analyze works anywhere)")
    if storage.is_uri(cfg.storage):
        storage.check_uri(cfg.storage)
        source = storage.recorded_experiment(meta)
    with rd.lock():
        check_free(rd.path, f"hpsearch resume {rd.path}")
        if not ray.is_initialized():  # first: also when the resume is refused below
            cluster.cleanup_stale(rd)
        if not storage.is_uri(cfg.storage):
            ledger.mend_record(rd, cfg.study_name, cfg.mode)  # a damaged optuna.db
            for name in tune_state.repair(rd, discard=lambda: not ledger.ended_outside_tune(
                    rd, cfg.study_name, set())):
                logger.warning("%s was cut short (full disk, or a kill while Tune copied it); "
                               "restored its last good copy", name)
            for path in tune_state.mend_checkpoints(rd):
                logger.warning("Tune's saved state named %s, deleted after a newer checkpoint "
                               "was saved; the trial resumes from its newest one", path)
            tune_state.reopen_search(rd)  # a config Tune lost must still run
        else:
            storage.reopen_search(source)  # the same, in the bucket
        # Tune writes tuner.pkl when the Tuner is built, its trial list once it runs: a
        # driver killed in between left nothing to restore (restoring it ran half a search).
        if not (tune.Tuner.can_restore(source) and (storage.is_uri(cfg.storage)
                                                     or tune_state.saved(rd))):
            if storage.is_uri(cfg.storage) or ledger.ended_outside_tune(rd, cfg.study_name,
                                                                       set()):
                raise UserError(f"{storage.redact(source)}: no Ray Tune trial list to resume "
                                "from; 'hpsearch analyze' reads the trials that ended")
            return _start_over(rd, cfg, meta, stream, num_cpus, verbose)
        before = ledger.running_numbers(rd, cfg.study_name)
        started_here = not ray.is_initialized()
        temp_dir = cluster.connect(cfg.address, num_cpus=num_cpus, verbose=verbose, rundir=rd,
                                   cpus_per_trial=cfg.resources.cpus_per_trial)
        try:
            DiskGuard.TRIPPED.pop(str(rd.path), None)
            ContractGuard.MESSAGES.pop(str(rd.path), None)
            tuner = tune.Tuner.restore(source,
                                       trainable=make_trainable(cfg, meta.get("import_path")),
                                       resume_errored=True, param_space=None)
            with storage.credentials_hidden(), fitting(rd, temp_dir):
                try:
                    results = tuner.fit()
                finally:
                    searcher.flush_all()
            pull_results(cfg, source)
            if before:
                ledger.fail_orphans(rd, cfg.study_name, before)
            total = meta.get("trials_planned") or (len(results) if meta.get("grid")
                                                   else cfg.samples)
            return stop_if_guarded(rd, _finish(rd, meta, source, total))
        finally:
            if started_here and temp_dir:
                cluster.shutdown(temp_dir)
                rd.remove(layout.PROCESSES)
