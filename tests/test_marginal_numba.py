"""The marginal model written in numba (the default sampler path for one grouping factor):
its likelihood against the dense normal, its priors against scipy, its LKJ Cholesky
transform against a numerical Jacobian, its gradient against finite differences, and its
posterior against the PyMC-built marginal model's."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import multivariate_normal

import hierbayes as hb
from hierbayes.marginal import packed_applies
from hierbayes.marginal_numba import PRIOR_CODES, _prior_logp, pack_model

SINGLE_FACTOR = [
    "y ~ x + (x | g)",                  # q = 2, correlated
    "y ~ x + sex + (1 + x + w | g)",    # q = 3, correlated
    "y ~ x + (1 + x + w + x:w | g)",    # q = 4: the general loops (q <= 3 have closed forms)
    "y ~ x + (x || g)",                 # two independent blocks on one factor
    "y ~ x + (x | g) + (0 + w | g)",    # a correlated block and an independent one
    "y ~ 1 + (1 | g)",                  # intercept only
    "y ~ 0 + x + (1 | g)",              # no intercept
]  # fmt: skip


def _data(seed=3, J=7):
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(J):
        b0, b1, b2 = rng.normal(0, [1.0, 0.5, 0.3])
        for _ in range(rng.integers(2, 9)):
            x, w = rng.normal(), rng.normal()
            rows.append({"g": f"g{j}", "x": x, "w": w, "sex": rng.choice(["F", "M"]),
                         "y": 1 + 0.5 * x + b0 + b1 * x + b2 * w + rng.normal(0, 0.7)})  # fmt: skip
    return pd.DataFrame(rows)


def _packed(formula, priors=None):
    design = hb.make_design(formula, _data())
    resolved = hb.make_priors(design, priors)
    assert packed_applies(design, resolved)
    return design, pack_model(design, resolved)


@pytest.mark.parametrize("formula", SINGLE_FACTOR)
def test_log_likelihood_is_the_dense_normal_density(formula):
    """log N(y | X b, sigma^2 I + Z (Lambda Lambda') Z') at random points, to 1e-10."""
    design, packed = _packed(formula)
    codes = design.factors["g"].codes
    Z = np.column_stack([b.Z for b in design.blocks])
    same_group = codes[:, None] == codes[None, :]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = packed.start + rng.normal(0, 0.7, packed.n_dim)
        b, lam, sigma = packed.natural(x)
        V = sigma**2 * np.eye(design.n_obs) + same_group * (Z @ lam @ lam.T @ Z.T)
        dense = multivariate_normal(design.X @ b, V).logpdf(design.y)
        assert packed.loglik(x) == pytest.approx(dense, rel=1e-10, abs=1e-8)


@pytest.mark.parametrize("formula", SINGLE_FACTOR)
def test_gradient_matches_finite_differences(formula):
    priors = {"sigma": "Exponential(2)", "sd": "Gamma(2, 3)"} if "||" in formula else None
    _, packed = _packed(formula, priors)
    rng = np.random.default_rng(2)
    x = packed.start + rng.normal(0, 0.5, packed.n_dim)
    _, grad = packed.logp(x)
    eps = 1e-6
    numeric = [(packed.logp(x + eps * e)[0] - packed.logp(x - eps * e)[0]) / (2 * eps) for e in np.eye(packed.n_dim)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dist, params, scipy_dist", [
    ("Normal", (0.3, 2.0), stats.norm(0.3, 2.0)),
    ("StudentT", (3.0, 0.3, 2.0), stats.t(3.0, 0.3, 2.0)),
    ("Cauchy", (0.3, 2.0), stats.cauchy(0.3, 2.0)),
    ("Laplace", (0.3, 2.0), stats.laplace(0.3, 2.0)),
    ("HalfNormal", (2.0,), stats.halfnorm(0, 2.0)),
    ("HalfStudentT", (3.0, 2.0), None),
    ("HalfCauchy", (2.0,), stats.halfcauchy(0, 2.0)),
    ("Exponential", (2.0,), stats.expon(0, 0.5)),
    ("Gamma", (2.0, 3.0), stats.gamma(2.0, scale=1 / 3.0)),
    ("InverseGamma", (2.0, 3.0), stats.invgamma(2.0, scale=3.0)),
])  # fmt: skip
def test_prior_densities_match_scipy(dist, params, scipy_dist):
    """Each prior family at PyMC's parameterisation, normalised, at a few points."""
    if scipy_dist is None:  # HalfStudentT(nu, sigma): twice the t density on x > 0
        scipy_dist = stats.t(params[0], 0, params[1])
        expected = lambda x: np.log(2) + scipy_dist.logpdf(x)  # noqa: E731
    else:
        expected = scipy_dist.logpdf
    padded = [*params, 0.0, 0.0][:3]
    for x in (0.2, 1.3, 4.0):
        assert _prior_logp(PRIOR_CODES[dist], *padded, x) == pytest.approx(expected(x), rel=1e-12)


@pytest.mark.parametrize("eta", [1.0, 2.0, 4.5])
def test_lkj_cholesky_transform_gives_the_lkj_density(eta):
    """Moving only the correlation coordinates, the log prior changes as
    (eta - 1) log det C plus the log Jacobian from those coordinates to C's lower entries
    (computed numerically): the LKJ(eta) density on correlation matrices, q = 3."""
    _, packed = _packed("y ~ x + sex + (1 + x + w | g)", {"cor": f"LKJ({eta})"})
    cor = [i for i, name in enumerate(packed.parameters) if name.startswith("atanh cpc_")]
    assert len(cor) == 3

    def corr_entries(x):
        _, lam, _ = packed.natural(x)
        sd = np.sqrt((lam**2).sum(axis=1))
        C = (lam / sd[:, None]) @ (lam / sd[:, None]).T
        return C, C[np.tril_indices(3, -1)]

    def expected(x):
        C, _ = corr_entries(x)
        jac = np.empty((3, 3))
        for k, i in enumerate(cor):
            e = np.zeros(packed.n_dim)
            e[i] = 1e-6
            jac[:, k] = (corr_entries(x + e)[1] - corr_entries(x - e)[1]) / 2e-6
        return (eta - 1) * np.linalg.slogdet(C)[1] + np.linalg.slogdet(jac)[1]

    rng = np.random.default_rng(4)
    base = packed.start.copy()
    points = []
    for _ in range(3):
        x = base.copy()
        x[cor] = rng.normal(0, 0.8, 3)
        points.append(x)
    log_prior = [packed.logp(x)[0] - packed.loglik(x) for x in points]
    for k in (1, 2):
        assert log_prior[k] - log_prior[0] == pytest.approx(expected(points[k]) - expected(points[0]), abs=1e-6)


def test_not_used_where_it_does_not_apply():
    data = _data()
    data["h"] = np.where(np.arange(len(data)) % 2 == 0, "odd", "even")
    crossed = hb.make_design("y ~ x + (1 | g) + (1 | h)", data)
    assert not packed_applies(crossed, hb.make_priors(crossed))  # h's effects are sampled
    single = hb.make_design("y ~ x + (1 | g)", data)
    assert packed_applies(single, hb.make_priors(single))


@pytest.mark.sampling
def test_posterior_matches_the_pymc_built_marginal_model(fits, monkeypatch):
    """The default fit (this module) and the PyMC-built marginal model (nutpie on PyTensor's
    code) sample the same posterior: every fixed effect, SD, correlation and sigma agree
    within Monte Carlo error (|z| < 4), on sleepstudy."""
    import arviz as az

    import hierbayes.api

    packed, _ = fits("sleepstudy_rs_reml")
    assert packed.posterior.attrs.get("log_density") == "hierbayes.marginal_numba"
    monkeypatch.setattr(hierbayes.api, "packed_applies", lambda *args: False)
    pymc_built = hb.fit("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), random_seed=11,
                        progressbar=False)  # fmt: skip
    assert "log_density" not in pymc_built.posterior.attrs
    for var in ("b", "sd_Subject", "cor_Subject", "sigma"):
        a, b = packed.posterior[var], pymc_built.posterior[var]
        se = np.sqrt(az.mcse(packed.idata, var_names=[var])[var] ** 2 + az.mcse(pymc_built.idata, var_names=[var])[var] ** 2)
        z = ((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / se).values.reshape(-1)
        z = z[np.isfinite(z)]  # the correlation matrix's constant diagonal
        assert np.all(np.abs(z) < 4), (var, z)
