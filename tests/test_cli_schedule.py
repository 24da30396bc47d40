"""`dualtrain schedule`: output formats, configs, --diff, --plot and bad input.

Expected values are worked out by hand from each schedule's documented formula;
the engine is never the source of an expectation.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dualtrain.cli import main

REL = 1e-12
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEP_LR = "StepLR --lr 1.0 --lr 0.5 --steps 5 --arg step_size=2 --arg gamma=0.5"
ONE_CYCLE = "OneCycleLR --lr 1.0 --steps 5 --arg max_lr=1.0 --arg total_steps=10"
CYCLIC = "CyclicLR --lr 1.0 --steps 6 --arg base_lr=0.1 --arg max_lr=1.0 --arg step_size_up=2"
POLY_DIFF = "PolynomialLR --diff --lr 0.1 --steps 6 --arg total_iters=4"


def split(command):
    """argv from a shell-like string (quotes as in a shell), or a list as it is."""
    return shlex.split(command) if isinstance(command, str) else list(command)


def run(capsys, command, *extra):
    code = main(["schedule", *split(command), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, command, *extra):
    code, out, err = run(capsys, command, *extra, "--format", "json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def assert_close(got, want):
    assert len(got) == len(want), (got, want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-15), f"step {i}: {a!r} != {b!r}"


def cos_anneal(start, end, pct):
    """torch's OneCycleLR cosine: end + (start - end) / 2 * (1 + cos(pi * pct))."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


# --- formats ----------------------------------------------------------------------------


def test_json_structure_and_step_lr_values(capsys):
    data = run_json(capsys, STEP_LR)
    assert set(data) == {"name", "flavor", "steps", "lrs"}
    assert (data["name"], data["flavor"], data["steps"]) == ("StepLR", "torch", 5)
    # lr = base * 0.5 ** (step // 2)
    assert data["lrs"] == [[1.0, 1.0, 0.5, 0.5, 0.25], [0.5, 0.5, 0.25, 0.25, 0.125]]


def test_one_cycle_momentum_values(capsys):
    data = run_json(capsys, ONE_CYCLE)
    assert set(data) == {"name", "flavor", "steps", "lrs", "momentum"}
    # initial lr = 1.0 / 25; warmup ends at 0.3 * 10 - 1 = 2, annealing runs to step 9.
    start, floor = 1.0 / 25, 1.0 / 25 / 1e4
    lrs = [cos_anneal(start, 1.0, t / 2) for t in range(3)]
    lrs += [cos_anneal(1.0, floor, (t - 2) / 7) for t in (3, 4)]
    momentum = [cos_anneal(0.95, 0.85, t / 2) for t in range(3)]
    momentum += [cos_anneal(0.85, 0.95, (t - 2) / 7) for t in (3, 4)]
    assert_close(data["lrs"][0], lrs)
    assert_close(data["momentum"][0], momentum)


def test_cyclic_momentum_values(capsys):
    data = run_json(capsys, CYCLIC)
    # a triangle of half-period 2 between 0.1 and 1.0; momentum 0.9 -> 0.8 against it
    assert_close(data["lrs"][0], [0.1, 0.55, 1.0, 0.55, 0.1, 0.55])
    assert_close(data["momentum"][0], [0.9, 0.85, 0.8, 0.85, 0.9, 0.85])


@pytest.mark.parametrize(
    "argv",
    [
        STEP_LR,
        CYCLIC + " --arg cycle_momentum=False",
        "ExponentialLR --lr 1 --steps 3 --arg gamma=0.5",
        "ReduceLROnPlateau --lr 1 --steps 3 --metrics 1,2",
    ],
    ids=["StepLR", "CyclicLR-no-momentum", "ExponentialLR", "ReduceLROnPlateau"],
)
def test_no_momentum_key_without_momentum_cycling(capsys, argv):
    assert "momentum" not in run_json(capsys, argv)


def parse_csv(text):
    header, *rows = (line.split(",") for line in text.strip().splitlines())
    return header, [[float(c) for c in row] for row in rows]


def parse_table(text):
    header, *rows = (line.split() for line in text.strip().splitlines())
    return header, [[float(c) for c in row] for row in rows]


