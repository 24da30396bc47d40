"""`--model FILE`: a declarative model written as [[layer]] tables, and its refusals.

The example files under examples/models/ are loaded here, so the format the
docs show is the format that works.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from dualtrain.cli import main
from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.model import (
    GELU,
    BatchNorm1d,
    Conv2d,
    Dropout,
    LayerNorm,
    Linear,
    ModelSpec,
    Residual,
    Tanh,
    mlp,
)
from dualtrain.modelfile import load_model_file, model_from_config, model_to_config
from dualtrain.trajectory import Trajectory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "models"


def write(tmp_path: Path, text: str, suffix: str = ".toml") -> Path:
    path = tmp_path / f"model{suffix}"
    path.write_text(text)
    return path


def test_the_mlp_example_is_the_regression_problems_model():
    spec = load_model_file(EXAMPLES / "mlp.toml")
    builtin = mlp([5, 32, 1], activation="tanh", batchnorm=True, loss="mse")
    assert spec.layers == builtin.layers
    assert spec.loss == "mse"
    assert spec.layers == (Linear(5, 32, bias=False), BatchNorm1d(32), Tanh(), Linear(32, 1))


def test_a_residual_block_reads_its_own_layer_tables(tmp_path):
    path = write(
        tmp_path,
        """
loss = "cross_entropy"
[[layer]]
type = "Linear"
in_features = 4
out_features = 8
[[layer]]
type = "Residual"
[[layer.layers]]
type = "LayerNorm"
normalized_shape = 8
[[layer.layers]]
type = "GELU"
approximate = "tanh"
[[layer.layers]]
type = "Dropout"
p = 0.25
[[layer]]
type = "Linear"
in_features = 8
out_features = 3
""",
    )
    spec = load_model_file(path)
    inner = (LayerNorm(8), GELU("tanh"), Dropout(0.25))
    assert spec.layers == (Linear(4, 8), Residual(inner), Linear(8, 3))
    assert list(spec.param_shapes()) == [
        "0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.weight", "2.bias",
    ]  # fmt: skip
    assert [s.name for s in spec.dropout_sites()] == ["1.2"]


def test_json_holds_the_same_and_round_trips(tmp_path):
    spec = load_model_file(EXAMPLES / "mlp.toml")
    path = write(tmp_path, json.dumps(model_to_config(spec)), ".json")
    again = load_model_file(path)
    assert (again.layers, again.loss) == (spec.layers, spec.loss)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"type": "Conv3d", "in_channels": 1}, r"layer 1: unknown layer type 'Conv3d' \(known: "),
        ({"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
          "padding": -1}, r"layer 1: Conv2d padding must be an int >= 0, got -1$"),
        ({"type": "Dropout", "p": 1.0},
         r"layer 1: Dropout p must be a number in \[0, 1\), got 1.0$"),
        ({"type": "Dropout", "p": -0.1},
         r"layer 1: Dropout p must be a number in \[0, 1\), got -0.1$"),
        ({"type": "Linear", "in_features": 3},
         r"layer 1 \(Linear\): missing argument 'out_features'$"),
        ({"type": "Linear", "in_features": 3, "out_features": 2, "bais": True},
         r"layer 1 \(Linear\): unknown argument 'bais' \(its arguments: bias, in_features, "),
        ({"type": "MaxPool2d", "kernel_size": 2, "padding": 2},
         r"layer 1: MaxPool2d padding \(2, 2\) must be at most half the kernel_size \(2, 2\)$"),
        ({"type": "AvgPool2d", "kernel_size": 2, "ceil_mode": True},
         r"layer 1: AvgPool2d ceil_mode=True is not implemented here \(only False\)$"),
        ({"type": "Embedding", "num_embeddings": 4, "embedding_dim": 2, "padding_idx": 4},
         r"layer 1: Embedding padding_idx must be an int in \[-4, 4\), got 4$"),
        ({"type": "GELU", "approximate": "erf"},
         r"layer 1: GELU approximate must be 'none' or 'tanh', got 'erf'$"),
    ],
)  # fmt: skip
def test_a_bad_layer_is_refused_with_its_index_and_argument(table, message):
    config = {"loss": "mse", "layer": [{"type": "Linear", "in_features": 3, "out_features": 3},
                                       table]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^model 'm.toml': " + message):
        model_from_config(config, "model 'm.toml'")


def test_a_nested_error_names_the_block_and_its_layer():
    config = {"loss": "mse", "layer": [{"type": "Residual", "layers": [{"type": "Tanh"},
              {"type": "Linear", "in_features": 0, "out_features": 1}]}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^m: layer 0, its layer 1: Linear in_features must"):
        model_from_config(config, "m")


def test_a_shape_that_does_not_chain_names_the_layer_and_both_shapes():
    spec = ModelSpec(
        (Conv2d(1, 4, 3, padding=1), Tanh(), Linear(16, 2)), loss="cross_entropy"
    )  # fmt: skip
    data = Dataset(np.zeros((6, 1, 4, 4)), np.zeros(6, np.int64))
    with pytest.raises(
        ConfigError,
        match=r"^layer 2 \(Linear\) expects a last dimension of 16 \(in_features\), but layer 1 "
        r"\(Tanh\) gives shape \(4, 4, 4\)$",
    ):
        spec.check_data(data)
    block = ModelSpec((Residual((Linear(4, 3),)),))
    with pytest.raises(
        ConfigError,
        match=r"^layer 0 \(Residual\) expects its layers to give back"
        r" their input's shape \(4,\) \(x \+ f\(x\)\), they give \(3,\), but",
    ):
        block.check_data(Dataset(np.zeros((2, 4)), np.zeros((2, 3))))  # fmt: skip


def test_unknown_keys_and_a_missing_loss_are_refused():
    with pytest.raises(ConfigError, match=r"^m: unknown key 'layers' \(a model file has loss, "):
        model_from_config({"loss": "mse", "layers": []}, "m")
    with pytest.raises(ConfigError, match=r"^m: no loss \(one of mse, sse, cross_entropy\)$"):
        model_from_config({"layer": [{"type": "Tanh"}]}, "m")


def run(capsys, command: str) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_with_the_model_file_trains_what_the_builtin_model_trains(capsys, tmp_path):
    recipe = "--problem regression --epochs 1 --seed 3 --lr 0.05"
    code, _, err = run(capsys, f"train {recipe} --out {tmp_path / 'builtin'}")
    assert (code, err) == (0, "")
    code, _, err = run(
        capsys, f"train {recipe} --model {EXAMPLES / 'mlp.toml'} --out {tmp_path / 'file'}"
    )
    assert (code, err) == (0, "")
    losses = [
        [s["loss"] for s in Trajectory.load(tmp_path / d / "trajectory.json").steps]
        for d in ("builtin", "file")
    ]
    assert len(losses[0]) == 16 and losses[0] == losses[1]  # the same init, the same floats


def test_the_command_line_refuses_a_bad_model_file_with_exit_2(capsys, tmp_path):
    path = write(tmp_path, 'loss = "mse"\n[[layer]]\ntype = "Dropout"\np = 1.5\n')
    code, _, err = run(capsys, f"train --problem regression --model {path} --epochs 1")
    assert code == 2
    assert err.strip().endswith(f"model {str(path)!r}: layer 0: Dropout p must be a number in "
                                "[0, 1), got 1.5")  # fmt: skip
    code, _, err = run(capsys, f"train --problem regression --model {EXAMPLES / 'mlp.toml'} "
                       "--data nothing.npz")  # fmt: skip
    assert code == 2


@pytest.mark.parametrize(
    ("file", "preset"), [("cnn.toml", "digits_cnn"), ("transformer.toml", "token_transformer")]
)
def test_the_example_files_are_the_problems_presets(file, preset):
    from dualtrain import problems

    spec, builtin = load_model_file(EXAMPLES / file), getattr(problems, preset)()
    assert (spec.layers, spec.loss) == (builtin.layers, builtin.loss)


def test_the_model_file_in_docs_layers_md_loads_and_trains_a_step():
    """docs/layers.md's example is a file that works: parsed, checked, one step on NumPy."""
    import re

    from dualtrain.configfile import tomllib
    from dualtrain.loop import RunConfig, train_engine

    text = (EXAMPLES.parent.parent / "docs" / "layers.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    spec = model_from_config(tomllib.loads(block), "docs/layers.md")
    assert [layer.type_name for layer in spec.layers] == [
        "Conv2d", "ReLU", "Residual", "MaxPool2d", "Flatten", "Dropout", "Linear",
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(8, 1, 8, 8)), rng.integers(0, 10, 8).astype(np.int64))
    run = train_engine(RunConfig(epochs=1, batch_size=8), spec, data, None)
    assert np.isfinite(run.trajectory.steps[0]["loss"])


@pytest.mark.parametrize(
    "command",
    [
        "compare --backends numpy --modes eager --epochs 1",
        "sweep --lrs 0.05,0.01 --epochs 1",
        "lr-find --steps 8",
    ],
)
def test_every_training_command_takes_the_model_file(capsys, tmp_path, command):
    """A model file whose output size differs from the problem's proves it was used."""
    path = write(tmp_path, 'loss = "mse"\n[[layer]]\ntype = "Linear"\nin_features = 5\n'
                 "out_features = 2\n")  # fmt: skip
    code, _, err = run(capsys, f"{command} --problem regression --model {path} --out {tmp_path}")
    assert code == 2  # regression's targets are (samples, 1): the file's model was read
    assert "mse needs float targets of shape (samples, 2), got float64 (800, 1)" in err
    good = write(tmp_path, 'loss = "mse"\n[[layer]]\ntype = "Linear"\nin_features = 5\n'
                 "out_features = 1\n")  # fmt: skip
    code, _, err = run(capsys, f"{command} --problem regression --model {good} --out {tmp_path}")
    assert (code, err) == (0, "")
