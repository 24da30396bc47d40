"""A model OneFlow 0.9.0 cannot build: it uses nn.MultiheadAttention (test data)."""

import torch.nn as nn


class AttentionClassifier(nn.Module):
    def __init__(self, vocab_size=16, dim=16, heads=2, num_classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        # expect: missing torch.nn.MultiheadAttention
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        h = self.embed(x)
        h, _ = self.attn(h, h, h, need_weights=False)
        return self.head(h.mean(dim=1))
