"""method="laplace": the Laplace log-likelihood against numerical integration, its gradient
against finite differences, the fit against the exact path on cbpp, and its refusals."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import hierbayes as hb
from hierbayes.design import make_design
from hierbayes.formula import parse_formula
from hierbayes.core.parameters import unpack
from hierbayes.priors import make_priors
from hierbayes.sampled.density import pack_sampled


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n = 200
    g, x = rng.integers(8, size=n), rng.normal(size=n)
    eta = 0.2 + 0.5 * x + 0.8 * rng.normal(size=8)[g]
    df = pd.DataFrame({"x": x, "g": g.astype(str), "trials": rng.integers(1, 6, size=n), "e": rng.uniform(0.5, 2, n)})
    df["yb"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["ys"] = rng.binomial(df.trials, 1 / (1 + np.exp(-eta)))
    df["yc"] = rng.poisson(np.exp(eta))
    df["h"] = np.where(x > 0, "high", "low")
    return df


CASES = [("yb ~ x + (x | g)", "bernoulli"), ("cbind(ys, trials - ys) ~ x + (x || g)", None),
         ("yc ~ x + offset(log(e)) + (x | g)", "poisson"), ("yc ~ x + (1 | g)", "negativebinomial"),
         ("yc ~ x + (x | g)", "negativebinomial"), ("yb ~ x + h + (x + h | g)", "bernoulli")]  # fmt: skip


@pytest.mark.parametrize("formula,family", CASES)
def test_gradient_matches_finite_differences(data, formula, family):
    design = make_design(parse_formula(formula), data, family=family)
    model = pack_sampled(design, make_priors(design), {}, laplace=True)
    x = model.initial_point(3)
    value, grad = model.logp(x)
    h = 1e-6
    numeric = [(model.logp(x + h * e)[0] - model.logp(x - h * e)[0]) / (2 * h) for e in np.eye(model.n_dim)]
    assert np.isfinite(value)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_laplace_is_close_to_the_integral_when_groups_are_large():
    """A random intercept with 200 Poisson rows per group: the Laplace log-likelihood against
    quadrature of log int prod_i p(y_i | b0 + sd u) N(u; 0, 1) du (without lgamma(y + 1),
    which the kernel leaves out), to 1e-3."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.poisson(3.0, size=400), "g": ["a"] * 200 + ["b"] * 200})
    design = make_design(parse_formula("y ~ 1 + (1 | g)"), df, family="poisson")
    model = pack_sampled(design, make_priors(design), {}, laplace=True)
    x = np.array([np.log(3.0), np.log(0.4)])
    value, _ = model.logp(x)
    log_prior = unpack(x, model.buffer, np.zeros(1), np.zeros((1, 1)), np.zeros(1))
    b0, sd = model.natural(x)["b"][0], model.natural(x)["Lambda"][0, 0]
    exact = 0.0
    for level in ("a", "b"):
        y = df.y[df.g == level].to_numpy()

        def log_f(u, y=y):
            eta = b0 + sd * u
            return np.sum(y * eta - np.exp(eta)) + stats.norm.logpdf(u)

        top = max(log_f(u) for u in np.linspace(-6, 6, 1201))
        exact += top + np.log(integrate.quad(lambda u: np.exp(log_f(u) - top), -8, 8, limit=200)[0])
    assert value - log_prior == pytest.approx(exact, abs=1e-3)


def test_cbpp_agrees_with_the_exact_path():
    cbpp = hb.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    exact = hb.fit(formula, cbpp, random_seed=1, progressbar=False)
    laplace = hb.fit(formula, cbpp, random_seed=1, progressbar=False, method="laplace")
    assert laplace.method == "laplace" and laplace.diagnostics.ok
    assert "'herd' integrated out by a Laplace approximation" in laplace.summary().splitlines()[0]
    a, b = exact.fixef(), laplace.fixef()
    assert np.all(np.abs(a["mean"] - b["mean"]) < 0.15 * a["sd"])
    sd_exact, sd_laplace = exact.varcorr()["mean"].iloc[0], laplace.varcorr()["mean"].iloc[0]
    assert sd_laplace == pytest.approx(sd_exact, rel=0.08)
    r = laplace.ranef()  # drawn afterwards from the approximation
    assert len(r) == 15 and np.corrcoef(r["mean"], exact.ranef()["mean"])[0, 1] > 0.99


@pytest.mark.parametrize("formula,family,match", [
    ("yc ~ x + (1 | g)", "gaussian", "does not apply: it serves .* not the Gaussian"),
    ("yb ~ x + (1 | g)", "bernoulli:probit", "not the Bernoulli \\(probit link\\)"),
    ("yc ~ x + (1 | g) + (1 | h)", "poisson", "one grouping factor.* has 2 \\(g, h\\)"),
])  # fmt: skip
def test_laplace_refuses_what_it_cannot_serve(data, formula, family, match):
    family, _, link = family.partition(":")
    with pytest.raises(ValueError, match=match):
        hb.fit(formula, data, family=family, link=link or None, method="laplace", progressbar=False)