@pytest.mark.parametrize("argv", [STEP_LR, ONE_CYCLE], ids=["StepLR", "OneCycleLR"])
def test_csv_and_table_parse_back_to_the_json_numbers(capsys, argv):
    data = run_json(capsys, argv)
    columns = [*data["lrs"], *data.get("momentum", [])]
    groups = len(data["lrs"])
    names = [f"lr[{g}]" for g in range(groups)]
    names += [f"momentum[{g}]" for g in range(len(data.get("momentum", [])))]
    want = [[float(i), *(c[i] for c in columns)] for i in range(data["steps"])]
    for fmt, parse in (("csv", parse_csv), ("table", parse_table)):
        code, out, err = run(capsys, argv, "--format", fmt)
        assert (code, err) == (0, "")
        header, rows = parse(out)
        assert header == ["step", *names], fmt
        assert rows == want, fmt


# --- configs and --arg ---------------------------------------------------------------------


def test_json_config_and_flags_win(capsys, tmp_path):
    path = tmp_path / "step.json"
    config = {
        "name": "StepLR",
        "lr": [1.0, 0.5],
        "steps": 4,
        "kwargs": {"step_size": 2, "gamma": 0.5},
    }
    path.write_text(json.dumps(config))
    assert run_json(capsys, "--config", str(path))["lrs"] == [
        [1.0, 1.0, 0.5, 0.5],
        [0.5, 0.5, 0.25, 0.25],
    ]
    data = run_json(capsys, "--config", str(path), "--steps", "3", "--arg", "gamma=0.1")
    assert data["steps"] == 3
    assert_close(data["lrs"][0], [1.0, 1.0, 0.1])


SEQUENTIAL_TOML = """\
    name = "SequentialLR"
    lr = [1.0, 0.5]
    steps = 5

    [kwargs]
    milestones = [2]

    [[kwargs.schedulers]]
    name = "ConstantLR"
    kwargs = { factor = 0.1, total_iters = 2 }

    [[kwargs.schedulers]]
    name = "ExponentialLR"
    kwargs = { gamma = 0.9 }
"""


@pytest.mark.parametrize(
    "flavor, factors",
    [("torch", [0.1, 0.1, 1.0, 0.9, 0.81]), ("oneflow", [0.1, 0.1, 0.81, 0.729, 0.6561])],
)
def test_toml_config_with_nested_schedulers(capsys, tmp_path, flavor, factors):
    path = tmp_path / "sequential.toml"
    path.write_text(f'flavor = "{flavor}"\n' + textwrap.dedent(SEQUENTIAL_TOML))
    data = run_json(capsys, "--config", str(path))
    assert (data["name"], data["flavor"]) == ("SequentialLR", flavor)
    for base, lrs in zip((1.0, 0.5), data["lrs"], strict=True):
        assert_close(lrs, [base * f for f in factors])


@pytest.mark.parametrize(
    "arg", ["lr_lambda=0.95 ** epoch", 'lr_lambda="0.95 ** epoch"', "lr_lambda = 0.95 ** epoch"]
)
def test_arg_expression_kept_as_a_string(capsys, arg):
    data = run_json(capsys, "LambdaLR", "--lr", "2.0", "--steps", "4", "--arg", arg)
    assert_close(data["lrs"][0], [2.0 * 0.95**t for t in range(4)])


def test_arg_literals_list_bool_none_and_bare_string(capsys):
    data = run_json(
        capsys, "MultiStepLR --lr 1 --steps 6 --arg 'milestones=[4, 2]' --arg gamma=0.5"
    )
    assert data["lrs"] == [[1.0, 1.0, 0.5, 0.5, 0.25, 0.25]]
    # mode=triangular2 is no literal, so it stays a string; False and None are literals.
    argv = (
        "CyclicLR --lr 1 --steps 6 --arg base_lr=0.0 --arg max_lr=1.0 --arg step_size_up=1"
        " --arg mode=triangular2 --arg cycle_momentum=False --arg step_size_down=None"
    )
    data = run_json(capsys, argv)
    assert "momentum" not in data  # cycle_momentum=False took effect
    assert data["lrs"] == [[0.0, 1.0, 0.0, 0.5, 0.0, 0.25]]  # halved every cycle


