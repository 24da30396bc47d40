"""A minimal dualtrain backend, written as a third party would: Linear layers with
Tanh, ReLU or Sigmoid, the mse and sse losses and SGD, in NumPy.

dualtrain finds it through the entry point `example` in this distribution's
pyproject.toml; nothing in dualtrain names it.
"""

from dualtrain_example_backend.backend import ExampleBackend

__all__ = ["ExampleBackend"]
