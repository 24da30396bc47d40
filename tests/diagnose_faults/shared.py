"""A torch model with one module under two names (`first` and `again`): the
diagnosis names modules by their one name, so it refuses this one."""

import torch
from torch import nn


class Shared(nn.Module):
    def __init__(self, features=6, classes=3):
        super().__init__()
        self.first = nn.Linear(features, features)
        self.again = self.first
        self.out = nn.Linear(features, classes)

    def forward(self, x):
        return self.out(self.again(torch.tanh(self.first(x))))
