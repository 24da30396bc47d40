"""Test-only backends over OneFlow's, each with one fault, for `register_backend`.

Each changes one method of the real OneFlow backend and nothing else, so the
fault lives where such a bug would (an optimizer built with another eps, a
data path that shuffles inputs apart from their labels, an lr applied a step
late, a backend that keeps no optimizer state in its checkpoints).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dualtrain_oneflow.backend import OneFlowBackend

#: The step whose batch `PermutedRows` shuffles.
PERMUTED_STEP = 1


class OptimizerEps(OneFlowBackend):
    """Adam's eps 1e-6 instead of the run's 1e-8."""

    name = "oneflow_eps"

    def make_optimizer(self, model, spec):
        options = {**spec.options, "eps": 1e-6}
        return super().make_optimizer(model, dataclasses.replace(spec, options=options))


class PermutedRows(OneFlowBackend):
    """At step PERMUTED_STEP, the rows of x reversed while y stays: inputs apart from labels."""

    name = "oneflow_rows"

    def start_at(self, model, step):
        super().start_at(model, step)
        model.dualtrain_fault_step = step

    def eager_step(self, model, optimizer):
        inner = super().eager_step(model, optimizer)

        def step(x, y):
            t = model.dualtrain_fault_step
            model.dualtrain_fault_step = t + 1
            return inner(x[::-1].copy() if t == PERMUTED_STEP else x, y)

        return step


class LateLr(OneFlowBackend):
    """Each step's lrs applied one step late (the previous step's; the first as given)."""

    name = "oneflow_late_lr"

    def set_hyperparams(self, optimizer, lrs, momenta):
        previous = getattr(optimizer, "dualtrain_previous_lrs", None)
        optimizer.dualtrain_previous_lrs = list(lrs)
        super().set_hyperparams(optimizer, previous or lrs, momenta)


class Unsaved(OneFlowBackend):
    """Keeps no optimizer state in its checkpoints (as a backend that never wrote them)."""

    name = "oneflow_unsaved"

    def optimizer_state(self, optimizer):
        return {}

    def load_optimizer_state(self, optimizer, state):
        return None


FAULTS = (OptimizerEps, PermutedRows, LateLr, Unsaved)


def reversed_rows(x: np.ndarray) -> np.ndarray:
    """What `PermutedRows` feeds the model at its step."""
    return x[::-1].copy()
