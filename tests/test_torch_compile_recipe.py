"""The recipe in docs/static_graph_schedules.md: a user's own `torch.compile`d training
step, driven by a dualtrain scheduler, never recompiles for the schedule.

The lr is a 0-dim tensor (`lr=torch.tensor(0.05)`) that the scheduler fills in
place, so the compiled graph reads it as an input instead of baking a float in.
One small training step is compiled (13-27 s with a cold inductor cache).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.utils import counters

from dualtrain import lr_scheduler as dt

STEPS = 12
WARMUP = 4


def compiled_graphs() -> int:
    return counters["stats"]["unique_graphs"]


def test_the_counter_sees_a_recompile_when_a_float_lr_changes():
    # The counter the recipe's test relies on is not blind: a dualtrain scheduler
    # writing a float lr that a compiled function reads compiles a new graph.
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scheduler = dt.ExponentialLR(optimizer, gamma=0.5)

    # Recompiling is dynamo's decision (its guards), whatever the backend: "eager"
    # spares this proof inductor's code generation.
    @torch.compile(backend="eager")
    def scaled(x):
        return x * optimizer.param_groups[0]["lr"]

    x = torch.ones(3, dtype=torch.float64)
    scaled(x)
    before = compiled_graphs()
    for _ in range(2):
        optimizer.step()  # no gradient: a no-op, but in the order torch expects
        scheduler.step()
        assert scaled(x)[0].item() == optimizer.param_groups[0]["lr"]
    assert compiled_graphs() > before


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return layers.double()


def _batches():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 16, 3, generator=generator, dtype=torch.float64)
    return x, x.sum(dim=2, keepdim=True).sin()


def _train(lr, compile_it: bool, schedule: bool = True) -> dict:
    """losses, lrs in effect, graph counts after each step, model and optimizer of
    STEPS steps of warmup then cosine (or the first lr throughout, without `schedule`)."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = dt.SequentialLR(
        optimizer,
        [
            dt.LinearLR(optimizer, start_factor=0.1, total_iters=WARMUP),
            dt.CosineAnnealingLR(optimizer, T_max=STEPS - WARMUP),
        ],
        milestones=[WARMUP],
    )

    def train_step(x, y):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    # The first step runs eagerly: it creates the momentum buffers, which dynamo
    # does not trace reliably (torch 2.14.1: SpeculationLogDivergence for SGD momentum).
    compiled = torch.compile(train_step) if compile_it else train_step
    xs, ys = _batches()
    run = {"losses": [], "lrs": [], "graphs": [], "model": model, "optimizer": optimizer}
    for step in range(STEPS):
        run["lrs"].append(float(optimizer.param_groups[0]["lr"]))
        step_fn = compiled if step else train_step
        run["losses"].append(step_fn(xs[step], ys[step]).item())
        if schedule:
            scheduler.step()
        run["graphs"].append(compiled_graphs())
    return run


def test_a_compiled_step_with_a_tensor_lr_never_recompiles_for_the_schedule():
    lr = torch.tensor(0.05, dtype=torch.float64)
    run = _train(lr, compile_it=True)
    lrs, graphs, optimizer = run["lrs"], run["graphs"], run["optimizer"]
    # The schedule moved the lr at every step ...
    assert len(set(lrs)) == STEPS
    assert lrs[0] == pytest.approx(0.005, rel=1e-15) and lrs[WARMUP] == pytest.approx(0.05)
    # ... in place, in the tensor the compiled graph reads (the recipe's mechanism) ...
    assert optimizer.param_groups[0]["lr"] is lr
    assert float(optimizer.param_groups[0]["initial_lr"]) == 0.05  # the base did not move
    # ... and nothing compiled after the first compiled step (step 1).
    assert graphs[1] > graphs[0], "the counter saw no compile at all"
    assert graphs[-1] == graphs[1], f"recompiled for the schedule: {graphs}"

    # The lrs really reached the graph: the same run eagerly, with float lrs, trains
    # the same. In float64, inductor's other summation order stays far below the
    # 1e-10 tolerance, while a run that kept its first lr is far outside it.
    eager = _train(0.05, compile_it=False)
    frozen = _train(0.005, compile_it=False, schedule=False)
    assert lrs == eager["lrs"]
    assert not math.isclose(frozen["losses"][-1], eager["losses"][-1], rel_tol=1e-6)
    for a, b in zip(run["losses"], eager["losses"], strict=True):
        assert math.isclose(a, b, rel_tol=1e-10), (run["losses"], eager["losses"])
    for p, q in zip(run["model"].parameters(), eager["model"].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
