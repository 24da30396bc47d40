"""A backend from its own distribution, found by entry point, with no change to
dualtrain: examples/third_party_backend, installed into a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "third_party_backend"


def pip_install(source: Path, target: Path) -> None:
    """pip install --target, with the running setuptools when it is recent enough
    (no download); else pip builds in an isolated environment as usual."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    command += [str(target), str(source)]
    try:
        if int(version("setuptools").split(".")[0]) >= 61:
            command.insert(4, "--no-build-isolation")
    except Exception:  # noqa: BLE001 - no setuptools here: let pip fetch one
        pass
    subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    pip_install(EXAMPLE, target)
    return target


def python(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_the_installed_backend_is_found_by_name(site):
    done = python(site, "-c", "from dualtrain.backend import backend_names; print(backend_names())")
    assert done.returncode == 0, done.stderr
    assert "'example'" in done.stdout and "'numpy'" in done.stdout


def test_compare_runs_it_against_the_reference(site, tmp_path):
    out = tmp_path / "out"
    done = python(
        site, "-m", "dualtrain", "compare", "--backends", "numpy,example",
        "--problem", "linear", "--epochs", "5", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "example/eager: last step loss" in done.stdout and "pass" in done.stdout
    report = (out / "report.md").read_text()
    assert "Verdict: **PASS**" in report and "| example/eager |" in report
    ours = json.loads((out / "example-eager.json").read_text())
    assert ours["steps"][0]["loss"] == 324.0


def test_it_trains_an_mlp_on_user_data_like_numpy(site, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    np.savez(tmp_path / "data.npz", x=x, y=np.tanh(x @ np.array([1.0, -2.0, 0.5])))
    script = textwrap.dedent(
        f"""
        import numpy as np, dualtrain
        with np.load({str(tmp_path / "data.npz")!r}) as d:
            x, y = d["x"], d["y"]
        model = dualtrain.mlp([3, 8, 1], activation="tanh")
        runs = [dualtrain.fit(model, x, y, backend=b, optimizer="sgd", lr=0.05,
                              momentum=0.9, weight_decay=1e-3, epochs=8, batch_size=12)
                for b in ("numpy", "example")]
        a, b = (np.array(r.trajectory.losses) for r in runs)
        print(len(a), float(np.max(np.abs(a - b) / a)))
        """
    )
    done = python(site, "-c", script)
    assert done.returncode == 0, done.stderr
    steps, worst = done.stdout.split()
    assert int(steps) == 8 * 5 and float(worst) < 1e-10  # 60 rows, batches of 12


def test_what_it_lacks_is_one_line(site, tmp_path):
    done = python(
        site, "-m", "dualtrain", "train", "--backend", "example", "--problem", "regression",
        "--epochs", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "dualtrain: error: example backend: no layer BatchNorm1d"


def test_a_second_distribution_claiming_the_name_is_refused(site, tmp_path):
    clash = tmp_path / "clash"
    (clash / "clash_backend").mkdir(parents=True)
    (clash / "clash_backend" / "__init__.py").write_text("")
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
            packages = ["clash_backend"]
            """
        )
    )
    both = tmp_path / "both"
    pip_install(clash, both)
    joined = f"{both}{os.pathsep}{site}"
    done = python(
        Path(joined), "-m", "dualtrain", "train", "--backend", "example", "--out", str(tmp_path)
    )
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith("dualtrain: error: backend name 'example' is registered twice: ")
    assert "clash_backend:Other" in line and "dualtrain_example_backend:ExampleBackend" in line
