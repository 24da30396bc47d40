"""A sibling module of unsupported.py: the preflight reads it too (test data)."""

import torch.nn as nn


class Helper(nn.Module):
    def __init__(self):
        super().__init__()
        # expect: missing torch.nn.ChannelShuffle
        self.shuffle = nn.ChannelShuffle(2)
