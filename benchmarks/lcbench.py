"""YAHPO Gym's LCBench surrogate (an ONNX network fitted on 2,000 real MLP learning curves
per OpenML task, 52 epochs) as an hpsearch trainer plugin:
`--trainer benchmarks.lcbench:train --space benchmarks/spaces/lcbench.yaml --set task=3945`.

The surrogate files come from the public repository slds-lmu/yahpo_data (Apache 2.0), folder
`lcbench/` (model.onnx, encoding.json, config_space.json), copied to
`benchmarks/data/yahpo_data/lcbench/` or the folder named by $YAHPO_DATA. The inputs are
encoded as `yahpo_gym.BenchmarkSet("lcbench")._config_to_xs` does (checked against
yahpo_gym in `python -m benchmarks.lcbench --check`); only onnxruntime is needed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

METRIC, MODE = "accuracy", "max"
# Continuous inputs, in the surrogate's order (yahpo_gym/benchmarks/lcbench.py cont_names).
_CONT = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers",
         "max_units", "max_dropout")
_Y = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy",
      "test_cross_entropy", "test_balanced_accuracy")
MAX_EPOCHS = 52
TASKS = ("3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104", "167149",
         "167152", "167161", "167168", "167181", "167184", "167185", "167190", "167200",
         "167201", "168329", "168330", "168331", "168335", "168868", "168908", "168910",
         "189354", "189862", "189865", "189866", "189873", "189905", "189906", "189908",
         "189909")


@dataclass(frozen=True)
class Config:
    batch_size: int = 91
    lr: float = 3.16e-3
    momentum: float = 0.545
    weight_decay: float = 0.05
    num_layers: int = 3
    max_units: int = 256
    max_dropout: float = 0.5
    epochs: int = MAX_EPOCHS
    task: str = "3945"
    epoch_s: float = 0.0  # simulated seconds per epoch


def data_dir() -> Path:
    return Path(os.environ.get("YAHPO_DATA", Path(__file__).parent / "data" / "yahpo_data"))


def available() -> bool:
    return (data_dir() / "lcbench" / "model.onnx").is_file()


@lru_cache(maxsize=1)
def _session():
    import onnxruntime as rt

    opts = rt.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    d = data_dir() / "lcbench"
    enc = json.loads((d / "encoding.json").read_text())["OpenML_task_id"]
    return rt.InferenceSession(str(d / "model.onnx"), opts), enc


def evaluate(config: dict, task: str, epochs) -> np.ndarray:
    """val_accuracy / 100 at each epoch in `epochs` (one surrogate call)."""
    sess, enc = _session()
    values = {"batch_size": config["batch_size"], "learning_rate": config["lr"],
              "momentum": config["momentum"], "weight_decay": config["weight_decay"],
              "num_layers": config["num_layers"], "max_units": config["max_units"],
              "max_dropout": config["max_dropout"]}
    ep = np.asarray(list(epochs), dtype=np.float32)
    x_cont = np.array([[e, *(values[k] for k in _CONT[1:])] for e in ep], dtype=np.float32)
    x_cat = np.full((len(ep), 1), enc[str(task)], dtype=np.int32)
    names = [i.name for i in sess.get_inputs()]
    out = sess.run([sess.get_outputs()[0].name], {names[0]: x_cat, names[1]: x_cont})[0]
    return out[:, _Y.index("val_accuracy")] / 100.0


def true_final(config: dict, task: str, epochs: int) -> float:
    return float(evaluate(config, task, [epochs])[0])


def train(cfg: Config, report) -> None:
    accs = evaluate(cfg.__dict__, cfg.task, range(1, cfg.epochs + 1))
    for acc in accs:
        if cfg.epoch_s:
            time.sleep(cfg.epoch_s)
        report(val_metric=float(acc), val_loss=1 - float(acc), train_loss=1 - float(acc),
               t_wall=time.time())


def optimum(task: str, epochs: int, n: int = 20000, seed: int = 0) -> float:
    """The best surrogate score at `epochs` over `n` random configs of the space (the
    surrogate has no closed-form optimum; regret is measured against this estimate)."""
    rng = np.random.default_rng(seed)
    cfgs = {"batch_size": np.exp(rng.uniform(np.log(16), np.log(512), n)).round(),
            "lr": np.exp(rng.uniform(np.log(1e-4), np.log(0.1), n)),
            "momentum": rng.uniform(0.1, 0.99, n), "weight_decay": rng.uniform(1e-5, 0.1, n),
            "num_layers": rng.integers(1, 6, n), "max_units": np.exp(
                rng.uniform(np.log(64), np.log(1024), n)).round(),
            "max_dropout": rng.uniform(0, 1, n)}
    sess, enc = _session()
    x_cont = np.stack([np.full(n, epochs), cfgs["batch_size"], cfgs["lr"], cfgs["momentum"],
                       cfgs["weight_decay"], cfgs["num_layers"], cfgs["max_units"],
                       cfgs["max_dropout"]], axis=1).astype(np.float32)
    x_cat = np.full((n, 1), enc[str(task)], dtype=np.int32)
    names = [i.name for i in sess.get_inputs()]
    out = sess.run([sess.get_outputs()[0].name], {names[0]: x_cat, names[1]: x_cont})[0]
    return float(out[:, _Y.index("val_accuracy")].max() / 100.0)


if __name__ == "__main__":  # --check: compare with yahpo_gym where it is installed
    from yahpo_gym import BenchmarkSet, local_config

    local_config.init_config()
    local_config.set_data_path(str(data_dir()))
    bench = BenchmarkSet("lcbench", instance="3945")
    cfg = {"batch_size": 64, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.01,
           "num_layers": 2, "max_units": 256, "max_dropout": 0.2}
    ours = evaluate(cfg, "3945", [1, 10, 52])
    theirs = [bench.objective_function({**{k: v for k, v in cfg.items() if k != "lr"},
                                        "learning_rate": 0.01, "epoch": e,
                                        "OpenML_task_id": "3945"})[0]["val_accuracy"] / 100
              for e in (1, 10, 52)]
    print("ours", ours.round(5), "yahpo_gym", np.round(theirs, 5))
    assert np.allclose(ours, theirs, atol=1e-5), "encoding differs from yahpo_gym"
