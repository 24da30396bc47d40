"""The data-parallel tests' shared run, for torch and OneFlow alike: a small MLP,
48 rows in batches of 16 (3 steps an epoch, 8 rows a shard on 2 ranks), SGD with
momentum over two param groups and a schedule stepping every step."""

from __future__ import annotations

import numpy as np

from dualtrain.data import Dataset
from dualtrain.loop import RunConfig, ScheduleConfig, with_overrides
from dualtrain.model import mlp
from dualtrain.optim import GroupSpec

# The MLP `dualtrain train --data` sizes to 4 features and 3 classes.
MODEL = mlp([4, 32, 3], activation="relu", loss="cross_entropy")


def data() -> Dataset:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 4))
    return Dataset(x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1))


def sgd(backend: str) -> RunConfig:
    """SGD with momentum, two param groups, StepLR every step, float64, 2 ranks."""
    return RunConfig(
        backend=backend,
        optimizer="sgd",
        lr=0.1,
        options={"momentum": 0.9},
        groups=(GroupSpec(("0.",), 0.05),),
        schedule=ScheduleConfig("StepLR", kwargs={"step_size": 2, "gamma": 0.7}, interval="step"),
        epochs=3,
        batch_size=16,
        seed=1,
        dtype="float64",
        nproc=2,
    )


def adam(config: RunConfig) -> RunConfig:
    """The same run with Adam in float32."""
    return with_overrides(config, optimizer="adam", lr=0.01, options={}, dtype="float32")
