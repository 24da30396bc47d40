"""The OneFlow backend: OneFlow's own modules and optimizers, eager or `nn.Graph`.

Importing this package imports oneflow (0.9.0, CPython 3.8-3.10 only); the core
never does.
"""

from dualtrain_oneflow.backend import OneFlowBackend

__all__ = ["OneFlowBackend"]
