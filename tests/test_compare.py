"""hb.compare / hb.anova: PSIS-LOO on consistent units (arviz-stats), ML refits beside it."""

import arviz_stats as azs
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import hierbayes as hb

pytestmark = pytest.mark.sampling


@pytest.fixture(scope="module")
def ols(london):
    return hb.fit("normexam ~ standLRT", london, random_seed=3, progressbar=False, draws=500)


@pytest.fixture(scope="module")
def london_fits(fits, ols):
    return {"ols": ols, "ri": fits("london_ri_ml")[0], "rs": fits("london_rs_ml")[0]}


@pytest.fixture(scope="module")
def by_row(london_fits):
    return hb.compare(**london_fits)


def test_london_ranks_random_slope_over_intercept_over_regression(by_row, london_fits):
    assert list(by_row.table.index) == ["rs", "ri", "ols"]  # as the ML AICs: 9328.8, 9365.2, about 9767
    assert by_row.table["elpd_diff"].iloc[1] < -2 * by_row.table["diff_se"].iloc[1]
    by_group = hb.compare(ri=london_fits["ri"], rs=london_fits["rs"], by="group")
    assert list(by_group.table.index) == ["rs", "ri"] and by_group.by == "school"
    # a regression scored per school: its rows' terms summed
    named = hb.compare(**london_fits, by="school", frequentist=False)
    assert list(named.table.index) == ["rs", "ri", "ols"]
    assert named.loo["ols"].n_data_points == 65


def test_ml_columns_match_lme4(by_row, lme4_reference):
    table = by_row.anova
    assert list(table.index) == ["ols", "ri", "rs"]  # R's anova() orders by npar
    assert list(table["npar"]) == [3, 4, 6]
    for name, ref in (("ri", "london_ri_ml"), ("rs", "london_rs_ml")):
        assert table.loc[name, "logLik"] == pytest.approx(lme4_reference[ref]["logLik"], abs=0.1)
        assert table.loc[name, "AIC"] == pytest.approx(lme4_reference[ref]["AIC"], abs=0.1)
        assert table.loc[name, "BIC"] == pytest.approx(lme4_reference[ref]["BIC"], abs=0.1)
    lrt = 2 * (lme4_reference["london_rs_ml"]["logLik"] - lme4_reference["london_ri_ml"]["logLik"])
    assert table.loc["rs", "Chisq"] == pytest.approx(lrt, abs=0.2)
    assert table.loc["rs", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(lrt, 2), rel=0.05)
    assert "maximum likelihood" in str(by_row) and "anova()" in str(by_row)


def test_loo_agrees_with_arviz_stats_on_the_same_draws(by_row, london_fits, london):
    fit = london_fits["ri"]
    post = fit.posterior
    school = fit.design.factors["school"]
    mu = (post["b"].sel(term="(Intercept)") + post["b"].sel(term="standLRT") * xr.DataArray(london["standLRT"].values, dims="obs")
          + post["r_school"].sel(school__effect="(Intercept)").values[..., school.codes])  # fmt: skip
    ll = stats.norm.logpdf(london["normexam"].values, mu, post["sigma"].values[..., None])
    tree = xr.DataTree.from_dict({"posterior": post, "log_likelihood": xr.Dataset({"normexam": mu.copy(data=ll)})})
    assert by_row.table.loc["ri", "elpd_loo"] == pytest.approx(azs.loo(tree).elpd, rel=1e-9)
    # by group: the stored per-school terms, as arviz-stats reads them from the fit itself
    assert fit.loo(by="group").elpd == pytest.approx(azs.loo(fit.idata).elpd, rel=1e-12)
    assert by_row.loo["ri"].n_data_points == 4059 and fit.loo(by="group").n_data_points == 65


def test_waic_is_close_to_loo(london_fits, by_row):
    w = london_fits["rs"].waic()
    assert w["elpd_waic"] == pytest.approx(by_row.loo["rs"].elpd, abs=2.0)
    assert w["p_waic"] > 0 and w["se"] > 0


@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")  # short runs: only their units matter
def test_refuses_fits_of_different_rows_response_or_data(london, london_fits):
    ri = london_fits["ri"]
    kw = dict(random_seed=1, progressbar=False, draws=200, tune=200)
    other_response = hb.fit("standLRT ~ 1 + (1 | school)", london, **kw)
    with pytest.raises(hb.ComparisonError, match="'ri' models 'normexam' and 'a' models 'standLRT': compare models of the same response"):
        hb.compare(a=other_response, ri=ri)
    fewer = hb.fit("normexam ~ standLRT + (1 | school)", london.iloc[:-10], **kw)
    with pytest.raises(hb.ComparisonError, match="4059 rows and .fewer. 4049.*same rows"):
        hb.compare(fewer=fewer, ri=ri)
    shifted = hb.fit("normexam ~ standLRT + (1 | school)", london.assign(normexam=london.normexam + 1), **kw)
    with pytest.raises(hb.ComparisonError, match="different data"):
        hb.compare(shifted=shifted, ri=ri)
    with pytest.raises(hb.ComparisonError, match="by='group'.*'ols': none"):
        hb.compare(**london_fits, by="group")
    with pytest.raises(hb.ComparisonError, match="two or more"):
        hb.compare(ri)
    with pytest.raises(hb.ComparisonError, match="two fits would be named 'normexam ~ standLRT \\+ \\(1\\|school\\)'"):
        hb.compare(ri, ri, london_fits["rs"])
    with pytest.raises(hb.ComparisonError, match="no model has a grouping factor 'class'"):
        hb.compare(**london_fits, by="class")


def test_report_includes_a_comparison(by_row, london_fits, tmp_path):
    path = london_fits["rs"].report(tmp_path, figures=False, frequentist=None, comparison=by_row)
    html = path.read_text()
    assert "Model comparison" in html and "anova()" in html
    table = pd.read_csv(tmp_path / "comparison.csv", index_col="model")
    assert list(table.index) == ["rs", "ri", "ols"]
    assert list(pd.read_csv(tmp_path / "anova.csv")["model"]) == ["ols", "ri", "rs"]


def test_comparison_figure(by_row):
    fig = by_row.plot()
    assert "difference from the best model (one term per row)" in fig.axes[0].get_xlabel()
    fig.canvas.draw()
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == {"rs", "ri", "ols"}
