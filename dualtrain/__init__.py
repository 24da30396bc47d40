"""dualtrain: train one model on PyTorch or OneFlow, eager or static graph, and prove
that the runs match.

The core imports no framework: `import dualtrain` needs NumPy alone.
"""

from dualtrain.errors import ConfigError

__version__ = "0.1.0"

__all__ = ["ConfigError", "__version__"]
