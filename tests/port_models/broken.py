"""Models that are wrong in one way each, for the bad-input tests of `dualtrain port`."""

import torch
from torch import nn


class RaisesInInit(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        raise ValueError(f"width {width} is not supported")


class NotAModule:
    def __init__(self):
        self.weight = 1.0


class RaisesInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        raise RuntimeError("this forward always fails")


class EightFeatures(nn.Module):
    """Takes (batch, 8) only: data of another shape cannot go through it."""

    def __init__(self, outputs=3):
        super().__init__()
        self.linear = nn.Linear(8, outputs)

    def forward(self, x):
        return self.linear(x)


class FunctionalDropout(nn.Module):
    """Dropout drawn by torch.nn.functional inside forward: no module to share masks with."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        return self.linear(torch.nn.functional.dropout(x, 0.5, self.training))
