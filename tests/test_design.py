"""Design matrices: column names, treatment coding, block membership, R spellings, errors."""

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.design import DataError, make_design
from hierbayes.formula import FormulaError


def test_fixed_columns_follow_lme4_names_and_treatment_coding(london):
    d = make_design("normexam ~ standLRT + sex + schgend + (standLRT | school)", london)
    assert d.fixed_terms == ("(Intercept)", "standLRT", "sexM", "schgendgirls", "schgendmixed")
    np.testing.assert_array_equal(d.X[:, 0], 1.0)
    np.testing.assert_array_equal(d.X[:, 2], (london["sex"] == "M").astype(float))
    np.testing.assert_array_equal(d.X[:, 4], (london["schgend"] == "mixed").astype(float))
    np.testing.assert_allclose(d.y, london["normexam"])


def test_reference_level_can_be_chosen(london):
    d = make_design("normexam ~ schgend", london, reference={"schgend": "mixed"})
    assert d.fixed_terms == ("(Intercept)", "schgendboys", "schgendgirls")
    np.testing.assert_array_equal(d.X[:, 1], (london["schgend"] == "boys").astype(float))


def test_categorical_order_of_a_pandas_categorical_is_kept(london):
    df = london.assign(schgend=pd.Categorical(london["schgend"], ["girls", "mixed", "boys"]))
    assert make_design("normexam ~ schgend", df).fixed_terms == ("(Intercept)", "schgendmixed", "schgendboys")


def test_interactions_and_numpy_functions(london):
    d = make_design("normexam ~ standLRT * sex + np.maximum(standLRT - 1, 0) + standLRT:schgend", london)
    assert d.fixed_terms[:4] == ("(Intercept)", "standLRT", "sexM", "standLRT:sexM")
    k = d.fixed_terms.index("np.maximum(standLRT - 1, 0)")
    np.testing.assert_allclose(d.X[:, k], np.maximum(london["standLRT"] - 1, 0))
    k = d.fixed_terms.index("standLRT:sexM")
    np.testing.assert_allclose(d.X[:, k], london["standLRT"] * (london["sex"] == "M"))


def test_r_spellings_work_unchanged(london):
    d = make_design(
        "normexam ~ I(standLRT^2) + factor(vr) + log(schavg + 2) + exp(standLRT) + sqrt(schavg + 1) + scale(standLRT)",
        london,
    )
    names = d.fixed_terms
    assert "I(standLRT^2)" in names and "factor(vr)mid 50%" in names and "factor(vr)top 25%" in names
    np.testing.assert_allclose(d.X[:, names.index("I(standLRT^2)")], london["standLRT"] ** 2)
    np.testing.assert_allclose(d.X[:, names.index("log(schavg + 2)")], np.log(london["schavg"] + 2))
    np.testing.assert_allclose(d.X[:, names.index("exp(standLRT)")], np.exp(london["standLRT"]))
    z = d.X[:, names.index("scale(standLRT)")]
    assert abs(z.mean()) < 1e-12 and z.std(ddof=1) == pytest.approx(1.0)  # R's scale: n - 1


def test_random_slope_block_has_both_columns(london):
    d = make_design("normexam ~ standLRT + (standLRT | school)", london)
    (block,) = d.blocks
    assert (block.name, block.group, block.terms, block.correlated) == (
        "school", "school", ("(Intercept)", "standLRT"), True,
    )
    np.testing.assert_allclose(block.Z[:, 1], london["standLRT"])
    f = d.factors["school"]
    assert f.n_levels == 65 and f.levels[:3] == ("1", "2", "3") and f.levels[-1] == "65"
    assert f.levels[f.codes[0]] == london["school"].iloc[0]


def test_categorical_term_inside_a_bar(london):
    (block,) = make_design("normexam ~ sex + (1 + sex | school)", london).blocks
    assert block.terms == ("(Intercept)", "sexM")
    (block,) = make_design("normexam ~ sex + (0 + sex | school)", london).blocks
    assert block.terms == ("sexF", "sexM")


def test_double_bar_splits_into_independent_blocks_named_like_lme4(sleepstudy):
    d = make_design("Reaction ~ Days + (Days || Subject)", sleepstudy)
    assert [(b.name, b.terms, b.correlated) for b in d.blocks] == [
        ("Subject", ("(Intercept)",), False),
        ("Subject.1", ("Days",), False),
    ]


def test_nested_factor_levels_are_the_combinations_present():
    df = pd.DataFrame({"y": np.arange(12.0), "a": list("aaaaaabbbbbb"), "b": list("xxyyzzxxyyzz")})
    d = make_design("y ~ 1 + (1 | a/b)", df)
    assert [b.group for b in d.blocks] == ["a", "a:b"]
    inner = d.factors["a:b"]
    assert inner.levels == ("a:x", "a:y", "a:z", "b:x", "b:y", "b:z")
    assert [inner.levels[c] for c in inner.codes[:3]] == ["a:x", "a:x", "a:y"]


