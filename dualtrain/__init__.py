"""dualtrain: train one model on PyTorch or OneFlow, eager or static graph, and prove
that the runs match.

The core imports no framework: `import dualtrain` needs NumPy alone.

    >>> import dualtrain
    >>> model = dualtrain.mlp([5, 32, 1], activation="tanh", batchnorm=True)
    >>> # run = dualtrain.fit(model, x, y, optimizer="sgd", lr=0.05, epochs=20)
    >>> # result = dualtrain.compare(model, x, y, backends=["numpy", "torch"])
    >>> # check = dualtrain.port(MyTorchModule, x, y, init={"channels": 16}, optimizer="adam")
"""

from dualtrain.api import compare, fit, port
from dualtrain.errors import ConfigError
from dualtrain.model import BatchNorm1d, Linear, ModelSpec, ReLU, Sigmoid, Tanh, mlp
from dualtrain.trajectory import Trajectory

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d",
    "ConfigError",
    "Linear",
    "ModelSpec",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Trajectory",
    "__version__",
    "compare",
    "fit",
    "mlp",
    "port",
]
