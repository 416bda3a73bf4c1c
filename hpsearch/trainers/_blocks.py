"""The transformer block the GPT and the ViT share: self-attention and an MLP, each in a
residual branch, with LayerNorm before (pre-norm) or after (post-norm) the residual add."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention", "Block"]


class SelfAttention(nn.Module):
    """Multi-head self-attention (PyTorch's fused scaled_dot_product_attention)."""

    def __init__(self, dim: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.n_head, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(  # (B, nh, T, hs)
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """One transformer block.

    Args:
        dim, heads: width and attention heads (dim divisible by heads).
        hidden: width of the MLP's hidden layer.
        dropout: on attention weights and the MLP output.
        norm: "pre" (x + f(LN(x)): stable when deep) or "post" (LN(x + f(x)), as in the
            original Transformer).
        causal: mask future positions (a language model) or not (a ViT).
    """

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, norm: str,
                 causal: bool):
        super().__init__()
        self.norm_position = norm
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, causal)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x):  # x: (B, T, C)
        if self.norm_position == "pre":
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))