def test_plateau_metrics(capsys):
    data = run_json(
        capsys,
        "ReduceLROnPlateau --lr 1 --lr 2 --steps 6 --metrics 1,1,1,0.5,0.5"
        " --arg patience=1 --arg factor=0.5",
    )
    # lrs[g][i + 1] is the lr after step(metrics[i]): the third 1 is the second bad
    # epoch (> patience), so the lr halves there; 0.5 improves, then one bad epoch.
    assert data["lrs"] == [[1.0, 1.0, 1.0, 0.5, 0.5, 0.5], [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]]


def test_oneflow_polynomial_decay_batch(capsys):
    data = run_json(capsys, "PolynomialLR --flavor oneflow --lr 0.1 --steps 7 --arg decay_batch=4")
    assert data["flavor"] == "oneflow"
    end = 1e-4  # OneFlow's default end_learning_rate
    want = [(0.1 - end) * (1 - min(t, 4) / 4) + end for t in range(7)]
    assert_close(data["lrs"][0], want)


# --- --diff --------------------------------------------------------------------------------


def test_diff_polynomial_json(capsys):
    data = run_json(capsys, POLY_DIFF)
    assert set(data) == {"name", "steps", "torch", "oneflow", "differ_at"}
    assert_close(data["torch"]["lrs"][0], [0.1 * (1 - min(t, 4) / 4) for t in range(6)])
    end = 1e-4  # total_iters became OneFlow's decay_batch
    assert_close(
        data["oneflow"]["lrs"][0], [(0.1 - end) * (1 - min(t, 4) / 4) + end for t in range(6)]
    )
    assert data["differ_at"] == [1, 2, 3, 4, 5]


def test_diff_polynomial_table_marks_the_differing_steps(capsys):
    code, out, err = run(capsys, POLY_DIFF)
    assert (code, err) == (0, "")
    lines = out.strip().splitlines()
    assert lines[0].split() == ["step", "torch", "lr[0]", "oneflow", "lr[0]", "differs"]
    marked = [int(line.split()[0]) for line in lines[1:7] if line.rstrip().endswith("*")]
    assert marked == [1, 2, 3, 4, 5]
    assert "first at step 1" in lines[-1]


@pytest.mark.parametrize(
    "argv, words",
    [
        ("StepLR --arg step_size=2", "one behaviour"),
        ("ConstantLR --arg factor=0.5 --arg total_iters=2", "agree at every step"),
    ],
)
def test_diff_where_the_flavours_agree(capsys, argv, words):
    argv = argv + " --diff --lr 1 --steps 5"
    assert run_json(capsys, argv)["differ_at"] == []
    code, out, err = run(capsys, argv)
    assert (code, err) == (0, "")
    assert words in out.strip().splitlines()[-1]
    assert "*" not in out


def test_diff_names_the_flavour_that_refuses(capsys):
    argv = "MultiStepLR --diff --lr 1 --steps 5 --arg 'milestones=[4, 2]'"
    code, out, err = run(capsys, argv)
    assert (code, err) == (0, "")
    assert "oneflow refuses" in out and "milestones" in out
    assert "torch refuses" not in out
    data = run_json(capsys, argv)
    assert data["torch"]["lrs"] == [[1.0, 1.0, 0.1, 0.1, pytest.approx(0.01, rel=REL)]]
    assert set(data["oneflow"]) == {"error"} and "strictly increasing" in data["oneflow"]["error"]
    assert data["differ_at"] == []


@pytest.mark.parametrize(
    "argv, native",
    [
        ("CyclicLR --arg base_lr=0.1 --arg max_lr=1.0", "torch"),
        ("CosineDecayLR --arg decay_steps=3", "oneflow"),
        ("WarmupLR", "oneflow"),
    ],
)
def test_diff_summary_names_the_one_native_framework(capsys, argv, native):
    # CyclicLR exists in torch only; CosineDecayLR and WarmupLR in OneFlow only.
    code, out, _ = run(capsys, argv, "--diff", "--lr", "1", "--steps", "2")
    assert code == 0
    summary = out.strip().splitlines()[-1]
    assert summary.endswith(f"(native in {native}).")


