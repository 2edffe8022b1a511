"""Generalised and robust mixed models: binomial (cbpp against glmer), Bernoulli, Poisson and
negative-binomial recovery of simulated truths, a Student-t refit against outliers, and every
bad response refused with its column and value named before sampling."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.design import DataError, make_design


@pytest.fixture(scope="module")
def cbpp_fit():
    return hb.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", hb.datasets.load("cbpp"),
                  random_seed=20261124, progressbar=False)  # fmt: skip


@pytest.mark.sampling
def test_cbpp_agrees_with_glmer(cbpp_fit, lme4_reference):
    ref = lme4_reference["cbpp_binomial"]
    fit = cbpp_fit
    assert fit.design.family.name == "binomial" and fit.method == "full"
    fe = fit.fixef()
    for term, value in ref["fixef"].items():
        assert abs(fe.loc[term, "mean"] - value) < 2 * fe.loc[term, "sd"], term
    median = float(fit.posterior["sd_herd"].median())
    assert median == pytest.approx(ref["varcorr"][0]["sdcor"], rel=0.25)
    assert fit.summary().startswith("Bayesian generalised linear mixed model (Binomial, logit link)")
    assert "Residual" not in set(fit.varcorr()["grp"])
    # the latent-scale ICC of a logit model: tau^2 / (tau^2 + pi^2/3), draw by draw
    tau2 = fit.posterior["sd_herd"].values[..., 0] ** 2
    icc = fit.icc(draws=True).sel(icc="herd").values
    np.testing.assert_allclose(icc, tau2 / (tau2 + np.pi**2 / 3))
    # predictions: probabilities, the linear predictor, and counts of successes out of each row's trials
    p = fit.predict(draws=True)
    eta = fit.predict(kind="link", draws=True)
    np.testing.assert_allclose(p.values, 1 / (1 + np.exp(-eta.values)))
    pp = fit.predict(kind="pp", draws=True).values
    assert np.all(pp <= fit.design.trials) and np.all(pp == np.round(pp))
    with pytest.raises(hb.UnsupportedStructure, match="no exact fit of a Binomial"):
        fit.compare_frequentist()
    odds = fit.fixef(exponentiate=True)
    b = fit.posterior["b"].sel(term="period2").values
    assert odds.loc["period2", "mean"] == pytest.approx(np.exp(b).mean())
    assert odds.loc["period2", "upper"] == pytest.approx(np.quantile(np.exp(b), 0.975))
    # shrinkage on the logit scale: each herd's posterior lies between its empirical logit and the population
    sh = fit.shrinkage()
    population = fe.loc["(Intercept)", "mean"]
    between = (sh["mean"] - population) * (sh["no_pooling"] - sh["mean"]) >= 0
    assert between.mean() >= 0.8, sh


def _simulated(kind: str, seed: int, J: int = 30, n: int = 20):
    """Correlated random intercepts and slopes: sd 0.5 and 0.3, correlation 0.4."""
    rng = np.random.default_rng(seed)
    sd, rho = np.array([0.5, 0.3]), 0.4
    cov = np.outer(sd, sd) * np.array([[1, rho], [rho, 1]])
    b = rng.multivariate_normal([0, 0], cov, size=J)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    beta = {"bernoulli": (-0.3, 0.8), "poisson": (1.0, 0.4), "negativebinomial": (1.0, 0.4)}[kind]
    eta = beta[0] + b[g, 0] + (beta[1] + b[g, 1]) * x
    if kind == "bernoulli":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    elif kind == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        shape = 4.0
        y = rng.negative_binomial(shape, shape / (shape + np.exp(eta)))
    truth = {"(Intercept)": beta[0], "x": beta[1], "sd0": sd[0], "sd1": sd[1]}
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]}), truth


SEEDS = range(1, 7)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")  # short runs; the truths are what is checked
@pytest.mark.parametrize("kind", ["bernoulli", "poisson", "negativebinomial"])
def test_simulated_correlated_slopes_are_recovered(kind):
    """Over six simulated data sets, the 90% intervals of the fixed effects, both SDs (and the
    shape) cover the truth about as often as they should: of 24 (30) intervals, 21.6 (27) on
    average with an SD of 1.5 (1.6); at least 18 (23) must, about 2.5 SDs below."""
    covered, total = 0, 0
    for seed in SEEDS:
        data, truth = _simulated(kind, seed=seed + 10 * ["bernoulli", "poisson", "negativebinomial"].index(kind))
        fit = hb.fit("y ~ x + (x | g)", data, family=kind, random_seed=seed, progressbar=False, chains=2, draws=500,
                     tune=500)  # fmt: skip
        fe = fit.fixef(prob=0.9)
        sds = fit.varcorr(prob=0.9).query("var2 == ''").set_index("var1")
        intervals = [(fe.loc[t, "lower"], fe.loc[t, "upper"], truth[t]) for t in ("(Intercept)", "x")]
        intervals += [(sds.loc[t, "lower"], sds.loc[t, "upper"], truth[k]) for t, k in (("(Intercept)", "sd0"), ("x", "sd1"))]
        if kind == "negativebinomial":
            intervals.append((*np.quantile(fit.posterior["shape"].values, [0.05, 0.95]), 4.0))
        covered += sum(lower < value < upper for lower, upper, value in intervals)
        total += len(intervals)
    assert covered >= (23 if kind == "negativebinomial" else 18), f"{covered} of {total} 90% intervals cover the truth"


@pytest.mark.sampling
def test_student_t_resists_outliers():
    rng = np.random.default_rng(11)
    J, n = 20, 15
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.5, J)[g] + rng.normal(0, 0.5, J * n)
    worst = np.argsort(x)[-15:]  # gross outliers at the largest x pull a Gaussian slope down
    y[worst] -= 8.0
    data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    kw = dict(random_seed=3, progressbar=False, chains=2, draws=500, tune=500)
    gaussian = hb.fit("y ~ x + (1 | g)", data, **kw)
    robust = hb.fit("y ~ x + (1 | g)", data, family="t", **kw)
    assert robust.design.family.name == "student_t"
    err_t = abs(robust.fixef().loc["x", "mean"] - 0.5)
    err_g = abs(gaussian.fixef().loc["x", "mean"] - 0.5)
    assert err_t < 0.1 < err_g
    assert float(robust.posterior["nu"].median()) < 5  # heavy tails found


@pytest.mark.parametrize("formula, family, data, message", [
    ("y ~ x", "bernoulli", {"y": [0, 1, 2, 1]}, r"the response 'y' must be 0/1 .* for the Bernoulli family: 2 in row 2"),
    ("y ~ x", "binomial", {"y": [0.0, 1.0, 0.5, 1.0]}, r"must be 0/1 .*Bernoulli.*0.5 in row 2.*cbind"),
    ("y ~ x", "poisson", {"y": [0, 1, -2, 1]}, r"'y' must be a non-negative whole number .* Poisson family: -2 in row 2"),
    ("y ~ x", "negativebinomial", {"y": [0, 1.5, 2, 1]}, r"'y' must be a non-negative whole number .*: 1.5 in row 1"),
    ("p(s, n) ~ x", None, {"s": [1, 5, 2, 0], "n": [3, 4, 2, 2]}, r"the successes 's' exceed the trials 'n' in 1 row.*row 1: 5 of 4"),
    ("p(s, n) ~ x", None, {"s": [1, 0, 2, 0], "n": [3, 0, 2, 2]}, r"1 row\(s\) have 0 trials .* row 1"),
    ("cbind(s, f) ~ x", None, {"s": [1, -1, 2, 0], "f": [3, 4, 2, 2]}, r"the successes 's' must be whole numbers of 0 or more .*: -1 in row 1"),
    ("cbind(s, f) ~ x", None, {"s": [1, 1, 2, 0], "f": [3, 4.5, 2, 2]}, r"the failures 'f' must be whole numbers .*: 4.5 in row 1"),
    ("cbind(s, f) ~ x", "gaussian", {"s": [1, 1, 2, 0], "f": [3, 4, 2, 2]}, r"counts successes out of trials: use family='binomial', not 'gaussian'"),
    ("cbind(s) ~ x", None, {"s": [1, 1, 2, 0]}, r"cbind\(...\) in the response 'cbind\(s\)' takes two arguments"),
])  # fmt: skip
def test_bad_responses_are_named_before_sampling(formula, family, data, message):
    frame = pd.DataFrame({"x": [0.1, 0.5, 0.9, 1.3], **data})
    with pytest.raises(DataError, match=message):
        make_design(formula, frame, family=family)


def test_a_proportion_with_weights_is_a_binomial_response():
    frame = pd.DataFrame({"s": [1, 3, 2, 0, 4], "n": [4, 4, 4, 2, 4], "x": [0.1, 0.5, 0.9, 1.3, 2.0]})
    design = make_design("share ~ x", frame.assign(share=frame.s / frame.n), family="binomial", weights="n")
    assert design.family.name == "binomial"
    np.testing.assert_array_equal(design.y, frame.s)
    np.testing.assert_array_equal(design.trials, frame.n)
    with pytest.raises(DataError, match=r"the proportion 'share' must lie in \[0, 1\].*: 1.5 in row 1"):
        make_design("share ~ x", frame.assign(share=[0.25, 1.5, 0.5, 0, 1]), family="binomial", weights="n")
    with pytest.raises(DataError, match=r"times the weights must give whole numbers of successes: 0.3 x 4 in row 0"):
        make_design("share ~ x", frame.assign(share=[0.3, 0.75, 0.5, 0, 1]), family="binomial", weights="n")
    with pytest.raises(DataError, match="weights='trials' is not a column"):
        make_design("share ~ x", frame.assign(share=0.5), family="binomial", weights="trials")
    with pytest.raises(DataError, match="the poisson family takes none"):
        make_design("s ~ x", frame, family="poisson", weights="n")


def test_binomial_responses_in_both_spellings_agree():
    frame = pd.DataFrame({"s": [1, 3, 2, 0, 4], "f": [3, 1, 2, 2, 0], "x": [0.1, 0.5, 0.9, 1.3, 2.0]})
    lme4 = make_design("cbind(s, f) ~ x", frame)
    bambi = make_design("p(s, n) ~ x", frame.assign(n=frame.s + frame.f))
    assert lme4.family.name == bambi.family.name == "binomial"
    np.testing.assert_array_equal(lme4.trials, bambi.trials)
    np.testing.assert_array_equal(lme4.y, frame.s)
    assert make_design("y ~ x", frame.assign(y=frame.s > 1), family="binomial").family.name == "bernoulli"
    assert make_design("cbind(s, f) ~ x", frame, family="binomial", link="probit").family.link == "probit"


@pytest.mark.sampling
def test_an_offset_enters_with_coefficient_one():
    rng = np.random.default_rng(4)
    J, n = 20, 20
    g = np.repeat(np.arange(J), n)
    x, exposure = rng.normal(size=J * n), rng.uniform(0.5, 20, J * n)
    y = rng.poisson(exposure * np.exp(0.3 + 0.5 * x + rng.normal(0, 0.4, J)[g]))
    data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "exposure": exposure})
    fit = hb.fit("y ~ x + offset(log(exposure)) + (1 | g)", data, family="poisson", random_seed=1,
                 progressbar=False, draws=500)  # fmt: skip
    assert fit.design.fixed_terms == ("(Intercept)", "x") and fit.method == "full"
    np.testing.assert_allclose(fit.design.offset, np.log(exposure))
    fe = fit.fixef()
    assert fe.loc["(Intercept)", "lower"] < 0.3 < fe.loc["(Intercept)", "upper"]
    assert fe.loc["x", "lower"] < 0.5 < fe.loc["x", "upper"]
    # latent ICC of a Poisson model (Nakagawa et al. 2017): lambda = exp(eta_bar + tau^2 / 2), the
    # count of a typical row: x at its mean and the mean log exposure (about 10 here, not 1)
    tau2 = fit.posterior["sd_g"].values[..., 0] ** 2
    b = fit.posterior["b"]
    eta_bar = b.sel(term="(Intercept)").values + b.sel(term="x").values * x.mean() + np.log(exposure).mean()
    lam = np.exp(eta_bar + tau2 / 2)
    icc = fit.icc(draws=True).sel(icc="g").values
    np.testing.assert_allclose(icc, tau2 / (tau2 + np.log1p(1 / lam)))
    from scipy.special import polygamma

    trigamma = fit.icc(draws=True, trigamma=True).sel(icc="g").values
    np.testing.assert_allclose(trigamma, tau2 / (tau2 + polygamma(1, lam)))
    assert "lognormal approximation" in fit.icc()["definition"].iloc[0]
    # new rows: the same covariates with ten times the exposure predict ten times the count
    new = data.head(3)
    ratio = fit.predict(new.assign(exposure=new.exposure * 10), draws=True) / fit.predict(new, draws=True)
    np.testing.assert_allclose(ratio.values, 10.0, rtol=1e-10)


@pytest.mark.sampling
def test_glmm_fits_compare_by_row_not_by_group(cbpp_fit):
    cbpp = hb.datasets.load("cbpp")
    plain = hb.fit("cbind(incidence, size - incidence) ~ period", cbpp, random_seed=1, progressbar=False, draws=500)
    comparison = hb.compare(herd=cbpp_fit, plain=plain)
    assert list(comparison.table.index) == ["herd", "plain"]  # the herds are overdispersed: their effects help
    assert comparison.anova.empty and any("no exact binomial GLMM" in n for n in comparison.notes)
    with pytest.raises(hb.ComparisonError, match="needs the group effects integrated out exactly.*compare by='row'"):
        hb.compare(herd=cbpp_fit, plain=plain, by="herd")


@pytest.mark.sampling
def test_badly_scaled_predictors_sample_cleanly_at_the_defaults():
    """A design like the Bangladesh contraception survey (1,934 women in 60 districts; age
    centred, so age^2 runs to about 400; four levels of living children; urban varying by
    district), where glmer warned "nearly unidentifiable: rescale variables?" and bambi ended
    at R-hat 3: the slopes are sampled in units of their column's SD, so the defaults give
    R-hat < 1.01 and no divergences, and the truth is inside the 95% intervals."""
    rng = np.random.default_rng(4)
    n, J = 1934, 60
    district = rng.integers(J, size=n)
    age = rng.uniform(-14, 20, size=n)
    urban = rng.binomial(1, 0.3, size=n)
    livch = rng.choice(["0", "1", "2", "3+"], size=n, p=[0.27, 0.23, 0.2, 0.3])
    u = rng.multivariate_normal([0, 0], [[0.25, -0.15], [-0.15, 0.16]], size=J)
    eta = (-0.7 + 0.005 * age - 0.004 * age**2 + 0.7 * urban + np.select([livch == "0"], [0.0], 1.0)
           + u[district, 0] + u[district, 1] * urban)  # fmt: skip
    data = pd.DataFrame({"use": rng.binomial(1, 1 / (1 + np.exp(-eta))), "age": age, "urban": urban, "livch": livch,
                         "district": [f"d{k}" for k in district]})  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", hb.SamplingWarning)
        fit = hb.fit("use ~ age + I(age^2) + urban + livch + (urban | district)", data, family="bernoulli",
                     random_seed=1, progressbar=False)  # fmt: skip
    assert not [w for w in caught if "R-hat" in str(w.message) or "diverg" in str(w.message)]
    assert fit.diagnostics.divergences == 0 and fit.diagnostics.max_rhat < 1.01
    assert fit.diagnostics.min_ess_tail > 250 and fit.diagnostics.min_ess_bulk > 400
    fe = fit.fixef()
    assert fe.loc["I(age^2)", "lower"] < -0.004 < fe.loc["I(age^2)", "upper"]
    assert fe.loc["urban", "lower"] < 0.7 < fe.loc["urban", "upper"]
