"""A "hand port" that imports torch instead of oneflow: --against must refuse it."""

import torch.nn as nn


class SmallCNN(nn.Module):
    pass
