"""Learning-rate lambdas written as text: "0.95 ** epoch", "min(1.0, (step + 1) / 10)".

The text is parsed with `ast` and walked by the small interpreter below; it is never
given to eval, exec or compile, so a config or command line can only do arithmetic.
The math functions and constants are there both bare and as Python spells them,
`cos(pi * x)` or `math.cos(math.pi * x)`; `math.<name>` is the only attribute allowed.
"""

from __future__ import annotations

import ast
import math
import numbers
import operator

from dualtrain.errors import ConfigError

MAX_LENGTH = 500  # characters of source text
MAX_DEPTH = 250  # tree nesting: "1+1+...+1" in 500 characters, far below the recursion limit
MAX_INT_EXPONENT = 10_000  # int ** int beyond this would build giant integers
MAX_INT_BITS = 100_000  # no int result of * or ** may grow past this many bits

CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
# name: (function, fewest arguments, most arguments or None for any number)
FUNCTIONS = {
    "min": (min, 2, None), "max": (max, 2, None), "abs": (abs, 1, 1), "round": (round, 1, 2),
    "log": (math.log, 1, 2), "hypot": (math.hypot, 1, None),
    **{f: (getattr(math, f), 2, 2) for f in ("atan2", "pow", "fmod", "copysign")},
    **{f: (getattr(math, f), 1, 1) for f in (
        "floor ceil sqrt exp log2 log10 sin cos tan asin acos atan sinh cosh tanh".split())},
}  # fmt: skip
# What `math.<name>` may name: the math module's members among the bare names.
MATH_FUNCTIONS = frozenset(n for n, (f, _, _) in FUNCTIONS.items() if getattr(math, n, None) is f)
MATH_CONSTANTS = frozenset(CONSTANTS)
MATH_NAMES = ", ".join(f"math.{n}" for n in sorted(MATH_FUNCTIONS | MATH_CONSTANTS))
BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
# Symbols of refused operators, so the message shows what the user typed.
SYMBOLS = {
    ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
    ast.RShift: ">>", ast.Invert: "~", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
    ast.IsNot: "is not",
}  # fmt: skip
# Plain words for the refused syntax users are most likely to try.
KINDS = {
    ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignments", ast.JoinedStr: "f-strings",
}  # fmt: skip
ALLOWED = (
    "numbers, names, math.<name>, + - * / // % **, comparisons, and/or/not, a if c else b, calls"
)
CALLS = "calls are limited to min, max, abs, round and math functions"
ATTRIBUTES = "the only attributes allowed are math functions and constants (math.cos, math.pi)"


class ExpressionError(ConfigError):
    """A disallowed, malformed or failing expression, described in one line."""


