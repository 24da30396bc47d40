"""`dualtrain port`: a user's own torch module on torch and OneFlow, eager and graph.

Every example of examples/port/ trains the same on all four engines with its
dropout on; a hand port passes, and one with a deliberate difference fails at
the first step; a model using a name OneFlow lacks, and every bad input, exit 2
with one line before anything is written; torch is as before afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dualtrain.cli import main

pytest.importorskip("torch")
pytest.importorskip("oneflow")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "port"
MODELS = Path(__file__).resolve().parent / "port_models"

# 960 training rows (1200, 20% held out) in batches of 32: 30 steps an epoch, no
# short batch (nn.Graph takes one static shape); 4 epochs are 120 steps.
COMMON = ["--epochs", "4", "--batch-size", "32", "--dtype", "float32"]
CASES = {
    # SGD with momentum, a schedule stepped every step, the classifier in a group of its own.
    "cnn": [
        f"{EXAMPLES}/cnn.py:SmallCNN",
        "--problem",
        "images",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "0.05",
        "--scheduler",
        "CosineAnnealingLR",
        "--arg",
        "T_max=120",
        "--interval",
        "step",
        "--group",
        "classifier.=0.02",
    ],  # fmt: skip
    # Adam, a warm-up stepped every step, the blocks in a group of their own; int token ids.
    "transformer": [
        f"{EXAMPLES}/transformer.py:TinyTransformer",
        "--problem",
        "sequence",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--scheduler",
        "LinearLR",
        "--arg",
        "start_factor=0.1",
        "--arg",
        "total_iters=40",
        "--interval",
        "step",
        "--group",
        "blocks.=0.002",
    ],  # fmt: skip
    "rnn": [
        f"{EXAMPLES}/rnn.py:LSTMClassifier",
        "--problem",
        "sequence",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--scheduler",
        "StepLR",
        "--arg",
        "step_size=30",
        "--arg",
        "gamma=0.5",
        "--interval",
        "step",
        "--group",
        "out.=0.005",
    ],  # fmt: skip
}


def port(*args: str) -> int:
    return main(["port", *map(str, args)])


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("example", sorted(CASES))
def test_every_example_trains_the_same_on_all_four_engines(example, tmp_path, capsys):
    out = tmp_path / example
    code = port(*CASES[example], *COMMON, "--out", out)
    summary = report(out)
    assert code == 0, capsys.readouterr().out
    assert summary["verdict"] == "pass" and summary["first_divergence"] is None
    engines = summary["engines"]
    for name in ("torch/eager", "torch/graph", "oneflow/eager", "oneflow/graph"):
        assert engines[name]["result"] == "pass", (name, engines[name])
    # The reference is torch eager in float64; float32 engines get its float32 floor.
    assert summary["reference"] == "torch/eager-float64"
    steps = json.loads((out / "torch-graph.json").read_text())["steps"]
    assert len(steps) == 120
    # Dropout was on: masks were drawn, so the loss is not what a dropout-free run gives.
    assert "dropout native" not in " ".join(summary["notes"])
    for name in ("report.md", "loss.png", "lr.png", "divergence.png", "oneflow-graph.csv"):
        assert (out / name).is_file(), name


# Eager engines only below: the graphs are proven above, these are about the check.
EAGER = ["--engines", "torch/eager,oneflow/eager", "--epochs", "1", "--batch-size", "32"]
CNN = [f"{EXAMPLES}/cnn.py:SmallCNN", "--problem", "images", "--momentum", "0.9"]


def test_a_right_hand_port_passes(tmp_path):
    out = tmp_path / "right"
    code = port(*CNN, "--against", f"{EXAMPLES}/cnn_oneflow.py:SmallCNN", *EAGER, "--out", out)
    assert code == 0
    assert report(out)["engines"]["oneflow/eager"]["result"] == "pass"


@pytest.mark.parametrize(
    "change",
    [
        ("nn.ReLU(),\n            nn.MaxPool2d(2),\n            nn.Conv2d", "nn.GELU(),\n"
         "            nn.MaxPool2d(2),\n            nn.Conv2d"),  # another activation
        ("nn.BatchNorm2d(channels)", "nn.BatchNorm2d(channels, eps=0.5)"),  # another eps
    ],
    ids=["activation", "eps"],
)  # fmt: skip
def test_a_hand_port_with_one_difference_fails_at_step_0(change, tmp_path, capsys):
    source = (EXAMPLES / "cnn_oneflow.py").read_text()
    assert change[0] in source
    wrong = tmp_path / "cnn_oneflow_wrong.py"
    wrong.write_text(source.replace(change[0], change[1], 1))
    out = tmp_path / "wrong"
    code = port(*CNN, "--against", f"{wrong}:SmallCNN", *EAGER, "--out", out)
    summary = report(out)
    assert code == 1
    assert summary["verdict"] == "fail"
    assert summary["engines"]["oneflow/eager"]["result"] == "fail"
    # Both differences change the very first forward: the first loss already parts.
    found = summary["first_divergence"]
    assert {k: found[k] for k in ("engine", "step")} == {"engine": "oneflow/eager", "step": 0}
    # Localised automatically (docs/diagnose.md): the forward of the module changed.
    module = "features.2" if "GELU" in change[1] else "features.1"
    assert (found["phase"], found["module"]) == ("forward", module)
    assert "first divergence: oneflow/eager at step 0" in capsys.readouterr().out


def test_a_name_oneflow_lacks_stops_before_training(tmp_path, capsys):
    out = tmp_path / "mha"
    code = port(
        f"{MODELS}/mha.py:AttentionClassifier", "--problem", "sequence", *EAGER, "--out", out
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1
    assert f"{MODELS / 'mha.py'}:11:" in err and "MultiheadAttention" in err


def _npz(tmp_path: Path, x, y) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def _flat(tmp_path: Path, features=8, classes=3) -> str:
    rng = np.random.default_rng(0)
    return _npz(tmp_path, rng.normal(size=(64, features)), rng.integers(0, classes, 64))


BAD = {
    "missing file": (lambda t: [f"{t}/nope.py:Net", "--data", _flat(t)], "not found"),
    "missing class": (
        lambda t: [f"{MODELS}/broken.py:Nope", "--data", _flat(t)],
        "no class 'Nope'",
    ),
    "constructor error": (
        lambda t: [f"{MODELS}/broken.py:RaisesInInit", "--init", "width=3", "--data", _flat(t)],
        "width 3 is not supported",
    ),
    "not a module": (
        lambda t: [f"{MODELS}/broken.py:NotAModule", "--data", _flat(t)],
        "not a subclass of torch.nn",
    ),
    "forward raises": (
        lambda t: [f"{MODELS}/broken.py:RaisesInForward", "--data", _flat(t, 4)],
        "this forward always fails",
    ),
    "input shape": (
        lambda t: [f"{MODELS}/broken.py:EightFeatures", "--data", _flat(t, features=5)],
        "shape (8, 5)",
    ),
    "loss misfit": (
        lambda t: [f"{MODELS}/broken.py:EightFeatures", "--data", _flat(t, classes=7)],
        "class ids must be in [0, 3)",
    ),
    "mse on class ids": (
        lambda t: [f"{MODELS}/broken.py:EightFeatures", "--data", _flat(t), "--loss", "mse"],
        "mse on outputs of shape (batch, 3)",
    ),
    "against imports torch": (
        lambda t: [*CNN, "--against", f"{MODELS}/cnn_oneflow_torch.py:SmallCNN"],
        "must import oneflow, not torch",
    ),
    "unknown engine": (
        lambda t: [*CNN, "--engines", "torch/eager,jax/eager"],
        "unknown backend 'jax'",
    ),
    "unknown mode": (lambda t: [*CNN, "--engines", "torch/fast"], "BACKEND/MODE"),
    "functional dropout": (
        lambda t: [f"{MODELS}/broken.py:FunctionalDropout", "--data", _flat(t)],
        "random numbers outside its nn.Dropout modules",
    ),
    "bad --init": (lambda t: [*CNN, "--init", "3=4"], "--init expects KEY=VALUE"),
    "bad --dropout": (lambda t: [*CNN, "--dropout", "off"], "--dropout must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(case, tmp_path, capsys):
    args, expected = BAD[case]
    out = tmp_path / "out"
    code = port(*args(tmp_path), "--epochs", "1", "--out", out)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("dualtrain: error:"), err
    assert expected in err, err
    assert not out.exists()


def test_native_dropout_is_said_to_be_not_meaningful_and_differs(tmp_path):
    out = tmp_path / "native"
    # float64: no float32 floor, which each run's own masks would blow up.
    code = port(*CNN, "--dropout", "native", *EAGER, "--dtype", "float64", "--out", out)
    summary = report(out)
    assert any("not meaningful" in note for note in summary["notes"])
    # Each framework drew its own masks: the runs part (shared masks pass, above).
    assert code == 1 and summary["engines"]["oneflow/eager"]["result"] == "fail"


def test_the_numpy_backend_is_skipped_with_its_reason(tmp_path):
    out = tmp_path / "numpy"
    code = port(*CNN, "--engines", "torch/eager,numpy/eager", "--epochs", "1", "--out", out)
    engine = report(out)["engines"]["numpy/eager"]
    assert code == 0 and engine["result"] == "skipped"
    assert "declarative models only" in engine["skipped"]


def test_the_parameters_with_no_gradient_are_left_out_and_listed(tmp_path):
    """The example CNN's conv biases sit right before a BatchNorm2d, which removes
    any constant: their gradient is zero in exact arithmetic, and the running
    means of those BatchNorms follow the biases. Nothing else is left out."""
    out = tmp_path / "quiet"
    assert port(*CNN, *EAGER, "--out", out) == 0
    excluded = report(out)["excluded_from_final_weights"]
    assert sorted(excluded) == sorted(
        ["features.0.bias", "features.4.bias", "features.1.running_mean",
         "features.5.running_mean"]
    )  # fmt: skip
    assert "features.0.bias" in (out / "report.md").read_text()


def test_torch_trains_exactly_as_before_after_a_port(tmp_path):
    import torch

    def plain_torch_run() -> list[float]:
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        x, y = torch.randn(32, 4), torch.randn(32, 1)
        losses = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    before = plain_torch_run()
    modules_before = set(sys.modules)
    torch.manual_seed(11)
    state_before = torch.random.get_rng_state()
    assert port(*CNN, *EAGER, "--out", tmp_path / "cnn") == 0
    # The port drew torch's init under its own seed, inside a fork of the RNG.
    assert torch.equal(torch.random.get_rng_state(), state_before)
    new = set(sys.modules) - modules_before
    assert not [m for m in new if "dualtrain_user" in m or m in ("cnn", "cnn_oneflow")], new
    assert sys.modules["torch"] is torch and torch.nn.Module.__module__ == "torch.nn.modules.module"
    assert plain_torch_run() == before


def test_the_python_api_takes_a_class_and_returns_the_comparison(tmp_path, monkeypatch):
    import importlib.util

    import dualtrain
    from dualtrain.comparison import Comparison
    from dualtrain.problems import get_problem

    spec = importlib.util.spec_from_file_location("cnn_api", EXAMPLES / "cnn.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "cnn_api", module)  # as `import cnn_api` would
    spec.loader.exec_module(module)
    data = get_problem("images").data
    x, y = data.x[:256], data.y[:256]
    check = dualtrain.port(
        module.SmallCNN, x, y, init={"channels": 4}, engines="torch/eager,oneflow/eager",
        optimizer="sgd", momentum=0.9, lr=0.05, epochs=1, batch_size=32,
    )  # fmt: skip
    assert isinstance(check, Comparison)
    assert check.passed and check.first_divergence is None
    # float32 engines by default, judged against torch eager in float64.
    assert [r.engine for r in check.results] == [
        "torch/eager-float64",
        "torch/eager",
        "oneflow/eager",
    ]
    # init reached the constructor: 4 channels in the first conv.
    assert check.results[0].run.state["features.0.weight"].shape == (4, 1, 3, 3)
    same = dualtrain.port(
        f"{EXAMPLES}/cnn.py:SmallCNN", x, y, init={"channels": 4}, engines=["torch/eager"],
        optimizer="sgd", momentum=0.9, lr=0.05, epochs=1, batch_size=32,
    )  # fmt: skip
    np.testing.assert_array_equal(
        same.results[0].run.trajectory.losses, check.results[0].run.trajectory.losses
    )


FACTORY = """\
import torch
from torch import nn


