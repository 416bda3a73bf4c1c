"""Synthetic learning-curve landscapes with a known optimum, as an hpsearch trainer plugin
(`--trainer benchmarks.landscapes:train`, space `mlp_optimizers`: optimizer, lr, betas,
momentum, weight decay, batch size, depth). Pure numpy: the field baselines (Syne Tune,
DEHB) import it from their own environment.

Every landscape maps a config to a final quality `A` (peaked in effective lr, depth, betas,
weight decay, with per-optimizer peaks) and a speed; `instance` moves the optima (optimal lr
per optimizer, peaks, best depth), so a method cannot be tuned to one of them.

- `cross`: higher effective lr starts faster and ends worse (short-horizon bias).
- `nocross`: every curve is the same shape scaled by `A`: epoch-1 ranks are final ranks.
- `late`: sigmoid curves; the best configs sit near chance for several epochs (late bloomers).
- `diverge`: `cross` plus regions that diverge (NaN) after a fast start: too high an lr, and
  Adam with beta1 > 0.95 and beta2 < 0.99.
- `noisy`: `cross` with epoch-to-epoch noise of 0.03 (accuracy units).
- `overfit`: validation curves that peak and then decline: deeper nets peak higher (+0.02 per
  layer) and sooner, then lose more per epoch (faster still at a high lr), so the ranks
  around epochs 3-9 favour configs that end worse.
- `nocross-noisy`: `nocross` with noise of 0.03: ranks are final ranks only up to noise.

`true_final(cfg, landscape, instance, epochs)` is the noise-free score at the last epoch
(chance, 0.1, for a config that diverges), the quantity regret is measured on.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np

METRIC, MODE = "accuracy", "max"
LANDSCAPES = ("cross", "nocross", "late", "diverge", "noisy", "overfit", "nocross-noisy")
CHANCE = 0.1
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


@dataclass(frozen=True)
class Config:
    optimizer: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    depth: int = 2
    epochs: int = 27
    landscape: str = "cross"
    instance: int = 0
    epoch_s: float = 0.0  # simulated seconds per epoch (0: as fast as the search can go)


def _instance(instance: int) -> dict:
    """Optima of one instance (log10 optimal effective lr, peaks, best depth)."""
    rng = np.random.default_rng(1000 + instance)
    return {"loglr": {"sgd": -1.3, "momentum": -1.0, "adam": -2.7, "adamw": -2.6},
            "shift": rng.uniform(-0.4, 0.4, size=4),
            "peak": np.array([0.80, 0.86, 0.88, 0.90]) + rng.uniform(-0.04, 0.04, size=4),
            "depth": int(rng.integers(1, 5)),
            "bs_slope": float(rng.uniform(0.3, 0.7))}


def _quality(c: Config, inst: dict) -> tuple[float, float]:
    """(final quality A, e = log10 of the effective lr over its optimum)."""
    k = OPTIMIZERS.index(c.optimizer)
    lr_eff = c.lr / (1 - c.momentum) if c.optimizer == "momentum" else c.lr
    e = (math.log10(lr_eff) - (inst["loglr"][c.optimizer] + inst["shift"][k])
         - inst["bs_slope"] * math.log10(c.batch_size / 32))
    a = inst["peak"][k] - (0.12 if e > 0 else 0.08) * e * e
    a -= 0.015 * (c.depth - inst["depth"]) ** 2
    if c.optimizer in ("adam", "adamw"):
        a -= 0.4 * (c.beta1 - 0.9) ** 2
        a -= 0.01 * (math.log10(1 - c.beta2) + 3) ** 2
    if c.optimizer == "adamw":
        a -= 0.01 * (math.log10(max(c.weight_decay, 1e-8)) + 2) ** 2
    return max(a, CHANCE + 0.02), e


def _diverges_at(c: Config, e: float, landscape: str) -> int | None:
    if landscape != "diverge":
        return None
    if e > 0.8:
        return max(2, int(8 - 6 * (e - 0.8)))
    if c.optimizer in ("adam", "adamw") and c.beta1 > 0.95 and c.beta2 < 0.99:
        return 4
    return None


def curve(c: Config, epochs: int | None = None) -> list[float]:
    """Noise-free scores at epochs 1..epochs (NaN from the epoch a config diverges)."""
    inst = _instance(c.instance)
    a, e = _quality(c, inst)
    n = epochs or c.epochs
    t = np.arange(1, n + 1, dtype=float)
    slow = 1 + 0.15 * (c.depth - 1)
    if c.landscape in ("nocross", "nocross-noisy"):
        y = CHANCE + (a - CHANCE) * (1 - np.exp(-t / 4.0))
    elif c.landscape == "overfit":
        tau = float(np.clip(3.0 * 10 ** (-0.4 * e), 0.3, 40))
        peak = a + 0.02 * (c.depth - 1)
        t_peak = 2.5 * tau / (1 + 0.25 * (c.depth - 1))
        drop = 0.0012 * c.depth * 10 ** float(np.clip(0.3 * e, -1, 1))
        y = CHANCE + (peak - CHANCE) * (1 - np.exp(-t / tau)) - drop * np.maximum(0, t - t_peak)
        y = np.maximum(y, CHANCE)
    elif c.landscape == "late":
        t0 = float(np.clip(6.0 * 10 ** (-0.8 * e) * slow, 0.5, 40))
        y = CHANCE + (a - CHANCE) / (1 + np.exp(-(t - t0) / max(t0 / 4, 0.3)))
    else:
        tau = float(np.clip(6.0 * 10 ** (-0.6 * e) * slow, 0.3, 80))
        y = CHANCE + (a - CHANCE) * (1 - np.exp(-t / tau))
    div = _diverges_at(c, e, c.landscape)
    if div is not None:
        y[div - 1:] = np.nan
    return y.tolist()


def true_final(config: dict, landscape: str, instance: int, epochs: int) -> float:
    """Noise-free score at `epochs` of a config (CHANCE if it diverged)."""
    c = make(config, landscape=landscape, instance=instance, epochs=epochs)
    v = curve(c)[-1]
    return CHANCE if math.isnan(v) else v


def make(config: dict, **over) -> Config:
    """A Config from a config or a sampler's params (`one_minus_beta2` as beta2)."""
    keys = set(Config.__dataclass_fields__)
    values = {**config, **over}
    if "one_minus_beta2" in values and "beta2" not in values:
        values["beta2"] = 1.0 - values["one_minus_beta2"]
    return Config(**{k: v for k, v in values.items() if k in keys})


