"""The route from a user's torch file to a OneFlow class, and the private loading under it.

What is checked against the frameworks' own classes: the port builds OneFlow
modules only (every import style, sibling modules, packages, imports inside
forward), with torch's state-dict names, shapes and parameter count, and the
same outputs from the same weights; and it leaves the process as it found it:
no new `sys.modules` key, torch's classes untouched, a torch model trains to
the same bits after a port as before.
"""

from __future__ import annotations

import builtins
import importlib.util
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np
import oneflow
import pytest
import torch

from dualtrain.errors import ConfigError
from dualtrain.usersource import split_model_ref, user_module_files
from dualtrain_oneflow.source import load_ported_class, port_module_class, rewrite_torch_names
from dualtrain_torch.source import load_module_class

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "port"
# (file, class, a batch of inputs from a seeded generator)
MODELS = [
    ("cnn.py", "SmallCNN", lambda rng: rng.normal(size=(6, 1, 12, 12))),
    ("transformer.py", "TinyTransformer", lambda rng: rng.integers(0, 16, size=(6, 12))),
    ("rnn.py", "LSTMClassifier", lambda rng: rng.integers(0, 16, size=(6, 12))),
]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return folder


def module_kinds(model) -> set[str]:
    """The top-level package of every submodule's class: {"oneflow"} for a clean port."""
    kinds = set()
    for _, sub in model.named_modules():
        for klass in type(sub).__mro__:
            if klass.__module__.startswith(("torch.", "oneflow.")):
                kinds.add(klass.__module__.partition(".")[0])
                break
    return kinds


def copy_weights(torch_model, flow_model) -> None:
    arrays = {k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()}
    flow_model.load_state_dict({k: oneflow.tensor(v) for k, v in arrays.items()})


# --- the token rewrite ---------------------------------------------------------------------


def test_rewrite_renames_the_name_only_and_keeps_every_line():
    source = textwrap.dedent(
        """\
        import torch
        import torch.nn as nn
        from torch import nn as tnn
        from torch.nn import functional as F
        import torch.nn.functional as F2
        from torch.nn import Module
        import torchvision  # torch in a comment
        label = "torch.nn"
        note = f"{len('torch')}"
        self_torch = obj.torch
        y = torch.ones(2, dtype=torch.float32)
        """
    )
    out = rewrite_torch_names(source)
    assert out.count("\n") == source.count("\n")
    changed = [(a, b) for a, b in zip(source.splitlines(), out.splitlines(), strict=True) if a != b]
    # Exactly the six import lines and the call line change, and only by the rename.
    assert len(changed) == 7
    assert all(b == a.replace("torch", "oneflow") for a, b in changed[:6])
    assert changed[6][1] == "y = oneflow.ones(2, dtype=oneflow.float32)"
    kept = out.splitlines()[6:10]
    assert kept == source.splitlines()[6:10]  # torchvision, strings, f-string, attribute


# --- building on OneFlow -------------------------------------------------------------------


def test_every_import_style_gives_oneflow_modules(tmp_path):
    write(
        tmp_path,
        {
            "styles.py": """\
                import torch
                import torch.nn as nn
                from torch import nn as tnn
                from torch.nn import functional as F
                import torch.nn.functional as F2
                from torch.nn import Module, Linear


                class Styles(Module):
                    def __init__(self, width=4):
                        super().__init__()
                        self.a = nn.Linear(width, width)
                        self.b = tnn.LayerNorm(width)
                        self.c = torch.nn.Tanh()
                        self.d = Linear(width, 2)

                    def forward(self, x):
                        return self.d(F2.gelu(F.relu(self.c(self.b(self.a(x))))))
                """
        },
    )
    ported = port_module_class(tmp_path / "styles.py", "Styles")
    reference = load_module_class(tmp_path / "styles.py", "Styles")
    assert issubclass(ported, oneflow.nn.Module) and not issubclass(ported, torch.nn.Module)
    model, original = ported(width=5), reference(width=5)
    assert module_kinds(model) == {"oneflow"} and module_kinds(original) == {"torch"}
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in original.state_dict().items()
    ]