def test_crossed_factors():
    d = make_design("diameter ~ 1 + (1|plate) + (1|sample)", hb.datasets.load("penicillin"))
    assert [(b.name, d.factors[b.group].n_levels) for b in d.blocks] == [("plate", 24), ("sample", 6)]


def test_missing_values_are_dropped_with_a_counted_warning(london):
    df = london.copy()
    df.loc[[3, 4], "standLRT"] = np.nan
    df.loc[7, "sex"] = None
    df.loc[9, "vr"] = None  # not used by the model: must not drop the row
    with pytest.warns(UserWarning, match=r"dropped 3 of 4059 rows .*standLRT: 2, sex: 1"):
        d = make_design("normexam ~ standLRT + sex + (1 | school)", df)
    assert d.n_obs == 4056 and d.n_dropped == 3


@pytest.mark.parametrize(
    "formula, message",
    [
        ("normexam ~ foo + (1 | school)", "unknown column 'foo' in the fixed part"),
        ("normexam ~ standLRT + (bar | school)", r"unknown column 'bar' in random-effect term '\(bar \| school\)'"),
        ("normexam ~ standLRT + (1 | nope)", "grouping factor 'nope'"),
        ("sex ~ standLRT", "response 'sex' must be numeric"),
        ("normexam ~ standLRT + I(2 * standLRT)", r"'I\(2 \* standLRT\)' is a linear combination"),
    ],
)
def test_bad_input_is_named(london, formula, message):
    with pytest.raises(DataError, match=message):
        make_design(formula, london)


def test_grouping_factor_with_one_level(london):
    with pytest.raises(DataError, match="'school' .* has only one level"):
        make_design("normexam ~ standLRT + (1 | school)", london[london.school == "1"])


def test_grouping_factor_with_a_level_per_row():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("abcd")})
    with pytest.raises(DataError, match="every row is its own group"):
        make_design("y ~ 1 + (1 | g)", df)


def test_unknown_reference_level(london):
    with pytest.raises(DataError, match="reference level 'coed' is not a level of column 'schgend'"):
        make_design("normexam ~ schgend", london, reference={"schgend": "coed"})


def test_reference_for_a_column_the_formula_does_not_use_is_ignored(london):
    # one reference dict serves a sequence of models
    d = make_design("normexam ~ standLRT + sex", london, reference={"sex": "M", "schgend": "mixed"})
    assert d.fixed_terms == ("(Intercept)", "standLRT", "sexF")


def test_reference_for_a_column_not_in_the_data_suggests_a_name(london):
    with pytest.raises(DataError, match="'schgnd', which is not a column of the data; did you mean 'schgend'"):
        make_design("normexam ~ sex", london, reference={"sex": "M", "schgnd": "mixed"})
    with pytest.raises(DataError, match="'zzz', which is not a column of the data$"):
        make_design("normexam ~ sex", london, reference={"zzz": "mixed"})


def test_unevaluable_term_is_a_formula_error(london):
    with pytest.raises(FormulaError, match="fixed part"):
        make_design("normexam ~ np.nosuchfunction(standLRT)", london)


def test_center_gives_within_and_between_parts(london):
    out = hb.center(london, "standLRT", by="school")
    means = london.groupby("school")["standLRT"].transform("mean")
    np.testing.assert_allclose(out["standLRT_groupc"], london["standLRT"] - means)
    np.testing.assert_allclose(out["standLRT_groupmean"], means)
    assert out.groupby("school")["standLRT_groupc"].mean().abs().max() < 1e-12
    assert "standLRT_groupc" not in london.columns  # the input is not modified
    with pytest.raises(DataError, match="unknown column 'pupil'"):
        hb.center(london, "standLRT", by="pupil")


def test_new_data_is_evaluated_with_the_fitted_transformations():
    from hierbayes.newdata import evaluate_new_data

    # 9 rows for 3 groups x 2 effects: with 6, (x | g) would have as many effects as rows
    data = pd.DataFrame({"y": [1.0, 2.0, 3.5, 3.0, 5.0, 4.0, 2.5, 4.5, 3.5],
                         "x": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 2.5, 6.0, 4.0],
                         "sex": list("FMFMFMFMF"), "g": list("aabbccabc")})  # fmt: skip
    design = hb.make_design("y ~ scale(x) + sex + (x | g)", data)
    new = evaluate_new_data(design, pd.DataFrame({"x": [3.5], "sex": ["M"], "g": ["zz"]}))
    x = data["x"]
    np.testing.assert_allclose(new.X[0], [1.0, (3.5 - x.mean()) / x.std(ddof=1), 1.0])
    np.testing.assert_allclose(new.Z["g"][0], [1.0, 3.5])
    assert list(new.levels["g"]) == ["zz"]  # a new group level is passed on, not refused
    with pytest.raises(hb.DataError, match=r"newdata column 'sex' has level\(s\) 'X'"):
        evaluate_new_data(design, pd.DataFrame({"x": [3.5], "sex": ["X"], "g": ["a"]}))
    with pytest.raises(hb.DataError, match="newdata column 'x' has 1 missing values"):
        evaluate_new_data(design, pd.DataFrame({"x": [np.nan], "sex": ["F"], "g": ["a"]}))
