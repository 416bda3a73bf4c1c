"""hpsearch: automated hyperparameter search for PyTorch (Ray Tune + Optuna + ASHA).

The public Python API (what the CLI calls too)::

    import hpsearch
    run = hpsearch.run("mlp", "mlp_optimizers", samples=8, max_epochs=3,
                       fixed={"data": "digits"}, out="runs/demo")
    run.trials_dataframe()          # one row per trial, best first
    run.epochs                      # one row per trial per epoch
    run.best_config()               # the best completed trial's hyperparameters
    hpsearch.analyze("runs/demo").report   # runs/demo/report/report.html
"""

__version__ = "0.2.0"

from hpsearch.errors import UserError  # noqa: E402

__all__ = ["__version__", "run", "resume", "load_run", "analyze", "export", "train",
           "estimate", "search_config", "Run", "Analysis", "Export", "UserError"]


def __getattr__(name: str):
    """The API is imported on first use (PEP 562): `import hpsearch` stays light, so a Ray
    worker that only runs `hpsearch.search.trainable` does not load pandas and the driver."""
    if name == "Run":
        from hpsearch.rundir import Run

        return Run
    if name in __all__:
        from hpsearch import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