def test_diff_plateau_table(capsys):
    argv = "ReduceLROnPlateau --diff --lr 1 --steps 3 --metrics 1,1"
    assert run_json(capsys, argv)["differ_at"] == []
    code, out, err = run(capsys, argv)
    assert (code, err) == (0, ""), err
    assert "ReduceLROnPlateau" in out.strip().splitlines()[-1]


# --- --plot --------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize(
    "argv, rows",
    [(STEP_LR, 1), (ONE_CYCLE, 2), (POLY_DIFF, 1)],
    ids=["plain", "momentum", "diff"],
)
def test_plot_writes_a_png(capsys, tmp_path, argv, rows):
    path = tmp_path / "nested" / "plot.png"
    code, out, err = run(capsys, argv, "--plot", str(path))
    assert (code, err) == (0, ""), err
    assert out  # the table is still printed
    width, height = png_size(path)
    assert width > 0 and height == 200 * (rows + 1)  # 4 in or 6 in tall at 100 dpi


# --- bad input ------------------------------------------------------------------------------

FILES = {
    "bad.json": '{"name": "StepLR", "kwargs": {"step_size": 2',
    "bad.toml": 'name = "StepLR"\nkwargs = {step_size = \n',
    "unknown.json": '{"name": "StepLR", "lr": 1, "steps": 3, "bogus_key": 1}',
    "listkw.json": '{"name": "StepLR", "lr": 1, "steps": 3, "kwargs": [2]}',
    "conf.yaml": "name: StepLR\n",
    "lr_bool.json": '{"name": "StepLR", "lr": true, "steps": 3, "kwargs": {"step_size": 2}}',
    "lr_bools.json": '{"name": "StepLR", "lr": [true], "steps": 3, "kwargs": {"step_size": 2}}',
    "momentum.json": '{"name": "StepLR", "lr": 1, "steps": 3, "momentum": "fast",'
    ' "kwargs": {"step_size": 2}}',
    "metrics_int.json": '{"name": "ReduceLROnPlateau", "lr": 1, "steps": 3, "metrics": 5}',
    "metrics_str.json": '{"name": "ReduceLROnPlateau", "lr": 1, "steps": 3, "metrics": "1,2"}',
}
S2 = "--lr 1 --steps 3 --arg step_size=2"
L1 = "--lr 1 --steps 3"
BAD = [
    (f"Nope {L1}", ["Nope", "StepLR", "ReduceLROnPlateau"]),
    ("StepLR --steps 3 --arg step_size=2", ["--lr"]),
    ("StepLR --lr abc --steps 3", ["abc"]),
    ("StepLR --lr nan --steps 3", ["nan"]),
    ("StepLR --lr 1 --steps 0", ["--steps", "0"]),
    ("StepLR --lr 1 --steps -3", ["--steps", "-3"]),
    ("StepLR --lr 1 --steps abc", ["--steps", "abc"]),
    (f"StepLR {L1} --arg step_size", ["--arg", "step_size"]),
    (f"StepLR {S2} --arg bogus=1", ["bogus"]),
    (f"StepLR {L1} --arg step_size=two", ["step_size", "two"]),
    (f"StepLR {S2} --arg 'gamma=\"0.5\"'", ["gamma", "0.5"]),
    (f"--config {{tmp}}/bad.json {L1}", ["bad.json", "JSON"]),
    (f"--config {{tmp}}/bad.toml {L1}", ["bad.toml", "TOML"]),
    ("--config {tmp}/unknown.json", ["bogus_key"]),
    ("--config {tmp}/listkw.json", ["kwargs"]),
    ("--config {tmp}/conf.yaml", ["conf.yaml"]),
    ("--config {tmp}/missing.json", ["missing.json"]),
    (f"StepLR {S2} --plot {{tmp}}/out.jpg", ["out.jpg"]),
    ("ReduceLROnPlateau --lr 1 --steps 5 --metrics 1,2", ["--metrics"]),
    (f"ReduceLROnPlateau {L1} --metrics 1,x", ["1,x"]),
    ("OneCycleLR --lr 1 --steps 12 --arg max_lr=1.0 --arg total_steps=10", ["total_steps", "10"]),
    (f"StepLR {S2} --flavor jax", ["jax"]),
    (f"StepLR {S2} --format xml", ["xml"]),
    (f"StepLR {S2} --momentum fast", ["fast"]),
    (f"LambdaLR {L1} --arg 'lr_lambda=foo * epoch'", ["foo"]),
    (f"LambdaLR {L1} --arg \"lr_lambda=__import__('os')\"", ["__import__"]),
    (f"LambdaLR {L1} --lr 2 --arg \"lr_lambda=['0.9', '0.8', '0.7']\"", ["lr_lambda"]),
    (
        f'SequentialLR {L1} --arg \'schedulers=[{{"name": "Bogus"}}]\' --arg milestones=[]',
        ["Bogus"],
    ),
    (L1, ["name"]),
    # Config values of the wrong type must be refused by name, not crash or pass.
    ("--config {tmp}/lr_bool.json", ["lr", "True"]),
    ("--config {tmp}/lr_bools.json", ["lr", "True"]),
    ("--config {tmp}/momentum.json", ["momentum", "fast"]),
    ("--config {tmp}/metrics_int.json", ["metrics", "5"]),
    ("--config {tmp}/metrics_str.json", ["metrics", "1,2"]),
    (
        f"SequentialLR {L1} --arg milestones=[] --arg \"schedulers=[{{'name': 'StepLR', "
        "'kwargs': 5}]\"",
        ["kwargs", "5"],
    ),
    # Accepted by construction, fails at step 0: warmup ends at 0.1 * 10 - 1 = 0, an empty
    # phase that torch divides by; the message must still name the argument at fault.
    (f"OneCycleLR {L1} --arg max_lr=1.0 --arg total_steps=10 --arg pct_start=0.1", ["pct_start"]),
]


