"""Any column name works in a formula: backquoted names, and names that formula helpers share."""

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.design import DataError, make_design
from hierbayes.newdata import evaluate_new_data
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


# --- group levels in new data -------------------------------------------------------------


@pytest.fixture(scope="module")
def numeric_ids():
    rng = np.random.default_rng(11)
    return pd.DataFrame({"y": rng.normal(size=30), "x": rng.normal(size=30), "school": np.repeat([1, 2, 10], 10)})


def new_levels(design, values):
    new = evaluate_new_data(design, pd.DataFrame({"x": [0.5] * len(values), "school": values}))
    return list(new.levels["school"])


def test_integer_group_ids_match_as_text_or_float(numeric_ids):
    d = make_design("y ~ x + (1 | school)", numeric_ids)
    assert d.factors["school"].levels == ("1", "2", "10")
    assert new_levels(d, [1, "1", 1.0, "1.0", np.int64(10), "10"]) == ["1", "1", "1", "1", "10", "10"]
    assert new_levels(d, ["3", 2.5]) == ["3", "2.5"]  # new levels stay new


def test_string_group_ids_match_numbers(numeric_ids):
    d = make_design("y ~ x + (1 | school)", numeric_ids.assign(school=numeric_ids["school"].astype(str)))
    assert new_levels(d, [1, 1.0, "1", 10.0]) == ["1", "1", "1", "10"]


def test_float_group_ids_from_csv_are_named_like_integers(numeric_ids):
    data = numeric_ids.assign(school=numeric_ids["school"].astype(float))
    data.loc[0, "school"] = np.nan  # a gap in a CSV column makes the ids floats
    with pytest.warns(UserWarning, match="dropped 1 of 30 rows"):
        d = make_design("y ~ x + (1 | school)", data)
    assert d.factors["school"].levels == ("1", "2", "10")
    assert new_levels(d, [1, "1", 2.0, "10"]) == ["1", "1", "2", "10"]


def test_a_numeric_predictor_given_as_text_is_still_refused(numeric_ids):
    d = make_design("y ~ x + (1 | school)", numeric_ids)
    with pytest.raises(DataError, match="newdata column 'x' must be numeric"):
        evaluate_new_data(d, pd.DataFrame({"x": ["0.5"], "school": [1]}))


def test_categorical_predictor_levels_match_numbers_written_as_text():
    data = pd.DataFrame({"y": np.arange(8.0), "grade": np.tile(["1", "2"], 4), "g": np.repeat(list("abcd"), 2)})
    d = make_design("y ~ grade + (1 | g)", data)
    new = evaluate_new_data(d, pd.DataFrame({"grade": [2, 1.0], "g": ["a", "a"]}))
    np.testing.assert_array_equal(new.X, [[1.0, 1.0], [1.0, 0.0]])


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")  # 50 draws: imprecise, and fine here
def test_predict_treats_a_group_id_the_same_whatever_its_type(numeric_ids):
    fit = hb.fit("y ~ x + (1 | school)", numeric_ids, draws=50, tune=50, chains=1, progressbar=False, random_seed=1)
    new = pd.DataFrame({"x": [0.5] * 4, "school": [2, "2", 2.0, "1"]})
    mean = fit.predict(new, allow_new_levels=False)["mean"].to_numpy()
    assert mean[0] == mean[1] == mean[2] != mean[3]
