"""The localiser names the step, the phase and the module of every injected fault.

Each fault lives in tests/diagnose_faults/ (a OneFlow hand port with one
difference, or a test-only backend over OneFlow's with one changed method); the
comparison finds that the port parts, and the diagnosis must name where. A
correct port passes and, diagnosed anyway, has every module within its noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("oneflow")

import torch  # noqa: E402

import dualtrain  # noqa: E402
from dualtrain.backend import register_backend, unregister_backend  # noqa: E402
from dualtrain.errors import ConfigError  # noqa: E402
from dualtrain.problems import get_problem, sequence  # noqa: E402

FAULTS = Path(__file__).resolve().parent / "diagnose_faults"
sys.path.insert(0, str(FAULTS))
import backends as fault_backends  # noqa: E402

sys.path.remove(str(FAULTS))

TORCH = f"{FAULTS}/transformer.py:TinyTransformer"
ONEFLOW = f"{FAULTS}/transformer_oneflow.py"
# Adam, an lr moving every step (LinearLR), batches of 16 token sequences.
OPTIONS = dict(
    optimizer="adam",
    lr=0.003,
    scheduler="LinearLR",
    scheduler_args={"start_factor": 0.1, "total_iters": 8},
    interval="step",
    epochs=1,
    batch_size=16,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # On a loaded 2-core machine torch's second thread only contends (a step of the
    # transformer measured 135 ms with 2 threads, 15 ms with 1); the comparison and
    # its diagnosis both run under this one setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def fault_backends_registered():
    for cls in fault_backends.FAULTS:
        register_backend(cls)
    yield
    for cls in fault_backends.FAULTS:
        unregister_backend(cls.name)


@pytest.fixture(scope="module")
def data():
    p = sequence(n=128)
    return p.data.x, p.data.y


def port(
    data, against="TinyTransformer", engine="oneflow/eager", diagnose=None, rows=32, **changes
):
    # Two steps of 16 rows: every fault here shows at step 0 or 1.
    x, y = data[0][:rows], data[1][:rows]
    return dualtrain.port(
        TORCH,
        x,
        y,
        against=f"{ONEFLOW}:{against}",
        engines=["torch/eager", engine],
        diagnose=diagnose,
        **{**OPTIONS, **changes},
    )


def first(check) -> dict:
    found = check.first_divergence
    assert found is not None and found.get("phase"), (found, check.notes)
    return found


def test_one_layernorm_eps_on_oneflow_is_forward_at_that_norm(data):
    check = port(data, "NormEps")
    found = first(check)
    assert (found["engine"], found["step"]) == ("oneflow/eager", 0)
    assert (found["phase"], found["module"]) == ("forward", "blocks.1.norm1")
    assert found["value"] > found["tolerance"]
    assert found["referee"].endswith("oneflow/eager is off"), found["referee"]
    # Every module before it computes the same within its noise (teacher forcing).
    finding = check.diagnosis.first
    ahead = [c for c in finding.checks if c.phase == "forward"]
    ahead = ahead[: [c.module for c in ahead].index("blocks.1.norm1")]
    assert ahead and not any(c.parted for c in ahead)


def test_another_activation_in_one_block_is_forward_at_it(data):
    found = first(port(data, "TanhGelu"))
    assert (found["step"], found["phase"], found["module"]) == (0, "forward", "blocks.0.mlp.1")


def test_a_gradient_scaled_by_1_01_is_backward_at_that_module_only(data):
    check = port(data, "ScaledGradient")
    found = first(check)
    assert (found["step"], found["phase"], found["module"]) == (0, "backward", "blocks.1.mlp.1")
    finding = check.diagnosis.first
    assert not any(c.parted for c in finding.checks if c.phase == "forward")
    parted = [c for c in finding.checks if c.phase == "backward" and c.parted]
    assert [c.module for c in parted] == ["blocks.1.mlp.1"]
    # The difference is 1% of the reference's input gradient there, by construction.
    ref = finding.sides["reference"].record.calls["blocks.1.mlp.1"].grad_inputs[0]
    assert found["value"] == pytest.approx(0.01 * np.max(np.abs(ref)), rel=0.02)
    assert found["referee"].endswith("oneflow/eager is off"), found["referee"]


def test_another_adam_eps_is_the_optimizer_at_step_0(data):
    check = port(data, engine="oneflow_eps/eager")
    found = first(check)
    assert (found["engine"], found["step"], found["phase"]) == ("oneflow_eps/eager", 0, "optimizer")
    # The first parameter in state order (the model's own `positions`): every update moves.
    assert (found["module"], found["what"]) == ("", "update of positions")
    finding = check.diagnosis.first
    assert not any(c.parted for c in finding.checks if c.phase in ("forward", "backward"))


def test_one_batch_with_its_rows_permuted_is_data_at_that_step(data):
    found = first(port(data, engine="oneflow_rows/eager"))
    assert (found["step"], found["phase"], found["module"]) == (
        fault_backends.PERMUTED_STEP,
        "data",
        "",
    )


def test_an_lr_one_step_late_is_the_schedule_at_step_1(data):
    # Step 0 applies its own lr (nothing is earlier); step 1 applies step 0's.
    found = first(port(data, engine="oneflow_late_lr/eager"))
    assert (found["step"], found["phase"], found["what"]) == (1, "schedule", "lr of group 0")
    assert found["value"] == pytest.approx(0.003 * (0.1 + 0.9 / 8) - 0.003 * 0.1, rel=1e-12)


def test_a_correct_port_passes_and_every_module_is_within_its_noise(data):
    check = port(data, diagnose=True)
    assert check.passed and check.first_divergence is None
    (finding,) = [f for f in check.diagnosis.findings if f.engine == "oneflow/eager"]
    assert finding.phase is None and finding.step == 1  # the run's last step
    modules = [c for c in finding.checks if c.phase in ("forward", "backward", "optimizer")]
    assert len({c.module for c in modules}) >= 20
    assert not any(c.parted for c in finding.checks)


def test_a_passing_port_is_not_diagnosed_unless_asked(data):
    check = port(data)
    assert check.passed and check.diagnosis is None


def test_no_checkpointable_optimizer_state_is_one_line(data):
    with pytest.raises(ConfigError, match="no checkpointable optimizer state") as info:
        port(data, engine="oneflow_unsaved/eager", diagnose=True)
    assert len(str(info.value).splitlines()) == 1


def test_a_module_under_two_names_is_one_line():
    x = np.random.default_rng(0).normal(size=(32, 6))
    y = np.random.default_rng(1).integers(0, 3, size=32)
    with pytest.raises(ConfigError, match="'again' is the same module as 'first'") as info:
        dualtrain.port(
            f"{FAULTS}/shared.py:Shared",
            x,
            y,
            engines=["torch/eager", "oneflow/eager"],
            diagnose=True,
            epochs=1,
            batch_size=16,
        )
    assert len(str(info.value).splitlines()) == 1


def test_a_forward_with_side_effects_is_one_line(data):
    x = np.random.default_rng(0).normal(size=(64, 6))
    y = np.random.default_rng(1).integers(0, 3, size=64)
    with pytest.raises(ConfigError, match="side effects") as info:
        dualtrain.port(
            f"{FAULTS}/stateful.py:Counting",
            x,
            y,
            engines=["torch/eager", "oneflow/eager"],
            diagnose=True,
            epochs=1,
            batch_size=16,
        )
    assert len(str(info.value).splitlines()) == 1


def test_the_referee_computes_torchs_own_layernorm_from_its_attributes():
    from dualtrain.diagnose.records import plain_attributes
    from dualtrain_numpy.referee import referee

    norm = torch.nn.LayerNorm(5, eps=1e-3).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(4, 5, dtype=torch.float64)
    y = norm(x)
    y.backward(dy)
    state = {k: v.detach().numpy() for k, v in norm.state_dict().items()}
    (out,), (dx,) = referee("LayerNorm", plain_attributes(norm), state, [x.detach().numpy()],
                            [dy.numpy()])  # fmt: skip
    # float64 both: a few ulps of values of size ~1.
    assert np.max(np.abs(out - y.detach().numpy())) < 1e-13
    assert np.max(np.abs(dx - x.grad.numpy())) < 1e-13


def test_a_module_type_numpy_lacks_is_not_refereed():
    from dualtrain_numpy.referee import referee

    with pytest.raises(ConfigError, match="unknown layer type 'CausalSelfAttention'"):
        referee("CausalSelfAttention", {}, {}, [np.zeros((1, 2))], [None])


@pytest.mark.parametrize("backend_name", ["torch", "oneflow"])
def test_a_probed_step_is_bit_identical_to_an_unprobed_one(backend_name):
    from dualtrain.backend import get_backend
    from dualtrain.loop import RunConfig

    problem = get_problem("regression")
    spec, rows = problem.model, slice(0, 50)
    x, y = problem.data.x[rows], problem.data.y[rows]
    backend = get_backend(backend_name)
    config = RunConfig(optimizer="adam", lr=0.01)
    start = spec.initial_weights(0)
    results = []
    for probed in (False, True):
        net = backend.build(spec, "float32", "cpu")
        backend.load_state(net, start)
        optimizer = backend.make_optimizer(net, config.optimizer_spec())
        step = backend.eager_step(net, optimizer)
        step(x, y)  # a first step, so that the probed one has optimizer state to use
        probe = backend.probe(net) if probed else None
        loss = step(x, y)
        if probe is not None:
            probe.remove()
            assert len(probe.record.calls) == len(spec.layers) + 1  # every layer and the model
        results.append((loss, backend.read_state(net), backend.read_grads(net)))
    (loss_off, state_off, grads_off), (loss_on, state_on, grads_on) = results
    assert loss_on == loss_off
    for name in state_off:
        assert np.array_equal(state_on[name], state_off[name]), name
    for name in grads_off:
        assert np.array_equal(grads_on[name], grads_off[name]), name


def test_a_graph_engine_is_localised_to_the_step_and_its_parameters(data):
    # The only graph test: nn.Graph runs no hooks, so the state after each step decides.
    check = port(data, "NormEps", engine="oneflow/graph")
    found = first(check)
    assert (found["engine"], found["step"], found["phase"]) == ("oneflow/graph", 0, "state")
    assert found["depth"].startswith("step")
    finding = check.diagnosis.first
    assert finding.parameters and set(finding.parameters) <= {
        c.what.split(" ")[0] for c in finding.checks
    }
    assert all(c.parted == (c.what.split(" ")[0] in finding.parameters) for c in finding.checks)


@pytest.mark.parametrize("backend_name", ["torch", "oneflow"])
def test_teacher_forcing_by_its_own_record_changes_nothing(backend_name):
    # Forced by the record of the very same step, every module computes exactly what
    # it recorded: forcing replaces values by equal ones and adds no rounding.
    from dualtrain.backend import get_backend
    from dualtrain.loop import RunConfig

    problem = get_problem("regression")
    x, y = problem.data.x[:50], problem.data.y[:50]
    backend = get_backend(backend_name)
    records = []
    for forced in (None, "own"):
        net = backend.build(problem.model, "float64", "cpu")
        backend.load_state(net, problem.model.initial_weights(0))
        optimizer = backend.make_optimizer(net, RunConfig(lr=0.01).optimizer_spec())
        probe = backend.probe(net, forced=records[0] if forced else None)
        backend.eager_step(net, optimizer)(x, y)
        probe.remove()
        records.append(probe.record)
    recorded, replayed = records
    assert list(replayed.calls) == list(recorded.calls)
    for key, call in recorded.calls.items():
        again = replayed.calls[key]
        pairs = zip(call.outputs + call.grad_inputs, again.outputs + again.grad_inputs, strict=True)
        for a, b in pairs:
            assert (a is None and b is None) or np.array_equal(a, b), key
