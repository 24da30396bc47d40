"""The text lambdas' evaluator at its limits: the integer size guards at their exact
boundaries (an exponent of 10,000 and a result of 100,000 bits pass, one more does
not), the guard of a product against the guard of a power, the reason an overflow
reports, a conditional's branches, and a complex result's refusal word for word.
Corners a mutation run found unchecked (docs/mutation.md); expected values are
Python's own integer arithmetic, written out.
"""

from __future__ import annotations

import pytest

from dualtrain.schedules.expr import Expression, ExpressionError


def refusal(text, at=0):
    with pytest.raises(ExpressionError) as caught:
        Expression(text)(at)
    return str(caught.value)


def test_integer_guards_take_their_exact_limits():
    """512 ** 10000 has an exponent of exactly 10,000 and an estimate of exactly
    10 * 10,000 = 100,000 bits: allowed, and Python's int / int is correctly
    rounded, so the quotient of two such giants is exactly 512."""
    assert Expression("512 ** 10000 / 512 ** 9999")(0) == 512.0
    assert Expression("1 ** 10000")(0) == 1.0
    assert refusal("1 ** 10001") == (
        'expression "1 ** 10001" at epoch=0: integer exponent 10001 is too large '
        "(at most 10000; write a float base such as 1.0 for a float power)"
    )


def test_a_power_is_sized_by_its_exponent_and_a_product_by_its_factors():
    """99999 ** 9999 would hold 9999 * 17 bits (too many); 3 * 100000 holds 2 + 17
    (a product adds its factors' bits, it is not sized like a power)."""
    assert refusal("99999 ** 9999") == (
        'expression "99999 ** 9999" at epoch=0: integer result too large (over 100000 bits)'
    )
    assert Expression("3 * 100000")(0) == 300000.0
    # eleven factors of 10,001 bits each pass 100,000 bits at the tenth product
    text = " * ".join(["2 ** 10000"] * 11)
    assert refusal(text).endswith("integer result too large (over 100000 bits)")


def test_a_float_overflow_reports_pythons_reason_without_its_errno():
    """float ** raises OverflowError(34, 'Numerical result out of range')."""
    assert refusal("10.0 ** x", at=400) == (
        'expression "10.0 ** x" at x=400: Numerical result out of range'
    )


def test_a_complex_result_is_refused_in_one_line():
    assert refusal("(-8) ** (1 / 3)") == (
        'expression "(-8) ** (1 / 3)" at epoch=0: '
        "complex result (negative number to a fractional power?)"
    )


def test_a_conditional_evaluates_its_branch_with_the_variables():
    assert [Expression("1 if x > 2 else x * 0.5")(x) for x in (1, 3)] == [0.5, 1.0]
