"""Predictive checks: fit.ppc per group against the data, hb.prior_predictive against the priors."""

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

pytestmark = pytest.mark.sampling


def _groups(residual_sds, seed=0, n=20):
    rng = np.random.default_rng(seed)
    J = len(residual_sds)
    g = np.repeat(np.arange(J), n)
    y = 1.0 + rng.normal(0, 1, J)[g] + rng.normal(0, 1, J * n) * np.asarray(residual_sds)[g]
    return pd.DataFrame({"y": y, "g": g.astype(str)})


def test_ppc_per_group_reads_the_data_and_flags_a_misfit():
    kw = dict(random_seed=1, progressbar=False)
    good = hb.fit("y ~ 1 + (1 | g)", _groups([1.0] * 30), **kw)
    table = good.ppc("mean", group="g")
    data = good.design.data.assign(y=good.design.y).groupby("g", sort=False)["y"]
    np.testing.assert_allclose(table.set_index("level")["observed"], data.mean().reindex(table["level"]))
    assert (table["n"] == 20).all() and table["p"].between(0, 1).all()
    assert table.attrs["outside"] <= 8  # 3 expected by chance at 90%
    sds = good.ppc("sd", group="g")
    assert sds.attrs["outside"] <= 8
    # half the groups with residual SD 0.3, half with 2: one residual SD cannot reproduce them
    bad = hb.fit("y ~ 1 + (1 | g)", _groups([0.3] * 15 + [2.0] * 15), **kw).ppc("sd", group="g")
    assert bad.attrs["outside"] >= 20
    overall = good.ppc(lambda v: np.percentile(v, 90))  # any function of an array, one row for all data
    assert len(overall) == 1 and 0.05 < overall["p"].iloc[0] < 0.95
    with pytest.raises(ValueError, match="group='school' is not a grouping factor.*'g'"):
        good.ppc(group="school")
    with pytest.raises(ValueError, match="stat must be one of mean, sd"):
        good.ppc("variance")
    fig = good.plot.ppc(stat="sd", group="g")
    assert "of 30 outside their 90% intervals" in fig.axes[0].get_title()


def test_prior_predictive_follows_the_priors(london):
    formula = "normexam ~ standLRT + (1 | school)"
    default = hb.prior_predictive(formula, london, draws=300)
    table = default.table()
    assert table.loc["sd", "lower"] < table.loc["sd", "observed"] < table.loc["sd", "upper"]
    params = default.parameters()
    assert {"b[(Intercept)]", "b[standLRT]", "sd_school[(Intercept)]", "sigma"} <= set(params.index)
    tight = hb.prior_predictive(formula, london, priors={"sigma": "HalfNormal(0.01)", "sd": "HalfNormal(0.01)",
                                                         "b": "Normal(0, 0.01)"}, draws=300)  # fmt: skip
    # with b, SDs and sigma near 0 the replicated data are the intercept alone: their SD is tiny
    assert tight.table().loc["sd", "upper"] < 0.1 < table.loc["sd", "lower"]
    assert tight.parameters().loc["sigma", "upper"] < 0.03
    assert default.plot().axes


def test_prior_predictive_of_a_binomial_model_draws_successes_of_trials():
    cbpp = hb.datasets.load("cbpp")
    pp = hb.prior_predictive("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, draws=100)
    replicated = pp.idata.prior_predictive[pp.response].values.reshape(100, -1)
    assert np.all(replicated <= cbpp["size"].to_numpy()) and np.all(replicated == np.round(replicated))
    assert "sd_herd[(Intercept)]" in pp.parameters().index
