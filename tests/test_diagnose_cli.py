"""`--diagnose` on `dualtrain port` and `dualtrain compare`: the report's diagnosis,
the repro script, and one-line refusals that keep the comparison's own report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("oneflow")

import torch  # noqa: E402

from dualtrain.backend import register_backend, unregister_backend  # noqa: E402
from dualtrain.cli import main  # noqa: E402
from dualtrain.problems import get_problem, sequence  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).resolve().parent / "diagnose_faults"
TORCH = f"{FAULTS}/transformer.py:TinyTransformer"
ONEFLOW = f"{FAULTS}/transformer_oneflow.py"
COMMON = ["--optimizer", "adam", "--lr", "0.003", "--epochs", "1", "--batch-size", "16"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # As in test_diagnose.py: torch's second thread only contends on a loaded 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tokens(tmp_path) -> str:
    p = sequence(n=128)
    path = tmp_path / "tokens.npz"
    np.savez(path, x=p.data.x, y=p.data.y)
    return str(path)


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_port_names_the_module_in_report_json_md_and_a_repro_that_shows_it(tokens, tmp_path):
    out = tmp_path / "eps"
    args = ["port", TORCH, "--against", f"{ONEFLOW}:NormEps", "--data", tokens]
    code = main([*args, "--engines", "torch/eager,oneflow/eager", *COMMON, "--out", str(out)])
    assert code == 1
    found = report(out)["first_divergence"]
    assert {k: found[k] for k in ("engine", "step", "phase", "module")} == {
        "engine": "oneflow/eager",
        "step": 0,
        "phase": "forward",
        "module": "blocks.1.norm1",
    }
    assert found["value"] > found["tolerance"] > 0
    text = (out / "report.md").read_text()
    assert "| `blocks.1.norm1` | LayerNorm | forward |" in text
    assert (out / "diagnosis.png").stat().st_size > 0
    repro = out / "repro" / "repro.py"
    run = subprocess.run(
        [sys.executable, str(repro)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("output 0:"))
    shown = float(re.search(r"= ([0-9.e+-]+)", line).group(1))
    # The repro runs both frameworks in float64: the eps difference alone. The
    # diagnosis measured the float32 engine, which adds at most its tolerance
    # (16 x noise ~ 7e-6 here) to the same 3e-3: 0.5% covers it.
    assert shown == pytest.approx(found["value"], rel=5e-3)


def test_diagnose_that_cannot_rerun_a_step_is_exit_2_and_keeps_the_report(tokens, tmp_path, capsys):
    sys.path.insert(0, str(FAULTS))
    try:
        import backends as faults
    finally:
        sys.path.remove(str(FAULTS))
    register_backend(faults.Unsaved)
    try:
        out = tmp_path / "unsaved"
        args = ["port", TORCH, "--against", f"{ONEFLOW}:TinyTransformer", "--data", tokens]
        engines = ["--engines", "torch/eager,oneflow_unsaved/eager", "--diagnose"]
        code = main([*args, *engines, *COMMON, "--out", str(out)])
    finally:
        unregister_backend(faults.Unsaved.name)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "no checkpointable optimizer state" in err[0], err
    assert report(out)["verdict"] == "pass"  # the comparison's own results, kept


def test_compare_names_the_declarative_models_layers_as_in_the_spec(tmp_path, capsys):
    out = tmp_path / "mlp"
    args = ["compare", "--problem", "regression", "--backends", "torch,oneflow", "--epochs", "1"]
    code = main([*args, "--batch-size", "100", "--diagnose", "--out", str(out)])
    assert code == 0
    text = (out / "report.md").read_text()
    assert "`oneflow/eager`: every module within its noise" in text
    # Layer i of the spec is nn.Sequential's module "i", on both frameworks.
    layers = get_problem("regression").model.layers
    assert len(layers) >= 3
    rows = [line for line in text.splitlines() if "| forward |" in line]
    assert {line.split("`")[1] for line in rows} == {"", *map(str, range(len(layers)))}


def test_compare_with_a_reference_that_has_no_probes_is_exit_2_with_the_report(tmp_path, capsys):
    out = tmp_path / "numpy"
    args = ["compare", "--problem", "regression", "--backends", "numpy,torch", "--epochs", "1"]
    code = main([*args, "--diagnose", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no per-module probes" in err[0], err
    assert (out / "report.md").exists()
