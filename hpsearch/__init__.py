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

from hpsearch.api import (  # noqa: E402
                          Analysis,
                          Export,
                          analyze,
                          estimate,
                          export,
                          load_run,
                          resume,
                          run,
                          search_config,
                          train,
)
from hpsearch.errors import UserError  # noqa: E402
from hpsearch.rundir import Run  # noqa: E402

__all__ = ["__version__", "run", "resume", "load_run", "analyze", "export", "train",
           "estimate", "search_config", "Run", "Analysis", "Export", "UserError"]
