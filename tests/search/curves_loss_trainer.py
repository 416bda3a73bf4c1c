"""`curves_trainer`'s curves as a loss to minimise (1 - accuracy)."""

from tests.search.curves_trainer import Config, curves

MODE = "min"
__all__ = ["Config", "train"]


def train(cfg: Config, report) -> dict:
    return curves(cfg, report, loss=True)
