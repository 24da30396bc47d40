"""The NumPy reference backend: hand-written forward, backward and optimizers.

It runs anywhere NumPy does, in float32 or float64, and is what every other
engine is compared against.
"""

from dualtrain_numpy.backend import NumpyBackend

__all__ = ["NumpyBackend"]
