"""Every backend the project ships must be importable where its tests run.

Many test modules skip themselves when torch or OneFlow is missing
(`pytest.importorskip`), which would let a run without a framework pass on what is
left. `make test` installs every backend, so a missing one is a broken install:
this fails, naming it, instead of the run passing on skips.
"""

from __future__ import annotations

import importlib

import pytest

from dualtrain.backend import backend_names, get_backend


@pytest.mark.parametrize("framework", ["torch", "oneflow"])
def test_the_framework_imports(framework):
    module = importlib.import_module(framework)
    assert module.__version__


def test_every_shipped_backend_is_registered_and_loads():
    names = backend_names()
    assert {"numpy", "torch", "oneflow"} <= set(names), names
    for name in ("numpy", "torch", "oneflow"):
        assert get_backend(name).name == name