def optimum(landscape: str, instance: int, epochs: int) -> float:
    """The best noise-free final score: per optimizer, batch size, depth (and momentum), a
    grid over log lr refined by golden section (betas and decay sit at their optima)."""
    best = CHANCE
    for opt in OPTIMIZERS:
        for bs in (8, 16, 32, 64):
            for depth in (1, 2, 3, 4):
                base = {"optimizer": opt, "batch_size": bs, "depth": depth, "beta1": 0.9,
                        "beta2": 0.999, "momentum": 0.9, "weight_decay": 1e-2}
                grid = np.linspace(-4, -1, 61)
                for m in ([0.5, 0.7, 0.9, 0.95, 0.99] if opt == "momentum" else [0.9]):
                    f = lambda x: true_final({**base, "lr": 10 ** x, "momentum": m},  # noqa: E731
                                             landscape, instance, epochs)
                    vals = [f(x) for x in grid]
                    i = int(np.argmax(vals))
                    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
                    for _ in range(30):  # golden section on [lo, hi]
                        a = hi - 0.618 * (hi - lo)
                        b = lo + 0.618 * (hi - lo)
                        lo, hi = (lo, b) if f(a) > f(b) else (a, hi)
                    best = max(best, vals[i], f((lo + hi) / 2))
    return best


def train(cfg: Config, report) -> None:
    """The trainer plugin: reports the landscape's curve plus noise, epoch by epoch."""
    if cfg.landscape not in LANDSCAPES:
        raise ValueError(f"landscape must be one of {LANDSCAPES}, got {cfg.landscape!r}")
    sigma = 0.03 if cfg.landscape in ("noisy", "nocross-noisy") else 0.005
    key = zlib.crc32(repr(sorted(asdict(cfg).items())).encode())
    rng = np.random.default_rng(key)
    for y in curve(cfg):
        if cfg.epoch_s:
            time.sleep(cfg.epoch_s)
        acc = y + sigma * rng.standard_normal() if not math.isnan(y) else float("nan")
        loss = 1 - acc if not math.isnan(acc) else float("nan")
        report(val_metric=acc, val_loss=loss, train_loss=loss, t_wall=time.time())
        if math.isnan(acc):
            return
