"""Character/word language models: an LSTM or a GPT (nanoGPT-style, pre/post norm).
Scored by perplexity on held-out text (Shakespeare: a play not seen in training)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from hpsearch.trainers import data as datasets
from hpsearch.trainers.settings import TrainConfig

METRIC, MODE = "perplexity", "min"


@dataclass(frozen=True)
class Config(TrainConfig):
    """Language-model hyperparameters on top of the shared ones."""

    data: str = "shakespeare"  # shakespeare | wikitext2:PATH
    model: str = "lstm"  # lstm | gpt
    layers: int = 2
    dim: int = 128
    heads: int = 4  # gpt only
    context: int = 64
    dropout: float = 0.1
    norm: str = "pre"  # gpt only: pre | post LayerNorm
    max_tokens: int = 250_000  # training corpus size; validation gets a fifth of it
    lr: float = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        datasets.check_name(self.data, datasets.TEXT_SETS)
        if self.model not in ("lstm", "gpt"):
            raise ValueError(f"model must be 'lstm' or 'gpt', got {self.model!r}")
        if self.norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {self.norm!r}")
        if self.layers < 1 or self.context < 2 or self.dim % self.heads:
            raise ValueError("need layers >= 1, context >= 2 and dim divisible by heads")


def LOSS(model, x, y, count: bool = False):  # noqa: N802 (the trainer contract's name)
    """`nets.lm_loss`: mean next-token cross-entropy; no accuracy."""
    from hpsearch.trainers.nets import lm_loss

    return lm_loss(model, x, y, count)


def load_data(cfg: Config):
    """Windows of the corpus as (input, next-token) pairs; `classes` is the vocabulary."""
    from hpsearch.trainers import _loop
    from hpsearch.trainers import text as corpora

    text = corpora.load_text(cfg.data, cfg.max_tokens)
    x, y = corpora.windows(text.train, cfg.context)
    xv, yv = corpora.windows(text.val, cfg.context)
    xs, ys = (corpora.windows(text.test, cfg.context) if len(text.test) > cfg.context
              else (None, None))
    return _loop.Data(x, y, xv, yv, text.vocab_size, xs, ys)


def make_model(cfg: Config, data):
    """The LSTM or GPT for `cfg` (also built on fake tensors for memory estimates)."""
    import torch

    from hpsearch.trainers.nets import GPT, LSTMLM

    torch.manual_seed(cfg.seed)
    return (GPT if cfg.model == "gpt" else LSTMLM)(data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report, checkpointer=None, test: bool = False) -> dict:
    """Train an LSTM or GPT language model (metric: validation perplexity, lower is better)."""
    from hpsearch.trainers import _loop

    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)


def __getattr__(name: str):
    """The networks and loss live in nets.py (torch), imported on first use."""
    if name in ("LSTMLM", "GPT", "lm_loss"):
        from hpsearch.trainers import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
