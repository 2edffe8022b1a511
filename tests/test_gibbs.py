"""The Gibbs route (``hierbayes.gibbs``): when ``hb.fit`` takes it, and that its posterior is
the one NUTS samples for the same model."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.sampling import GROUPS_CHECKED, checked_groups


def _crossed(seed=3, n_subjects=30, n_items=20, reps=2, sd=(0.6, 0.4)):
    """Every subject sees every item ``reps`` times: well-informed groups (40 and 60 rows)."""
    rng = np.random.default_rng(seed)
    s, i = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    s, i = np.repeat(s.ravel(), reps), np.repeat(i.ravel(), reps)
    x = rng.normal(size=len(s))
    y = 1 + 0.5 * x + rng.normal(0, sd[0], n_subjects)[s] + rng.normal(0, sd[1], n_items)[i] + rng.normal(size=len(s))
    return pd.DataFrame({"y": y, "x": x, "subject": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]})


def test_auto_takes_gibbs_for_well_informed_crossed_intercepts_only():
    data = _crossed()
    design = hb.make_design("y ~ x + (1 | subject) + (1 | item)", data)
    assert hb.make_model(design).method == "gibbs"
    assert hb.make_model(design, method="marginal").method == "marginal"
    assert hb.make_model(design, parameterization={"item": "noncentered"}).method == "marginal"
    # correlated blocks, one factor, another family, a Student-t prior on a slope: not Gibbs
    for formula, kw in [("y ~ x + (x | subject) + (1 | item)", {}), ("y ~ x + (1 | subject)", {}),
                        ("y ~ x + (1 | subject) + (1 | item)", {"priors": {"b": hb.Prior("StudentT", nu=3, mu=0, sigma=1)}})]:  # fmt: skip
        other = hb.make_design(formula, data)
        assert hb.make_model(other, **kw).method != "gibbs", formula
    with pytest.raises(ValueError, match="method='gibbs' does not apply: it needs group effects of one term"):
        hb.make_model(hb.make_design("y ~ x + (x | subject) + (1 | item)", data), method="gibbs")
    data["k"] = (data["y"] > 1).astype(int)
    with pytest.raises(ValueError, match="not the Bernoulli"):
        hb.make_model(hb.make_design("k ~ x + (1 | subject) + (1 | item)", data, family="bernoulli"), method="gibbs")


@pytest.mark.sampling
def test_gibbs_posterior_is_the_nuts_posterior():
    """The same model sampled by Gibbs (the default here) and by NUTS with the items
    integrated out: fixed effects, SDs and sigma agree within 4 Monte Carlo SEs, and two
    subjects' effects within 4 SEs; Gibbs draws are reproducible from the seed; a sampler
    option sends ``auto`` to NUTS, and ``method="gibbs"`` refuses one."""
    import arviz_stats as azs

    data = _crossed()
    formula = "y ~ x + (1 | subject) + (1 | item)"
    gibbs = hb.fit(formula, data, random_seed=1, progressbar=False)
    assert gibbs.method == "gibbs" and gibbs.sampler == "gibbs" and "Gibbs sampling" in gibbs.summary()
    assert gibbs.diagnostics.ok, gibbs.diagnostics.messages
    again = hb.fit(formula, data, random_seed=1, progressbar=False)
    np.testing.assert_array_equal(gibbs.posterior["sd_item"].values, again.posterior["sd_item"].values)
    nuts = hb.fit(formula, data, random_seed=2, progressbar=False, sampler="nutpie")
    assert nuts.method == "marginal" and nuts.sampler == "nutpie"
    for var in ("b", "sd_subject", "sd_item", "sigma"):
        a, b = gibbs.posterior[var], nuts.posterior[var]
        se = np.sqrt(azs.mcse(gibbs.idata, var_names=[var])[var] ** 2 + azs.mcse(nuts.idata, var_names=[var])[var] ** 2)
        z = ((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / se).values.reshape(-1)
        assert np.all(np.abs(z) < 4), (var, z)
        ratio = (a.std(("chain", "draw")) / b.std(("chain", "draw"))).values.reshape(-1)
        assert np.all(np.abs(ratio - 1) < 0.1), (var, ratio)
    effects = gibbs.posterior["r_subject"].sel(subject=["s0", "s7"]), nuts.posterior["r_subject"].sel(subject=["s0", "s7"])
    diff = (effects[0].mean(("chain", "draw")) - effects[1].mean(("chain", "draw"))) / effects[1].std(("chain", "draw"))
    assert np.all(np.abs(diff.values) < 0.1)
    with pytest.raises(ValueError, match="takes no sampler='pymc'"):
        hb.fit(formula, data, method="gibbs", sampler="pymc", progressbar=False)


@pytest.mark.sampling
def test_gibbs_recovers_a_simulated_truth_with_a_slope_term_and_an_offset():
    """(x || item) gives the items two one-term blocks drawn together; an offset is taken off
    y; 1,200 rows simulated with SDs 0.6, 0.4 and 0.3, residual 1: each within 3 posterior SDs."""
    rng = np.random.default_rng(11)
    data = _crossed(seed=11, sd=(0.6, 0.4))
    slope = rng.normal(0, 0.3, 20)
    data["y"] += slope[data["item"].str[1:].astype(int)] * data["x"]
    data["w"] = rng.normal(size=len(data))
    data["y"] += data["w"]
    fit = hb.fit("y ~ x + offset(w) + (1 | subject) + (x || item)", data, random_seed=3, progressbar=False,
                 method="gibbs")  # fmt: skip
    post = fit.posterior
    for value, draws in [(1.0, post["b"].sel(term="(Intercept)")), (0.5, post["b"].sel(term="x")),
                         (1.0, post["sigma"])]:  # fmt: skip
        assert abs(float(draws.mean()) - value) < 3 * float(draws.std()) + 0.02
    truth = {"sd_subject": 0.6, "sd_item": 0.4, "sd_item.1": 0.3}  # (x || item): blocks item and item.1
    assert sorted(v for v in post.data_vars if v.startswith("sd_")) == sorted(truth)
    for name, value in truth.items():
        sd = post[name]
        assert abs(float(sd.mean()) - value) < 3 * float(sd.std()) + 0.05, (name, float(sd.mean()))


@pytest.mark.sampling
def test_gibbs_on_a_factor_without_variance_warns_and_points_to_nuts():
    """The items have no variance: ``auto`` keeps NUTS; Gibbs, forced, mixes slowly near SD 0,
    says so and names the method that samples the model by NUTS; no draw is lost."""
    data = _crossed(sd=(0.6, 0.0))
    formula = "y ~ x + (1 | subject) + (1 | item)"
    assert hb.make_model(hb.make_design(formula, data)).method == "marginal"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", hb.SamplingWarning)
        fit = hb.fit(formula, data, method="gibbs", random_seed=1, progressbar=False)
    said = [str(w.message) for w in caught if issubclass(w.category, hb.SamplingWarning)]
    assert any("sd_item" in m for m in said) and any("method='marginal' samples the same model by NUTS" in m for m in said)
    assert np.isfinite(fit.posterior["r_item"]).all() and float(fit.posterior["sd_item"].min()) > 0


def test_checked_groups_spread_over_the_group_sizes():
    codes = np.repeat(np.arange(1000), np.arange(1000) % 17 + 1)  # group g has g % 17 + 1 rows
    picks = checked_groups(codes, 1000)
    sizes = np.bincount(codes)
    assert len(picks) == GROUPS_CHECKED and np.all(np.diff(picks) > 0)
    assert sizes[picks].min() == 1 and sizes[picks].max() == 17  # the least and the best informed
    assert np.array_equal(checked_groups(codes[:40], 10, k=250), np.arange(10))  # fewer groups: all
