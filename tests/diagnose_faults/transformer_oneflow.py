"""transformer.py ported to OneFlow by hand: right, and with one fault per class."""

import math

import oneflow as flow
import oneflow.nn as nn
import oneflow.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=-1)
        q = q.reshape(batch, length, self.heads, -1).transpose(1, 2)
        k = k.reshape(batch, length, self.heads, -1).transpose(1, 2)
        v = v.reshape(batch, length, self.heads, -1).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        future = flow.ones(length, length, dtype=flow.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        out = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab_size=16, seq_len=12, dim=16, heads=2, layers=2, num_classes=4):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Parameter(flow.zeros(1, seq_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        h = self.tokens(x) + self.positions[:, : x.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))


class NormEps(TinyTransformer):
    """Fault (forward): the second block's first LayerNorm with eps 1e-3, not 1e-5."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        dim = self.norm.normalized_shape[0]
        self.blocks[1].norm1 = nn.LayerNorm(dim, eps=1e-3)


class TanhGelu(TinyTransformer):
    """Fault (forward): the first block's GELU in its tanh approximation."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks[0].mlp[1] = nn.GELU(approximate="tanh")


class _ScaleGradient(flow.autograd.Function):
    """The identity forward, the gradient times 1.01 backward."""

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.01


class GeluScaledGradient(nn.Module):
    """GELU whose output is exactly GELU's, but whose gradient is 1.01 times GELU's."""

    def forward(self, x):
        return _ScaleGradient.apply(F.gelu(x))


class ScaledGradient(TinyTransformer):
    """Fault (backward only): the second block's GELU passes 1.01 x its gradient back."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks[1].mlp[1] = GeluScaledGradient()
