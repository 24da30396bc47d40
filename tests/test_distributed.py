"""Data parallel on torch (DistributedDataParallel over gloo, 2 processes on this machine).

The proof: a 2-process run equals, bit for bit, one process that back-propagates
the same two shards and averages their gradients (the emulation, written here
with torch's own modules and optimizers); it equals the full-batch one-process
run within rounding; a checkpoint of it resumes on 2 processes exactly and on
one within rounding. Launches are slow (two interpreters importing torch, a
process group), so each run below is made once per module and read by
several tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed_cases import MODEL, adam, data, sgd

from dualtrain import checkpoint as checkpoints
from dualtrain.backend import register_backend, unregister_backend
from dualtrain.data import Dataset, batch_indices
from dualtrain.distributed import TIMEOUT_VARIABLE, Rank, check_replicas, shard
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.launch import free_port
from dualtrain.loop import RunConfig, fit, train_engine, with_overrides
from dualtrain.model import Dropout, Linear, ModelSpec, mlp

torch = pytest.importorskip("torch")
from dualtrain_torch.backend import TorchBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SGD = sgd("torch")
ADAM = adam(SGD)


def emulate(config: RunConfig, train: Dataset, world: int, lrs: list) -> tuple[list, dict]:
    """One process, torch's own modules and optimizer: every global batch split into
    `world` shards, each back-propagated, the gradients summed and divided by
    `world` (what DDP's all-reduce does), one optimizer step at the step's `lrs`;
    the loss is the mean of the shard losses."""
    backend = TorchBackend()
    net = backend.build(MODEL, config.dtype, "cpu")
    backend.load_state(net, MODEL.initial_weights(config.seed))
    optimizer = backend.make_optimizer(net, config.optimizer_spec())
    losses, step = [], 0
    for epoch in range(config.epochs):
        order = batch_indices(len(train), config.batch_size, epoch, config.seed, config.shuffle)
        for index in order:
            for group, lr in zip(optimizer.param_groups, lrs[step], strict=True):
                group["lr"] = lr
            optimizer.zero_grad()
            shard_losses = []
            for rank in range(world):
                rows = index[shard(len(index), rank, world)]
                out = net(torch.from_numpy(train.x[rows]).to(net.dualtrain_dtype))
                loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(train.y[rows]))
                loss.backward()
                shard_losses.append(loss.item())
            for p in net.parameters():
                p.grad /= world
            optimizer.step()
            losses.append(sum(shard_losses) / world)
            step += 1
    return losses, backend.read_state(net)


@pytest.fixture(scope="module")
def sgd_cli(tmp_path_factory):
    """`dualtrain train --nproc 2` on the SGD config, checkpoints every 2 steps."""
    folder = tmp_path_factory.mktemp("sgd")
    np.savez(folder / "data.npz", x=data().x, y=data().y)
    out = folder / "out"
    command = [sys.executable, "-m", "dualtrain", *cli_arguments(folder / "data.npz", out)]
    command += ["--nproc", "2", "--save-every", "2"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder, done


def cli_config() -> RunConfig:
    """The config `sgd_cli` trains: the SGD one, in the data's order (no shuffle)."""
    return with_overrides(SGD, shuffle=False)


def test_the_cli_run_writes_one_trajectory_and_intact_checkpoints(sgd_cli):
    folder, done = sgd_cli
    trajectory = json.loads((folder / "out" / "trajectory.json").read_text())
    assert len(trajectory["steps"]) == 9
    assert trajectory["meta"]["nproc"] == 2 and len(trajectory["meta"]["pids"]) == 2
    found = [p.name for p in checkpoints.complete(folder / "out" / "checkpoints")]
    assert found == [f"step-{s:08d}" for s in (2, 4, 6, 8, 9)]
    last = checkpoints.load(folder / "out" / "checkpoints")
    assert last.trajectory["steps"] == trajectory["steps"]  # rank 0's records, once
    assert "torch/eager: 9 steps" in done.stdout
    # StepLR(step_size=2, gamma=0.7) every step; the default group at 0.1, then "0." at 0.05.
    want = [[0.1 * 0.7 ** (s // 2), 0.05 * 0.7 ** (s // 2)] for s in range(9)]
    assert np.allclose([s["lr"] for s in trajectory["steps"]], want, rtol=1e-15, atol=0)


def test_two_processes_equal_the_emulation_bit_for_bit(sgd_cli):
    folder, _ = sgd_cli
    last = checkpoints.load(folder / "out" / "checkpoints")
    lrs = [s["lr"] for s in last.trajectory["steps"]]
    losses, state = emulate(cli_config(), data(), 2, lrs)
    assert [s["loss"] for s in last.trajectory["steps"]] == losses
    assert state.keys() == last.model.keys()
    for name, value in state.items():
        assert np.array_equal(last.model[name], value), name


def test_two_processes_equal_one_full_batch_process_within_rounding(sgd_cli):
    folder, _ = sgd_cli
    one = fit(with_overrides(cli_config(), nproc=1), MODEL, data())
    last = checkpoints.load(folder / "out" / "checkpoints")
    two = np.array([s["loss"] for s in last.trajectory["steps"]])
    # Measured here: 2.8e-16 relative on the losses, 1.3e-15 on the parameters
    # (float64, SGD): mean of two shard means against one mean, and the gradient
    # sums in another order. 1e-13 leaves room for a longer run, not for a bug
    # (a wrong shard or lr moves the loss at 1e-3).
    assert np.allclose(two, one.trajectory.losses, rtol=1e-13, atol=0)
    for name, value in one.state.items():
        assert np.allclose(last.model[name], value, rtol=1e-12, atol=1e-15), name


def test_a_two_process_checkpoint_resumes_on_one_process_within_rounding(sgd_cli):
    folder, _ = sgd_cli
    middle = checkpoints.load(folder / "out" / "checkpoints" / "step-00000004")
    assert middle.config["nproc"] == 2
    resumed = fit(with_overrides(cli_config(), nproc=1), MODEL, data(), resume=middle)
    last = checkpoints.load(folder / "out" / "checkpoints")
    assert resumed.trajectory.steps[:4] == last.trajectory["steps"][:4]
    assert len(resumed.trajectory.steps) == 9
    # As for the whole run on one process (measured 2.8e-16 / 1.3e-15 above).
    assert np.allclose(
        resumed.trajectory.losses, [s["loss"] for s in last.trajectory["steps"]], rtol=1e-13, atol=0
    )
    for name, value in resumed.state.items():
        assert np.allclose(last.model[name], value, rtol=1e-12, atol=1e-15), name


def cli_arguments(data_file: Path, out: Path) -> list[str]:
    """`dualtrain train`'s arguments for the SGD config (as `sgd_cli` runs it)."""
    arguments = ["train", "--backend", "torch", "--data", str(data_file), "--val-fraction", "0"]
    arguments += ["--no-shuffle", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9"]
    arguments += ["--group", "0.=0.05", "--scheduler", "StepLR", "--arg", "step_size=2"]
    arguments += ["--arg", "gamma=0.7", "--interval", "step", "--epochs", "3"]
    return arguments + ["--batch-size", "16", "--seed", "1", "--out", str(out)]


def test_two_local_nodes_under_torchrun_train_as_nproc_2(sgd_cli, tmp_path):
    """Two torchrun launches, one a "node" (--node-rank 0 and 1, one process each),
    the usual MASTER_ADDR/MASTER_PORT rendezvous: dualtrain train runs as each
    rank, rank 0 alone writes, and the run is the --nproc 2 run bit for bit."""
    folder, _ = sgd_cli
    torchrun = Path(sys.executable).with_name("torchrun")
    port = free_port()
    nodes = []
    for node in (0, 1):
        command = [str(torchrun), "--nnodes", "2", "--nproc-per-node", "1"]
        command += ["--node-rank", str(node), "--master-addr", "127.0.0.1"]
        command += ["--master-port", str(port), "-m", "dualtrain"]
        command += cli_arguments(folder / "data.npz", tmp_path / f"node{node}")
        nodes.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )  # fmt: skip
        )
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "torch/eager: 9 steps" in outputs[0][0] and "steps" not in outputs[1][0]
    assert not (tmp_path / "node1").exists()
    got = json.loads((tmp_path / "node0" / "trajectory.json").read_text())
    want = json.loads((folder / "out" / "trajectory.json").read_text())
    assert got["meta"]["nproc"] == 2
    assert [s["loss"] for s in got["steps"]] == [s["loss"] for s in want["steps"]]


# --- refused in one line, before any process starts ------------------------------------

DROPOUT = ModelSpec((Linear(4, 8), Dropout(0.5), Linear(8, 3)), loss="cross_entropy")


@pytest.mark.parametrize(
    "changes, model, error, words",
    [
        ({"batch_size": 15}, MODEL, ConfigError, "a batch of 15 rows does not split into 2"),
        ({"batch_size": 20}, MODEL, ConfigError, "the last batch of 8 rows does not split into 5"),
        ({}, mlp([4, 8, 3], batchnorm=True, loss="cross_entropy"), ConfigError, "BatchNorm '1'"),
        ({"backend": "numpy"}, MODEL, CapabilityError, "'numpy': this backend trains in one"),
        ({}, DROPOUT, ConfigError, "shared dropout masks are drawn for a whole batch"),
    ],
)
def test_what_cannot_train_data_parallel_is_refused(changes, model, error, words):
    config = with_overrides(SGD, nproc=5 if changes.get("batch_size") == 20 else 2, **changes)
    with pytest.raises(error) as info:
        train_engine(config, model, data())
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_summed_loss_is_refused():
    model = mlp([4, 1], loss="sse")
    train = Dataset(data().x, data().x[:, :1])
    with pytest.raises(ConfigError, match="loss 'sse' sums over the batch"):
        train_engine(with_overrides(SGD, groups=()), model, train)


@pytest.mark.parametrize("nproc", ["0", "-2"])
def test_the_cli_refuses_a_bad_nproc_in_one_line(nproc, capsys):
    from dualtrain.cli import main

    assert (
        main(["train", "--backend", "torch", "--problem", "classification", "--nproc", nproc]) == 2
    )
    assert (
        capsys.readouterr().err == f"dualtrain: error: nproc must be a positive int, got {nproc}\n"
    )


# --- torch.compile of the DDP step ------------------------------------------------------

COUNTS = "DUALTRAIN_TEST_COUNTS"


class CountingTorch(TorchBackend):
    """torch, writing dynamo's frame and graph counts after every compiled-run step
    to $DUALTRAIN_TEST_COUNTS/rank-<RANK>.json (a new frame is a recompile)."""

    name = "counting-torch"

    def compile_step(self, model, optimizer, plan):
        from torch._dynamo.utils import counters

        step, seen = super().compile_step(model, optimizer, plan), []
        path = Path(os.environ[COUNTS]) / f"rank-{os.environ['RANK']}.json"

        def counted(x, y):
            loss = step(x, y)
            seen.append([counters["frames"]["total"], counters["stats"]["unique_graphs"]])
            path.write_text(json.dumps(seen))
            return loss

        return counted


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("counts")
    register_backend(CountingTorch)
    saved = os.environ.get(COUNTS)
    os.environ[COUNTS] = str(folder)
    try:
        config = with_overrides(ADAM, backend="counting-torch", mode="graph")
        run = train_engine(config, MODEL, data())
    finally:
        unregister_backend(CountingTorch.name)
        os.environ.pop(COUNTS) if saved is None else os.environ.update({COUNTS: saved})
    counts = [json.loads((folder / f"rank-{r}.json").read_text()) for r in range(2)]
    return run, counts


def test_the_compiled_ddp_step_never_recompiles_after_warm_up(compiled):
    _, counts = compiled
    for seen in counts:
        assert len(seen) == 9
        # Step 0 runs eagerly (it creates Adam's state); step 1 compiles: the
        # frames dynamo compiled then are all it ever compiles.
        frames, graphs = seen[1]
        assert frames >= 1 and graphs >= 1
        assert all(now == seen[1] for now in seen[1:]), seen


def test_the_compiled_ddp_step_trains_as_the_eager_emulation(compiled):
    run, _ = compiled
    lrs = [s["lr"] for s in run.trajectory.steps]
    losses, state = emulate(ADAM, data(), 2, lrs)
    # Measured: 3.6e-6 relative on the losses, 1.5e-6 on the parameters, as far as
    # one process's compiled Adam is from its eager Adam in float32 (3.7e-6 and
    # 1.6e-6, fit() of ADAM with nproc=1, mode graph against eager): inductor's
    # fused update rounds otherwise, and Adam's division by sqrt(v) carries it.
    # About 3x that; a wrong shard or lr moves them at 1e-3.
    assert np.allclose(run.trajectory.losses, losses, rtol=1e-5, atol=0)
    for name, value in state.items():
        assert np.allclose(run.state[name], value, rtol=0, atol=5e-6), name


@pytest.mark.parametrize("command", ["compare", "port"])
def test_compare_and_port_under_a_launcher_are_refused(command, monkeypatch, capsys):
    from dualtrain.cli import main

    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    extra = ["examples/port/cnn.py:SmallCNN"] if command == "port" else []
    assert main([command, *extra, "--problem", "classification"]) == 2
    err = capsys.readouterr().err
    assert f"dualtrain {command} starts its own ranks for each engine" in err
    assert "only dualtrain train runs as a rank" in err and err.count("\n") == 1


# --- the core's pieces, without a process --------------------------------------------


@pytest.mark.parametrize("rows, world", [(16, 2), (12, 3), (8, 8), (6, 1)])
def test_the_shards_in_rank_order_are_the_batch(rows, world):
    batch = np.arange(100, 100 + rows)
    parts = [batch[shard(rows, rank, world)] for rank in range(world)]
    assert [len(p) for p in parts] == [rows // world] * world
    assert np.array_equal(np.concatenate(parts), batch)


def test_the_rank_comes_from_the_usual_variables():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1"}
    env |= {"MASTER_PORT": "29511", TIMEOUT_VARIABLE: "7.5"}
    assert Rank.from_env(env) == Rank(3, 4, 1, "10.0.0.1", 29511, 7.5)
    assert Rank.from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert Rank.from_env({}) is None
    assert Rank(3, 4, 1, "10.0.0.1", 29511, 7.5).env() == env


@pytest.mark.parametrize(
    "env, words",
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 asks for a data-parallel run, but RANK"),
        ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK / MASTER_PORT are missing or not numbers"),
        ({"WORLD_SIZE": "2", "RANK": "0", TIMEOUT_VARIABLE: "0"}, "must be a positive number"),
    ],
)
def test_a_broken_environment_is_refused_in_one_line(env, words):
    with pytest.raises(ConfigError) as info:
        Rank.from_env(env)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_replicas_that_drifted_apart_are_an_error():
    same = {"0.weight": np.ones((2, 2)), "0.bias": np.zeros(2)}
    check_replicas([same, {k: v.copy() for k, v in same.items()}])
    drifted = {"0.weight": np.ones((2, 2)), "0.bias": np.array([0.0, 1e-300])}
    with pytest.raises(ConfigError, match="rank 1's 0.bias differs from rank 0's"):
        check_replicas([same, drifted])


def test_the_python_api_takes_nproc():
    from dualtrain.api import run_config

    assert run_config(backend="torch", nproc=2).nproc == 2


def test_a_rank_keeps_what_its_backend_can_build():
    from dualtrain.distributed import RankBackend

    rank = RankBackend(TorchBackend(), Rank(0, 2), "eager", "float32")
    # A user's own module (dualtrain port --nproc) is refused by the loop otherwise.
    assert rank.supports_user_modules and rank.name == "torch"
    assert rank.graph_dtypes == TorchBackend.graph_dtypes