def make_model():
    torch.manual_seed(123)  # a factory may seed; the port runs it under the run's seed anyway
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def not_a_model():
    return 42
"""


def test_a_zero_argument_factory_is_a_model_on_both_frameworks(tmp_path, monkeypatch):
    import importlib.util

    import dualtrain
    from dualtrain.errors import ConfigError

    (tmp_path / "factory.py").write_text(FACTORY)
    spec = importlib.util.spec_from_file_location("factory_api", tmp_path / "factory.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "factory_api", module)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    options = dict(optimizer="sgd", momentum=0.9, lr=0.05, epochs=2, batch_size=16)
    engines = "torch/eager,oneflow/eager"
    by_function = dualtrain.port(module.make_model, x, y, engines=engines, **options)
    assert by_function.passed, by_function.results
    # OneFlow's side really trained: its losses are its own, and they fell.
    losses = by_function.results[-1].run.trajectory.losses
    assert by_function.results[-1].engine == "oneflow/eager" and losses[-1] < losses[0]
    by_name = dualtrain.port(f"{tmp_path}/factory.py:make_model", x, y, engines=engines, **options)
    np.testing.assert_array_equal(
        by_name.results[0].run.trajectory.losses, by_function.results[0].run.trajectory.losses
    )
    with pytest.raises(ConfigError, match="not_a_model.* gave a int, not a torch.nn.Module"):
        dualtrain.port(module.not_a_model, x, y, engines="torch/eager", **options)
    with pytest.raises(ConfigError, match="a factory function defined at the top level"):
        dualtrain.port(lambda: module.make_model(), x, y, engines="torch/eager", **options)


def test_a_class_without_a_source_file_is_refused_in_one_line():
    import torch

    import dualtrain
    from dualtrain.errors import ConfigError

    class Local(torch.nn.Module):
        pass

    with pytest.raises(ConfigError, match="put the class in a .py file"):
        dualtrain.port(Local, np.zeros((4, 2)), np.zeros((4, 1)))


def test_mse_targets_of_any_shape_and_a_per_sample_output(tmp_path):
    """A module returning (batch,) with 1-D float targets: the core fits them."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "reg.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Reg(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.25),"
        " nn.Linear(8, 1))\n\n"
        "    def forward(self, x):\n        return self.body(x).squeeze(-1)\n"
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 3))
    data = _npz(tmp_path, x, x @ np.array([1.0, -2.0, 0.5]))
    out = tmp_path / "out"
    code = port(f"{folder}/reg.py:Reg", "--data", data, "--optimizer", "sgd", "--lr", "0.05",
                *EAGER, "--out", out)  # fmt: skip
    assert code == 0
    assert report(out)["engines"]["oneflow/eager"]["result"] == "pass"
