"""hpsearch: automated hyperparameter search for PyTorch (Ray Tune + Optuna + ASHA)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
