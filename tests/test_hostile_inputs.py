"""Hostile inputs: each gets an error that names the column, term or value, or a documented,
warned behaviour; and no row is left out without saying so (``rows_used``, ``dropped``)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.design import DataError, make_design


def grouped(n_groups=6, per_group=4, seed=0, index=None):
    """y = 1 + 0.5 x + group effect + noise, with a second predictor z; string group labels."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    codes = np.repeat(np.arange(n_groups), per_group)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, n_groups)[codes] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{j}" for j in codes]}, index=index)


def no_warnings(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return make_design(formula, data)


# --- empty and missing -----------------------------------------------------------------------


def test_empty_data_is_refused():
    with pytest.raises(DataError, match="data has no rows"):
        make_design("y ~ x + (1 | g)", grouped().iloc[:0])


def test_an_all_missing_column_is_named():
    with pytest.raises(DataError, match=r"column 'x' of the model has no values: all 24 rows are missing"):
        make_design("y ~ x + z + (1 | g)", grouped().assign(x=np.nan))
    with pytest.raises(DataError, match=r"columns 'y', 'z' of the model have no values"):
        make_design("y ~ x + z + (1 | g)", grouped().assign(y=np.nan, z=np.nan))


def test_missing_values_in_every_row_but_no_empty_column_are_counted_by_column():
    data = grouped()
    data.loc[::2, "x"] = np.nan
    data.loc[1::2, "z"] = np.nan
    with pytest.raises(DataError, match=r"every row has a missing value .*\(missing: x: 12, z: 12\)"):
        make_design("y ~ x + z + (1 | g)", data)


def test_missing_group_labels_drop_rows_with_a_warning_counted_by_column():
    data = grouped(index=[f"r{i}" for i in range(24)])
    data.loc[["r0", "r5"], "g"] = None
    data.loc["r9", "x"] = np.nan
    data.loc["r5", "x"] = np.nan  # missing twice: one row, counted in both columns
    data.loc["r7", "z"] = np.nan  # not used by the model: the row stays
    with pytest.warns(UserWarning, match=r"dropped 3 of 24 rows with missing values .*\(x: 2, g: 2\)"):
        d = make_design("y ~ x + (1 | g)", data)
    assert d.n_dropped == 3 and d.dropped == {"x": 2, "g": 2}
    assert list(d.rows_used) == [f"r{i}" for i in range(24) if i not in (0, 5, 9)]
    assert d.dropped_text() == "3 of 24 rows dropped for missing values: 2 in x, 2 in g"
    assert no_warnings("y ~ x + (1 | g)", grouped()).dropped_text() == "none dropped"


# --- infinite, constant and collinear ------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, column, message",
    [
        ("y ~ x + (1 | g)", "y", r"the response 'y' has 2 infinite or NaN values, in rows 3, 7"),
        ("y ~ x + (1 | g)", "x", r"the fixed part 'x' gives infinite or NaN values: 2 in column 'x' \(rows 3, 7\)"),
        ("y ~ 1 + (x | g)", "x", r"random-effect term '\(x \| g\)' gives infinite or NaN values: 2 in column 'x'"),
        ("y ~ z + log(x + 10) + (1 | g)", "x", r"2 in column 'log\(x \+ 10\)' \(rows 3, 7\)"),
    ],
)
def test_infinite_values_are_named_with_their_count_and_rows(formula, column, message):
    data = grouped()
    data.loc[[3, 7], column] = [np.inf, -np.inf]
    with pytest.raises(DataError, match=message):
        make_design(formula, data)


def test_a_constant_predictor_is_named_as_constant():
    with pytest.raises(DataError, match=r"fixed-effect column 'x' is constant \(every value is 3\), so it cannot "
                                        r"be told apart from the intercept"):  # fmt: skip
        make_design("y ~ x + z + (1 | g)", grouped().assign(x=3.0))
    with pytest.raises(DataError, match=r"in random-effect term '\(1 \+ x \| g\)', column 'x' is constant"):
        make_design("y ~ z + (1 + x | g)", grouped().assign(x=3.0))
    d = no_warnings("y ~ 0 + x + (1 | g)", grouped().assign(x=3.0))  # no intercept: x stands in for it
    assert d.fixed_terms == ("x",)


def test_a_constant_response_is_refused():
    with pytest.raises(DataError, match=r"the response 'y' is constant \(every value is 2.5\)"):
        make_design("y ~ x + (1 | g)", grouped().assign(y=2.5))


def test_collinear_columns_inside_a_bar_are_named():
    data = grouped()
    data["w"] = 2 * data["x"] - 1
    with pytest.raises(DataError, match=r"in random-effect term '\(1 \+ x \+ w \| g\)', column 'w' is a linear "
                                        r"combination of '\(Intercept\)', 'x'"):  # fmt: skip
        make_design("y ~ x + (1 + x + w | g)", data)


