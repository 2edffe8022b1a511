"""Any column name works in a formula: backquoted names, and names that formula helpers share."""

import numpy as np
import pandas as pd
import pytest

from hierbayes.design import DataError, make_design
from hierbayes.formula import FormulaError


@pytest.fixture(scope="module")
def pupils():
    rng = np.random.default_rng(7)
    n = 40
    return pd.DataFrame({
        "exam score": rng.normal(size=n),
        "reading.test": rng.normal(size=n),
        "élève": rng.normal(size=n),
        "school id": np.repeat(["s1", "s2", "s3", "s4"], 10),
        "sex": np.tile(["F", "M"], 20),
    })  # fmt: skip


def test_backquoted_names_in_response_fixed_part_bar_and_grouping_factor(pupils):
    d = make_design("`exam score` ~ `reading.test` + `élève` + (1 + `reading.test` | `school id`)", pupils)
    assert d.response == "exam score"
    assert d.fixed_terms == ("(Intercept)", "reading.test", "élève")
    np.testing.assert_allclose(d.y, pupils["exam score"])
    np.testing.assert_allclose(d.X[:, 1], pupils["reading.test"])
    (block,) = d.blocks
    assert (block.name, block.group, block.terms) == ("school id", "school id", ("(Intercept)", "reading.test"))
    np.testing.assert_allclose(block.Z[:, 1], pupils["reading.test"])
    f = d.factors["school id"]
    assert f.levels == ("s1", "s2", "s3", "s4")
    assert [f.levels[c] for c in f.codes] == list(pupils["school id"])


def test_dotted_and_unicode_names_need_no_backquotes(pupils):
    d = make_design("`exam score` ~ reading.test + élève + (1 | `school id`)", pupils)
    assert d.fixed_terms == ("(Intercept)", "reading.test", "élève")
    np.testing.assert_allclose(d.X[:, 2], pupils["élève"])


def test_backquoted_names_inside_calls_interactions_and_factors(pupils):
    d = make_design("`exam score` ~ I(`reading.test`^2) + scale(`élève`) + `reading.test`:sex + `school id`", pupils)
    names = d.fixed_terms
    assert set(names[1:]) == {"I(reading.test^2)", "scale(élève)", "reading.test:sexF", "reading.test:sexM",
                              "school ids2", "school ids3", "school ids4"}  # fmt: skip
    np.testing.assert_allclose(d.X[:, names.index("I(reading.test^2)")], pupils["reading.test"] ** 2)
    x = pupils["élève"]
    np.testing.assert_allclose(d.X[:, names.index("scale(élève)")], (x - x.mean()) / x.std(ddof=1))
    np.testing.assert_array_equal(d.X[:, names.index("school ids3")], pupils["school id"] == "s3")


def test_a_name_with_a_space_but_no_backquotes_is_explained(pupils):
    with pytest.raises(DataError, match="unknown column 'exam' in the response .*backquotes: `exam score`"):
        make_design("exam score ~ élève", pupils)
    with pytest.raises(FormulaError, match="backquotes: `school id`"):
        make_design("`exam score` ~ élève + (1 | school id)", pupils)


@pytest.mark.parametrize("name", ["prop", "p", "scale", "T", "offset", "C", "center"])
def test_a_column_named_like_a_formula_helper_is_the_column(pupils, name):
    data = pupils.assign(**{name: np.linspace(0.1, 0.9, len(pupils)) ** 2})
    as_response = make_design(f"{name} ~ élève + (1 | `school id`)", data)
    assert as_response.response == name
    np.testing.assert_allclose(as_response.y, data[name])
    as_predictor = make_design(f"`exam score` ~ {name} + (1 | `school id`)", data)
    assert as_predictor.fixed_terms == ("(Intercept)", name)
    np.testing.assert_allclose(as_predictor.X[:, 1], data[name])


def test_calls_still_work_next_to_a_column_of_the_same_name(pupils):
    rng = np.random.default_rng(3)
    data = pupils.assign(scale=rng.normal(size=len(pupils)), I=rng.normal(size=len(pupils)),
                         log=rng.normal(size=len(pupils)))  # fmt: skip
    d = make_design("`exam score` ~ scale(élève) + I(élève^2) + log(élève + 5) + scale + I + log", data)
    x, names = data["élève"], d.fixed_terms
    np.testing.assert_allclose(d.X[:, names.index("scale(élève)")], (x - x.mean()) / x.std(ddof=1))
    np.testing.assert_allclose(d.X[:, names.index("I(élève^2)")], x**2)
    np.testing.assert_allclose(d.X[:, names.index("log(élève + 5)")], np.log(x + 5))
    for col in ("scale", "I", "log"):
        np.testing.assert_allclose(d.X[:, names.index(col)], data[col])
    z = make_design("`exam score` ~ scale(scale)", data).X[:, 1]  # a call of a column with its name
    np.testing.assert_allclose(z, (data["scale"] - data["scale"].mean()) / data["scale"].std(ddof=1))


def test_unknown_column_suggests_the_closest_name(pupils):
    with pytest.raises(DataError, match="unknown column 'eleve' .*did you mean 'élève'"):
        make_design("`exam score` ~ eleve", pupils)

