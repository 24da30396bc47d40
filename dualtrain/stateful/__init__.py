"""The stateful, PyTorch- and OneFlow-API schedulers behind `dualtrain.lr_scheduler`.

`values` holds the duck-typed helpers (tensor lrs without importing torch, the
optimizer-step watch), `base` the `LRScheduler` protocol, `classes` one class per
schedule, `composites` SequentialLR / ChainedScheduler / WarmupLR, and `plateau`
ReduceLROnPlateau. The maths stays in `dualtrain.schedules`.
"""
