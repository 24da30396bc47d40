"""The preflight: names OneFlow lacks and known differences, read from the source only.

Expected findings are written by hand next to the lines that hold them
(`# expect: KIND NAME` in tests/port_models/, on the line before), and every line without such a
comment must stay silent: the false alarms a heuristic could raise (a user's
own `self.name`, `np.diff`) sit in the same files. Each name reported as
missing is checked to exist in torch and not in oneflow, with both imported.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import oneflow
import pytest
import torch

from dualtrain.errors import ConfigError
from dualtrain_oneflow import torch_names
from dualtrain_oneflow.preflight import Finding, preflight

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "port_models"
EXAMPLES = ROOT / "examples" / "port"
EXPECT = re.compile(r"# expect: (missing|difference) (\S+)")


def expected(*files: Path) -> set[tuple[str, int, str, str]]:
    """(file, line, kind, name) from each `# expect: KIND NAME` comment, about the next line."""
    found = set()
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            for kind, name in EXPECT.findall(line):
                found.add((str(file), number + 1, kind, name))
    return found


def found(findings: list[Finding]) -> set[tuple[str, int, str, str]]:
    return {(f.file, f.line, f.kind, f.name) for f in findings}


def test_each_marked_line_and_nothing_else():
    files = [MODELS / "unsupported.py", MODELS / "helpers_for_unsupported.py"]
    findings = preflight(MODELS / "unsupported.py")
    assert found(findings) == expected(*files)
    assert all(str(f).startswith(f"{f.file}:{f.line}: ") and "\n" not in str(f) for f in findings)
    # the user's file first, then its sibling
    assert [f.file for f in findings][-1] == str(MODELS / "helpers_for_unsupported.py")


def test_multihead_attention_is_missing():
    (finding,) = preflight(MODELS / "mha.py")
    assert found([finding]) == expected(MODELS / "mha.py")
    assert "nn.MultiheadAttention" in finding.message and "OneFlow 0.9.0" in finding.message


def resolve(root, path: list[str]):
    for part in path:
        root = getattr(root, part, None)
    return root


def test_each_missing_name_is_torchs_and_not_oneflows():
    for finding in preflight(MODELS / "unsupported.py"):
        name = finding.name
        if finding.kind != "missing" or "(" in name or not name.startswith(("torch.", "Tensor.")):
            continue
        owner, _, attribute = name.partition(".")
        if owner == "Tensor":
            assert hasattr(torch.Tensor, attribute) and not hasattr(oneflow.Tensor, attribute)
        else:
            assert resolve(torch, attribute.split(".")) is not None, name
            assert resolve(oneflow, attribute.split(".")) is None, name
    for name in ("register_full_backward_hook",):
        assert hasattr(torch.nn.Module, name) and not hasattr(oneflow.nn.Module, name)


def test_refused_arguments_are_refused_by_oneflow_itself():
    with pytest.raises(TypeError):
        oneflow.nn.LayerNorm(8, bias=False)
    with pytest.raises(AssertionError):  # OneFlow 0.9.0's own check
        oneflow.nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(TypeError):
        oneflow.nn.BatchNorm2d(4, momentum=None)(oneflow.ones(2, 4, 3, 3))
    # The difference noted for padding="same" with an even kernel, measured on both:
    x = [1, 1, 8, 8]
    flow_shape = oneflow.nn.Conv2d(1, 1, 4, padding="same")(oneflow.ones(*x)).shape
    with pytest.warns(UserWarning, match="even kernel"):  # torch pads a copy: same size
        torch_shape = torch.nn.Conv2d(1, 1, 4, padding="same")(torch.ones(*x)).shape
    assert tuple(flow_shape) != tuple(torch_shape) == (1, 1, 8, 8)


def test_the_float32_batchnorm_note_is_true():
    """OneFlow's float32 batch variance against torch's, both against float64."""
    rng = np.random.default_rng(0)
    errors = []
    for shift in (0.0, 3.0, 10.0):  # the channels' mean, in units of their std
        x = rng.normal(size=(32, 16, 6, 6)) + shift
        exact = torch.nn.BatchNorm2d(16).double()(torch.tensor(x)).detach().numpy()
        x32 = x.astype(np.float32)
        by_torch = torch.nn.BatchNorm2d(16)(torch.tensor(x32)).detach().numpy()
        by_flow = oneflow.nn.BatchNorm2d(16)(oneflow.tensor(x32)).numpy()
        errors.append((np.abs(by_torch - exact).max(), np.abs(by_flow - exact).max()))
    # measured: torch 3.6e-7, 5.7e-7, 1.3e-6; OneFlow 1.7e-6, 3.4e-5, 3.5e-4 (grows as
    # (mean/std)^2, as a one-pass E[x^2] - E[x]^2 would)
    assert all(t < 1e-5 for t, _ in errors)
    assert errors[1][1] > 10 * errors[1][0] and errors[2][1] > 100 * errors[2][0]


@pytest.mark.parametrize("name", ["cnn", "transformer", "rnn", "blocks", "cnn_oneflow"])
def test_the_examples_are_clean_and_the_dtype_adds_its_notes(name):
    file = EXAMPLES / f"{name}.py"
    assert preflight(file) == []
    for dtype, batchnorm_note in (
        ("float64", "BatchNorm2d eps"),
        ("float32", "BatchNorm2d variance"),
    ):
        notes = preflight(file, dtype=dtype)
        assert {f.kind for f in notes} <= {"difference"}
        batchnorm = {f.name for f in notes} - {"optimizer hyperparameters"}
        assert batchnorm == ({batchnorm_note} if "cnn" in name else set())
        assert ("optimizer hyperparameters" in {f.name for f in notes}) == (dtype == "float64")


def test_no_torch_and_the_file_never_runs(tmp_path):
    marker = tmp_path / "ran"
    model = tmp_path / "model.py"
    model.write_text(
        textwrap.dedent(
            f"""\
            import torch.nn as nn
            open({str(marker)!r}, "w").close()
            layer = nn.Bilinear(2, 2, 2)
            """
        )
    )
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "from dualtrain_oneflow.preflight import preflight\n"
        f"print(json.dumps([[f.line, f.name] for f in preflight({str(model)!r})]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[3, "torch.nn.Bilinear"]]
    assert not marker.exists()


def test_bad_files_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        preflight(tmp_path / "none.py")
    (tmp_path / "bad.py").write_text("import torch\n\ndef f(:\n")
    with pytest.raises(ConfigError) as caught:
        preflight(tmp_path / "bad.py")
    assert str(caught.value).startswith(f"{tmp_path / 'bad.py'}:3: SyntaxError")


# --- torch_names.py is data about torch: written from torch, checked against it ----------


def public_names(klass) -> tuple[list[str], list[str]]:
    properties, methods = [], []
    for name in sorted(dir(klass)):
        if not name.startswith("_"):
            value = inspect.getattr_static(klass, name)
            callable_ = callable(value) and not isinstance(value, property)
            (methods if callable_ else properties).append(name)
    return properties, methods


def write_torch_names(path: Path) -> None:
    """Write backends/oneflow/torch_names.py from the installed torch."""
    tensor_properties, tensor_methods = public_names(torch.Tensor)
    module_methods = public_names(torch.nn.Module)[1]
    head, _, _ = path.read_text().partition('\nTORCH_VERSION = "')
    blocks = [
        (
            "TENSOR_PROPERTIES",
            tensor_properties,
            "torch.Tensor attributes read, not called (`x.mT`).",
        ),
        ("TENSOR_METHODS", tensor_methods, "torch.Tensor methods (`x.unflatten(1, (2, 3))`)."),
        ("MODULE_METHODS", module_methods, "torch.nn.Module methods (`self.get_submodule(...)`)."),
    ]
    version = torch.__version__.split("+")[0]
    head = re.sub(r"\(torch [^)]*\)", f"(torch {version})", head, count=1)
    text = [head, f'\nTORCH_VERSION = "{version}"\n']
    for name, names, doc in blocks:
        body = textwrap.fill(" ".join(names), 92, initial_indent="    ", subsequent_indent="    ")
        text.append(f'\n#: {doc}\n{name} = frozenset(\n    """\n{body}\n    """.split()\n)\n')
    path.write_text("".join(text))


def test_torch_names_match_the_installed_torch():
    tensor_properties, tensor_methods = public_names(torch.Tensor)
    if torch.__version__.split("+")[0] != torch_names.TORCH_VERSION:
        pytest.skip(f"torch_names.py is from torch {torch_names.TORCH_VERSION}: regenerate it")
    assert torch_names.TENSOR_PROPERTIES == set(tensor_properties)
    assert torch_names.TENSOR_METHODS == set(tensor_methods)
    assert torch_names.MODULE_METHODS == set(public_names(torch.nn.Module)[1])


if __name__ == "__main__":
    write_torch_names(ROOT / "backends" / "oneflow" / "torch_names.py")
