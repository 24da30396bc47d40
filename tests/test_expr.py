"""Expression: arithmetic lr lambdas from text, evaluated without eval."""

from __future__ import annotations

import ast
import builtins
import copy
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualtrain.errors import ConfigError
from dualtrain.schedules import expr as expr_module
from dualtrain.schedules.expr import Expression, ExpressionError, parse_expression

# (text, value of the variable, the same maths in Python)
VALUES = [
    ("0.95 ** epoch", 3, 0.95**3),
    ("1 / 2 ** (x - 1)", 4, 1 / 2 ** (4 - 1)),
    ("min(1.0, (step + 1) / 10)", 4, min(1.0, (4 + 1) / 10)),
    ("min(1.0, (step + 1) / 10)", 20, 1.0),
    ("max(0.1, 1 - epoch / 100, 0.2)", 95, max(0.1, 1 - 95 / 100, 0.2)),
    ("0.5 * (1 + cos(pi * epoch / 10))", 3, 0.5 * (1 + math.cos(math.pi * 3 / 10))),
    ("1.0 if epoch < 5 else 0.1", 4, 1.0),
    ("1.0 if epoch < 5 else 0.1", 5, 0.1),
    ("epoch // 3 + epoch % 3", 7, 7 // 3 + 7 % 3),
    ("-x + +x * 2", 2.5, -2.5 + 2.5 * 2),
    (
        "sqrt(x) + log(x, 2) + log10(x) + exp(-x)",
        8,
        math.sqrt(8) + math.log(8, 2) + math.log10(8) + math.exp(-8),
    ),
    ("abs(1 - x) + round(x / 3) + floor(x / 3) + ceil(x / 3)", 7, 6 + round(7 / 3) + 2 + 3),
    ("hypot(3, x) + atan2(1, x) + copysign(2, -x)", 4, 5 + math.atan2(1, 4) - 2),
    ("2 ** 10 - 1", 0, 1023.0),
    ("1 < x <= 3", 3, 1.0),
    ("1 < x <= 3", 4, 0.0),
    ("x == 2 or x != 2 and x > 10", 5, 0.0),
    ("not x", 0, 1.0),
    ("e ** 0 + tau - 2 * pi", 0, 1.0),
    ("x > 0 and 1 / x", 0, 0.0),  # short-circuits: 1 / 0 never runs
    ("x > 0 and 1 / x", 4, 0.25),
    ("x or 7", 0, 7.0),
    ("x or 7", 3, 3.0),
    (" 0.9 ** epoch ", 2, 0.9**2),  # leading space is not an "unexpected indent"
]


@pytest.mark.parametrize(("text", "value", "expected"), VALUES)
def test_values_match_python(text: str, value: float, expected: float) -> None:
    result = Expression(text)(value)
    assert type(result) is float
    assert result == pytest.approx(expected, rel=1e-15, abs=0)


def test_variable_names_are_aliases() -> None:
    values = [Expression(f"0.9 ** {name} + {name} / 7")(6) for name in ("epoch", "step", "x")]
    assert values == [0.9**6 + 6 / 7] * 3
    assert Expression("epoch - step + x")(5) == 5.0


def test_custom_variables_and_numpy_argument() -> None:
    np = pytest.importorskip("numpy")
    assert Expression("t * 2", variables=("t",))(np.float64(1.5)) == 3.0
    # A NumPy int is evaluated as a Python int: no int64 overflow wrapping to a wrong value.
    assert Expression("x ** 40")(np.int64(3)) == float(3**40)
    with pytest.raises(ExpressionError, match="unknown name 'epoch'"):
        Expression("epoch", variables=("t",))


# (text, a piece of the message naming what is wrong)
REJECTED = [
    ("__import__('os').system('x')", "__import__"),
    ("__import__('os')", "'__import__'"),
    ("().__class__", "__class__"),
    ("epoch.real", "epoch.real"),
    ("[1][0]", "[1][0]"),
    ("lambda: 1", "lambda"),
    ("'a'", "'a'"),
    ("b'a'", "b'a'"),
    ("1j", "1j"),
    ("None", "None"),
    ("open('f')", "'open'"),
    ("f(x=1)", "'f'"),
    ("max(x=1)", "max(x=1)"),
    ("max(*[1, 2])", "max(*[1, 2])"),
    ("x if", "not a valid arithmetic expression"),
    ("0.9 **", "not a valid arithmetic expression"),
    ("", "empty"),
    ("   ", "empty"),
    ("a" * 600, "600 characters"),
    ("epoch @ 2", "'@'"),
    ("x << 2", "'<<'"),
    ("~x", "'~'"),
    ("x in (1, 2)", "'in'"),
    ("x is 1", "'is'"),
    ("0.9 ** epch", "'epch'"),
    ("[i for i in (1, 2)]", "comprehensions"),
    ("(y := 2)", "assignments"),
    ("f'{x}'", "f-strings"),
    ("{1: 2}", "{1: 2}"),
    ("log(1, 2, 3)", "log() takes 1 or 2 arguments, got 3"),
    ("min(x)", "min() takes 2 or more arguments, got 1"),
    ("sqrt()", "sqrt() takes 1 argument, got 0"),
    ("(1 +\n 2) +", "not a valid arithmetic expression"),
    ("-" * 400 + "1", "nested too deeply"),
    ("1\x00", "null bytes"),
]


@pytest.mark.parametrize(("text", "piece"), REJECTED)
def test_rejected_at_construction(text: str, piece: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression(text)
    message = str(info.value)
    assert "\n" not in message
    assert piece in message
    assert message.startswith('expression "')
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigError)


def test_message_formats() -> None:
    with pytest.raises(ExpressionError) as info:
        Expression("0.9 ** epch")
    assert str(info.value) == (
        "expression \"0.9 ** epch\": unknown name 'epch' (allowed: epoch, step, x, pi, e, tau, inf)"
    )
    with pytest.raises(ExpressionError) as info:
        Expression("1 / epoch")(0)
    assert str(info.value) == 'expression "1 / epoch" at epoch=0: division by zero'
    with pytest.raises(ExpressionError) as info:
        Expression("a" * 600)
    assert len(str(info.value)) < 150  # the text is shortened, not repeated in full


@pytest.mark.parametrize(
    ("text", "value", "piece"),
    [
        ("1/0", 1, "division by zero"),
        ("1 / x", 0, "at x=0: division by zero"),
        ("2 ** 10 ** 10", 1, "exponent 10000000000 is too large"),
        ("2 ** -20000", 1, "exponent -20000 is too large"),
        ("(9999 ** 9999) ** 9999", 1, "integer result too large"),
        ("10.0 ** x", 400, "at x=400"),
        ("10 ** x / 3", 400, "too large"),
        ("log(x)", 0, "math domain error"),
        ("sqrt(step)", -1, "at step=-1: math domain error"),
        ("(-8) ** (1 / 3)", 0, "complex result"),
        ("floor(inf)", 0, "infinity"),
        ("round(x, 0.5)", 1, "integer"),
    ],
)
def test_evaluation_errors(text: str, value: float, piece: str) -> None:
    expression = Expression(text)  # valid syntax: only evaluating fails
    with pytest.raises(ExpressionError) as info:
        expression(value)
    assert "\n" not in str(info.value)
    assert piece in str(info.value)


def test_argument_must_be_a_number() -> None:
    with pytest.raises(ExpressionError, match="must be a number"):
        Expression("x")("1")
    with pytest.raises(ExpressionError, match="must be a string"):
        Expression(0.5)  # type: ignore[arg-type]


def test_equality_repr_copy_and_pickle() -> None:
    expression = parse_expression("0.95 ** epoch")
    assert expression == Expression("0.95 ** epoch")
    assert expression != Expression("0.95 ** step")
    assert expression != Expression("0.95 ** epoch", variables=("epoch",))
    assert hash(expression) == hash(Expression("0.95 ** epoch"))
    assert expression.text == "0.95 ** epoch"
    assert repr(expression) == "Expression('0.95 ** epoch')"
    assert "('t',)" in repr(Expression("t", variables=("t",)))
    for clone in (copy.deepcopy(expression), copy.copy(expression)):
        assert clone == expression and clone is not expression
        assert clone(3) == 0.95**3
    assert pickle.loads(pickle.dumps(expression))(3) == 0.95**3


def test_never_uses_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    assert Expression("min(1.0, 0.5 ** x)")(1) == 0.5
    # Nor does the source name them (compile appears only inside ast.parse).
    tree = ast.parse(Path(expr_module.__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"eval", "exec", "compile", "__import__"}


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(a=finite, b=finite, c=finite, epoch=st.integers(0, 10_000) | finite)
def test_polynomials_match_python(a: float, b: float, c: float, epoch: float) -> None:
    text = f"{a!r} * epoch ** 2 + {b!r} * epoch + {c!r}"
    expected = a * epoch**2 + b * epoch + c
    assert math.isclose(Expression(text)(epoch), expected, rel_tol=1e-12, abs_tol=0.0)


@given(text=st.text(max_size=40), value=st.integers(-5, 5))
def test_any_text_fails_only_with_one_line_expression_error(text: str, value: int) -> None:
    try:
        result = Expression(text)(value)
    except ExpressionError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, float)


# --- math. spelled as in Python ----------------------------------------------------------

# Lambdas as a user writes them in Python, with `math.`; the reference is Python itself.
PYTHON_LAMBDAS = [
    "0.5 * (1 + math.cos(math.pi * epoch / 30))",
    "math.exp(-0.1 * epoch) + math.log(epoch + 1) + math.log(epoch + 2, 3)",
    "math.sqrt(epoch + 1) / math.e + math.sin(epoch) * math.tau",
    "math.floor(epoch / 3) + math.ceil(epoch / 4) + math.log2(epoch + 1) + math.log10(epoch + 1)",
    "math.tan(epoch / 50) + math.atan(epoch) + math.asin(epoch / 40) + math.acos(epoch / 40)",
    "math.sinh(epoch / 9) - math.cosh(epoch / 9) + math.tanh(epoch)",
    "math.atan2(1, epoch + 1) + math.pow(0.9, epoch) + math.fmod(epoch, 7)",
    "math.hypot(epoch, 3, 4) + math.copysign(1, epoch - 5) + (epoch < math.inf)",
    "min(1.0, (epoch + 1) / 5) * 0.5 * (1 + math.cos(math.pi * max(0, epoch - 4) / 26))",
]


@pytest.mark.parametrize("text", PYTHON_LAMBDAS)
def test_math_prefix_matches_python_lambda_bit_for_bit(text: str) -> None:
    # Python's own evaluation of the same text is the reference (eval here, in the test only).
    python = eval(f"lambda epoch: {text}", {"math": math, "__builtins__": {"min": min, "max": max}})
    expression = Expression(text)
    for epoch in range(31):
        assert expression(epoch) == float(python(epoch)), f"epoch {epoch}"
    # The bare spelling is the same maths: identical floats, not just close ones.
    bare = Expression(text.replace("math.", ""))
    assert [bare(epoch) for epoch in range(31)] == [expression(epoch) for epoch in range(31)]


def test_a_variable_called_math_is_a_number_not_the_module() -> None:
    assert Expression("math * 2", variables=("math",))(3) == 6.0
    with pytest.raises(ExpressionError, match="'math.cos'"):
        Expression("math.cos(1)", variables=("math",))


# (text, a piece of the message naming what is wrong): nothing but math.<allowed name>.
ATTRIBUTE_REFUSALS = [
    ("math.system('ls')", "'math.system' is not an allowed math name"),
    ("math.system", "'math.system' is not an allowed math name"),
    ("math.__class__", "'math.__class__' is not an allowed math name"),
    ("math.__loader__.load_module('os')", "'math.__loader__.load_module'"),
    ("math.__class__.__mro__", "'math.__class__.__mro__'"),
    ("math.cos.__self__", "'math.cos.__self__'"),
    ("math.cos.__call__(1)", "'math.cos.__call__'"),
    ("math.factorial(3)", "'math.factorial' is not an allowed math name"),
    ("math.min(1, 2)", "'math.min' is not an allowed math name"),
    ("math.cos", "math.cos is a function: call it"),
    ("math.pi(1)", "'math.pi'"),
    ("math", "math alone is not a number"),
    ("os.x", "the only attributes allowed are math functions and constants"),
    ("os.system('ls')", "'os.system'"),
    ("epoch.real", "got 'epoch.real'"),
    ("math.cos(x).real", "'math.cos(x).real'"),
    ("(0).__class__", ".__class__'"),
    ("__import__('math').cos(1)", "__import__"),
]


@pytest.mark.parametrize(("text", "piece"), ATTRIBUTE_REFUSALS)
def test_attributes_other_than_math_names_are_refused(text: str, piece: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression(text, where="LambdaLR: lr_lambda")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f'LambdaLR: lr_lambda: expression "{_show(text)}": ')
    assert piece in message


def _show(text: str) -> str:
    return repr(text)[1:-1]


COSINE = "0.5 * (1 + math.cos(math.pi * epoch / 30))"


def _cosine(base: float, epoch: int) -> float:
    return base * (0.5 * (1 + math.cos(math.pi * epoch / 30)))


def test_math_lambda_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shlex

    from dualtrain.cli import main

    # As a shell passes it: the quotes around the value are gone by the time argv is read.
    argv = shlex.split(f'schedule LambdaLR --lr 0.1 --steps 6 --arg lr_lambda="{COSINE}"')
    assert main([*argv, "--format", "json"]) == 0
    lrs = json.loads(capsys.readouterr().out)["lrs"]
    assert lrs == [[_cosine(0.1, epoch) for epoch in range(6)]]

    argv = shlex.split('schedule LambdaLR --lr 0.1 --steps 2 --arg lr_lambda="math.system(1)"')
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'math.system' is not an allowed math name" in err


def test_math_lambda_in_a_toml_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import json

    from dualtrain.cli import main

    path = tmp_path / "cosine.toml"
    path.write_text(f'name = "LambdaLR"\nlr = 0.2\nsteps = 4\n[kwargs]\nlr_lambda = "{COSINE}"\n')
    assert main(["schedule", "--config", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["lrs"] == [[_cosine(0.2, e) for e in range(4)]]
