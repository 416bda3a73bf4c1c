"""The networks and losses of the built-in trainers (torch). The trainer modules (mlp.py,
lm.py, vit.py: Config + train) import this only to train or estimate, so a driver that only
checks configs never imports torch (~1.4 CPU-s and ~1 s per `hpsearch run`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.trainers._blocks import Block

__all__ = ["ACTIVATIONS", "MLP", "classification_loss", "LSTMLM", "GPT", "lm_loss", "ViT"]

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU,
               "sigmoid": nn.Sigmoid}


class MLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, cfg):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(cfg.depth):
            layers += [nn.Linear(n_in if i == 0 else cfg.width, cfg.width),
                       ACTIVATIONS[cfg.activation]()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
        layers.append(nn.Linear(cfg.width if cfg.depth else n_in, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # x: (B, C, H, W) -> logits (B, classes)
        return self.net(x)


def classification_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        count: bool = True):
    """Cross-entropy and, when `count`, the number of correct predictions (the loop counts
    on a fraction of training steps: three extra kernels a step cost a small MLP ~25%)."""
    logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    return loss, ((logits.argmax(-1) == y).sum() if count else None)


class LSTMLM(nn.Module):
    def __init__(self, vocab: int, cfg):
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
    def __init__(self, vocab: int, cfg):
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


class ViT(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], classes: int, cfg):
        super().__init__()
        c, h, w = image_shape
        if h % cfg.patch or w % cfg.patch:
            raise ValueError(f"image {h}x{w} is not divisible by patch {cfg.patch}")
        n_patches, p = (h // cfg.patch) * (w // cfg.patch), cfg.patch
        self.patchify = nn.Unfold(kernel_size=p, stride=p)  # (B, C*p*p, N)
        self.embed = nn.Linear(c * p * p, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.dim * cfg.mlp_ratio, cfg.dropout, cfg.norm,
                  causal=False)
            for _ in range(cfg.layers))
        # Pre-norm leaves the residual stream un-normalised, so it needs a final LayerNorm.
        self.final_norm = nn.LayerNorm(cfg.dim) if cfg.norm == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.dim, classes)

    def forward(self, x):  # x: (B, C, H, W)
        tokens = self.embed(self.patchify(x).transpose(1, 2))  # (B, N, D)
        cls = self.cls.expand(x.shape[0], -1, -1)
        z = torch.cat([cls, tokens], dim=1) + self.pos  # (B, N+1, D)
        for block in self.blocks:
            z = block(z)
        return self.head(self.final_norm(z[:, 0]))  # (B, classes)
