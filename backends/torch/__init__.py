"""The PyTorch backend: torch's own modules and optimizers, eager or `torch.compile`.

Importing this package imports torch; dualtrain's core never does.
"""

from dualtrain_torch.backend import TorchBackend

__all__ = ["TorchBackend"]
