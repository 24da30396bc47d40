"""A backend from its own distribution, found by entry point with no change to
dualtrain: examples/third_party_backend, installed with pip into a temporary
folder and used from child processes that have that folder on PYTHONPATH."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_backend"
TARGET = "dualtrain_example_backend:ExampleBackend"


def _version(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in re.findall(r"\d+", version(name))[:2])
    except PackageNotFoundError:
        return None


def builds_here() -> bool:
    """Whether this interpreter's own setuptools can build a [project] wheel.

    setuptools reads [project] from 61 on; before 70.1 its bdist_wheel comes from
    the `wheel` package, which a fresh CPython 3.10 venv (setuptools 65.5) lacks.
    """
    setuptools = _version("setuptools")
    if setuptools is None or setuptools < (61,):
        return False
    return setuptools >= (70, 1) or _version("wheel") is not None


def pip_install(source: Path, target: Path, scratch: Path) -> None:
    """`pip install --no-deps --target`, as a user would install a distribution.

    With a setuptools here that can build it, --no-build-isolation: nothing to
    download or set up. Otherwise pip builds in an isolated environment and fetches
    setuptools from the configured index, as any `pip install` does. The build
    runs on a copy: setuptools writes build/ and *.egg-info beside the sources,
    and a stale build/lib left in the repository would be packed into the wheel.
    """
    copy = scratch / source.name
    shutil.copytree(
        source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-input"]
    command += ["--disable-pip-version-check", "--target", str(target), str(copy)]
    if builds_here():
        command.insert(4, "--no-build-isolation")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example backend, installed once for the whole module."""
    target = tmp_path_factory.mktemp("site")
    pip_install(EXAMPLE, target, tmp_path_factory.mktemp("build"))
    return target


