"""TinyTransformer ported to OneFlow by hand; its blocks come from blocks_oneflow.py."""

import oneflow as flow
import oneflow.nn as nn
from blocks_oneflow import Block


class TinyTransformer(nn.Module):
    def __init__(
        self, vocab_size=16, seq_len=12, dim=32, heads=4, layers=2, num_classes=4, dropout=0.1
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Parameter(flow.zeros(1, seq_len, dim))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(dim, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.normal_(self.positions, std=0.02)

    def forward(self, x):
        h = self.dropout(self.tokens(x) + self.positions[:, : x.shape[1]])
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))