def test_sibling_modules_are_ported_even_when_torch_imported_them_first(tmp_path, monkeypatch):
    # The trap: a sibling already in sys.modules (the torch side imported it the usual
    # way) used to be reused by the OneFlow side, which then built half the model.
    write(
        tmp_path,
        {
            "layers.py": """\
                import torch
                from torch import nn


                class Scale(nn.Module):
                    def __init__(self, width):
                        super().__init__()
                        self.gain = nn.Parameter(torch.ones(width))
                        self.inner = nn.Linear(width, width)

                    def forward(self, x):
                        return self.inner(x) * self.gain
                """,
            "helpers.py": """\
                from torch.nn import functional as F


                def act(x):
                    return F.silu(x)
                """,
            "model.py": """\
                import layers
                from layers import Scale
                from torch import nn


                class Net(nn.Module):
                    def __init__(self, width=3):
                        super().__init__()
                        self.first = layers.Scale(width)
                        self.second = Scale(width)

                    def forward(self, x):
                        import helpers  # runs at forward time, after the port returned

                        return helpers.act(self.second(self.first(x)))
                """,
        },
    )
    for name in ("layers", "helpers"):
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        torch_side = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(torch_side)
        monkeypatch.setitem(sys.modules, name, torch_side)
    reference = load_module_class(tmp_path / "model.py", "Net")()
    model = port_module_class(tmp_path / "model.py", "Net")()
    assert module_kinds(model) == {"oneflow"}
    count = sum(p.numel() for p in reference.parameters())
    assert count == 2 * (3 + 3 * 3 + 3)
    assert sum(p.numel() for p in model.parameters()) == count
    copy_weights(reference, model)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    out = model(oneflow.tensor(x))  # `import helpers` inside forward: OneFlow's F.silu
    expected = reference(torch.tensor(x)).detach().numpy()
    # float32, 3x3 layers: measured 6e-8 relative; any wrong layer would be O(1).
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_a_package_with_relative_and_absolute_imports(tmp_path):
    write(
        tmp_path,
        {
            "mypkg/__init__.py": "from .layers import Gate  # noqa\n",
            "mypkg/layers.py": """\
                from torch import nn


                class Gate(nn.Module):
                    def __init__(self, width):
                        super().__init__()
                        self.proj = nn.Linear(width, width)
                """,
            "mypkg/nested/__init__.py": "",
            "mypkg/nested/extra.py": """\
                from torch import nn
                from ..layers import Gate


                class Both(nn.Module):
                    def __init__(self, width):
                        super().__init__()
                        self.gate = Gate(width)
                        self.norm = nn.LayerNorm(width)
                """,
            "mypkg/models.py": """\
                from torch import nn
                from . import layers
                from .nested.extra import Both
                from mypkg.layers import Gate


                class Model(nn.Module):
                    def __init__(self, width=2):
                        super().__init__()
                        self.a = layers.Gate(width)
                        self.b = Gate(width)
                        self.c = Both(width)
                """,
        },
    )
    files = {
        p.relative_to(tmp_path).as_posix() for p in user_module_files(tmp_path / "mypkg/models.py")
    }
    assert files == {
        "mypkg/models.py",
        "mypkg/__init__.py",
        "mypkg/layers.py",
        "mypkg/nested/__init__.py",
        "mypkg/nested/extra.py",
    }
    model = port_module_class(tmp_path / "mypkg" / "models.py", "Model")()
    reference = load_module_class(tmp_path / "mypkg" / "models.py", "Model")()
    assert module_kinds(model) == {"oneflow"}
    assert list(model.state_dict()) == list(reference.state_dict())
    assert len(list(model.parameters())) == 2 + 2 + 4


def test_dataclass_config_with_postponed_annotations(tmp_path):
    # dataclasses looks the class's module up in sys.modules while it decorates.
    write(
        tmp_path,
        {
            "cfg.py": """\
                from __future__ import annotations

                from dataclasses import dataclass

                import torch.nn as nn


                @dataclass
                class Config:
                    width: int = 3


                class WithConfig(nn.Module):
                    def __init__(self, width: int = 3):
                        super().__init__()
                        self.config = Config(width)
                        self.layer = nn.Linear(self.config.width, 1)
                """,
        },
    )
    assert port_module_class(tmp_path / "cfg.py", "WithConfig")().layer.in_features == 3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("file", "name", "inputs"), MODELS, ids=[m[1] for m in MODELS])
