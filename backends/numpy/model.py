"""The network and the losses with hand-written backward passes, as PyTorch defines them.

The layers themselves are in `dualtrain_numpy.layers`.
"""

from __future__ import annotations

import numpy as np

from dualtrain.dropout import SharedMasks
from dualtrain.model import ModelSpec
from dualtrain_numpy.layers import local, make


def loss_and_grad(kind: str, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss of `out` against `y` and its gradient with respect to `out`.

    Cross-entropy takes (batch, classes) against (batch,) or (batch, seq, classes)
    against (batch, seq): every position one sample of the mean, as torch's
    cross_entropy on the flattened positions.
    """
    if kind == "cross_entropy":
        logits = out.reshape(-1, out.shape[-1])
        labels = y.astype(np.int64).reshape(-1)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(logits))
        grad = np.exp(log_probs)
        grad[rows, labels] -= 1
        return float(-log_probs[rows, labels].mean()), (grad / len(logits)).reshape(out.shape)
    diff = out - y.reshape(out.shape)
    if kind == "sse":
        return float((diff * diff).sum()), 2 * diff
    return float((diff * diff).mean()), 2 * diff / diff.size


def accuracy(kind: str, out: np.ndarray, y: np.ndarray) -> float | None:
    if kind != "cross_entropy":
        return None
    labels = y.astype(np.int64).reshape(-1)
    return float((out.reshape(-1, out.shape[-1]).argmax(axis=1) == labels).mean())


class Network:
    """The spec's layers with parameters, gradients and buffers under stable names.

    Dropout masks come from the core (`SharedMasks` under the spec's run seed);
    `begin_step` before each training step moves them to that step's.
    """

    def __init__(self, spec: ModelSpec, dtype: np.dtype) -> None:
        self.spec, self.dtype, self.training = spec, dtype, True
        self.params = {n: np.zeros(s, dtype) for n, s in spec.param_shapes().items()}
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.buffers = {
            n: np.zeros(s, np.int64 if n.endswith("num_batches_tracked") else dtype)
            for n, s in spec.buffer_shapes().items()
        }
        sites = spec.dropout_sites()
        self.masks = SharedMasks(spec.dropout_seed, sites) if sites else None
        self.next_step = 0
        self.layers = [
            make(layer, local(self.params, f"{i}."), local(self.grads, f"{i}."),
                 local(self.buffers, f"{i}."), str(i), self.masks)
            for i, layer in enumerate(spec.layers)
        ]  # fmt: skip

    def begin_step(self) -> None:
        """Before a training step: that step's dropout masks from now on."""
        if self.masks is not None:
            self.masks.begin(self.next_step)
        self.next_step += 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, self.training)
        return x

    def backward(self, dy: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
