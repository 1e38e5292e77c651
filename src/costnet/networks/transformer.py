"""A pre-norm Transformer encoder block.

Vaswani et al., "Attention Is All You Need" (NeurIPS 2017), section 3: multi-head
scaled dot-product self-attention and a position-wise feed-forward network, each
in a residual branch whose output goes through dropout before the add (section
5.4, "residual dropout"). There is no dropout inside the attention: its rate would
be fixed into an fx trace made in either mode, while nn.Dropout modules follow
train()/eval() at run time. Layer norm opens each branch (pre-norm, Xiong et al.
2020) and the feed-forward activation is GELU, as in BERT/GPT-style blocks. Every
piece (q/k/v/output projections, attention, norms, activation, dropout, residual
adds) is a separate op, so fx traces each one. Input and output are
[batch, seq_len, d_model].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    """Multi-head self-attention with explicit q, k, v and output projections."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, seq, d_model] -> [batch, heads, seq, head_dim]."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the sequence of x ([batch, seq, d_model])."""
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """x + dropout(attention(norm(x))), then x + dropout(mlp(norm(x)))."""

    def __init__(self, d_model: int = 512, heads: int = 8, mlp: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, heads)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, mlp)
        self.activation = nn.GELU()
        self.fc2 = nn.Linear(mlp, d_model)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, same shape as x ([batch, seq, d_model])."""
        x = x + self.dropout1(self.attention(self.norm1(x)))
        return x + self.dropout2(self.fc2(self.activation(self.fc1(self.norm2(x)))))
