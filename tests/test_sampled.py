"""The sampled model as data (hierbayes.sampled): its gradient against finite differences and
its log-likelihood against the family's own density, for every family, link and
parameterisation; and that it is what hb.fit runs for a GLMM."""

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.design import make_design
from hierbayes.formula import parse_formula
from hierbayes.core.parameters import unpack
from hierbayes.core.layout import H_PARTIAL, H_ZTW_FULL
from hierbayes.priors import make_priors
from hierbayes.sampled.density import pack_sampled
from hierbayes.core.likelihood import digamma


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 240
    g, h = rng.integers(10, size=n), rng.integers(4, size=n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + 0.5 * rng.normal(size=10)[g] + 0.3 * rng.normal(size=4)[h]
    df = pd.DataFrame({"x": x, "g": g.astype(str), "h": h.astype(str), "trials": rng.integers(1, 6, size=n)})
    df["yb"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["ys"] = rng.binomial(df.trials, 1 / (1 + np.exp(-eta)))
    df["yc"] = rng.poisson(np.exp(eta))
    df["yn"] = eta + rng.normal(size=n)
    df["e"] = rng.uniform(0.5, 2, size=n)
    df["z"] = rng.normal(size=n)
    df["k"] = rng.integers(3, size=n).astype(str)
    return df


CASES = [
    ("yb ~ x + (x | g) + (1 | h)", "bernoulli", None),
    ("yb ~ x + (x | g)", "bernoulli", "probit"),
    ("yb ~ x + (1 | g)", "bernoulli", "cloglog"),
    ("cbind(ys, trials - ys) ~ x + (1 | g)", None, None),
    ("yc ~ x + offset(log(e)) + (x | g) + (1 | h)", "poisson", None),
    ("yc ~ x + (1 | g)", "poisson", "sqrt"),
    ("yc ~ x + (x || g)", "negativebinomial", None),
    ("yn ~ x + (x | g)", "gaussian", None),
    ("yn ~ x + (1 | g/h)", "student_t", None),
]


def _loglik_numpy(design, model, x):
    """sum_i log p(y_i | eta_i, theta) from the family's scipy density at the draws of ``x``."""
    nat = model.natural(x)
    eta = design.X @ nat["b"] + (design.offset if design.offset is not None else 0.0)
    at = 0
    for block in design.blocks:
        factor = design.factors[block.group]
        r = nat["r"][at : at + len(factor.levels) * block.size].reshape(len(factor.levels), block.size)
        eta = eta + (r[factor.codes] * block.Z).sum(axis=1)
        at += r.size
    params = {k: nat[k] for k in model.theta_names}
    return design.family.loglik(design.y, design.family.mean(eta), params, design.trials).sum()


def _priors_numpy(design, model, how, x):
    """The log prior of the small parameters (``unpack``) plus the group effects' log density."""
    b, lam, theta = np.zeros(model.p), np.zeros((model.q, model.q)), np.zeros(max(1, len(model.theta_names)))
    lp = unpack(x, model.buffer, b, lam, theta)
    r = model.natural(x)["r"]  # centred blocks sample a_j = b_T + r_j
    at = 0
    for block in model.sampled_blocks:
        J, s = len(design.factors[block.group].levels), block.size
        start = sum(b.size for b in model.blocks[: model.blocks.index(block)])
        values = (r if how[block.name] == "centered" else x[model.n_small :])[at : at + J * s].reshape(J, s)
        L = lam[start : start + s, start : start + s]
        if how[block.name] == "centered":
            w = np.linalg.solve(L, values.T)
            lp += -0.5 * (w**2).sum() - J * np.log(np.diag(L)).sum()
        else:
            lp += -0.5 * (values**2).sum()
        at += J * s
    return lp


@pytest.mark.parametrize("formula,family,link", CASES)
@pytest.mark.parametrize("how", ["noncentered", "centered"])
def test_gradient_and_loglik(data, formula, family, link, how):
    """Centred blocks (correlated ones too) sample the group coefficients b_T + r_j."""
    design = make_design(parse_formula(formula), data, family=family, link=link)
    chosen = dict.fromkeys((b.name for b in design.blocks), how)
    model = pack_sampled(design, make_priors(design), chosen)
    x0, x1 = model.initial_point(3), model.initial_point(4)
    value, grad = model.logp(x0)
    assert np.isfinite(value)
    h = 1e-6
    numeric = np.array([(model.logp(x0 + h * e)[0] - model.logp(x0 - h * e)[0]) / (2 * h) for e in np.eye(model.n_dim)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)
    # the kernel's log-likelihood moves as scipy's does between two points (constants cancel)
    ours = (model.logp(x1)[0] - _priors_numpy(design, model, chosen, x1)) - (value - _priors_numpy(design, model, chosen, x0))
    assert ours == pytest.approx(_loglik_numpy(design, model, x1) - _loglik_numpy(design, model, x0), rel=1e-9, abs=1e-8)


def test_digamma_matches_scipy():
    from scipy.special import digamma as psi

    for v in (1e-3, 0.5, 1.0, 3.7, 6.0, 40.0, 1e5):
        assert digamma(v) == pytest.approx(psi(v), rel=1e-10, abs=1e-12)


def test_outside_the_support_is_rejected_not_crashed(data):
    """An identity-link Poisson mean below 0 gives -inf and a zero gradient (a rejected point)."""
    design = make_design(parse_formula("yc ~ x + (1 | g)"), data, family="poisson", link="identity")
    model = pack_sampled(design, make_priors(design), {"g": "noncentered"})
    x = model.start.copy()
    x[0] = -5.0
    value, grad = model.logp(x)
    assert value == -np.inf and np.all(grad == 0)


def test_a_glmm_fit_samples_the_packed_model_with_no_compile(data):
    fit = hb.fit("yb ~ x + (x | g)", data, family="bernoulli", random_seed=2, progressbar=False)
    assert fit.method == "full" and fit.idata.posterior.attrs["log_density"] == "hierbayes.sampled"
    assert fit.posterior["r_g"].dims == ("chain", "draw", "g", "g__effect")
    assert {"b", "sd_g", "L_g", "cor_g"} <= set(fit.posterior.data_vars)


def _integrated_dense(design, model, integrated, factor, x):
    """log N(y | X b + Z_sampled r, sigma^2 I + Z_f G Z_f') at ``x``, ``factor``'s blocks
    (``integrated``) integrated out: the dense normal the integrated-out kernel must match."""
    from scipy.stats import multivariate_normal

    nat = model.natural(x)
    q_g = sum(b.size for b in integrated)
    mean = design.X @ nat["b"] + (design.offset if design.offset is not None else 0)
    at = 0
    for block in model.sampled_blocks:
        J = design.factors[block.group].n_levels
        r = nat["r"][at : at + J * block.size].reshape(J, block.size)
        mean = mean + (r[design.factors[block.group].codes] * block.Z).sum(axis=1)
        at += r.size
    codes, J = design.factors[factor].codes, design.factors[factor].n_levels
    Zg = np.zeros((design.n_obs, J * q_g))
    col = 0
    for block in integrated:
        for k in range(block.size):
            Zg[np.arange(design.n_obs), codes * q_g + col + k] = block.Z[:, k]
        col += block.size
    lam = nat["Lambda"][:q_g, :q_g]
    G = np.kron(np.eye(J), lam @ lam.T)
    return multivariate_normal(mean, nat["sigma"] ** 2 * np.eye(design.n_obs) + Zg @ G @ Zg.T).logpdf(design.y)


@pytest.mark.parametrize("formula", ["yn ~ x + (x | g) + (x | h)", "yn ~ x + (x || g) + (1 | h)",
                                     "yn ~ x + (1 | g) + (x | h)", "yn ~ x + (x + z | g) + (1 | h)",
                                     "yn ~ x + offset(e) + (1 | g) + (x | h) + (1 | k)"])
@pytest.mark.parametrize("how", ["noncentered", "centered"])
@pytest.mark.parametrize("whole", [True, False])
def test_crossed_gaussian_integrates_the_largest_factor_out(data, formula, how, whole, monkeypatch):
    """Crossed factors of a Gaussian model: g (10 levels) integrated out, h's (and k's) effects
    sampled; Z'W packed whole or as sparse rows (here every g meets every h: whole by default).
    The gradient against finite differences, and the log-likelihood against the dense
    N(X b + Z_h r_h, sigma^2 I + Z_g G Z_g') between two points."""
    from hierbayes.marginal import crossed

    monkeypatch.setattr(crossed, "WHOLE_ABOVE", 0.5 if whole else 1.0)
    design = make_design(parse_formula(formula), data)
    integrated = tuple(b for b in design.blocks if b.group == "g")
    chosen = {b.name: how for b in design.blocks if b.group != "g"}
    model = pack_sampled(design, make_priors(design), chosen, integrated=integrated)
    assert {b.group for b in model.sampled_blocks} == {b.group for b in design.blocks} - {"g"}
    assert model.n_integrated == len(integrated)
    assert model.buffer[H_ZTW_FULL] == whole
    # centred intercepts of the sampled factors are partially centred on the intercept (crossed)
    assert model.buffer[H_PARTIAL] == (how == "centered")
    x0, x1 = model.initial_point(3), model.initial_point(4)
    value, grad = model.logp(x0)
    h = 1e-6
    numeric = np.array([(model.logp(x0 + h * e)[0] - model.logp(x0 - h * e)[0]) / (2 * h) for e in np.eye(model.n_dim)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)

    def dense(x):
        return _integrated_dense(design, model, integrated, "g", x)

    ours = (model.logp(x1)[0] - _priors_numpy(design, model, chosen, x1)) - (value - _priors_numpy(design, model, chosen, x0))
    assert ours == pytest.approx(dense(x1) - dense(x0), rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("formula", ["yn ~ x + (x | g) + (1 | h)", "yn ~ x + (x + z | g) + (x | h)"])
def test_crossed_exact_draws_compiled_match_numpy(data, formula):
    """The integrated factor's effects and per-group log-likelihood drawn after sampling: the
    compiled kernel on the packed rows gives what the NumPy path (used where PyMC sampled)
    gives, from the same normals."""
    from hierbayes.marginal.draws import draw_group_effects

    with pytest.warns(hb.SamplingWarning):  # 30 draws: only the draws afterwards matter here
        fit = hb.fit(formula, data, draws=15, tune=15, chains=2, random_seed=1, progressbar=False)
    packed = fit.built.packed
    assert packed.n_integrated > 0
    posterior = fit.idata.posterior.dataset
    compiled, loglik = draw_group_effects(fit.design, posterior, packed, random_seed=5)
    numpy_effects, numpy_loglik = draw_group_effects(fit.design, posterior, None, random_seed=5)
    np.testing.assert_allclose(loglik.values, numpy_loglik.values, rtol=1e-9)
    for name, values in compiled.items():
        np.testing.assert_allclose(values.values, numpy_effects[name].values, rtol=1e-8, atol=1e-10)