def test_examples_agree_forward_and_backward(file, name, inputs, dtype):
    """Train-mode forward (batch statistics) and every gradient, dropout off, same weights."""
    reference = load_module_class(EXAMPLES / file, name)(dropout=0.0)
    model = port_module_class(EXAMPLES / file, name)(dropout=0.0)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in reference.state_dict().items()
    ]
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    if dtype == "float64":
        # OneFlow applies BatchNorm's eps as float32 even in float64 (1e-12 off here with
        # eps=1e-5, measured): a float32-exact eps shows the rest of the port's agreement.
        for module in [*reference.modules(), *model.modules()]:
            if hasattr(module, "eps"):
                module.eps = 2.0**-17
    reference.to(getattr(torch, dtype))
    model.to(getattr(oneflow, dtype))
    copy_weights(reference, model)
    x = inputs(np.random.default_rng(1))
    x = x.astype(dtype) if x.dtype.kind == "f" else x
    out_t, out_f = reference(torch.tensor(x)), model(oneflow.tensor(x))
    (out_t**2).sum().backward()
    (out_f**2).sum().backward()
    # Measured over 5 input seeds (max |a-b| / max |b|; gradients against the model's
    # largest gradient, since a conv bias before BatchNorm has a gradient of pure rounding):
    # float64 forward <= 2.7e-15, gradients <= 3.8e-15; float32 forward <= 9.7e-7 (the
    # CNN; 8 ulps), gradients <= 2.5e-6. A wrong layer, a missed residual or a torch-side
    # sibling is O(1).
    forward_tol, grad_tol = (2e-14, 2e-14) if dtype == "float64" else (3e-6, 1e-5)
    a, b = out_f.detach().numpy(), out_t.detach().numpy()
    assert np.abs(a - b).max() <= forward_tol * np.abs(b).max()
    grads_f = dict(model.named_parameters())
    scale = max(np.abs(p.grad.numpy()).max() for p in reference.parameters())
    for key, param in reference.named_parameters():
        g_t, g_f = param.grad.numpy(), grads_f[key].grad.numpy()
        assert np.abs(g_f - g_t).max() <= grad_tol * scale, key


@pytest.mark.parametrize(
    ("file", "hand", "name", "inputs"),
    [
        ("cnn.py", "cnn_oneflow.py", *MODELS[0][1:]),
        ("transformer.py", "transformer_oneflow.py", *MODELS[1][1:]),  # a hand-ported sibling too
    ],
    ids=["SmallCNN", "TinyTransformer"],
)
def test_hand_ports_match_the_automatic_port_bit_for_bit(file, hand, name, inputs):
    automatic = port_module_class(EXAMPLES / file, name)(dropout=0.0)
    by_hand = load_ported_class(EXAMPLES / hand, name)(dropout=0.0)
    reference = load_module_class(EXAMPLES / file, name)(dropout=0.0)
    assert module_kinds(by_hand) == {"oneflow"}
    copy_weights(reference, automatic)
    copy_weights(reference, by_hand)
    x = inputs(np.random.default_rng(2))
    x = oneflow.tensor(x.astype(np.float32) if x.dtype.kind == "f" else x)
    assert np.array_equal(automatic(x).detach().numpy(), by_hand(x).detach().numpy())


# --- nothing left behind -------------------------------------------------------------------


