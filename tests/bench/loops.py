"""The eager training loops the benchmarks compare: dualtrain's and the hand-written
ones, on one workload (the regression MLP, batch 50, StepLR(5, 0.5), SGD with
momentum 0.9), each returning its seconds per step in steady state.

Timed by tests/bench/run_all.py, counted in instructions by
tests/bench/instructions.py (both run these same functions).
"""

from __future__ import annotations

import math
import time

from dualtrain.backend import get_backend
from dualtrain.data import batch_indices
from dualtrain.loop import RunConfig, ScheduleConfig, fit
from dualtrain_numpy.model import loss_and_grad


def loop_config(backend: str = "numpy", epochs: int = 10) -> RunConfig:
    """The benches' run: 20 steps an epoch of the regression problem's 1000 rows."""
    return RunConfig(
        backend=backend,
        lr=0.05,
        options={"momentum": 0.9},
        epochs=epochs,
        batch_size=50,
        schedule=ScheduleConfig("StepLR", "torch", {"step_size": 5, "gamma": 0.5}),
    )


def per_step(ends: list[float]) -> float:
    """Seconds per step in steady state: between the first and the last step's end."""
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def dualtrain_loop(problem, config) -> float:
    """Seconds per step through `fit`: schedule, records, progress, the step itself.

    Timed from the start of the second epoch to the start of the last, each marked
    when the loop sets that epoch's lr (the benches' StepLR steps per epoch), so
    the timing adds nothing to a step: an `on_step` callback would run every
    step, which a hand-written loop does not (measured: about 0.5 us a step).
    """
    backend = get_backend(config.backend)
    marks: list[float] = []
    set_hyperparams, clock = backend.set_hyperparams, time.perf_counter

    def marked(optimizer, lrs, momenta) -> None:
        marks.append(clock())
        set_hyperparams(optimizer, lrs, momenta)

    backend.set_hyperparams = marked  # this instance only
    fit(config, problem.model, problem.data, None, backend=backend)
    if len(marks) != config.epochs:
        raise RuntimeError(f"{len(marks)} lr settings in {config.epochs} epochs: not one an epoch")
    per_epoch = batch_indices(len(problem.data), config.batch_size, 0, 0, False, config.drop_last)
    steps = (config.epochs - 2) * len(per_epoch)
    # Under 3 epochs there is nothing to time (instructions.py counts such runs).
    return (marks[-1] - marks[1]) / steps if steps > 0 else math.nan


def hand_written_loop(problem, config) -> float:
    """Seconds per step of the plainest loop over the same network and batches: each
    epoch's shuffled order from `batch_indices`, StepLR's lr set by hand once an
    epoch, every loss kept."""
    backend = get_backend("numpy")
    net = backend.build(problem.model, config.dtype, "cpu")
    from dualtrain.model import init_weights

    backend.load_state(net, init_weights(problem.model, config.seed))
    optimizer = backend.make_optimizer(net, config.optimizer_spec())
    x_all, y_all = problem.data.x, problem.data.y
    ends, losses = [], []  # every loss kept, as a user keeps them to plot or check
    for epoch in range(config.epochs):
        lr = config.lr * 0.5 ** (epoch // 5)  # StepLR(5, 0.5) by hand
        for group in optimizer.param_groups:
            group["lr"] = lr
        for index in batch_indices(len(x_all), config.batch_size, epoch, config.seed):
            optimizer.zero_grad()
            out = net.forward(x_all[index])
            loss, grad = loss_and_grad(problem.model.loss, out, y_all[index])
            net.backward(grad)
            optimizer.step()
            losses.append(loss)
            ends.append(time.perf_counter())
    return per_step(ends)


def torch_hand_written_loop(problem, config) -> float:
    """The torch loop people write: StepLR after each epoch, each step's loss.item()
    kept."""
    import torch
    from torch.nn import functional

    from dualtrain.model import init_weights
    from dualtrain_torch.model import build

    model = build(problem.model, torch.float64, torch.device("cpu"))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(torch.from_numpy(init_weights(problem.model, config.seed)[name]))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    x_all, y_all = problem.data.x, problem.data.y
    ends, losses = [], []  # every loss kept, as a user keeps them to plot or check
    for epoch in range(config.epochs):
        for index in batch_indices(len(x_all), config.batch_size, epoch, config.seed):
            x, y = torch.from_numpy(x_all[index]), torch.from_numpy(y_all[index])
            optimizer.zero_grad()
            loss = functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            ends.append(time.perf_counter())
        scheduler.step()
    return per_step(ends)


def oneflow_hand_written_loop(problem, config) -> float:
    """The OneFlow loop people write, as the torch one above."""
    import oneflow as flow

    from dualtrain.model import init_weights
    from dualtrain_oneflow.model import Loss, build

    model = build(problem.model, flow.float64, "cpu")
    weights = init_weights(problem.model, config.seed)
    model.load_state_dict({n: flow.tensor(weights[n]) for n in model.state_dict()})
    optimizer = flow.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = flow.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    loss_fn = Loss("mse")
    x_all, y_all = problem.data.x, problem.data.y
    ends, losses = [], []  # every loss kept, as a user keeps them to plot or check
    for epoch in range(config.epochs):
        for index in batch_indices(len(x_all), config.batch_size, epoch, config.seed):
            x, y = flow.tensor(x_all[index]), flow.tensor(y_all[index])
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.numpy()))
            ends.append(time.perf_counter())
        scheduler.step()
    return per_step(ends)
