"""Command line: hpsearch run | resume | analyze | export | train | estimate | spaces | trainers.
Parsing and printing only; the work lives in the packages. User errors exit 2 in one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

from hpsearch.errors import UserError

DEFAULT_SPACE = {"mlp": "mlp_optimizers", "lm": "lm_optimizers_depth", "vit": "vit_norm_depth"}


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trainer", help="mlp | lm | vit | package.module:function (default: the "
                   "space's trainer, else mlp)")
    p.add_argument("--space", help="registered space or a .yaml file (default: per trainer)")
    p.add_argument("--samples", type=int, default=16, help="trials to run (default 16)")
    p.add_argument("--max-epochs", type=int, default=10, help="epochs per trial, ASHA max_t")
    p.add_argument("--out", help="run directory (default runs/TRAINER-SPACE-TIME)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a trainer setting for every trial, e.g. --set data=digits")
    p.add_argument("--scheduler", choices=["asha", "fifo"], default="asha")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before stopping")
    p.add_argument("--reduction-factor", type=float, default=3.0, help="ASHA: keep 1/this")
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--metric", default="val_metric", help="reported key to optimise")
    p.add_argument("--mode", choices=["min", "max"], help="default: the trainer's direction")
    p.add_argument("--points", help="YAML/JSON list of configs to evaluate first")
    p.add_argument("--grid", action="store_true", help="evaluate the space's hand grid instead")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=_gpu_share, default=0.0, metavar="SHARE|auto",
                   help="GPU share per trial (fractions share a device; a config whose "
                   "estimated memory needs more gets more); auto: from the estimate alone")
    p.add_argument("--gpu-memory-mb", type=float, metavar="MB",
                   help="memory of each GPU for packing (default: read with NVML)")
    p.add_argument("--gpu-overhead-mb", type=float, default=512.0, metavar="MB",
                   help="per-trial memory outside torch: CUDA context, workspaces (512)")
    p.add_argument("--no-memory-packing", action="store_true",
                   help="give every trial exactly --gpus-per-trial, no memory estimate")
    p.add_argument("--max-concurrent", type=int, help="default: what the cluster fits")
    p.add_argument("--address", help="join a Ray cluster: auto | ray://HOST:PORT")
    p.add_argument("--storage", metavar="DIR|URI", help="where trials are kept (needed on a "
                   "multi-node cluster): a directory every node mounts (the run directory is "
                   "DIR/NAME) or a cloud URI, e.g. s3://bucket/prefix (trials go to URI/NAME, "
                   "the run directory stays local)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial")
    p.add_argument("--num-cpus", type=int, help="local Ray only: CPUs to use")
    p.add_argument("--num-gpus", type=int, help="local Ray only: GPUs to use (default: all)")


def _gpu_share(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpsearch", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_args(sub.add_parser("run", help="launch a search"))
    p = sub.add_parser("resume", help="finish an interrupted search")
    p.add_argument("run_dir")
    p.add_argument("--num-cpus", type=int)
    p = sub.add_parser("train", help="train one config without Ray")
    p.add_argument("--trainer", help="mlp | lm | vit | package.module:function")
    p.add_argument("--config", help="an exported config (YAML or JSON)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print rows as JSON lines")
    p = sub.add_parser("estimate", help="estimate one config's peak GPU memory (no GPU needed)")
    p.add_argument("--trainer", help="mlp | lm | vit | package.module:function")
    p.add_argument("--config", help="an exported config (YAML or JSON)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--gpu-memory-mb", type=float, metavar="MB", help="also print the GPU share")
    p.add_argument("--gpu-overhead-mb", type=float, default=512.0, metavar="MB")
    p = sub.add_parser("analyze", help="write runs/NAME/report/ (figures, tables, report.html)")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["md", "html", "csv"], default="md",
                   help="format of the summary table file")
    p = sub.add_parser("export", help="write the top-k configs for `hpsearch train --config`")
    p.add_argument("run_dir")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")
    p.add_argument("--out", default="best", help="output directory (default best/)")
    p.add_argument("--confirm-seeds", type=int, default=0, metavar="N",
                   help="re-train each config on N fresh seeds (Ray, in parallel)")
    p.add_argument("--cpus-per-task", type=float, default=1.0)
    p.add_argument("--gpus-per-task", type=float, default=0.0)
    p.add_argument("--address", help="Ray cluster for --confirm-seeds (default: local)")
    p = sub.add_parser("spaces", help="list spaces, or show one's parameters")
    p.add_argument("name", nargs="?")
    sub.add_parser("trainers", help="list trainers and their settings")
    return parser


def _load_doc(path: str):
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {path}")
    try:
        return yaml.safe_load(p.read_text())  # JSON is YAML too
    except yaml.YAMLError:
        raise UserError(f"{path}: malformed YAML/JSON") from None


def _search_config(args):
    from hpsearch import spaces, trainers
    from hpsearch.config import (ResourcesConfig, SchedulerConfig, SearchConfig, coerce_value,
                                 parse_literal)
    from hpsearch.search import storage

    space_name = args.space
    trainer_name = args.trainer or (spaces.get(space_name).trainer if space_name else None) or "mlp"
    trainer = trainers.get(trainer_name)
    space_name = space_name or DEFAULT_SPACE.get(trainer_name)
    if not space_name:
        raise UserError(f"trainer {trainer_name!r} has no default space; pass --space")
    fixed = {}
    for item in args.sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        fixed[key.strip()] = coerce_value(trainer.config_cls, key.strip(), parse_literal(raw))
    points = ()
    if args.points:
        doc = _load_doc(args.points)
        if not isinstance(doc, list):
            raise UserError(f"{args.points}: expected a list of configs")
        points = tuple(doc)
    out = args.out or f"runs/{trainer_name.replace(':', '.')}-{space_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.storage and not storage.is_uri(args.storage):
        out = str(Path(args.storage) / Path(out).name)
    try:
        sched = SchedulerConfig(args.scheduler, args.grace_period, args.reduction_factor,
                                args.max_epochs)
        auto = args.gpus_per_trial == "auto"
        res = ResourcesConfig(args.cpus_per_trial, 0.0 if auto else args.gpus_per_trial,
                              args.max_concurrent, gpu_auto=auto,
                              memory_packing=not args.no_memory_packing,
                              gpu_memory_mb=args.gpu_memory_mb,
                              gpu_overhead_mb=args.gpu_overhead_mb)
        return SearchConfig(
            trainer=trainer_name, space=space_name, run_dir=str(Path(out).resolve()),
            samples=args.samples, max_epochs=args.max_epochs, metric=args.metric,
            mode=args.mode or trainer.mode, sampler=args.sampler, seed=args.seed,
            scheduler=sched, resources=res, fixed=fixed, points=points, address=args.address,
            max_failures=args.max_failures, storage=args.storage)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _print_best(run) -> None:
    trials = run.trials
    if trials.empty:
        print("no trial reported a result")
        return
    counts = trials["status"].value_counts().to_dict()
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    best = trials.iloc[0]
    print(f"best trial {best['trial_id']}: val_metric ({run.metric_name}) = "
          f"{best['best_val_metric']:.4g} after {best['epochs']} epochs, status {best['status']}")
    for p in run.params:
        value = best.get(p)
        if not (isinstance(value, float) and math.isnan(value)):  # nan: not used by this branch
            print(f"  {p} = {value}")
    print(f"results: {run.path}  (epochs.csv, trials.csv, optuna.db)")
    print(f"next: hpsearch analyze {run.path}")


def cmd_run(args) -> int:
    from hpsearch.search import run_search

    cfg = _search_config(args)
    print(f"search: trainer={cfg.trainer} space={cfg.space} samples={cfg.samples} "
          f"max_epochs={cfg.max_epochs} metric={cfg.metric} ({cfg.mode}) -> {cfg.run_dir}")
    run = run_search(cfg, grid=args.grid, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    _print_best(run)
    if not run.meta.get("finished"):
        print(f"interrupted: finish with 'hpsearch resume {run.path}'", file=sys.stderr)
        return 130
    return 0


def cmd_resume(args) -> int:
    from hpsearch.search import resume_search

    run = resume_search(args.run_dir, num_cpus=args.num_cpus)
    _print_best(run)
    return 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _load_run(run_dir: str):
    """Load a run; with cloud storage, first copy the latest trial results down (a run
    still going elsewhere, or a local copy lost), falling back to the local copy."""
    from hpsearch.analysis.frame import load_run, read_run_meta
    from hpsearch.search import storage

    meta = read_run_meta(Path(run_dir))
    if storage.is_uri(meta.get("storage")):
        try:
            storage.pull_results(storage.recorded_experiment(meta), Path(run_dir))
        except UserError as exc:
            print(f"hpsearch: warning: {exc}; analysing the local copy", file=sys.stderr)
    return load_run(run_dir)


def cmd_analyze(args) -> int:
    from hpsearch.analysis.report import write_report
    from hpsearch.analysis.summary import compute_summary, render

    run = _load_run(args.run_dir)
    path = write_report(run, args.format)
    print(render(compute_summary(run.trials, run.meta.get("trainer", "?"), run.mode), "md"))
    print(f"report: {path}")
    return 0


def cmd_export(args) -> int:
    from hpsearch.analysis import export

    if args.confirm_seeds < 0:
        raise UserError("--confirm-seeds must be >= 0")
    run = _load_run(args.run_dir)
    written = export.export_best_configs(run, args.out, args.top, args.format)
    paths, docs = [p for p, _ in written], [d for _, d in written]
    for p, d in written:
        m = d["metrics"]
        print(f"{p}: trial {d['trial_id']} best_val_metric={_fmt(m['best_val_metric'])} "
              f"final_val_metric={_fmt(m['final_val_metric'])}")
    if args.confirm_seeds:
        from hpsearch.search import cluster

        cluster.connect(args.address)
        raw = export.confirm_seeds(docs, args.confirm_seeds, args.cpus_per_task,
                                   args.gpus_per_task)
        ranked = export.rank_confirmed(raw, run.mode)
        raw.to_csv(Path(args.out) / "confirm_runs.csv", index=False)
        ranked.to_csv(Path(args.out) / "confirm.csv", index=False)
        print(f"confirmation on {args.confirm_seeds} fresh seeds (mean ± std of val_metric):")
        for r in ranked.itertuples():
            print(f"  #{r.confirmed_rank} (search #{r.search_rank}) trial {r.trial_id}: "
                  f"{_fmt(r.mean)} ± {_fmt(r.std)}")
        winner = ranked.iloc[0]
        if winner["search_rank"] != 1:
            print(f"note: the search's winner (search #1) is NOT the confirmed winner: "
                  f"trial {winner['trial_id']} (search #{winner['search_rank']}) wins on "
                  "fresh seeds")
        else:
            print("the search's winner is confirmed on fresh seeds")
    print(f"re-run: hpsearch train --config {paths[0]}")
    return 0


def _one_config(args):
    """(trainer, Config) from --trainer, --config FILE (an exported config) and --set."""
    from hpsearch import trainers
    from hpsearch.config import parse_overrides

    values, name = {}, args.trainer
    if args.config:
        doc = _load_doc(args.config)
        if not isinstance(doc, dict):
            raise UserError(f"{args.config}: expected a mapping")
        values = doc.get("config", doc)
        name = name or doc.get("trainer")
        if not isinstance(values, dict):
            raise UserError(f"{args.config}: 'config' must be a mapping")
    trainer = trainers.get(name or "mlp")
    return trainer, parse_overrides(trainer.make_config(values), args.sets)


def cmd_estimate(args) -> int:
    from hpsearch.config import ResourcesConfig
    from hpsearch.search.packing import MARGIN, gpu_share, per_trial_mb
    from hpsearch.trainers import memory

    trainer, cfg = _one_config(args)
    if trainer.module is None or not memory.supports(trainer.module):
        raise UserError(f"trainer {trainer.name!r} cannot be estimated: its module needs "
                        "load_data(cfg), make_model(cfg, data) and LOSS")
    try:
        est = memory.estimate(trainer.module, cfg)
    except ValueError as exc:
        raise UserError(f"trainer {trainer.name!r}: {exc}") from None
    print(f"estimated peak GPU memory of one {trainer.name} trial (MiB, "
          "torch.cuda.max_memory_allocated):")
    for key in ("data_mb", "params_mb", "grads_mb", "optimizer_mb", "activations_mb",
                "total_mb"):
        print(f"  {key[:-3]:<12} {getattr(est, key):10.1f}")
    per_trial = per_trial_mb(est.total_mb, args.gpu_overhead_mb)
    print(f"  per trial process, with {MARGIN:.0%} margin and {args.gpu_overhead_mb:.0f} MB "
          f"CUDA overhead: {per_trial:.0f} MB")
    if args.gpu_memory_mb:
        try:
            res = ResourcesConfig(gpus_per_trial=0.0, gpu_auto=True,
                                  gpu_overhead_mb=args.gpu_overhead_mb)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        share = gpu_share(est.total_mb, res, args.gpu_memory_mb)
        print(f"  GPU share on a {args.gpu_memory_mb:.0f} MB GPU: {share:g} "
              f"({int(1 / share + 1e-9)} such trials per GPU)")
    return 0


def cmd_train(args) -> int:
    trainer, cfg = _one_config(args)
    print(f"train {trainer.name}: " + " ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()))
    cols = ["epoch", "train_loss", "val_loss", "train_metric", "val_metric", "gap",
            "epoch_time_s", "gpu_mem_mb", "status"]
    if not args.json:
        print("  ".join(f"{c:>12}" for c in cols))

    def report(row: dict) -> None:
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{_fmt(row.get(c)):>12}" for c in cols), flush=True)

    last = trainer.train(cfg, report)
    print(f"final val_metric ({trainer.metric}) = {_fmt(last.get('val_metric'))}, "
          f"status {last.get('status')}")
    return 0


def cmd_spaces(args) -> int:
    from hpsearch import spaces

    if not args.name:
        for name in sorted(spaces.SPACES):
            s = spaces.get(name)
            print(f"{name:22} trainer={s.trainer:5} {s.doc}")
        return 0
    s = spaces.get(args.name)
    print(f"{s.name}: {s.doc}\ntrainer: {s.trainer}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists: dict = {}
    for _ in range(32):
        t = study.ask()
        s.fn(t)
        dists.update(t.distributions)
        study.tell(t, 0.0)
    for name, d in dists.items():
        print(f"  {name:14} {d}")
    if s.grid:
        print("grid: " + ", ".join(f"{k}={v}" for k, v in s.grid.items()))
    return 0


def cmd_trainers(args) -> int:
    from hpsearch import trainers

    for name in sorted(trainers.TRAINERS):
        t = trainers.get(name)
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(t.config_cls))
        print(f"{name}: metric {t.metric} ({t.mode})\n  {fields}")
    return 0


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "analyze": cmd_analyze, "export": cmd_export,
            "train": cmd_train, "estimate": cmd_estimate, "spaces": cmd_spaces,
            "trainers": cmd_trainers}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hpsearch` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # Tune warns on every snapshot when trials checkpoint each short epoch; that is by design.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner; ProgressLine reports
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