def _show(text: str, limit: int = 60) -> str:
    """`text` on one line (newlines escaped) and cut to `limit` characters."""
    shown = repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class Expression:
    """An arithmetic expression in one variable, callable like a Python lambda.

    Args:
        text: the expression, e.g. "0.95 ** epoch".
        variables: names bound to the argument; they are aliases of one another.
        where: what the expression is for, prefixed to errors ("LambdaLR: lr_lambda").

    Example:
        >>> Expression("0.5 ** (step // 2)")(4)
        0.25
    """

    def __init__(
        self, text: str, variables: tuple[str, ...] = ("epoch", "step", "x"), where: str = ""
    ) -> None:
        self.where = f"{where}: " if where else ""
        if not isinstance(text, str):
            raise ExpressionError(f"an expression must be a string, got {text!r}")
        if not variables or not all(isinstance(v, str) and v.isidentifier() for v in variables):
            raise ExpressionError(f"expression variables must be identifiers, got {variables!r}")
        self.text = text
        self.variables = tuple(variables)
        self._names = dict.fromkeys(self.variables, None) | {
            k: v for k, v in CONSTANTS.items() if k not in self.variables
        }
        # `math.cos` reads the math module unless the caller named a variable `math`.
        self._math_module = "math" not in self.variables
        self._tree = self._parse()
        used = [n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)]
        # Name the variable the text uses in evaluation errors: "at x=0", not "at epoch=0".
        self._shown_var = next((v for v in used if v in self.variables), self.variables[0])

    def _fail(self, why: str) -> ExpressionError:
        return ExpressionError(f'{self.where}expression "{_show(self.text)}": {why}')

    def _parse(self) -> ast.expr:
        if len(self.text) > MAX_LENGTH:
            raise self._fail(f"{len(self.text)} characters long (at most {MAX_LENGTH})")
        if not self.text.strip():
            raise self._fail("empty (write a number or an expression in the variable)")
        stripped = self.text.lstrip()  # a leading space would be an "unexpected indent"
        try:
            tree = ast.parse(stripped.rstrip(), mode="eval").body
        except SyntaxError as exc:
            # Positions in the text as given: the blank lines stripped count as lines,
            # the stripped indentation only on the line the parsed text starts on.
            skipped = self.text[: len(self.text) - len(stripped)]
            line = (exc.lineno or 1) + skipped.count("\n")
            indent = len(skipped) - skipped.rfind("\n") - 1 if (exc.lineno or 1) == 1 else 0
            where = "the end" if not exc.offset else f"column {exc.offset + indent}"
            where = where if line == 1 else f"line {line}, {where}"
            raise self._fail(f"not a valid arithmetic expression ({exc.msg} at {where})") from None
        except ValueError as exc:  # e.g. a null byte
            raise self._fail(f"not a valid arithmetic expression ({exc})") from None
        self._check(tree, 0)
        return tree

    def _check(self, node: ast.AST, depth: int) -> None:
        """Refuse anything but the allowed node types, names, operators and calls."""
        if depth > MAX_DEPTH:
            raise self._fail(f"nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                piece = _show(repr(node.value), 40)
                raise self._fail(f"only int and float literals are allowed, got {piece}")
        elif isinstance(node, ast.Name):
            if node.id == "math" and self._math_module:
                raise self._fail("math alone is not a number: write math.cos(x) or math.pi")
            if node.id not in self._names:
                allowed = ", ".join(self._names)
                raise self._fail(f"unknown name {node.id!r} (allowed: {allowed})")
        elif isinstance(node, ast.Attribute):
            if self._math_member(node) not in MATH_CONSTANTS:
                raise self._fail(self._attribute_refusal(node))
            return  # math.pi: nothing below it to walk
        elif isinstance(node, ast.Call):
            name = self._function_name(node.func)
            if name not in FUNCTIONS:
                piece = _show(ast.unparse(node.func), 40)
                if isinstance(node.func, ast.Attribute) and self._math_member(node.func):
                    raise self._fail(
                        f"{piece!r} is not an allowed math name (allowed: {MATH_NAMES})"
                    )
                raise self._fail(f"{CALLS}, got {piece!r}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                piece = _show(ast.unparse(node), 40)
                raise self._fail(f"keyword and starred arguments are not allowed, got {piece!r}")
            _, low, high = FUNCTIONS[name]
            if len(node.args) < low or (high is not None and len(node.args) > high):
                count = str(low) if low == high else f"{low} or more" if high is None else "1 or 2"
                noun = "argument" if count == "1" else "arguments"
                raise self._fail(f"{name}() takes {count} {noun}, got {len(node.args)}")
        elif isinstance(node, ast.BinOp | ast.UnaryOp | ast.Compare):
            ops = node.ops if isinstance(node, ast.Compare) else [node.op]
            for op in ops:
                if type(op) not in BINARY | UNARY | COMPARE:
                    symbol = SYMBOLS.get(type(op), type(op).__name__)
                    raise self._fail(f"operator {symbol!r} is not allowed (allowed: {ALLOWED})")
        elif not isinstance(node, ast.BoolOp | ast.IfExp):
            kind = KINDS.get(type(node), f"{type(node).__name__} expressions")
            piece = _show(ast.unparse(node), 40)
            raise self._fail(f"{kind} are not allowed, got {piece!r} (allowed: {ALLOWED})")
        # A call's function name was checked above; only its arguments are walked.
        children = node.args if isinstance(node, ast.Call) else ast.iter_child_nodes(node)
        for child in children:
            if isinstance(child, ast.expr):  # not the Load, operator and keyword nodes
                self._check(child, depth + 1)

    def _math_member(self, node: ast.Attribute) -> str | None:
        """`name` for `math.name`, when `math` is the module (not a variable)."""
        is_math = isinstance(node.value, ast.Name) and node.value.id == "math"
        return node.attr if is_math and self._math_module else None

    def _function_name(self, func: ast.expr) -> str | None:
        """The FUNCTIONS key a call names: `cos` for `cos` and for `math.cos`."""
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute) and self._math_member(func) in MATH_FUNCTIONS:
            return func.attr
        return None

    def _attribute_refusal(self, node: ast.Attribute) -> str:
        member, piece = self._math_member(node), _show(ast.unparse(node), 40)
        if member in MATH_FUNCTIONS:
            return f"{piece} is a function: call it, as in {piece}(x)"
        if member is not None:
            return f"{piece!r} is not an allowed math name (allowed: {MATH_NAMES})"
        return f"{ATTRIBUTES}, got {piece!r}"

    def __call__(self, value: float) -> float:
        """The expression's value, as a float, with every variable bound to `value`."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self._fail(f"{self._shown_var} must be a number, got {value!r}")
        # Plain Python numbers, so a NumPy scalar argument cannot change the arithmetic.
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
        names = {k: value if v is None else v for k, v in self._names.items()}
        try:
            return float(_evaluate(self._tree, names))
        except (ArithmeticError, ValueError, TypeError) as exc:
            reason = exc.args[-1] if len(exc.args) == 2 else exc  # OverflowError(34, "...")
            raise ExpressionError(
                f'{self.where}expression "{_show(self.text)}" '
                f"at {self._shown_var}={value!r}: {reason}"
            ) from None

    def __repr__(self) -> str:
        extra = "" if self.variables == ("epoch", "step", "x") else f", {self.variables!r}"
        return f"Expression({self.text!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expression):
            return NotImplemented
        return (self.text, self.variables) == (other.text, other.variables)

    def __hash__(self) -> int:
        return hash((self.text, self.variables))

    def __reduce__(self):
        # Rebuild from the text: copy, deepcopy and pickle then re-validate, never trust state.
        return (Expression, (self.text, self.variables, self.where.removesuffix(": ")))


def parse_expression(text: str, variables: tuple[str, ...] = ("epoch", "step", "x")) -> Expression:
    """Parse and check `text` now. Example: `parse_expression("0.9 ** epoch")(2)` is ~0.81."""
    return Expression(text, variables)


def _evaluate(node: ast.AST, names: dict[str, float]) -> float | int | bool:
    """The value of a checked node; and/or, comparisons and if-else short-circuit."""
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return names[name]
        case ast.UnaryOp(op=op, operand=operand):
            return UNARY[type(op)](_evaluate(operand, names))
        case ast.BinOp(left=left, op=op, right=right):
            return _binary(type(op), _evaluate(left, names), _evaluate(right, names))
        case ast.BoolOp(op=op, values=values):
            for item in values:
                result = _evaluate(item, names)
                if bool(result) == isinstance(op, ast.Or):
                    break
            return result
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            a = _evaluate(left, names)
            for op, right in zip(ops, comparators, strict=True):
                b = _evaluate(right, names)
                if not COMPARE[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _evaluate(body if _evaluate(test, names) else orelse, names)
        case ast.Attribute(attr=name):  # math.pi: _check let only math constants through
            return CONSTANTS[name]
        case ast.Call(func=ast.Name(id=name) | ast.Attribute(attr=name), args=args):
            result = FUNCTIONS[name][0](*(_evaluate(a, names) for a in args))
            return _real(result)
    raise TypeError(f"unchecked node {type(node).__name__}")  # _check lets none through


def _binary(op: type, a: float, b: float) -> float | int:
    """`a op b`, refusing integer powers and products that would grow giant."""
    if isinstance(a, int) and isinstance(b, int):
        if op is ast.Pow and abs(b) > MAX_INT_EXPONENT:
            raise OverflowError(
                f"integer exponent {b} is too large (at most {MAX_INT_EXPONENT}; "
                f"write a float base such as {float(a)!r} for a float power)"
            )
        bits = abs(b) * a.bit_length() if op is ast.Pow else a.bit_length() + b.bit_length()
        if op in (ast.Pow, ast.Mult) and bits > MAX_INT_BITS:
            raise OverflowError(f"integer result too large (over {MAX_INT_BITS} bits)")
    return _real(BINARY[op](a, b))


def _real(result: object) -> float | int:
    # A negative base to a fractional power gives a complex number in Python: refuse it.
    if isinstance(result, complex):
        raise ValueError("complex result (negative number to a fractional power?)")
    return result
