"""A torch model whose forward has a side effect the probe cannot replay: it counts
its training calls (not those under no_grad, so the port's dry forward, run twice
without gradients, sees none) and scales its output by the count."""

import torch
from torch import nn


class Counting(nn.Module):
    def __init__(self, features=6, classes=3):
        super().__init__()
        self.linear = nn.Linear(features, classes)
        self.calls = 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.calls += 1
        return self.linear(x) * (1.0 + 0.01 * self.calls)