def python(paths: list[Path], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python ARGS` with `paths` first on PYTHONPATH; numeric warnings are errors."""
    entries = [*map(str, paths), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, entries))}
    command = [sys.executable, "-W", "error::RuntimeWarning", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def run_script(paths: list[Path], script: str, cwd: Path) -> object:
    """Run `script` in a child; it prints one JSON value, returned here."""
    done = python(paths, "-c", textwrap.dedent(script), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def report_row(report: str, engine: str) -> list[str]:
    """The cells of `engine`'s row in report.md's table."""
    rows = [line for line in report.splitlines() if line.startswith(f"| {engine} |")]
    assert len(rows) == 1, report
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_it_is_found_by_its_entry_point(site, tmp_path):
    found = run_script(
        [site],
        """
        import json
        import dualtrain_example_backend
        from dualtrain.backend import backend_names, get_backend
        backend = get_backend("example")
        print(json.dumps([backend_names(), type(backend).__name__,
                          dualtrain_example_backend.__file__, backend.supports_graph]))
        """,
        tmp_path,
    )
    names, cls, where, graph = found
    assert "example" in names and "numpy" in names
    assert cls == "ExampleBackend" and not graph
    assert Path(where).is_relative_to(site)  # the installed copy, not the sources


def test_compare_passes_it_against_the_reference(site, tmp_path):
    out = tmp_path / "out"
    done = python(
        [site], "-m", "dualtrain", "compare", "--backends", "numpy,example", "--modes", "eager",
        "--problem", "linear", "--epochs", "5", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^example/eager: last step loss \S+ pass$", done.stdout, re.M), done.stdout
    report = (out / "report.md").read_text()
    assert "Verdict: **PASS**" in report
    assert report_row(report, "numpy/eager")[-1] == "reference"
    cells = report_row(report, "example/eager")
    assert cells[-1] == "pass" and cells[3] == "0", cells  # lrs identical to the reference's
    ours = json.loads((out / "example-eager.json").read_text())
    assert len(ours["steps"]) == 5 and ours["steps"][0]["loss"] == 324.0  # from w0 = [2, 1]


def test_it_trains_user_data_like_the_reference(site, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = np.stack([np.tanh(x @ [1.0, -2.0, 0.5, 0.0]), x[:, 2] * x[:, 3]], axis=1)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    out = tmp_path / "out"
    done = python(
        [site], "-m", "dualtrain", "compare", "--backends", "numpy,example",
        "--data", str(tmp_path / "data.npz"), "--epochs", "6", "--lr", "0.05",
        "--momentum", "0.9", "--weight-decay", "1e-3", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ref, ours = (json.loads((out / f"{b}-eager.json").read_text()) for b in ("numpy", "example"))
    assert len(ref["steps"]) == 6 * 3  # 96 training rows in batches of 32
    losses = [np.array([step["loss"] for step in run["steps"]]) for run in (ours, ref)]
    np.testing.assert_allclose(*losses, rtol=1e-10, atol=0)


def test_every_layer_loss_and_dtype_trains_like_the_reference(site, tmp_path):
    """No-bias Linear, the three activations, both losses, param groups, a
    momentum schedule, float64 and float32, through the Python API."""
    worst = run_script(
        [site],
        """
        import json
        import numpy as np
        import dualtrain
        from dualtrain.model import Linear, ModelSpec, ReLU, Sigmoid, Tanh

        rng = np.random.default_rng(1)
        x = rng.normal(size=(64, 3))
        y = np.sin(x @ [[1.0], [-1.0], [0.5]])
        layers = (Linear(3, 8), Tanh(), Linear(8, 8, bias=False), ReLU(), Linear(8, 4),
                  Sigmoid(), Linear(4, 1))
        worst = {}
        for loss, dtype in (("mse", "float64"), ("sse", "float64"), ("mse", "float32")):
            runs = {
                backend: dualtrain.fit(
                    ModelSpec(layers, loss=loss), x, y, backend=backend, dtype=dtype,
                    lr=0.01, momentum=0.9, weight_decay=1e-3, epochs=4, batch_size=16,
                    groups=[{"prefixes": ["0."], "lr": 0.02}], scheduler="OneCycleLR",
                    scheduler_args={"max_lr": [0.02, 0.05], "total_steps": 16},
                    interval="step",
                )
                for backend in ("numpy", "example")
            }
            ref, ours = runs["numpy"], runs["example"]
            assert ref.trajectory.steps[5]["momentum"] != ref.trajectory.steps[0]["momentum"]
            assert {a.dtype.name for a in ours.state.values()} == {dtype}
            rel = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))
            losses = rel(np.array(ours.trajectory.losses), np.array(ref.trajectory.losses))
            params = max(rel(ours.state[n], ref.state[n]) for n in ref.state)
            worst[f"{loss} {dtype}"] = max(losses, params)
        print(json.dumps(worst))
        """,
        tmp_path,
    )
    assert worst["mse float64"] < 1e-10 and worst["sse float64"] < 1e-10, worst
    assert worst["mse float32"] < 1e-4, worst  # the comparison's own rtol


def test_what_it_lacks_is_refused_in_one_line(site, tmp_path):
    lacks = (
        "backend 'example' has no BatchNorm1d (layer 1); "
        "it supports Linear, Tanh, ReLU, Sigmoid; losses mse, sse"
    )
    done = python(
        [site], "-m", "dualtrain", "train", "--backend", "example", "--problem", "regression",
        "--epochs", "1", "--out", str(tmp_path / "train"), cwd=tmp_path,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, f"dualtrain: error: {lacks}\n")
    # compare runs the other engines and shows this one as skipped, with the same line
    done = python(
        [site], "-m", "dualtrain", "compare", "--backends", "numpy,example", "--problem",
        "regression", "--epochs", "1", "--out", str(tmp_path / "compare"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"\nexample/eager: skipped ({lacks})\n" in done.stdout
    refusals = run_script(
        [site],
        """
        import json
        import numpy as np
        import dualtrain
        from dualtrain.errors import CapabilityError

        x, y, labels = np.ones((8, 2)), np.ones((8, 1)), np.arange(8) % 2
        cases = {
            "cross_entropy": (dualtrain.mlp([2, 2], loss="cross_entropy"), labels, {}),
            "adam": (dualtrain.mlp([2, 1]), y, {"optimizer": "adam"}),
            "nesterov": (dualtrain.mlp([2, 1]), y, {"momentum": 0.9, "nesterov": True}),
            "dampening": (
                dualtrain.mlp([2, 1]), y,
                {"groups": [{"prefixes": "0.", "lr": 0.1, "options": {"dampening": 0.5}}]},
            ),
            "cuda": (dualtrain.mlp([2, 1]), y, {"device": "cuda"}),
        }
        refused = {}
        for what, (model, targets, options) in cases.items():
            try:
                dualtrain.fit(model, x, targets, backend="example", epochs=1, **options)
            except CapabilityError as exc:
                refused[what] = str(exc)
        print(json.dumps(refused))
        """,
        tmp_path,
    )
    assert set(refusals) == {"cross_entropy", "adam", "nesterov", "dampening", "cuda"}
    for what, message in refusals.items():
        assert message.startswith("backend 'example'") and "\n" not in message
        assert what in message, message


def test_a_second_distribution_claiming_its_name_is_refused(site, tmp_path):
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "clash_backend.py").write_text("class Other:\n    pass\n")
    (clash / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "clash-backend"
            version = "0.1.0"
            [project.entry-points."dualtrain.backends"]
            example = "clash_backend:Other"
            [tool.setuptools]
            py-modules = ["clash_backend"]
            """
        )
    )
    other = tmp_path / "other"
    pip_install(clash, other, tmp_path / "build")
    message = run_script(
        [site, other],
        """
        import json
        from dualtrain.backend import get_backend
        from dualtrain.errors import ConfigError
        try:
            get_backend("example")
        except ConfigError as exc:
            print(json.dumps(str(exc)))
        """,
        tmp_path,
    )
    first, second = TARGET, "clash_backend:Other"  # in PYTHONPATH's order
    assert message == f"backend name 'example' is registered twice: {first} and {second}"
