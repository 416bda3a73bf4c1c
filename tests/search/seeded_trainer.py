"""A user trainer for `export --confirm-seeds`: it reports with keywords, minimises
`val_loss` (its distance from lr 0.03, plus a little per seed), and raises on seed 1001 when
lr is above 0.1 (one failed re-training)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    lr: float = 0.1
    epochs: int = 2
    seed: int = 0


def train(cfg: Config, report) -> None:
    if cfg.seed == 1001 and cfg.lr > 0.1:
        raise ValueError("boom on seed 1001")
    for _ in range(cfg.epochs):
        loss = abs(cfg.lr - 0.03) + 0.001 * (cfg.seed % 7)
        report(val_metric=1 - loss, val_loss=loss, train_loss=loss)
