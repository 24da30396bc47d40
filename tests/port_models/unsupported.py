"""Test data for the preflight: a comment `# expect: KIND NAME` marks a finding on the next
line; every other line must give none (the user's own `self.name`, `np.diff`, ...)."""

import numpy as np
import torch

# expect: missing torchvision
import torchvision  # noqa: F401
from helpers_for_unsupported import Helper
from torch import nn

# expect: missing torch.nn.Unflatten
from torch.nn import Unflatten  # noqa: F401
from torch.nn import functional as F


class Everything(nn.Module):
    def __init__(self, name="everything", mode="fast"):
        super().__init__()
        self.name = name
        self.mode = mode
        # expect: missing torch.nn.LayerNorm(bias=)
        self.norm = nn.LayerNorm(8, bias=False)
        # expect: missing torch.nn.Conv2d(padding_mode=)
        self.reflect = nn.Conv2d(1, 1, 3, padding_mode="reflect")
        # expect: difference torch.nn.Conv2d(padding='same')
        self.same_even = nn.Conv2d(1, 1, 4, padding="same")
        self.same_odd = nn.Conv2d(1, 1, 3, padding="same")
        self.same_dilated = nn.Conv2d(1, 1, kernel_size=(3, 2), padding="same", dilation=2)
        # expect: difference torch.nn.Conv1d(padding='same')
        self.same_pair = nn.Conv1d(1, 1, kernel_size=(2,), padding="same")
        # expect: missing torch.nn.BatchNorm2d(momentum=None)
        self.cumulative = nn.BatchNorm2d(4, momentum=None)
        self.bn = nn.BatchNorm2d(4, 1e-5, 0.1)
        # expect: missing Module.register_full_backward_hook
        self.register_full_backward_hook(lambda *args: None)
        self.helper = Helper()

    def forward(self, x):
        # expect: missing Tensor.mT
        q = x.mT
        # expect: missing Tensor.unflatten
        y = x.unflatten(1, (2, 4))
        # expect: missing torch.nn.functional.scaled_dot_product_attention
        z = F.scaled_dot_product_attention(q, q, q)
        # expect: missing torch.outer
        w = torch.outer(y.sum(1), z.sum(1))
        spread = np.diff(np.outer([1, 2], [3, 4]))
        return w + self.norm.weight.sum() + float(spread.sum()) + len(self.name + self.mode)


def train_briefly(model, optimizer, batches):
    # expect: missing torch.compile
    compiled = torch.compile(model)
    for x in batches:
        # expect: difference zero_grad
        optimizer.zero_grad()
        compiled(x).sum().backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
