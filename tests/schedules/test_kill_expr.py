"""Expression's refusals, exact to the word: limits at their boundary, where a syntax
error is, the piece of text a refusal names, the integer-size guard (issue 19).

Every expected message is written out from the rule the code states, not copied from
a run: `_show(text, n)` escapes newlines and cuts to n characters, the last three
being "..."; the prefix shows the text cut to 60; a column counts from the start of
the line as the user typed it (leading spaces included).
"""

from __future__ import annotations

import pytest

from dualtrain.schedules.expr import ALLOWED, CALLS, Expression, ExpressionError


def refusal(text: str, variables: tuple[str, ...] = ("epoch", "step", "x")) -> str:
    with pytest.raises(ExpressionError) as info:
        Expression(text, variables)
    return str(info.value)


def failure(text: str, value: float) -> str:
    expression = Expression(text)
    with pytest.raises(ExpressionError) as info:
        expression(value)
    return str(info.value)


# -- the variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "shown"),
    [((), "()"), (("1x",), "('1x',)"), (("x", 3), "('x', 3)"), (("x", "a b"), "('x', 'a b')")],
)
def test_variables_must_be_a_nonempty_tuple_of_identifiers(variables, shown):
    with pytest.raises(ExpressionError) as info:
        Expression("1", variables)
    assert str(info.value) == f"expression variables must be identifiers, got {shown}"


def test_custom_variables_are_aliases_and_constants_stay_visible():
    expression = Expression("t * 2 + u + pi - pi", ("t", "u"))
    assert expression(3) == 9.0
    # A variable named like a constant hides the constant.
    assert Expression("pi * 2", ("pi",))(5) == 10.0


# -- the length and depth limits ------------------------------------------------------


def test_length_limit_at_500_characters():
    at_limit = "1." + "0" * 498
    assert len(at_limit) == 500
    assert Expression(at_limit)(0) == 1.0
    past = "1." + "0" * 499
    # The prefix shows the first 57 characters and "...".
    assert refusal(past) == (f'expression "1.{"0" * 55}...": 501 characters long (at most 500)')


def test_depth_limit_at_250_levels():
    # "-" * n + "1": the root is level 0, the literal under n minus signs is level n.
    assert Expression("-" * 250 + "1")(0) == 1.0
    assert Expression("-" * 249 + "1")(0) == -1.0
    assert refusal("-" * 251 + "1") == (
        f'expression "{"-" * 57}...": nested too deeply (at most 250 levels)'
    )


def test_depth_counts_through_call_arguments():
    # abs( at level 0, its argument at level 1: 249 signs put the literal at 250.
    assert Expression("abs(" + "-" * 249 + "1)")(0) == 1.0
    assert refusal("abs(" + "-" * 250 + "1)") == (
        f'expression "abs({"-" * 53}...": nested too deeply (at most 250 levels)'
    )


def test_empty_text_message():
    assert refusal("  \n\t") == (
        'expression "  \\n\\t": empty (write a number or an expression in the variable)'
    )


# -- where a syntax error is -----------------------------------------------------------

INVALID = "not a valid arithmetic expression"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("1 +* 2", "column 4"),  # the "*" is the 4th character
        ("  1 +* 2", "column 6"),  # two leading spaces count: the "*" is the 6th
        ("\t1 2", "column 4"),  # tab, "1", space, "2": the "2" is the 4th
        ("(1 +* \n2)", "column 5"),  # "(1 +*": the "*" is the 5th; line 1 of 2: no line
        ("(1 +\n  * 2)", "line 2, column 3"),  # "  * 2": the "*" is the 3rd
        ("(1 +\n2 +\n* 3)", "line 3, column 1"),
    ],
)
def test_syntax_error_column_and_line(text, where):
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    assert refusal(text) == f'expression "{shown}": {INVALID} (invalid syntax at {where})'


@pytest.mark.parametrize("text", ["1 +", "1 +  ", "1 + \n", "  1 +\t"])
def test_syntax_error_at_the_end_of_the_text(text):
    # Trailing blanks, a newline included, are not part of the expression: the error
    # is at its end, not at a column of the blanks.
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    assert refusal(text) == f'expression "{shown}": {INVALID} (invalid syntax at the end)'


def test_unclosed_parenthesis_names_its_column():
    assert refusal("1 + (") == f"expression \"1 + (\": {INVALID} ('(' was never closed at column 5)"


@pytest.mark.parametrize(
    ("text", "where"), [("  (1 +\n  * 2)", "line 2, column 3"), ("\n\n1 +* 2", "line 3, column 4")]
)
def test_syntax_error_position_after_leading_blanks_on_several_lines(text, where):
    """Positions in the text as given: stripped blank lines count as lines, the first
    line's indentation only on that line (both used to be wrong)."""
    shown = text.replace("\n", "\\n")
    assert refusal(text) == f'expression "{shown}": {INVALID} (invalid syntax at {where})'


