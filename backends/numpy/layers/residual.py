"""The residual block: x + f(x), and dy + f's backward of dy."""

from __future__ import annotations

from dualtrain.model import Residual
from dualtrain_numpy.layers.base import NumpyLayer, local, make, registers


@registers(Residual)
class ResidualLayer(NumpyLayer):
    def __init__(self, spec, params, grads, buffers, name="0", masks=None) -> None:
        super().__init__(spec, params, grads, buffers, name, masks)
        self.layers = [
            make(layer, local(params, f"{j}."), local(grads, f"{j}."), local(buffers, f"{j}."),
                 f"{name}.{j}", masks)
            for j, layer in enumerate(spec.layers)
        ]  # fmt: skip

    def forward(self, x, training):
        out = x
        for layer in self.layers:
            out = layer.forward(out, training)
        return x + out

    def _backward(self, dy):
        inner = dy
        for layer in reversed(self.layers):
            inner = layer.backward(inner)
        return dy + inner