@pytest.mark.parametrize(
    "argv, needles", BAD, ids=[f"{i:02d}-{b[1][0]}" for i, b in enumerate(BAD)]
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, needles):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in split(argv)]
    code, out, err = run(capsys, argv)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dualtrain: error:")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert not (tmp_path / "out.jpg").exists()


# --- as a real process ----------------------------------------------------------------------


def subprocess_run(command):
    argv = [sys.executable, "-m", "dualtrain", "schedule", *split(command)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_subprocess_success():
    proc = subprocess_run(STEP_LR + " --format json")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert json.loads(proc.stdout)["lrs"][1] == [0.5, 0.5, 0.25, 0.25, 0.125]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (f"Nope {L1}", "'Nope'"),
        ("StepLR --lr 1 --steps x", "'x'"),
        (f"StepLR {L1} --arg step_size=0", "step_size"),
    ],
)
def test_subprocess_bad_input(argv, needle):
    proc = subprocess_run(argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("dualtrain: error:") and needle in proc.stderr
    assert "Traceback" not in proc.stderr


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "schedules"


def test_example_warmup_then_cosine(capsys):
    data = run_json(capsys, f"--config {EXAMPLES / 'warmup_then_cosine.toml'}")
    [lrs] = data["lrs"]
    assert len(lrs) == 30
    # LinearLR from 0.1 x 0.1 up to 0.1 over 5 steps, then the cosine restarted at step 5
    assert lrs[:5] == pytest.approx([0.1 * (0.1 + 0.9 * t / 5) for t in range(5)], rel=1e-12)
    cosine = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 25)) / 2 for t in range(25)]
    assert lrs[5:] == pytest.approx(cosine, rel=1e-12)


def test_example_oneflow_warmup_polynomial(capsys):
    data = run_json(capsys, f"--config {EXAMPLES / 'oneflow_warmup_polynomial.json'}")
    [lrs] = data["lrs"]
    poly = [(0.1 - 1e-4) * (1 - min(t, 16) / 16) ** 2 + 1e-4 for t in range(20)]
    # a linear ramp from 0.1 x base to the polynomial's value at step 4, then the polynomial
    ramp = [0.1 * (0.1 + (poly[4] / 0.1 - 0.1) * t / 4) for t in range(4)]
    assert data["flavor"] == "oneflow"
    assert lrs == pytest.approx(ramp + poly[4:], rel=1e-12)
