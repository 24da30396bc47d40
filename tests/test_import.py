"""The core imports no framework: NumPy and the standard library only.

Checked twice: by importing the public modules in a fresh interpreter and
looking at sys.modules, and by reading every source file under dualtrain/ for
an import of torch or oneflow, wherever it sits (a function body included).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dualtrain

PACKAGE = Path(dualtrain.__file__).resolve().parent
HEAVY = ("torch", "oneflow", "matplotlib", "tensorflow", "jax")
FRAMEWORKS = ("torch", "oneflow")


def python(code: str) -> subprocess.CompletedProcess:
    # The test run's own sys.path, so the interpreter finds this checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_core_imports_no_framework():
    proc = python(
        "import json, sys\n"
        "import dualtrain, dualtrain.lr_scheduler, dualtrain.schedules, dualtrain.cli\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(json.dumps([loaded, dualtrain.__file__]))\n"
    )
    assert proc.returncode == 0, proc.stderr
    loaded, where = json.loads(proc.stdout)
    assert Path(where).resolve().parent == PACKAGE  # this checkout, not another install
    assert loaded == []


def test_schedule_command_imports_no_framework_without_plot():
    proc = python(
        "import contextlib, io, json, sys\n"
        "from dualtrain.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = main(['schedule', 'StepLR', '--lr', '1', '--steps', '3',\n"
        "                 '--arg', 'step_size=2', '--format', 'json'])\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(json.dumps([code, json.loads(out.getvalue())['lrs'], loaded]))\n"
    )
    assert proc.returncode == 0, proc.stderr
    code, lrs, loaded = json.loads(proc.stdout)
    assert code == 0
    assert lrs == [[1.0, 1.0, 0.1]]
    assert loaded == []


def test_python_dash_m_dualtrain_schedule():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dualtrain",
            "schedule",
            "StepLR",
            "--lr",
            "0.5",
            "--steps",
            "4",
            "--arg",
            "step_size=2",
            "--arg",
            "gamma=0.5",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.split() == ["step,lr[0]", "0,0.5", "1,0.5", "2,0.25", "3,0.25"]


def framework_imports(path: Path) -> list[str]:
    """`line: statement` for every import of torch or oneflow in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] in FRAMEWORKS for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_sources():
    assert PACKAGE / "lr_scheduler.py" in SOURCES
    assert PACKAGE / "schedules" / "__init__.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_no_framework_import_statement(path):
    assert framework_imports(path) == [], f"dualtrain/{path.relative_to(PACKAGE)}"


def test_the_import_scanner_finds_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import torch.nn as nn\n"
        "from oneflow import optim\n"
        "from . import torch\n"  # relative: a local module, not the framework
        "def f():\n"
        "    import oneflow\n"
        "torchvision = 1\n"
    )
    assert framework_imports(sample) == [
        "2: import torch.nn as nn",
        "3: from oneflow import optim",
        "6: import oneflow",
    ]
