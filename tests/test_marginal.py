"""The integrated-out (marginal) Gaussian path: its likelihood against the dense multivariate
normal, its exact group-effect draws, and its posterior against the full model's."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import hierbayes as hb
from hierbayes.marginal.stats import integrated_factors, largest_factor, response_shift, sufficient_stats
from hierbayes.methods.choice import choose_method


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


def _point_values(model, seed):
    """Values of every deterministic at a random point of the unconstrained space."""
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in model.initial_point().items()}
    names = [v.name for v in model.deterministics] + [p.name for p in model.potentials]
    names += [v.name for v in model.free_RVs if v.name.startswith(("sd_", "sigma", "r_"))]
    outs = [model[n] for n in names]
    values = model.compile_fn(model.replace_rvs_by_values(outs), inputs=model.value_vars,
                              on_unused_input="ignore", point_fn=False)(**point)  # fmt: skip
    return dict(zip(names, values))


@pytest.mark.parametrize("formula", [
    "y ~ x + (x | g)",                      # q = 2, correlated
    "y ~ x + sex + (1 + x + w | g)",        # q = 3, correlated
    "y ~ x + (x || g)",                     # two independent blocks on one factor
    "y ~ x + (x | g) + (0 + w | g)",        # a correlated block and an independent one
    "y ~ 1 + (1 | g)",                      # intercept only
    "y ~ x + (x | g) + (1 | h)",            # crossed: g (7 levels) out, h (2) sampled
    "y ~ x + (1 | h/g)",                    # nested: h:g and h out (the numba kernels through an Op)
])  # fmt: skip
def test_marginal_log_likelihood_is_the_dense_normal_density(formula):
    """The Potential equals log N(y | X b + Z_s b_s, sigma^2 I + Z G Z'): the integrated
    factor's effects in the covariance, any sampled factor's effects in the mean."""
    data = _data()
    data["h"] = np.where(np.arange(len(data)) % 2 == 0, "odd", "even")
    design = hb.make_design(formula, data)
    model = hb.build_model(design, method="marginal")
    out = integrated_factors(design)
    for seed in (0, 1):
        v = _point_values(model, seed)
        b, sigma = v["b"], float(v["sigma"])
        mean = design.X @ b
        V = sigma**2 * np.eye(design.n_obs)
        for block in design.blocks:
            codes = design.factors[block.group].codes
            if block.group not in out:
                mean = mean + (v[f"r_{block.name}"][codes] * block.Z).sum(axis=1)
                continue
            sd = v[f"sd_{block.name}"]
            cor = v[f"cor_{block.name}"] if block.correlated else np.eye(block.size)
            G = np.outer(sd, sd) * cor
            V += (codes[:, None] == codes[None, :]) * (block.Z @ G @ block.Z.T)
        dense = multivariate_normal(mean, V).logpdf(design.y)
        assert float(v["marginal_loglik"]) == pytest.approx(dense, rel=1e-10, abs=1e-8)


def test_sufficient_statistics_are_per_group_cross_products():
    design = hb.make_design("y ~ x + sex + (x | g)", _data())
    s = sufficient_stats(design)
    rows = design.factors["g"].codes == 3
    Z, X = design.blocks[0].Z[rows], design.X[rows]
    np.testing.assert_allclose(s.ZtZ[3], Z.T @ Z)
    np.testing.assert_allclose(s.ZtX[3], Z.T @ X)
    y = design.y - design.y.mean()  # of y - c, c the response's mean (the kernels take it off the intercept)
    assert response_shift(design) == pytest.approx(design.y.mean())
    np.testing.assert_allclose(s.Zty[3], Z.T @ y[rows])
    assert s.n == design.n_obs and s.yty == pytest.approx(y @ y)


def test_method_choice():
    data = _data()
    data["h"] = np.where(data["x"] > 0, "a", "b")
    def choose(design, method="auto", **kw):
        return choose_method(design, hb.make_priors(design), method, **kw)

    one = choose(hb.make_design("y ~ x + (x | g)", data))
    assert (one.method.name, one.method.sampler) == ("marginal", "nutpie")
    assert one.reason == "the Gaussian group effects of g integrated out exactly; nutpie on hierbayes' kernels"
    crossed = hb.make_design("y ~ x + (1 | g) + (1 | h)", data)
    assert choose(crossed).method.name == "marginal" and largest_factor(crossed) == "g" and integrated_factors(crossed) == ("g",)  # 7 levels > 2
    glmm = choose(hb.make_design("y ~ x + (1 | g)", data.assign(y=(data["y"] > 0).astype(int)), family="bernoulli"))
    assert glmm.method.name == "full" and "every group effect sampled: the bernoulli family's" in glmm.reason
    # the same model on the PyMC graph, with the reason
    pymc = choose(hb.make_design("y ~ x + (x | g)", data), sampler="pymc")
    assert (pymc.method.name, pymc.method.sampler) == ("marginal", "pymc") and "because of sampler='pymc'" in pymc.reason
    options = choose(hb.make_design("y ~ x + (x | g)", data), options={"discard_tuned_samples": True})
    assert options.method.sampler == "nutpie" and "options only pymc.sample takes (discard_tuned_samples)" in options.reason
    with pytest.raises(ValueError, match="does not apply: the model has no group-level effects"):
        choose(hb.make_design("y ~ x", data), "marginal")
    with pytest.raises(ValueError, match="method must be one of"):
        choose(hb.make_design("y ~ x + (1 | g)", data), "pql")
    with pytest.raises(ValueError, match="method='laplace' does not apply: it serves .* not the Gaussian"):
        choose(hb.make_design("y ~ x + (1 | g)", data), "laplace")


# --- against the full model, with real sampling ----------------------------------------------


@pytest.fixture(scope="module")
def full_fits():
    """The full (non-centred) model of two reference models, for comparison with the default."""
    out = {}
    for name, formula, data in [("sleepstudy", "Reaction ~ Days + (Days | Subject)", "sleepstudy"),
                                ("london", "normexam ~ standLRT + (standLRT | school)", "london_exam"),
                                ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin")]:  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("error", hb.SamplingWarning)
            out[name] = hb.fit(formula, hb.datasets.load(data), method="full", random_seed=7, progressbar=False)
    return out


def _z_scores(a, b, name, relative_to=None):
    """(mean_a - mean_b) / sqrt(mcse_a^2 + mcse_b^2) for every element of a variable; with
    ``relative_to`` (a dimension), of each element less the draw's mean over that dimension."""
    import arviz_stats as azs

    da, db = a.posterior[name], b.posterior[name]
    if relative_to is not None:
        da, db = da - da.mean(relative_to), db - db.mean(relative_to)
    ma, mb = da.mean(("chain", "draw")), db.mean(("chain", "draw"))
    sa, sb = azs.mcse(da), azs.mcse(db)
    return np.asarray(((ma - mb) / np.sqrt(sa**2 + sb**2)).values).reshape(-1)


@pytest.mark.sampling
@pytest.mark.parametrize("name, ref", [("sleepstudy", "sleepstudy_rs_reml"), ("london", "london_rs_ml"),
                                       ("penicillin", "penicillin_crossed_reml")])  # fmt: skip
def test_marginal_and_full_posteriors_agree(fits, full_fits, name, ref):
    """Within Monte Carlo error (z-scores of the difference of posterior means, each over
    the MCSE of both); crossed Penicillin checks the integrated factor and the sampled one."""
    marginal, _ = fits(ref)
    full = full_fits[name]
    assert marginal.method == "marginal" and full.method == "full"
    for var in ("b", "sigma"):
        z = _z_scores(marginal, full, var)
        assert np.all(np.abs(z) < 4), (var, z)
    for block in marginal.design.blocks:
        z = _z_scores(marginal, full, f"sd_{block.name}")
        assert np.all(np.abs(z) < 4), z
        # group effects drawn exactly afterwards (or sampled) agree with the full model's; less
        # their mean over the groups, which trades off against the intercept (compared above)
        # and which the full model mixes slowly on crossed factors
        z = _z_scores(marginal, full, f"r_{block.name}", relative_to=block.group)
        assert np.mean(np.abs(z) > 3) < 0.02 and np.all(np.abs(z) < 5), np.sort(np.abs(z))[-5:]
        # and their posterior SDs too
        sa = marginal.posterior[f"r_{block.name}"].std(("chain", "draw"))
        sb = full.posterior[f"r_{block.name}"].std(("chain", "draw"))
        np.testing.assert_allclose(sa, sb, rtol=0.1)


@pytest.mark.sampling
def test_loo_on_the_full_model_is_per_row(full_fits):
    assert full_fits["sleepstudy"].loo().n_data_points == 180


@pytest.mark.sampling
def test_marginal_summary_says_so(fits):
    fit, _ = fits("sleepstudy_rs_reml")
    assert "group effects of 'Subject' integrated out" in fit.summary()
    assert "z_Subject" not in fit.posterior and "r_Subject" in fit.posterior


@pytest.mark.sampling
def test_per_group_log_likelihood_and_leave_one_group_out(fits):
    fit, _ = fits("sleepstudy_rs_reml")
    ll = fit.idata.log_likelihood["Reaction"]
    assert ll.dims == ("chain", "draw", "Subject") and ll.sizes["Subject"] == 18
    post = fit.posterior.isel(chain=0, draw=5)
    d = fit.design
    sd, cor = post["sd_Subject"].values, post["cor_Subject"].values
    G = np.outer(sd, sd) * cor
    sigma = float(post["sigma"])
    for j in (0, 7):
        rows = d.factors["Subject"].codes == j
        Z = d.blocks[0].Z[rows]
        dense = multivariate_normal(d.X[rows] @ post["b"].values, sigma**2 * np.eye(rows.sum()) + Z @ G @ Z.T)
        assert float(ll.isel(chain=0, draw=5, Subject=j)) == pytest.approx(dense.logpdf(d.y[rows]), rel=1e-10)
    loo = fit.loo(by="group")
    assert loo.n_data_points == 18