def torch_losses(steps: int = 4) -> list[float]:
    """A few SGD-momentum steps of a torch CNN from a fixed seed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 3),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 1, 6, 6)
    y = torch.arange(8) % 3
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_a_port_leaves_the_process_as_it_was():
    before_losses = torch_losses()
    user_cnn = load_module_class(EXAMPLES / "cnn.py", "SmallCNN")
    modules, path, meta_path = dict(sys.modules), list(sys.path), list(sys.meta_path)
    linear, module, import_ = torch.nn.Linear, torch.nn.Module, builtins.__import__
    for file, name, _ in MODELS:
        port_module_class(EXAMPLES / file, name)()
    load_ported_class(EXAMPLES / "cnn_oneflow.py", "SmallCNN")()
    load_ported_class(EXAMPLES / "transformer_oneflow.py", "TinyTransformer")()
    new = set(sys.modules) - set(modules)
    assert new == set(), sorted(new)
    assert all(sys.modules[k] is v for k, v in modules.items())
    assert sys.path == path and sys.meta_path == meta_path and builtins.__import__ is import_
    assert torch.nn.Linear is linear and torch.nn.Module is module
    assert torch.nn.Linear.__module__ == "torch.nn.modules.linear"
    assert torch_losses() == before_losses  # bit for bit
    assert module_kinds(user_cnn()) == {"torch"}


# --- where errors point --------------------------------------------------------------------


def test_a_traceback_points_at_the_users_file_and_line(tmp_path):
    write(
        tmp_path,
        {
            "broken.py": """\
                import torch
                from torch import nn


                class Broken(nn.Module):
                    def forward(self, x):
                        return torch.matmul(x, x)  # line 7: shapes do not fit
                """
        },
    )
    model = port_module_class(tmp_path / "broken.py", "Broken")()
    with pytest.raises(Exception) as caught:
        model(oneflow.ones(2, 3))
    frames = [f for f in traceback.extract_tb(caught.value.__traceback__)]
    user = [f for f in frames if f.filename == str(tmp_path / "broken.py")]
    assert [f.lineno for f in user] == [7]
    assert user[0].line == "return torch.matmul(x, x)  # line 7: shapes do not fit"


def one_line_error(call) -> str:
    with pytest.raises(ConfigError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


BAD_FILES = {
    "syntax.py": "import torch\n\nclass M(torch.nn.Module)\n    pass\n",
    "indent.py": "import torch\nclass M(torch.nn.Module):\npass\n",
    "notmodule.py": "import torch\nclass M:\n    pass\n",
    "number.py": "import torch\nM = 3\n",
    "raises.py": "import torch\n\nraise RuntimeError('no data folder\\nsecond line')\n",
    "missing_name.py": "import torch\nfrom torch.nn import MultiheadAttention\n",
    "uses_sibling.py": "import torch\nimport bad_sibling\nclass M(torch.nn.Module):\n    pass\n",
    "bad_sibling.py": "x = 1\ny = undefined_name\n",
    "hand_top.py": "import oneflow\nimport torch\nclass M(oneflow.nn.Module):\n    pass\n",
    "hand_body.py": (
        "import oneflow\nclass M(oneflow.nn.Module):\n    def forward(self, x):\n"
        "        import torch.nn.functional as F\n        return F.relu(x)\n"
    ),
    "uses_oneflow.py": "import torch\nimport oneflow\nclass M(torch.nn.Module):\n    pass\n",
}


@pytest.mark.parametrize(
    ("file", "loader", "expected"),
    [
        ("nothere.py", port_module_class, "model file '{folder}/nothere.py' not found"),
        ("nothere.py", load_module_class, "model file '{folder}/nothere.py' not found"),
        ("syntax.py", port_module_class, "{folder}/syntax.py:3: SyntaxError: "),
        ("indent.py", load_module_class, "{folder}/indent.py:3: IndentationError: "),
        (
            "notmodule.py",
            port_module_class,
            "{folder}/notmodule.py: M is not a subclass of oneflow",
        ),
        ("notmodule.py", load_module_class, "{folder}/notmodule.py: M is not a subclass of torch"),
        ("number.py", load_module_class, "{folder}/number.py has int, not a class or function,"),
        ("raises.py", port_module_class, "{folder}/raises.py:3: RuntimeError: no data folder"),
        ("missing_name.py", port_module_class, "{folder}/missing_name.py:2: ImportError: "),
        ("uses_sibling.py", port_module_class, "{folder}/bad_sibling.py:2: NameError: "),
        ("hand_top.py", load_ported_class, "{folder}/hand_top.py:2: imports torch; "),
        ("hand_body.py", load_ported_class, "{folder}/hand_body.py:4: imports torch.nn.functional"),
        ("uses_oneflow.py", load_module_class, "{folder}/uses_oneflow.py:2: imports oneflow; "),
    ],
)
def test_bad_files_are_one_line_naming_file_and_line(tmp_path, file, loader, expected):
    write(tmp_path, BAD_FILES)
    message = one_line_error(lambda: loader(tmp_path / file, "M"))
    assert message.startswith(expected.format(folder=tmp_path)), message


def test_a_missing_class_lists_the_classes_there():
    message = one_line_error(lambda: port_module_class(EXAMPLES / "blocks.py", "Blok"))
    classes = "(its Module classes: Block, CausalSelfAttention)"
    assert message == f"{EXAMPLES / 'blocks.py'} has no class 'Blok' {classes}"


def test_a_torch_import_at_forward_time_in_the_port_is_refused(tmp_path):
    # The rewrite leaves no `torch` name, but __import__("torch") is a string.
    write(
        tmp_path,
        {
            "sneaky.py": """\
                import torch


                class M(torch.nn.Module):
                    def forward(self, x):
                        return __import__("torch").relu(x)
                """
        },
    )
    model = port_module_class(tmp_path / "sneaky.py", "M")()
    message = one_line_error(lambda: model(oneflow.ones(2)))
    assert message.startswith(f"{tmp_path / 'sneaky.py'}:6: imports torch; ")


def test_split_model_ref():
    assert split_model_ref("a/b.py:Net") == ("a/b.py", "Net")
    for bad in ("a/b.py", "a/b.py:", ":Net", "a/b.py:1Net"):
        assert one_line_error(lambda bad=bad: split_model_ref(bad)).endswith(repr(bad))