# -- the piece of text a refusal names, cut at 40 characters --------------------------


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("'abc'", "'abc'"),
        ("True", "True"),
        ("1j", "1j"),
        ("'" + "a" * 38 + "'", "'" + "a" * 38 + "'"),  # 40 characters: shown whole
        ("'" + "a" * 39 + "'", "'" + "a" * 36 + "..."),  # 41: cut to 37 and "..."
    ],
)
def test_literal_refusal_names_the_literal(text, piece):
    assert (
        refusal(text)
        == f'expression "{text}": only int and float literals are allowed, got {piece}'
    )


def test_math_alone_is_refused():
    assert refusal("math + 1") == (
        'expression "math + 1": math alone is not a number: write math.cos(x) or math.pi'
    )


@pytest.mark.parametrize(
    ("name", "piece"), [("f" * 40, "f" * 40), ("f" * 41, "f" * 37 + "..."), ("eval", "eval")]
)
def test_unknown_call_names_the_function(name, piece):
    text = f"{name}(x)"
    assert refusal(text) == f"expression \"{text}\": {CALLS}, got '{piece}'"


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("min(1, 2, key=3)", "min(1, 2, key=3)"),  # a keyword alone, no starred argument
        ("max(*x)", "max(*x)"),
        ("min(x,key=" + "k" * 29 + ")", "min(x, key=" + "k" * 26 + "..."),  # 41 unparsed
        ("min(x,key=" + "k" * 28 + ")", "min(x, key=" + "k" * 28 + ")"),  # 40: whole
    ],
)
def test_keyword_and_starred_arguments_name_the_call(text, piece):
    assert refusal(text) == (
        f"expression \"{text}\": keyword and starred arguments are not allowed, got '{piece}'"
    )


@pytest.mark.parametrize(
    ("text", "kind", "piece"),
    [
        ("[1, 2]", "List expressions", "[1, 2]"),
        ("{1: 2}", "Dict expressions", "{1: 2}"),
        ("x[0]", "subscripts", "x[0]"),
        ("[" + "a" * 38 + "]", "List expressions", "[" + "a" * 38 + "]"),  # 40: whole
        ("[" + "a" * 39 + "]", "List expressions", "[" + "a" * 36 + "..."),  # 41: cut
    ],
)
def test_refused_syntax_names_its_kind_and_piece(text, kind, piece):
    assert refusal(text) == (
        f"expression \"{text}\": {kind} are not allowed, got '{piece}' (allowed: {ALLOWED})"
    )


@pytest.mark.parametrize(
    ("text", "symbol"), [("x @ x", "@"), ("~x", "~"), ("x is x", "is"), ("x not in x", "not in")]
)
def test_refused_operator_names_its_symbol(text, symbol):
    assert refusal(text) == (
        f"expression \"{text}\": operator '{symbol}' is not allowed (allowed: {ALLOWED})"
    )


# -- the integer size guard for ** and * ------------------------------------------------

TOO_LARGE = "integer result too large (over 100000 bits)"


def test_integer_power_over_the_bit_limit_is_refused_before_it_is_computed():
    # 2 ** 1000 has 1001 bits; to the 200th power: 200 * 1001 = 200200 bits > 100000.
    text = "(2 ** 1000) ** 200"
    assert failure(text, 0) == f'expression "{text}" at epoch=0: {TOO_LARGE}'


def test_integer_power_at_the_bit_limit_is_computed():
    # 2 ** 999 has 1000 bits: to the 100th, 100 * 1000 = 100000 bits, not over the limit.
    text = "(2 ** 999) ** 100 // (2 ** 999) ** 99"
    assert Expression(text)(0) == 2.0**999


def test_integer_product_over_the_bit_limit_is_refused():
    # (2 ** 5000) ** 10 = 2 ** 50000 has 50001 bits; the product's bound is 100002.
    text = "(2 ** 5000) ** 10 * (2 ** 5000) ** 10"
    assert failure(text, 0) == f'expression "{text}" at epoch=0: {TOO_LARGE}'


def test_integer_product_at_the_bit_limit_is_computed():
    # x = 2 ** 49999 has 50000 bits: x * x has a bound of 100000, not over the limit.
    assert Expression("x * x // x // x")(2**49999) == 1.0


def test_the_bit_guard_leaves_sums_alone():
    # 2 ** 50000 has 50001 bits each: the guard is for * and ** only, + adds one bit.
    text = "(2 ** 5000) ** 10 + (2 ** 5000) ** 10 - (2 ** 5000) ** 10 * 2"
    assert Expression(text)(0) == 0.0
