"""The digits and tokens problems, their presets, and what a backend refuses in one line."""

from __future__ import annotations

import shlex
import sys

import numpy as np
import pytest

from dualtrain.cli import main
from dualtrain.data import Dataset
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.model import Embedding, LayerNorm, Linear, ModelSpec
from dualtrain.problems import TOKEN_CLASSES, digits_cnn, get_problem, token_transformer


def test_digits_are_scikit_learns_images_scaled_to_one():
    sklearn = pytest.importorskip("sklearn.datasets")
    problem = get_problem("digits")
    raw = sklearn.load_digits()
    assert problem.data.x.shape == (1797, 1, 8, 8) and problem.data.x.dtype == np.float64
    np.testing.assert_array_equal(problem.data.x[:, 0] * 16.0, raw.images)
    np.testing.assert_array_equal(problem.data.y, raw.target)
    assert problem.model.output_shape((1, 8, 8)) == (10,)
    problem.model.check_data(problem.data)  # the preset takes the data as it is


def test_digits_without_scikit_learn_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ConfigError, match=r"^problem 'digits' needs scikit-learn: pip install "):
        get_problem("digits")


def test_tokens_tag_every_token_by_its_word_class_and_padding_by_zero():
    problem = get_problem("tokens")
    x, y = problem.data.x, problem.data.y
    assert x.shape == y.shape == (640, 12) and x.dtype == y.dtype == np.int64
    assert ((x == 0) == (y == 0)).all()  # padding, and only padding, is tag 0
    for token in range(1, 16):  # one tag per token id, wherever it stands
        assert len(set(y[x == token].tolist())) == 1
    assert set(y[x > 0].tolist()) == set(range(1, TOKEN_CLASSES))
    assert problem.model.output_shape((12,), "int") == (12, TOKEN_CLASSES)
    problem.model.check_data(problem.data)
    assert problem.model.prepare(problem.data).x.dtype == np.int64  # ids stay ids


def test_an_embedding_model_refuses_float_features_and_a_float_model_ids():
    with pytest.raises(ConfigError, match=r"^layer 0 \(Embedding\) expects integer token ids"):
        token_transformer().check_data(Dataset(np.zeros((4, 12)), np.zeros((4, 12), np.int64)))
    spec = ModelSpec((Linear(3, 2), Embedding(4, 2)))
    with pytest.raises(ConfigError, match=r"^layer 1 \(Embedding\) expects integer token ids, "
                       r"but layer 0 \(Linear\) gives float values$"):  # fmt: skip
        spec.output_shape((3,))


def test_per_token_targets_must_match_the_outputs_positions():
    bad = Dataset(np.ones((4, 12), np.int64), np.zeros(4, np.int64))
    with pytest.raises(ConfigError, match=r"needs integer class ids of shape \(samples, 12\)"):
        token_transformer().check_data(bad)


def test_oneflow_refuses_a_layernorm_without_bias_in_one_line():
    flow = pytest.importorskip("oneflow")
    from dualtrain_oneflow import model as models

    spec = ModelSpec((LayerNorm(4, bias=False),))
    with pytest.raises(CapabilityError, match=r"^oneflow 0.9.0: LayerNorm has no bias argument"):
        models.build(spec, flow.float64, "cpu")


def test_train_on_digits_with_the_cnn_preset_from_the_command_line(capsys, tmp_path):
    pytest.importorskip("sklearn")
    code = main(shlex.split(f"train --problem digits --epochs 1 --out {tmp_path}"))
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "numpy/eager: 44 steps" in out  # 1438 rows in batches of 32, the short one dropped


def test_the_presets_have_dropout_and_their_documented_names():
    assert [s.name for s in digits_cnn().dropout_sites()] == ["8"]
    assert [s.name for s in token_transformer().dropout_sites()] == ["1.4", "2.4"]


def test_the_python_api_keeps_token_ids_for_an_embedding_model():
    import dualtrain

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 16, (16, 12))
    tags = ids % TOKEN_CLASSES
    run = dualtrain.fit(token_transformer(), ids, tags, epochs=1, batch_size=8)
    assert len(run.trajectory.steps) == 2
    with pytest.raises(ConfigError, match=r"^layer 0 \(Embedding\) expects integer token ids"):
        dualtrain.fit(token_transformer(), ids.astype(float), tags, epochs=1)
