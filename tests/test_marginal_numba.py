"""The marginal model written in numba (the default sampler path for one grouping factor):
its likelihood against the dense normal, its priors against scipy, its LKJ Cholesky
transform against a numerical Jacobian, its gradient against finite differences, and its
posterior against nutpie's and PyMC's on the PyMC model (the same kernels through an Op)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import multivariate_normal

import hierbayes as hb
from hierbayes.core.parameters import prior_logp
from hierbayes.marginal.density import pack_model
from hierbayes.core.layout import PRIOR_CODES
from test_marginal import _data  # the same small grouped data as the PyMC-built model's tests

SINGLE_FACTOR = [
    "y ~ x + (x | g)",                  # q = 2, correlated
    "y ~ x + sex + (1 + x + w | g)",    # q = 3, correlated
    "y ~ x + (1 + x + w + x:w | g)",    # q = 4: the general loops (q <= 3 have closed forms)
    "y ~ x + (x || g)",                 # two independent blocks on one factor
    "y ~ x + (x | g) + (0 + w | g)",    # a correlated block and an independent one
    "y ~ 1 + (1 | g)",                  # intercept only
    "y ~ 0 + x + (1 | g)",              # no intercept
]  # fmt: skip


def _packed(formula, priors=None):
    design = hb.make_design(formula, _data())
    resolved = hb.make_priors(design, priors)
    assert hb.make_model(design, resolved).packed is not None
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
        assert prior_logp(PRIOR_CODES[dist], *padded, x) == pytest.approx(expected(x), rel=1e-12)


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
    model = hb.make_model(crossed)  # h's effects are sampled, g's integrated out: the sampled model's kernels
    assert model.packed.n_integrated == 1 and [b.group for b in model.packed.sampled_blocks] == ["h"]
    single = hb.make_design("y ~ x + (1 | g)", data)
    assert hb.make_model(single).packed is not None


@pytest.mark.sampling
def test_posterior_matches_nutpie_on_the_pymc_model(fits):
    """The default fit (nutpie on the packed model) and nutpie on the PyMC model (the same
    kernels through the Op, PyMC's LKJCorr and transforms) sample the same posterior: every
    fixed effect, SD, correlation and sigma agree within Monte Carlo error (|z| < 4), on
    sleepstudy."""
    import dataclasses

    import arviz as az

    packed, _ = fits("sleepstudy_rs_reml")
    assert packed.posterior.attrs.get("log_density") == "hierbayes.marginal"
    model = packed.built
    # the same model and priors on the PyMC graph (as a prior the kernels cannot evaluate sends it)
    from hierbayes.methods.base import PymcOptions
    from hierbayes.methods.pymc import PyMC

    through_pymc = dataclasses.replace(model, sampler=PyMC("marginal", "nutpie"), options=PymcOptions("nutpie"))
    pymc_built = hb.sample_model(through_pymc, random_seed=11, progressbar=False)
    assert pymc_built.sampler == "nutpie" and "log_density" not in pymc_built.idata.posterior.attrs
    for var in ("b", "sd_Subject", "cor_Subject", "sigma"):
        a, b = packed.posterior[var], pymc_built.idata.posterior[var]
        se = np.sqrt(az.mcse(packed.idata, var_names=[var])[var] ** 2 + az.mcse(pymc_built.idata, var_names=[var])[var] ** 2)
        z = ((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / se).values.reshape(-1)
        z = z[np.isfinite(z)]  # the correlation matrix's constant diagonal
        assert np.all(np.abs(z) < 4), (var, z)


# --- two nested factors, both integrated out ------------------------------------------------

NESTED = [
    "y ~ x + (1 | h/g)",                        # pupils in classes in schools
    "y ~ x + (x | h) + (1 | h:g)",              # a random slope on the outer factor
    "y ~ x + (1 | h) + (x | h:g)",              # ... on the inner one
    "y ~ x + (x || h) + (1 + x + w | h:g)",     # several blocks, q1 = 3, q2 = 2
    "y ~ x + (1 + x + w | h) + (1 | h:g)",      # q2 = 3: the outer solve with loops
    "y ~ x + (x | h) + (1 | k)",                # classes labelled across schools (k's levels interleave h's)
    "y ~ x + (1 | h) + (0 + x | h:g)",          # one class effect, a slope: Z'Z differs from class to class
    "y ~ x + (x | h) + (x | h:g)",              # two effects a class and a school: the kernels in scalars
    "y ~ x + (1 + x + w | h) + (x | h:g)",      # two a class, three a school: the loops
]  # fmt: skip


def _nested_data(seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(4):
        for c in range(rng.integers(2, 4)):
            for _ in range(rng.integers(1, 6)):
                x = rng.normal()
                rows.append({"h": f"h{s}", "g": f"c{c}", "k": f"k{c}{s}", "x": x, "w": rng.normal(),
                             "y": rng.normal() + x})  # fmt: skip
    return pd.DataFrame(rows)


def _nested(formula):
    from hierbayes.marginal.stats import nested_factors

    design = hb.make_design(formula, _nested_data())
    priors = hb.make_priors(design)
    assert nested_factors(design) in (("h", "h:g"), ("h", "k")) and hb.make_model(design, priors).packed is not None
    return design, pack_model(design, priors)


def _joint_Z_and_G(design, packed, lam):
    """Z of every group effect (inner groups' columns, then outer groups') and its prior G."""
    cols, start = [], 0
    for block in packed.blocks:
        sl = slice(start, start + block.size)
        start += block.size
        codes = design.factors[block.group].codes
        cols.append((block.group, sl, codes, block.Z))
    from hierbayes.marginal.stats import nested_factors

    outer, inner = nested_factors(design)
    parts, G_parts = [], []
    for factor in (inner, outer):
        blocks = [c for c in cols if c[0] == factor]
        Zf = np.column_stack([c[3] for c in blocks])
        sl = slice(blocks[0][1].start, blocks[-1][1].stop)
        codes = blocks[0][2]
        n_levels = design.factors[factor].n_levels
        k = Zf.shape[1]
        Zfull = np.zeros((design.n_obs, n_levels * k))
        for i in range(design.n_obs):
            Zfull[i, codes[i] * k : (codes[i] + 1) * k] = Zf[i]
        parts.append(Zfull)
        G_parts.append(np.kron(np.eye(n_levels), lam[sl, sl] @ lam[sl, sl].T))
    from scipy.linalg import block_diag

    return np.hstack(parts), block_diag(*G_parts)


@pytest.mark.parametrize("formula", NESTED)
def test_nested_log_likelihood_is_the_dense_normal_density_and_its_gradient_exact(formula):
    design, packed = _nested(formula)
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = packed.start + rng.normal(0, 0.6, packed.n_dim)
        b, lam, sigma = packed.natural(x)
        Z, G = _joint_Z_and_G(design, packed, lam)
        dense = multivariate_normal(design.X @ b, sigma**2 * np.eye(design.n_obs) + Z @ G @ Z.T).logpdf(design.y)
        assert packed.loglik(x) == pytest.approx(dense, rel=1e-10, abs=1e-8)
        _, grad = packed.logp(x)
        eps = 1e-6
        numeric = [(packed.logp(x + eps * e)[0] - packed.logp(x - eps * e)[0]) / (2 * eps) for e in np.eye(packed.n_dim)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("formula, n_dim", [("y ~ x + (x | h) + (x | h:g)", 9), ("y ~ x + (1 | h) + (x || h:g)", 6)])
def test_nested_with_several_effects_a_class_integrates_both_factors(formula, n_dim):
    """Two nested factors with more than one effect a class are both integrated out (the
    gradient by hand, ``nested_slopes``): NUTS sees the fixed effects, SDs, correlations and
    sigma only. (They were fit with the classes alone integrated out and the schools' effects
    sampled while the gradient came by complex step: 200x the cost.)"""
    design = hb.make_design(formula, _nested_data())
    model = hb.make_model(design)
    assert model.method == "marginal" and model.integrated == ("h", "h:g")
    assert model.packed.nested and model.packed.n_dim == n_dim
    assert not [label for label in model.packed.parameters if label.startswith(("r_", "z_", "a_"))]


@pytest.mark.parametrize("formula", NESTED)
def test_nested_gradient_by_hand_is_the_complex_step_derivative(formula):
    """The hand-written gradients (``nested.nested_q1_loglik_grad``, ``nested_slopes``: in
    scalars for two effects a class, with loops otherwise) against the complex-step derivative
    of ``nested.nested_loglik``, exact to rounding, at three random points."""
    from hierbayes.marginal.density import loglik_and_grad
    from hierbayes.marginal.nested import nested_loglik

    design, packed = _nested(formula)
    rng, h = np.random.default_rng(4), 1e-30
    for _ in range(3):
        b, lam, sigma = packed.natural(packed.start + rng.normal(0, 0.6, packed.n_dim))
        g_b, g_lam = np.empty_like(b), np.empty_like(lam)
        value, g_sigma = loglik_and_grad(b, lam, sigma, packed.buffer, g_b, g_lam)
        assert value == pytest.approx(nested_loglik(b, lam, sigma, packed.buffer), rel=1e-12)
        bc, lc = b.astype(complex), lam.astype(complex)

        def step(bc, lc, sc):
            return nested_loglik(bc, lc, sc, packed.buffer).imag / h

        want_b = [step(bc + 1j * h * e, lc, sigma + 0j) for e in np.eye(len(b))]
        rows, cols = np.tril_indices(lam.shape[0])
        want_lam = []
        for a, c in zip(rows, cols):
            lc[a, c] += 1j * h
            want_lam.append(step(bc, lc, sigma + 0j))
            lc[a, c] = lam[a, c]
        np.testing.assert_allclose(g_b, want_b, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g_lam[rows, cols], want_lam, rtol=1e-10, atol=1e-10)
        assert g_sigma == pytest.approx(step(bc, lc, sigma + 1j * h), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("formula", NESTED)
def test_nested_exact_draws_have_the_conditional_mean_and_covariance(formula):
    """A draw is m + T z (z the standard normals the kernel is given): with z = 0 it is the
    posterior mean of all group effects given the parameters, and T T' their posterior
    covariance, both against the dense Gaussian (G^{-1} + Z'Z / sigma^2)^{-1}; the outer
    groups' log-likelihoods the kernel returns sum to the whole marginal log-likelihood."""
    from hierbayes.marginal.nested_draws import draw_nested_effects
    from hierbayes.marginal.stats import nested_stats

    design, packed = _nested(formula)
    ns = nested_stats(design)
    x = packed.start + np.random.default_rng(2).normal(0, 0.5, packed.n_dim)
    b, lam, sigma = packed.natural(x)
    q1 = sum(blk.size for blk in packed.blocks if blk.group != "h")
    C, S = len(ns.outer_of), len(ns.n_s)
    q2 = packed.q - q1

    def draw(z_in, z_out):
        e_in, e_out, ll = np.empty((1, C, q1)), np.empty((1, S, q2)), np.empty((1, S))
        draw_nested_effects(b[None], lam[None], np.array([sigma]), z_in[None], z_out[None], packed.buffer, ns.n_s,
                            ns.yty_s, ns.Xty_s, ns.XtX_s.reshape(S, -1), e_in, e_out, ll)  # fmt: skip
        draw.loglik = ll.sum()
        return np.concatenate([e_in.ravel(), e_out.ravel()])

    mean = draw(np.zeros((C, q1)), np.zeros((S, q2)))
    assert draw.loglik == pytest.approx(packed.loglik(x), rel=1e-10)
    T = np.column_stack([draw(e[: C * q1].reshape(C, q1), e[C * q1 :].reshape(S, q2)) - mean
                         for e in np.eye(C * q1 + S * q2)])  # fmt: skip
    Z, G = _joint_Z_and_G(design, packed, lam)
    precision = np.linalg.inv(G) + Z.T @ Z / sigma**2
    cov = np.linalg.inv(precision)
    np.testing.assert_allclose(mean, cov @ Z.T @ (design.y - design.X @ b) / sigma**2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(T @ T.T, cov, rtol=1e-8, atol=1e-10)


@pytest.mark.sampling
def test_nested_fit_is_the_same_model_with_pymcs_sampler():
    """``sampler="pymc"`` integrates out the same two nested factors as the default (the
    same kernels, through the Op) and stores the same LOO units (schools): fixed effects,
    SDs and sigma agree within Monte Carlo error, group effects' posterior means within
    0.1 posterior SD and their SDs within 10%."""
    import arviz as az

    rng = np.random.default_rng(5)
    rows = []
    for s in range(25):
        u_s = rng.normal(0, 0.8)
        for c in range(rng.integers(2, 6)):
            u_c = rng.normal(0, 0.5)
            for _ in range(rng.integers(3, 15)):
                x = rng.normal()
                rows.append({"school": f"s{s}", "class": f"c{c}", "x": x, "y": 1 + 0.5 * x + u_s + u_c + rng.normal()})
    data = pd.DataFrame(rows)
    formula = "y ~ x + (1 | school/class)"
    both = hb.fit(formula, data, random_seed=1, progressbar=False)
    text = both.summary()
    assert "'school' and 'school:class' integrated out" in text
    # the random-effects table's columns line up with a group name longer than 10 characters
    table = text.split("correlations):\n")[1].split("\nNumber of obs")[0].splitlines()
    assert len({len(line.replace("  Corr", "").rstrip()) for line in table}) == 1, table
    assert both.idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    one = hb.fit(formula, data, random_seed=2, progressbar=False, sampler="pymc")
    assert one.sampler == "pymc" and one.integrated == both.integrated == ("school", "school:class")
    assert "'school' and 'school:class' integrated out" in one.summary()
    assert one.idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    assert one.loo(by="group").n_data_points == both.loo(by="group").n_data_points == 25
    for var in ("b", "sd_school", "sd_school:class", "sigma"):
        a, b = both.posterior[var], one.posterior[var]
        se = np.sqrt(az.mcse(both.idata, var_names=[var])[var] ** 2 + az.mcse(one.idata, var_names=[var])[var] ** 2)
        z = ((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / se).values.reshape(-1)
        assert np.all(np.abs(z) < 4), (var, z)
    for var in ("r_school", "r_school:class"):
        a, b = both.posterior[var], one.posterior[var]
        sd = b.std(("chain", "draw"))
        assert float(np.abs((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / sd).max()) < 0.1
        np.testing.assert_allclose(a.std(("chain", "draw")), sd, rtol=0.1)


@pytest.mark.parametrize("formula", [SINGLE_FACTOR[1], SINGLE_FACTOR[2], NESTED[0], NESTED[3]])
def test_the_op_that_serves_pymc_has_the_kernels_gradient(formula):
    """PyMC reaches the kernels through one Op: its value is the packed model's
    log-likelihood and its gradient in (b, Lambda, sigma) passes PyTensor's finite-difference
    check (one factor: hand-written gradient; nested: hand-written for one effect per class,
    complex step otherwise)."""
    import pytensor

    from hierbayes.marginal.graph import IntegratedLoglik

    design, packed = _nested(formula) if "h" in formula else _packed(formula)
    x = packed.start + np.random.default_rng(4).normal(0, 0.5, packed.n_dim)
    b, lam, sigma = packed.natural(x)
    op = IntegratedLoglik(packed)
    assert float(op(b, lam, sigma).eval()) == pytest.approx(packed.loglik(x), rel=1e-12)
    pytensor.gradient.verify_grad(lambda b_, l_, s_: op(b_, pytensor.tensor.tril(l_), s_), [b, lam, np.asarray(sigma)],
                                  rng=np.random.default_rng(5), abs_tol=1e-5, rel_tol=1e-5)  # fmt: skip


_NO_NEW_COMPILE = """
import numba, numpy as np, pandas as pd, hierbayes as hb
from hierbayes import core, marginal, methods, sampled
from hierbayes.methods import warm
warm.warm_up()
mods = [m for pkg in (core, marginal, methods, sampled) for m in vars(pkg).values() if type(m).__name__ == "module"]
def signatures():
    return {f"{m.__name__}.{k}": len(v.signatures) for m in mods for k, v in vars(m).items()
            if isinstance(v, numba.core.registry.CPUDispatcher)}
before = signatures()
rng = np.random.default_rng(1)
d = pd.DataFrame({"x": rng.normal(size=300), "g": rng.integers(0, 10, 300).astype(str),
                  "h": rng.integers(0, 3, 300).astype(str)})
d["y"] = d["x"] + rng.normal(size=300)
d["k"] = rng.integers(0, 2, 300)
kw = dict(random_seed=1, progressbar=False, draws=50, tune=50, chains=2)
for formula, family in [("y ~ x + (x | g)", "gaussian"), ("y ~ x + (1 | g/h)", "gaussian"),
                        ("y ~ x + (1 | g) + (x | g:h)", "gaussian"),
                        ("y ~ x + (1 | g) + (1 | h)", "gaussian"), ("k ~ x + (x | g)", "bernoulli")]:
    hb.fit(formula, d, family=family, **kw).summary()
hb.fit("y ~ x + (1 | g) + (1 | h)", d, method="gibbs", **kw).summary()
after = signatures()
print(sorted(k for k in after if after[k] != before.get(k)))
"""


def test_fits_after_warm_up_compile_nothing_more():
    """``scripts/setup.sh`` runs the ``warm_up``s so that a user's first fit does not wait
    about 20 s for numba: every kernel a one-factor, nested, crossed or GLMM fit calls must
    already have the signature it is called with (a new one would be compiled, or loaded
    from the cache only where this machine happened to compile it before)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NO_NEW_COMPILE], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("formula", [
    "y ~ x + (x | h)", "y ~ x + (1 | h/g)", "y ~ x + (1 | h) + (x | h:g)",  # one factor; nested, one and two effects
    "y ~ x + (1 | h) + (1 | w_bin)", "y ~ x + offset(w) + (1 | g) + (x | h)",  # crossed
])  # fmt: skip
def test_a_response_far_from_zero_keeps_its_digits(formula):
    """The likelihood depends on y - X b only, so y + 1e6 with the intercept moved by 1e6 gives
    the same log density and gradient (one factor, nested, crossed). The statistics were of y
    itself, and r'r = y'y - 2 b'X'y + b'X'X b lost every digit (London + 1e6: R-hat 4.3)."""
    frame = _nested_data()
    frame["w_bin"] = np.where(frame["w"] > 0, "a", "b")
    packs = []
    for shift in (0.0, 1e6):
        shifted = frame.assign(y=frame["y"] + shift)
        design = hb.make_design(formula, shifted)
        packs.append(hb.make_model(design, hb.make_priors(design)).packed)
    assert packs[0].parameters[0] == "Intercept_c"
    for seed in range(5):
        x = packs[0].initial_point(seed)
        moved = x.copy()
        moved[0] += 1e6
        (v0, g0), (v1, g1) = packs[0].logp(x), packs[1].logp(moved)
        assert v1 == pytest.approx(v0, abs=1e-6)
        np.testing.assert_allclose(g1, g0, rtol=1e-6, atol=1e-6)
