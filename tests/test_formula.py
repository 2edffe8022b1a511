"""The lme4 formula parser: every syntax form of the issue, and its errors."""

import pytest

from hierbayes.formula import FormulaError, parse_formula


def blocks(formula):
    return [(b.terms, b.group, b.correlated) for b in parse_formula(formula).blocks]


def test_random_intercept():
    spec = parse_formula("normexam ~ standLRT + (1 | school)")
    assert spec.response == "normexam"
    assert spec.fixed == "standLRT"
    assert blocks("normexam ~ standLRT + (1 | school)") == [("1", "school", True)]


def test_slope_implies_intercept_and_is_one_block():
    # (x | g) is one correlated block; the intercept is implied and added by the design stage
    assert blocks("y ~ x + (x | g)") == [("x", "g", True)]
    assert blocks("y ~ x + (1 + x | g)") == [("1 + x", "g", True)]


def test_no_intercept_and_double_bar():
    assert blocks("y ~ x + (0 + x | g)") == [("0 + x", "g", True)]
    assert blocks("y ~ x + (x || g)") == [("x", "g", False)]


def test_nested_expands_like_lme4():
    assert blocks("y ~ 1 + (1 | a/b)") == [("1", "a", True), ("1", "a:b", True)]
    assert blocks("y ~ 1 + (1 | a/b/c)") == [("1", "a", True), ("1", "a:b", True), ("1", "a:b:c", True)]
    assert blocks("y ~ (1 | a:b)") == [("1", "a:b", True)]


def test_crossed_and_several_bars_on_one_factor():
    assert blocks("y ~ 1 + (1|a) + (1|b)") == [("1", "a", True), ("1", "b", True)]
    assert blocks("y ~ x + (1|g) + (0 + x|g)") == [("1", "g", True), ("0 + x", "g", True)]


def test_no_bar_is_plain_regression():
    spec = parse_formula("y ~ x * z")
    assert spec.blocks == () and spec.fixed == "x * z"


def test_intercept_removal_and_empty_fixed_part():
    assert parse_formula("y ~ -1 + x + (1|g)").fixed == "-1 + x"
    assert parse_formula("y ~ x - 1").fixed == "x - 1"
    assert parse_formula("y ~ (1|g)").fixed == "1"


def test_r_power_becomes_python_inside_calls_only():
    spec = parse_formula("y ~ I(age^2) + np.maximum(age - 1, 0) + (I(age^2) | g)")
    assert spec.fixed == "I(age**2) + np.maximum(age - 1, 0)"
    assert spec.blocks[0].terms == "I(age**2)"


def test_bars_inside_function_calls_are_not_random_terms():
    # a parenthesised fixed term without a bar stays fixed
    spec = parse_formula("y ~ (x + z) + (1|g)")
    assert spec.fixed == "(x + z)" and len(spec.blocks) == 1


def test_backquoted_names_are_kept_whole():
    # operators, bars and parentheses inside backquotes belong to the name
    spec = parse_formula("`exam score` ~ `a-b` + I(`x^y`^2) + scale(`scale(z)`) + (1 + `c|d` | `school id`/`class:no`)")
    assert spec.response == "`exam score`"
    assert spec.fixed == "`a-b` + I(`x^y`**2) + rscale(`scale(z)`)"
    assert [(b.terms, b.group, b.group_columns) for b in spec.blocks] == [
        ("1 + `c|d`", "school id", ("school id",)),
        ("1 + `c|d`", "school id:class:no", ("school id", "class:no")),
    ]


def test_unquoted_unicode_and_dotted_names():
    spec = parse_formula("élève ~ reading.test + (reading.test | école)")
    assert (spec.response, spec.fixed) == ("élève", "reading.test")
    assert blocks("élève ~ reading.test + (reading.test | école)") == [("reading.test", "école", True)]


@pytest.mark.parametrize(
    "formula, suggestion",
    [
        ("normexam ~ standLRT + (standLRT school)", "(standLRT | school)"),
        ("y ~ (1 g)", "(1 | g)"),
        ("y ~ x + (1 x `school id`)", "(1 + x | `school id`)"),
    ],
)
def test_missing_bar_suggests_the_bar_term(formula, suggestion):
    term = formula[formula.index("(", formula.index("~")):]
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    message = str(info.value)
    assert repr(term) in message and message.endswith(f"did you mean {suggestion}?")


def test_parenthesised_fixed_terms_with_operators_are_not_missing_bars():
    assert parse_formula("y ~ (x + z) + (x * z)").fixed == "(x + z) + (x * z)"


@pytest.mark.parametrize(
    "formula, message",
    [
        ("", "non-empty"),
        ("y ~ ", "nothing on the right"),
        ("~ x", "no response"),
        ("y ~ x ~ z", "exactly one '~'"),
        ("y ~ x +", "dangling"),
        ("y ~ x + + z", "empty term"),
        ("y ~ (x | g", "unclosed"),
        ("y ~ x)", "without a matching"),
        ("y ~ (x | )", "no grouping factor"),
        ("y ~ ( | g)", "no terms left of the bar"),
        ("y ~ (x | g + h)", "grouping factor 'g + h'"),
        ("y ~ x - (1 | g)", "cannot be subtracted"),
        ("y ~ x + (1 | school id)", "backquotes: `school id`"),
        ("`exam score ~ x", "unclosed backquote"),
    ],
)
def test_unparsable_formulas_name_the_problem(formula, message):
    with pytest.raises(FormulaError, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse_formula(formula)