def test_a_categorical_predictor_with_one_level_is_named():
    with pytest.raises(DataError, match=r"term 's' of the fixed part 'x \+ s' gives no columns: column 's' has the "
                                        r"single level 'M' in the rows used"):  # fmt: skip
        make_design("y ~ x + s + (1 | g)", grouped().assign(s="M"))


# --- grouping factors ------------------------------------------------------------------------


def test_a_numeric_grouping_factor_is_used_as_labels_with_one_warning():
    data = grouped().assign(g=np.repeat([10, 2, 3, 4, 5, 6], 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = make_design("y ~ x + (1 | g) + (0 + x | g)", data)
    assert [str(w.message) for w in caught] == [
        "grouping factor 'g' is numeric (values 2, 3, 4, ...): its values are treated as group labels"
    ]
    assert d.factors["g"].levels == ("2", "3", "4", "5", "6", "10")
    no_warnings("y ~ x + (1 | g)", grouped())  # text labels: nothing to say


def test_an_infinite_group_label_is_refused():
    data = grouped().assign(g=np.repeat([1.0, 2, 3, 4, 5, np.inf], 4))
    with pytest.raises(DataError, match="grouping factor 'g' has 4 infinite values"):
        make_design("y ~ x + (1 | g)", data)


def test_a_group_with_a_single_observation_is_allowed():
    data = grouped()
    data.loc[0, "g"] = "alone"
    d = no_warnings("y ~ x + (1 + x | g)", data)
    counts = np.bincount(d.factors["g"].codes)
    assert d.factors["g"].levels[0] == "alone" and counts[0] == 1


def test_a_random_slope_without_its_fixed_effect_is_allowed():
    d = no_warnings("y ~ 1 + (x | g)", grouped())
    assert d.fixed_terms == ("(Intercept)",) and d.blocks[0].terms == ("(Intercept)", "x")


def test_more_random_effects_than_rows_is_refused_naming_the_term():
    data = grouped(per_group=2)  # 3 effects for each of 6 groups: 18 > 12 rows
    with pytest.raises(DataError, match=r"random-effect term '\(1 \+ x \+ z \| g\)' has 3 effects for each of the 6 "
                                        r"levels of 'g': 18 group-level effects for 12 rows"):  # fmt: skip
        make_design("y ~ x + (1 + x + z | g)", data)


@pytest.mark.parametrize(
    "formula, data",
    [
        # some groups have fewer rows than terms, but the total is fine: 3 x 4 effects < 14 rows
        ("y ~ x + (1 + x + z | g)", grouped(n_groups=4, per_group=4).iloc[2:]),
        # (x || g) is two blocks of 6 effects each, as lme4 counts them: 6 < 12 rows
        ("y ~ x + (x || g)", grouped(per_group=2)),
    ],
)
def test_few_rows_per_group_are_allowed_while_the_effects_are_fewer_than_the_rows(formula, data):
    no_warnings(formula, data)


# --- column types and names ------------------------------------------------------------------


def test_duplicated_column_names_are_named():
    data = pd.concat([grouped(), grouped()[["x"]]], axis=1)
    with pytest.raises(DataError, match="the data has 2 columns named 'x', which the fixed part 'x' uses"):
        make_design("y ~ x + (1 | g)", data)


@pytest.mark.parametrize(
    "values, message",
    [
        (pd.date_range("2024-01-01", periods=24), r"column 'd' holds dates or times \(datetime64"),
        (np.arange(24) + 1j, r"column 'd' holds complex numbers"),
    ],
)
def test_dates_and_complex_numbers_in_a_term_are_named(values, message):
    with pytest.raises(DataError, match=message):
        make_design("y ~ d + (1 | g)", grouped().assign(d=values))


# --- fits ------------------------------------------------------------------------------------

SETTINGS = dict(draws=200, tune=200, chains=2, progressbar=False, random_seed=1)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")  # 400 draws: low ESS is expected
def test_the_fit_records_the_rows_it_used_and_says_why_others_were_dropped(tmp_path):
    data = grouped(n_groups=8, per_group=6, index=[f"r{i}" for i in range(48)])
    data.loc["r3", "x"] = np.nan
    data.loc[["r10", "r11"], "g"] = None
    with pytest.warns(UserWarning, match=r"dropped 3 of 48 rows .*\(x: 1, g: 2\)"):
        fit = hb.fit("y ~ x + (1 | g)", data, **SETTINGS)
    assert list(fit.rows_used) == [f"r{i}" for i in range(48) if i not in (3, 10, 11)]
    np.testing.assert_allclose(fit.design.y, data.loc[fit.rows_used, "y"])
    said = "3 of 48 rows dropped for missing values: 1 in x, 2 in g"
    assert f"Data: 45 observations; {said}" in fit.summary()
    fit.report(tmp_path, frequentist=None, figures=False)
    assert f"Data: 45 rows used ({said}); response y" in (tmp_path / "report.md").read_text()


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")
def test_a_slope_without_a_fixed_effect_and_a_single_row_group_fit():
    data = grouped(n_groups=8, per_group=6)
    data.loc[0, "g"] = "alone"
    fit = hb.fit("y ~ 1 + (x | g)", data, **SETTINGS)
    assert fit.diagnostics.divergences == 0
    assert list(fit.fixef().index) == ["(Intercept)"]
    coef = fit.coef()
    assert set(coef["term"]) == {"(Intercept)", "x"} and "alone" in set(coef["level"])
    coef, ranef = coef.set_index(["level", "term"]), fit.ranef().set_index(["level", "term"])
    # a slope with no fixed part: the group's coefficient is its deviation alone
    np.testing.assert_allclose(coef.loc[("g1", "x"), "mean"], ranef.loc[("g1", "x"), "mean"])


@pytest.fixture(scope="module")
def unit_scale_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.SamplingWarning)
        return hb.fit("y ~ x + (x | g)", grouped(n_groups=8, per_group=6), **SETTINGS)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")
@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_the_scale_of_the_response_alone_causes_no_divergences(unit_scale_fit, scale):
    data = grouped(n_groups=8, per_group=6)
    data["y"] *= scale
    fit = hb.fit("y ~ x + (x | g)", data, **SETTINGS)  # the default path, priors scaled to the data
    assert fit.diagnostics.divergences == 0 and fit.diagnostics.max_rhat < 1.05
    unit = unit_scale_fit.fixef()
    np.testing.assert_allclose(fit.fixef()["mean"] / scale, unit["mean"], atol=0.5 * unit["sd"].min())
    sigma = fit.posterior["sigma"].mean().item() / scale
    assert sigma == pytest.approx(unit_scale_fit.posterior["sigma"].mean().item(), rel=0.1)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")  # short chains: ESS < 400
@pytest.mark.parametrize("scale, formula, method, sampler", [
    (1e-6, "y ~ x + (1 | g) + (1 | h)", "auto", "auto"),   # crossed: g integrated out, h's effects sampled (packed)
    (1e-6, "y ~ x + (1 | g) + (1 | h)", "auto", "pymc"),   # the same in PyMC
    (1e6, "y ~ x + (1 | g)", "full", "pymc"),              # every group effect sampled in PyMC
])  # fmt: skip
def test_a_response_scale_far_from_one_with_sampled_effects(scale, formula, method, sampler):
    """Fixed effects and centred group effects are sampled with the response's scale divided
    out, in the packed kernels and in the PyMC model (PyMC's +-1 start jitter on the data's
    scale put a 1e-6 response 10^6 prior SDs off, and R-hat was > 2): the chains agree and do
    do not diverge."""
    data = grouped(n_groups=8, per_group=6).assign(h=np.tile(list("abc"), 16))
    data["y"] *= scale
    fit = hb.fit(formula, data, method=method, sampler=sampler, **SETTINGS)
    # h has 3 levels: stray divergences happen at any scale (0-3 of 400 draws over seeds 1-10,
    # the same at scale 1, and a fresh machine's PyMC draws other ones); a response scale the
    # sampler did not divide out gave hundreds, and R-hat > 2: the margin is 5% of the draws
    n_draws = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    assert fit.diagnostics.divergences <= 0.05 * n_draws and fit.diagnostics.max_rhat < 1.05
    assert abs(float(fit.posterior["b"].sel(term="x").mean()) / scale - 0.5) < 0.3


@pytest.mark.parametrize("name", ["b", "sigma", "term"])
def test_a_grouping_factor_named_like_a_posterior_variable_is_named(name):
    data = grouped().rename(columns={"g": name})
    with pytest.raises(hb.DataError, match=f"grouping factor '{name}' has the name of a posterior variable.*rename"):
        hb.build(f"y ~ x + (1 | {name})", data)


@pytest.mark.parametrize("option, sampler, hint", [
    ("seed", "auto", "random_seed"), ("max_tredepth", "pymc", "max_treedepth"), ("max_treedepth", "nutpie", "nuts="),
])
def test_a_misspelt_sampler_option_is_refused_before_sampling_with_the_nearest_name(option, sampler, hint):
    """``seed=1`` (nutpie's own name) once built the whole PyMC model before PyMC refused it."""
    import time

    data = hb.datasets.load("london_exam")
    started = time.time()
    with pytest.raises(TypeError, match=f"{option!r}.*{hint}"):
        hb.fit("normexam ~ standLRT + (1 | school)", data, sampler=sampler, **{option: 1})
    assert time.time() - started < 5  # nothing was compiled or sampled
