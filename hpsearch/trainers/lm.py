"""Character/word language models: an LSTM or a GPT (nanoGPT-style, pre/post norm).
Scored by perplexity on held-out text (Shakespeare: a play not seen in training)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.trainers import _loop
from hpsearch.trainers import data as datasets
from hpsearch.trainers import text as corpora
from hpsearch.trainers._blocks import Block

METRIC, MODE = "perplexity", "min"


@dataclass(frozen=True)
class Config(_loop.TrainConfig):
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


class LSTMLM(nn.Module):
    def __init__(self, vocab: int, cfg: Config):
        super().__init__()
        self.emb = nn.Embedding(vocab, cfg.dim)
        self.rnn = nn.LSTM(cfg.dim, cfg.dim, cfg.layers, batch_first=True,
                           dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.dim, vocab)

    def forward(self, idx):  # idx: (B, T) -> logits (B, T, V)
        h, _ = self.rnn(self.drop(self.emb(idx)))
        return self.head(self.drop(h))


class GPT(nn.Module):
    def __init__(self, vocab: int, cfg: Config):
        super().__init__()
        self.tok = nn.Embedding(vocab, cfg.dim)
        self.pos = nn.Embedding(cfg.context, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, cfg.norm, causal=True)
            for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim) if cfg.norm == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.dim, vocab, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):  # idx: (B, T) -> logits (B, T, V)
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, count: bool = False):
    """Mean next-token cross-entropy; no accuracy (the metric is perplexity)."""
    logits = model(x)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten()), None


LOSS = lm_loss


def load_data(cfg: Config) -> _loop.Data:
    """Windows of the corpus as (input, next-token) pairs; `classes` is the vocabulary."""
    text = corpora.load_text(cfg.data, cfg.max_tokens)
    x, y = corpora.windows(text.train, cfg.context)
    xv, yv = corpora.windows(text.val, cfg.context)
    xs, ys = (corpora.windows(text.test, cfg.context) if len(text.test) > cfg.context
              else (None, None))
    return _loop.Data(x, y, xv, yv, text.vocab_size, xs, ys)


def make_model(cfg: Config, data: _loop.Data) -> nn.Module:
    """The LSTM or GPT for `cfg` (also built on fake tensors for memory estimates)."""
    torch.manual_seed(cfg.seed)
    return (GPT if cfg.model == "gpt" else LSTMLM)(data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report: _loop.Report, checkpointer=None, test: bool = False) -> dict:
    """Train an LSTM or GPT language model (metric: validation perplexity, lower is better)."""
    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)
