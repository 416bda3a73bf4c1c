"""Wiring the Tuner: OptunaSearch (define-by-run) + ASHAScheduler + RunConfig, run and resume."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
import uuid
from pathlib import Path

import optuna
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.util.client import ray as ray_client

from hpsearch import __version__, spaces, trainers
from hpsearch.analysis.frame import RUN_FILE, load_run, read_run_meta
from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
from hpsearch.errors import UserError
from hpsearch.search import cluster, packing, storage
from hpsearch.search.progress import ProgressLine
from hpsearch.search.searcher import PruneAwareOptunaSearch
from hpsearch.search.trainable import run_trial

logger = logging.getLogger(__name__)
__all__ = ["build_tuner", "run_search", "resume_search", "validate", "config_from_meta",
           "experiment_path", "pull_results"]


def validate(cfg: SearchConfig, grid: bool = False):
    """Resolve and cross-check trainer, space, fixed settings and points before Ray starts.

    Returns:
        (trainer, space).
    """
    trainer = trainers.get(cfg.trainer)
    space = spaces.get(cfg.space)
    if space.trainer and ":" not in cfg.trainer and space.trainer != cfg.trainer:
        raise UserError(f"space {space.name!r} is for trainer {space.trainer!r}, "
                        f"not {cfg.trainer!r}")
    trainer.make_config(dict(cfg.fixed))  # unknown keys and bad values fail here, not in Ray
    spaces.check_keys(space, trainer.config_cls, cfg.fixed)
    if grid and not space.grid:
        raise UserError(f"space {space.name!r} defines no grid for --grid")
    for point in cfg.points:
        if not isinstance(point, dict):
            raise UserError("--points must be a list of mappings (one config each)")
        trainer.make_config({**cfg.fixed, **point})
    return trainer, space


def _searcher(cfg: SearchConfig, space) -> PruneAwareOptunaSearch:
    db = optuna.storages.RDBStorage(f"sqlite:///{Path(cfg.run_dir) / 'optuna.db'}")
    sampler = (optuna.samplers.TPESampler(seed=cfg.seed) if cfg.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=cfg.seed))
    # A partial of a module-level function pickles by reference: Tuner.restore can reload it.
    fn = functools.partial(spaces.with_fixed, space_fn=space.fn, fixed=dict(cfg.fixed))
    return PruneAwareOptunaSearch(fn, metric=cfg.metric, mode=cfg.mode, sampler=sampler,
                                  storage=db, study_name=cfg.study_name,
                                  points_to_evaluate=[dict(p) for p in cfg.points] or None)


def _scheduler(cfg: SearchConfig):
    s = cfg.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="epoch", max_t=s.max_t, grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor)


def _trainable(cfg: SearchConfig):
    fn = tune.with_parameters(run_trial, trainer_name=cfg.trainer, metric=cfg.metric,
                              mode=cfg.mode)
    res = cfg.resources
    return tune.with_resources(fn, packing.resources_for(cfg.trainer, res, res.gpu_memory_mb,
                                                         str(cfg.run_dir)))


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
            raise UserError("--gpus-per-trial auto needs each GPU's memory and NVML found "
                            "none on the GPU nodes; pass --gpu-memory-mb MB")
        logger.warning("GPU memory unknown (NVML found no device): every trial gets "
                       "--gpus-per-trial %s with no memory check; pass --gpu-memory-mb to "
                       "pack by memory", res.gpus_per_trial)
        return cfg
    return dataclasses.replace(cfg, resources=dataclasses.replace(res, gpu_memory_mb=found))


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
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures))


def build_tuner(cfg: SearchConfig, callbacks: list | None = None, grid: bool = False) -> tune.Tuner:
    """The Tuner for `cfg`: metric/mode set once in TuneConfig (and OptunaSearch, which needs
    them too). Ray must already be initialised (see `search.cluster.connect`)."""
    _, space = validate(cfg, grid)
    res = cfg.resources
    slots = res.max_concurrent or cluster.concurrent_slots(
        res.cpus_per_trial, 0.0 if res.gpu_auto else res.gpus_per_trial, res.gpu_auto)
    callbacks = list(callbacks or [])
    if res.uses_gpus:
        callbacks.append(packing.PackingLog(cfg.run_dir, cfg.trainer))
    fixed = {**cfg.fixed, "epochs": cfg.max_epochs}
    if grid:
        param_space = {**fixed, **{k: tune.grid_search(list(v)) for k, v in space.grid.items()}}
        search_alg, samples = None, 1
    else:
        param_space = None
        search_alg, samples = _searcher(dataclasses.replace(cfg, fixed=fixed), space), cfg.samples
    tune_config = tune.TuneConfig(
        metric=cfg.metric, mode=cfg.mode, search_alg=search_alg, scheduler=_scheduler(cfg),
        num_samples=samples, max_concurrent_trials=slots, reuse_actors=True)
    return tune.Tuner(_trainable(cfg), param_space=param_space, tune_config=tune_config,
                      run_config=_run_config(cfg, callbacks))


def config_to_meta(cfg: SearchConfig, trainer, grid: bool) -> dict:
    """What hpsearch.json records: the full SearchConfig plus facts analysis needs."""
    return {**dataclasses.asdict(cfg), "points": list(cfg.points), "grid": grid,
            "metric_name": trainer.metric, "hpsearch_version": __version__,
            "experiment": experiment_path(cfg),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": False}


def config_from_meta(meta: dict) -> SearchConfig:
    """Rebuild the SearchConfig a run was started with."""
    keys = {f.name for f in dataclasses.fields(SearchConfig)}
    values = {k: v for k, v in meta.items() if k in keys}
    values["scheduler"] = SchedulerConfig(**values["scheduler"])
    values["resources"] = ResourcesConfig(**values["resources"])
    values["points"] = tuple(values.get("points", ()))
    return SearchConfig(**values)


def _write_meta(run_dir: Path, meta: dict) -> None:
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(run_dir / RUN_FILE)  # atomic: a crash never leaves half a file


def _finish(run_dir: Path, meta: dict, results, expected: int) -> None:
    """Write epochs.csv/trials.csv; mark the run finished unless Ctrl-C cut it short (Tune
    then returns with trials still pending or paused), so `hpsearch resume` can complete it."""
    finished = results.num_terminated + results.num_errors >= expected
    meta["finished"] = finished
    _write_meta(run_dir, meta)
    if not finished:
        logger.warning("search interrupted after %d of %d trials; finish it with "
                       "'hpsearch resume %s'", len(results), expected, run_dir)
    run = load_run(run_dir, require_trials=False)
    run.epochs.to_csv(run_dir / "epochs.csv", index=False)
    run.trials.to_csv(run_dir / "trials.csv", index=False)


def run_search(cfg: SearchConfig, stream: str = "stdout", grid: bool = False,
               num_cpus: int | None = None, num_gpus: int | None = None):
    """Run a search end to end: validate, start/join Ray, fit, write epochs.csv/trials.csv.

    Returns:
        The loaded `analysis.frame.Run`.
    """
    run_dir = Path(cfg.run_dir)
    if (run_dir / RUN_FILE).exists():
        raise UserError(f"{run_dir} already holds a run; use 'hpsearch resume {run_dir}' "
                        "or choose another --out")
    trainer, _ = validate(cfg, grid)
    if (cfg.address or "").startswith("ray://"):
        _check_shared_storage(cfg, run_dir)  # before connecting: no cluster needed to refuse
    if storage.is_uri(cfg.storage):
        storage.check_uri(cfg.storage)
        if tune.Tuner.can_restore(experiment_path(cfg)):
            raise UserError(f"{storage.redact(experiment_path(cfg))} already holds a run; "
                            "choose another --out name")
    if not cfg.study_name:
        cfg = dataclasses.replace(cfg, study_name=f"{run_dir.name}-{uuid.uuid4().hex[:8]}")
    started_here = cfg.address is None and not ray.is_initialized()
    cluster.connect(cfg.address, num_cpus=num_cpus, num_gpus=num_gpus)
    cfg = _resolve_gpu_memory(cfg)
    _check_shared_storage(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = config_to_meta(cfg, trainer, grid)
    _write_meta(run_dir, meta)
    if started_here:
        cluster.record_processes(run_dir)
    total = cfg.samples if not grid else _grid_size(cfg)
    progress = ProgressLine(total, cfg.metric, cfg.mode, stream)
    results = build_tuner(cfg, [progress], grid).fit()
    pull_results(cfg)
    _finish(run_dir, meta, results, total)
    (run_dir / cluster.PROCESS_FILE).unlink(missing_ok=True)
    return load_run(run_dir)


def _check_shared_storage(cfg: SearchConfig, run_dir: Path) -> None:
    """Trials on other nodes need storage they all reach. Through Ray Client (ray://) Tune's
    driver, the Optuna study included, runs on the head node: the run directory itself must
    be on a directory this machine and the cluster both mount. (Ray must be connected unless
    the address is ray://.)"""
    client = ray_client.is_connected() or (cfg.address or "").startswith("ray://")
    if not (client or cluster.is_multi_node()):
        return
    if storage.is_uri(cfg.storage) and not client:
        return
    shared = Path(cfg.storage).resolve() if cfg.storage and not storage.is_uri(cfg.storage) \
        else None
    if shared is not None and shared in (run_dir, *run_dir.parents):
        return
    if client:
        raise UserError("through ray:// Tune runs on the head node: pass --storage DIR, a "
                        "directory mounted here and on the cluster (the run directory goes "
                        "inside it), or run hpsearch on a cluster node with --address auto "
                        "(e.g. via 'ray job submit')")
    raise UserError("a multi-node cluster needs shared storage: pass --storage DIR "
                    "(mounted on every node; the run directory goes inside it) or a "
                    "cloud URI (s3://bucket/prefix)")


def pull_results(cfg: SearchConfig, source: str | None = None) -> None:
    """With cloud storage, copy the trials' result files into the local run directory."""
    if storage.is_uri(cfg.storage):
        storage.pull_results(source or experiment_path(cfg), Path(cfg.run_dir))


def _load_study(run_dir: Path, study_name: str):
    db = run_dir / "optuna.db"
    if not db.exists() or not study_name:
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    except KeyError:
        return None


def _fail_orphans(study, numbers: set[int]) -> None:
    """Optuna trials left RUNNING by the killed driver that the restored searcher never
    picked up again are marked FAIL, so the study has no phantom running trials."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in numbers:
            study.tell(t.number, state=TrialState.FAIL)
            logger.warning("optuna trial %d was orphaned by the crash; marked FAIL", t.number)


def _grid_size(cfg: SearchConfig) -> int:
    n = 1
    for values in (spaces.get(cfg.space).grid or {}).values():
        n *= len(values)
    return n


def resume_search(run_dir: str | Path, stream: str = "stdout",
                  num_cpus: int | None = None):
    """Finish an interrupted run with `Tuner.restore` (errored trials resumed too)."""
    run_dir = Path(run_dir).resolve()
    meta = read_run_meta(run_dir)
    cfg = config_from_meta(meta)
    if str(Path(cfg.run_dir).resolve()) != str(run_dir):
        # Restore only from the directory the user named, never from a path inside the file.
        cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    source = str(run_dir)
    if storage.is_uri(cfg.storage):
        storage.check_uri(cfg.storage)
        source = storage.recorded_experiment(meta)
    if not tune.Tuner.can_restore(source):
        raise UserError(f"{storage.redact(source)}: no Ray Tune experiment state to resume from")
    if not ray.is_initialized():
        cluster.cleanup_stale(run_dir)
    study = _load_study(run_dir, cfg.study_name)
    before = {t.number for t in study.trials if t.state == TrialState.RUNNING} if study else set()
    cluster.connect(cfg.address, num_cpus=num_cpus)
    tuner = tune.Tuner.restore(source, trainable=_trainable(cfg), resume_errored=True,
                               param_space=None)
    results = tuner.fit()
    pull_results(cfg, source)
    if study:
        _fail_orphans(study, before)
    _finish(run_dir, meta, results, cfg.samples if not meta.get("grid") else len(results))
    return load_run(run_dir)
