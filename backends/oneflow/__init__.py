"""The OneFlow backend: OneFlow's own modules and optimizers, eager or `nn.Graph`.

Importing this package imports oneflow (0.9.0, CPython 3.8-3.10 only); the core
never does.
"""

from dualtrain_oneflow.quiet import expected_notices_hidden

with expected_notices_hidden():
    import oneflow  # noqa: F401  (first import: its CUDA notices are filtered)

from dualtrain_oneflow.backend import OneFlowBackend  # noqa: E402
from dualtrain_oneflow.graph_scheduler import GraphScheduler, graph_scheduler  # noqa: E402

__all__ = ["GraphScheduler", "OneFlowBackend", "graph_scheduler"]
