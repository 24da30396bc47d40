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
