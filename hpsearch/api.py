"""The public Python API: what the CLI and notebooks call. Each function takes plain
values, checks them (one `UserError` per mistake, before Ray starts) and returns data."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from hpsearch import config as _config
from hpsearch.errors import UserError
from hpsearch.rundir import RunDir

if TYPE_CHECKING:  # pandas (the tables) costs ~0.3 s to import: not on the CLI's error paths
    import pandas as pd

    from hpsearch.rundir import Run

__all__ = ["search_config", "run", "resume", "load_run", "analyze", "export", "train",
           "estimate", "load_document", "Analysis", "Export"]


def _prepare_ray(address: str | None) -> None:
    """A local run's Ray listens on loopback only: Ray reads its single-machine switch when
    it is first imported, so set it before that (a joined cluster keeps Ray's default)."""
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0" if address is None else "1")
    # Tune warns on every snapshot when trials checkpoint each short epoch; that is by design.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Tune banner; hpsearch reports


def _check_local(address: str | None, num_cpus: int | None, num_gpus: int | None) -> None:
    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
    if num_gpus is not None and num_gpus < 0:
        raise UserError(f"--num-gpus must be >= 0, got {num_gpus}")
    if address and (num_cpus is not None or num_gpus is not None):
        raise UserError("--num-cpus/--num-gpus size a local Ray; a joined cluster has its own")


def _user_modules(meta: dict) -> None:
    """A run of a `module:function` trainer imports it from where the run started."""
    if isinstance(meta.get("import_path"), str):
        from hpsearch.trainers import add_import_path

        add_import_path(meta["import_path"])


def load_document(path: str | Path) -> Any:
    """A YAML or JSON file (`yaml.safe_load`, aliases refused), or one clear UserError."""
    from hpsearch.spaces.yaml_space import safe_load_file

    return safe_load_file(path)


def search_config(trainer: str | None = None, space: str | None = None, *,
                  out: str | Path | None = None, samples: int = 16, max_epochs: int = 10,
                  fixed: Mapping | Sequence[str] | None = None, scheduler: str | None = None,
                  grace_period: int = 1, reduction_factor: float = 3.0, sampler: str = "tpe",
                  seed: int = 0, metric: str = "val_metric", mode: str | None = None,
                  points: Sequence[dict] | str | Path | None = None,
                  cpus_per_trial: float = 1.0, gpus_per_trial: float | str = 0.0,
                  gpu_memory_mb: float | None = None, gpu_overhead_mb: float = 512.0,
                  memory_packing: bool = True, max_concurrent: int | None = None,
                  address: str | None = None, storage: str | None = None,
                  max_failures: int = 2, budget_epochs: int | None = None,
                  grid: bool = False) -> _config.SearchConfig:
    """Build and check a `SearchConfig` from plain values (the defaults of `hpsearch run`).

    Args:
        trainer: "mlp" | "lm" | "vit" | "package.module:function" (default: the space's
            trainer, else mlp).
        space: a registered space or a .yaml file (default: the trainer's).
        out: the run directory (default runs/TRAINER-SPACE-TIME).
        fixed: trainer settings for every trial, a dict or `key=value` strings.
        points: configs evaluated first: a list of dicts or a YAML/JSON file of one.
        gpus_per_trial: a share of a GPU, or "auto" (the memory estimate alone).
        scheduler: "hyperband" (default), "asha" or "fifo"; for a `grid` run the default is
            "fifo": a grid is run to be tabulated, every config to its last epoch.
        Other arguments: as the `hpsearch run` flags of the same name.

    Returns:
        The frozen SearchConfig.
    """
    from hpsearch import spaces, trainers
    from hpsearch.search import storage as _storage

    spec = spaces.get(space) if space else None  # a bad space file or name fails here
    trainer_name = trainer or (spec.trainer if spec else None) or "mlp"
    resolved = trainers.get(trainer_name)
    space = space or spaces.default_for(trainer_name)
    if isinstance(points, (str, Path)):
        doc = load_document(points)
        if not isinstance(doc, list):
            raise UserError(f"{points}: expected a list of configs")
        points = doc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = out or f"runs/{trainer_name.replace(':', '.')}-{Path(space).stem}-{stamp}"
    if storage and not _storage.is_uri(storage):
        out = str(Path(storage) / Path(out).name)
    auto = gpus_per_trial == "auto"
    try:
        share = 0.0 if auto else float(gpus_per_trial)
    except (TypeError, ValueError):
        raise UserError(f"--gpus-per-trial: expected a number or 'auto', got "
                        f"{gpus_per_trial!r}") from None
    try:
        return _config.SearchConfig(
            trainer=trainer_name, space=space, run_dir=str(Path(out).absolute()),
            samples=samples, max_epochs=max_epochs, metric=metric,
            mode=mode or _config.default_mode(metric, resolved.mode), sampler=sampler,
            seed=seed,
            scheduler=_config.SchedulerConfig(scheduler or ("fifo" if grid else "hyperband"),
                                              grace_period, reduction_factor),
            resources=_config.ResourcesConfig(
                cpus_per_trial, share, max_concurrent,
                gpu_auto=auto, memory_packing=memory_packing, gpu_memory_mb=gpu_memory_mb,
                gpu_overhead_mb=gpu_overhead_mb),
            fixed=_config.checked_values(resolved.config_cls, fixed), points=tuple(points or ()),
            address=address, storage=storage, max_failures=max_failures,
            budget_epochs=budget_epochs)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def run(trainer: str | None = None, space: str | None = None, *, grid: bool = False,
        num_cpus: int | None = None, num_gpus: int | None = None,
        progress: str | None = "stdout", verbose: bool = False,
        announce: Callable[[_config.SearchConfig], Any] | None = None, **settings) -> Run:
    """Run a search and return the loaded run (see `search_config` for `settings`).
    `announce(config)` is called once every input has been checked, before anything is
    written or Ray starts.

    Example:
        >>> run = hpsearch.run("mlp", "mlp_optimizers", samples=8, max_epochs=3,
        ...                    fixed={"data": "digits"}, out="runs/demo")
        >>> run.trials_dataframe().head()
    """
    cfg = settings.pop("config", None) or search_config(trainer, space, grid=grid, **settings)
    _check_local(cfg.address, num_cpus, num_gpus)
    _prepare_ray(cfg.address)
    from hpsearch.search import checks

    checks.validate(cfg, grid, num_cpus)  # a bad input: refused before Ray Tune is imported
    from hpsearch.search import run_search

    return run_search(cfg, stream=progress, grid=grid, num_cpus=num_cpus, num_gpus=num_gpus,
                      verbose=verbose, announce=announce)


def resume(run_dir: str | Path, *, num_cpus: int | None = None,
           progress: str | None = "stdout", verbose: bool = False) -> Run:
    """Finish an interrupted search (a trusted run directory: Ray Tune unpickles its state).
    A finished run (`RunDir.settled`) is loaded as it is: no Ray starts, nothing is written."""
    rd = RunDir(run_dir)
    meta = rd.read_meta()
    _user_modules(meta)
    _check_local(meta.get("address"), num_cpus, None)
    if rd.settled(meta):
        import logging

        logging.getLogger(__name__).warning("%s finished already; nothing to resume", rd.path)
        return load_run(run_dir)
    _prepare_ray(meta.get("address"))
    from hpsearch.search import resume_search

    return resume_search(run_dir, stream=progress, num_cpus=num_cpus, verbose=verbose)


def load_run(run_dir: str | Path, warn: Callable[[str], Any] | None = None,
             at_epoch: int | None = None) -> Run:
    """Load a run as pandas frames (`run.trials`, `run.epochs`, `run.best_config()`), its
    trials compared at epoch `at_epoch` (default: see `Run.compare`). With cloud storage
    the latest trial results are copied down first (falling back to the local copy, with
    `warn` called)."""
    meta = RunDir(run_dir).read_meta()
    _user_modules(meta)
    from hpsearch.search import storage

    if storage.is_uri(meta.get("storage")):
        try:
            storage.pull_results(storage.recorded_experiment(meta), RunDir(run_dir))
        except UserError as exc:
            if warn:
                warn(f"{exc}; analysing the local copy")
    from hpsearch.rundir import load_run as _load_local

    return _load_local(run_dir, at_epoch=at_epoch)


@dataclass(frozen=True)
class Analysis:
    """What `analyze` wrote: the run, report.html and the summary table (markdown)."""
    run: Run
    report: Path
    summary: str


def analyze(run_dir: str | Path | Run, fmt: str = "md",
            warn: Callable[[str], Any] | None = None, at_epoch: int | None = None,
            predicted: bool = False) -> Analysis:
    """Write runs/NAME/report/ (figures, CSV tables, summary, report.html), every
    comparison at one epoch: `at_epoch`, or by default the highest epoch that at least
    max(3, 1/4 of the trials) reached (`Run.compare` says which and how many). `predicted`
    adds each config's final score as a model predicts it, labelled as predicted."""
    # A wrong path is refused before the tables and the analysis (pandas, matplotlib, seaborn,
    # plotly) are imported.
    run_ = (load_run(run_dir, warn, at_epoch) if isinstance(run_dir, (str, os.PathLike))
            else run_dir)
    from hpsearch.analysis import stopping
    from hpsearch.analysis.report import write_report
    from hpsearch.analysis.summary import compute_summary, render

    path = write_report(run_, fmt, predicted=predicted)
    for text in stopping.warnings(stopping.compute_agreement(run_)) if warn else ():
        warn(text)
    from hpsearch.analysis.curves import contention_note

    note = contention_note(run_.trials) if warn else ""
    if note:
        warn(note)
    from hpsearch.analysis.summary import fair_lines

    text = render(compute_summary(run_.trials, run_.meta.get("trainer", "?"), run_.mode), "md")
    text += "".join(f"\n{line}" for line in fair_lines(run_.trials, run_.mode))
    return Analysis(run_, path, text)


@dataclass(frozen=True)
class Export:
    """What `export` wrote: (path, document) per config, and the seed confirmation."""
    written: list
    confirmed: pd.DataFrame | None = None


def export(run_dir: str | Path, out: str | Path = "best", top: int = 3, fmt: str = "yaml",
           confirm_seeds: int = 0, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
           address: str | None = None, warn: Callable[[str], Any] | None = None,
           save_models: str | Path | None = None) -> Export:
    """Write the top-k configs (`hpsearch train --config` re-runs them); with
    `confirm_seeds` > 0 re-train each on that many fresh seeds (Ray tasks) and rank them."""
    if confirm_seeds < 0:
        raise UserError("--confirm-seeds must be >= 0")
    if save_models and not confirm_seeds:
        raise UserError("--save-models keeps the weights of --confirm-seeds re-trainings; "
                        "pass --confirm-seeds N")
    run_ = load_run(run_dir, warn)  # a wrong path is refused before pandas and the analysis load
    from hpsearch.analysis.export import export_best_configs, rank_confirmed

    if save_models:  # checked before anything is written
        from hpsearch import trainers
        from hpsearch.trainers.saving import ModelKeeper

        ModelKeeper.check_dir(trainers.get(run_.meta["trainer"]), Path(save_models), top)
    written = export_best_configs(run_, out, top, fmt, confirm=bool(confirm_seeds), warn=warn)
    if not confirm_seeds:
        return Export(written)
    _prepare_ray(address)
    import ray

    from hpsearch.search import cluster, confirm

    started = not ray.is_initialized()
    temp_dir = cluster.connect(address)
    try:
        raw = confirm.confirm_seeds([d for _, d in written], confirm_seeds, cpus_per_task,
                                    gpus_per_task, str(save_models) if save_models else None,
                                    run_.metric)
    finally:
        if started:
            cluster.shutdown(temp_dir)
    ranked = rank_confirmed(raw, run_.mode, run_.metric)
    raw.to_csv(Path(out) / "confirm_runs.csv", index=False)
    ranked.to_csv(Path(out) / "confirm.csv", index=False)
    _record_exported(run_, ranked)
    return Export(written, ranked)


def _record_exported(run_: Run, ranked: pd.DataFrame) -> None:
    """Keep the confirmed exports' test metrics beside the run's report, the one place the
    analysis shows held-out test data (never a searched trial's)."""
    from hpsearch.rundir import layout

    report = run_.rundir.report_dir
    try:
        report.mkdir(exist_ok=True)
        layout.atomic_write(report / layout.EXPORTED, ranked.to_csv(index=False))
    except OSError as exc:  # the export itself succeeded; the report just lacks the table
        import logging

        logging.getLogger(__name__).warning("could not record the export in %s: %s",
                                            report, exc)


from hpsearch.single import estimate, train  # noqa: E402  (re-exported)
