"""What is particular to the torch backend: compiled steps that never recompile
for a schedule, parameters by stable name, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from dualtrain.backend import get_backend
from dualtrain.cli import main
from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.loop import RunConfig, ScheduleConfig, fit, with_overrides
from dualtrain.model import init_weights, mlp
from dualtrain.optim import OptimizerSpec
from dualtrain.problems import get_problem


def compiled_graphs() -> int:
    return counters["stats"]["unique_graphs"]


def test_the_graph_counter_sees_a_recompile():
    # The counter the next test relies on is not blind: a float that changes
    # is baked into the graph, so each new value compiles a new one.
    def scale(x, factor):
        return x * factor

    compiled = torch.compile(scale)
    x = torch.ones(3)
    compiled(x, 0.5)
    compiled(x, 0.5)
    before = compiled_graphs()
    compiled(x, 0.25)
    compiled(x, 0.125)
    assert compiled_graphs() > before


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {})],
    ids=["sgd-momentum-cycled", "adam-beta1-cycled"],
)
def test_a_step_wise_schedule_never_recompiles_after_warm_up(optimizer, options):
    problem = get_problem("regression")
    train, _ = problem.data.split(problem.val_fraction, 0)
    schedule = ScheduleConfig("OneCycleLR", "torch", {"max_lr": 0.02, "total_steps": 48}, "step")
    config = RunConfig(
        backend="torch",
        mode="graph",
        optimizer=optimizer,
        lr=0.01,
        options=options,
        schedule=schedule,
        epochs=3,
        batch_size=50,
    )
    seen = []
    run = fit(config, problem.model, train, None, on_step=lambda _: seen.append(compiled_graphs()))
    lrs = {s["lr"][0] for s in run.trajectory.steps}
    momenta = {s["momentum"][0] for s in run.trajectory.steps}
    assert len(lrs) == 48 and len(momenta) >= 47  # new values (nearly) every step
    warm = seen[2]  # step 0 runs eagerly, step 1 compiles (or finds its graph cached)
    assert seen[-1] == warm, f"recompiled after warm-up: {seen}"


def test_parameters_and_buffers_move_by_stable_name():
    backend = get_backend("torch")
    spec = mlp([3, 4, 2], batchnorm=True)
    weights = init_weights(spec, seed=3)
    model = backend.build(spec, "float64", "cpu")
    backend.load_state(model, weights)
    back = backend.read_state(model)
    assert list(back) == list(weights)
    for name, value in weights.items():
        assert np.array_equal(back[name], value), name
        assert back[name].dtype == value.dtype, name
    assert model[0].weight.dtype == torch.float64
    assert dict(model.named_parameters())["1.weight"].shape == (4,)


def test_float32_model_trains_close_to_the_float64_reference():
    problem = get_problem("regression")
    train, val = problem.data.split(problem.val_fraction, 0)
    config = RunConfig(optimizer="sgd", lr=0.05, options={"momentum": 0.9}, epochs=2)
    reference = fit(config, problem.model, train, val)
    single = fit(
        with_overrides(config, backend="torch", dtype="float32"), problem.model, train, val
    )
    assert single.state["0.weight"].dtype == np.float32
    np.testing.assert_allclose(single.trajectory.losses, reference.trajectory.losses, rtol=1e-4)


def test_optimizer_state_by_stable_name():
    backend = get_backend("torch")
    spec = mlp([2, 1])
    model = backend.build(spec, "float64", "cpu")
    backend.load_state(model, init_weights(spec, 0))
    optimizer = backend.make_optimizer(model, OptimizerSpec("adam", 0.1))
    step = backend.eager_step(model, optimizer)
    step(np.ones((4, 2)), np.zeros((4, 1)))
    state = backend.optimizer_state(optimizer)
    assert set(state) == {f"0.{p}/{k}" for p in ("weight", "bias") for k in
                          ("step", "exp_avg", "exp_avg_sq")}  # fmt: skip
    assert float(state["0.weight/step"]) == 1.0
    fresh = backend.make_optimizer(model, OptimizerSpec("adam", 0.1))
    backend.load_optimizer_state(fresh, state)
    again = backend.optimizer_state(fresh)
    assert all(np.array_equal(again[k], v) for k, v in state.items())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_device_is_one_line(capsys):
    code = main(["train", "--backend", "torch", "--device", "cuda", "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == "dualtrain: error: device 'cuda' asked for, but torch sees no CUDA device"


def test_unknown_device_is_refused():
    backend = get_backend("torch")
    with pytest.raises(ConfigError, match="device must be one of cpu, cuda, got 'tpu'"):
        backend.build(mlp([2, 1]), "float64", "tpu")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_eager_steps_batch_converter_gives_what_input_gives_for_any_batch_dtype(dtype):
    """The eager step decides once per NumPy dtype whether `from_numpy` alone will
    do; a stream that mixes dtypes must still get each batch as `_input` makes it,
    and only a batch already in the model's dtype (or int64 ids) is used uncopied."""
    from dualtrain_torch.backend import _converter, _input

    net = get_backend("torch").build(mlp([3, 2, 1]), dtype, "cpu")
    convert = _converter(net)
    rng = np.random.default_rng(0)
    batches = [
        rng.normal(size=(4, 3)),
        rng.normal(size=(4, 3)).astype(np.float32),
        rng.integers(0, 9, size=(4, 3)).astype(np.int32),
        rng.integers(0, 9, size=(4, 3)),
    ]
    uncopied = {np.dtype(dtype), np.dtype(np.int64)}
    for batch in batches + batches[::-1]:  # each dtype seen first, then again
        got, want = convert(batch), _input(net, batch)
        assert (
            got.dtype
            == want.dtype
            == (torch.long if batch.dtype.kind == "i" else net.dualtrain_dtype)
        )
        assert torch.equal(got, want)
        assert np.shares_memory(got.numpy(), batch) == (batch.dtype in uncopied)
        assert convert(got) is got  # a tensor (a batch kept on the device) passes as it is
    # The step's inline fast path trusts this set: only dtypes used uncopied.
    assert convert.cast_free == uncopied


def test_the_eager_step_gives_batches_of_any_dtype_to_the_model_as_input_does():
    """The step's inline from_numpy path and its converter path: a float32 model fed
    float64, float32 and float32 batches again must step as if each had gone
    through `_input`, and the float32 one must reach the model uncopied."""
    from dualtrain_torch.backend import _input

    backend = get_backend("torch")
    spec = mlp([3, 2, 1])
    rng = np.random.default_rng(1)
    batches = [
        (rng.normal(size=(4, 3)), rng.normal(size=(4, 1))),
        (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 1)).astype(np.float32)),
    ]
    batches.append(batches[1])
    nets = [backend.build(spec, "float32", "cpu") for _ in range(2)]
    for net in nets:
        backend.load_state(net, init_weights(spec, 0))
    optimizers = [backend.make_optimizer(n, RunConfig(lr=0.1).optimizer_spec()) for n in nets]
    step = backend.eager_step(nets[0], optimizers[0]).lazy
    seen = []
    nets[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    for x, y in batches:
        got = step(x, y)
        optimizers[1].zero_grad()
        want = torch.nn.functional.mse_loss(nets[1](_input(nets[1], x)), _input(nets[1], y))
        want.backward()
        optimizers[1].step()
        assert got.item() == want.item()
    assert [t.dtype for t in seen] == [torch.float32] * 3
    assert not np.shares_memory(seen[0].numpy(), batches[0][0])
    assert np.shares_memory(seen[1].numpy(), batches[1][0])
    assert np.shares_memory(seen[2].numpy(), batches[2][0])


@pytest.mark.parametrize("loss", ["mse", "sse", "cross_entropy"])
def test_the_eager_step_trains_each_loss_as_the_numpy_reference(loss):
    """The eager step picks its loss function once: each kind must still be the
    loss the reference computes (float64, so agreement is to rounding)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    classes = loss == "cross_entropy"
    y = rng.integers(0, 4, size=40) if classes else rng.normal(size=(40, 2))
    model = mlp([3, 5, 4 if classes else 2], loss=loss)
    config = RunConfig(lr=0.01, options={"momentum": 0.9}, epochs=3, batch_size=8)
    runs = [
        fit(with_overrides(config, backend=b), model, Dataset(x, y)) for b in ("numpy", "torch")
    ]
    ref, ours = (np.array(r.trajectory.losses) for r in runs)
    assert len(ours) == 15
    # float64 on both sides: 15 steps apart only by rounding (a wrong kind, say the
    # mean for "sse", is 16x off).
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_every_compiled_run_in_one_process_compiles():
    """dynamo caches per code object and, past its recompile limit, runs a function
    eagerly: runs that shared one code object (a sweep, a test session) went eager
    from the 9th on, the step first, the optimizer's update still after that fix.
    The limit is lowered to 2 here to reach it in three runs."""
    import torch._dynamo.config

    problem = get_problem("regression")
    config = RunConfig(
        backend="torch",
        mode="graph",
        epochs=1,
        batch_size=100,
        dtype="float32",
        options={"momentum": 0.9},
    )
    compiled = []
    with torch._dynamo.config.patch(recompile_limit=2):  # restored after, unlike setattr
        for _ in range(3):
            before = compiled_graphs()
            fit(config, problem.model, problem.data)
            compiled.append(compiled_graphs() - before)
    # Every run compiles all its graphs (the forward, and the update after
    # backward's graph break), not only the first runs: past the limit a shared
    # code object (the optimizer's step) would run eagerly and compile fewer.
    assert compiled == [compiled[0]] * 3 and compiled[0] >= 2, compiled
