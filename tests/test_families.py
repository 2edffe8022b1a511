"""The Family seam (hierbayes.families): the Gaussian entry's maths, and the stages that read it
from ``Design.family`` (design, priors, variance, predict, results, report). No sampling: the
fits here are synthetic posteriors wrapped in a FitResult."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hierbayes import names
from hierbayes.design import DataError, make_design
from hierbayes.families import FAMILIES, GAUSSIAN, Family, Parameter, get_family, response_scale
from hierbayes.priors import Prior, PriorError, make_priors


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    g = np.repeat([f"g{j}" for j in range(6)], 5)
    x = rng.normal(size=30)
    return pd.DataFrame({"y": 1.0 + 0.5 * x + rng.normal(size=30), "x": x, "g": g})


def test_gaussian_loglik_is_the_normal_log_density():
    y, mu, sigma = np.array([0.3, -1.2, 2.0]), np.array([0.0, -1.0, 1.5]), 0.7
    hand = -np.log(sigma) - 0.5 * np.log(2 * np.pi) - (y - mu) ** 2 / (2 * sigma**2)
    np.testing.assert_allclose(GAUSSIAN.loglik(y, mu, {names.SIGMA: sigma}), hand, rtol=1e-12)


def test_gaussian_mean_variance_and_residual_variance():
    eta = np.array([[0.5, -2.0]])
    assert GAUSSIAN.link == "identity" and GAUSSIAN.links == ("identity",)
    np.testing.assert_array_equal(GAUSSIAN.mean(eta), eta)
    np.testing.assert_allclose(GAUSSIAN.variance(eta, {names.SIGMA: 3.0}), [[9.0, 9.0]])
    sigma = np.array([[0.5, 2.0], [1.5, 3.0]])  # (chain, draw)
    np.testing.assert_allclose(GAUSSIAN.residual_variance({names.SIGMA: sigma}), sigma**2)


def test_gaussian_draw_adds_normal_noise_with_the_sd():
    mu, sigma = np.zeros((2, 3, 4)), np.full((2, 3, 1), 2.0)
    drawn = GAUSSIAN.draw(mu, {names.SIGMA: sigma}, np.random.default_rng(1))
    np.testing.assert_allclose(drawn, 2.0 * np.random.default_rng(1).standard_normal((2, 3, 4)))


def test_gaussian_entry_texts_and_parameters():
    assert GAUSSIAN.name == "gaussian"
    assert GAUSSIAN.label == "Gaussian (identity link)"
    assert GAUSSIAN.summary_title == "Bayesian linear mixed model (Gaussian)"
    assert GAUSSIAN.param_names == (names.SIGMA,)
    dist, kwargs = GAUSSIAN.params[0].default_prior(np.array([1.0, 3.0, 5.0]))
    assert (dist, kwargs) == ("HalfStudentT", {"nu": 3.0, "sigma": 2.0})
    assert set(FAMILIES) == {"gaussian", "student_t", "bernoulli", "binomial", "poisson", "negativebinomial"}


def test_response_scale_falls_back_to_one():
    assert response_scale([2.0, 2.0, 2.0]) == 1.0
    assert response_scale([4.0]) == 1.0
    assert response_scale([1.0, 3.0]) == pytest.approx(np.sqrt(2.0))


def test_get_family_names_the_unknown_family():
    assert get_family("gaussian") is GAUSSIAN
    assert get_family(GAUSSIAN) is GAUSSIAN
    assert get_family("t").name == "student_t" and get_family("Poisson").link == "log"
    assert get_family("binomial", link="probit").link == "probit"
    with pytest.raises(ValueError, match=r"^unknown family 'gamma'; available: gaussian, student_t, bernoulli"):
        get_family("gamma")
    with pytest.raises(ValueError, match=r"the poisson family has no 'logit' link; it has log, identity, sqrt"):
        get_family("poisson", link="logit")


def test_a_link_the_family_lacks_is_refused():
    with pytest.raises(ValueError, match="has no 'log' link"):
        dataclasses.replace(GAUSSIAN, link="log")


def test_check_response_returns_a_message_or_none():
    assert GAUSSIAN.check_response(pd.Series([1.0, 2.0]), "y") is None
    message = GAUSSIAN.check_response(pd.Series(["a", "b"]), "score")
    assert message.startswith("the response 'score' must be numeric for the Gaussian family")
    assert "'a'" in message
    assert GAUSSIAN.check_response(pd.Series([True, False]), "flag") is not None


def test_non_numeric_response_raises_data_error_naming_the_column(data):
    bad = data.assign(y=np.where(data.y > 1, "high", "low"))
    with pytest.raises(DataError, match=r"the response 'y' must be numeric for the Gaussian family"):
        make_design("y ~ x + (1 | g)", bad)


def test_make_design_carries_the_family(data):
    assert make_design("y ~ x + (1 | g)", data).family is GAUSSIAN
    assert make_design("y ~ x + (1 | g)", data, family="gaussian").family is GAUSSIAN
    assert make_design("y ~ x + (1 | g)", data, None, family=GAUSSIAN).family is GAUSSIAN
    # lme4's spelling: family="binomial" on a one-column response is Bernoulli, which wants 0/1
    with pytest.raises(DataError, match="the response 'y' must be 0/1 .* for the Bernoulli family"):
        make_design("y ~ x + (1 | g)", data, family="binomial")


def test_the_residual_prior_comes_from_the_family(data):
    design = make_design("y ~ x + (1 | g)", data)
    s_y = float(np.std(design.y, ddof=1))
    assert make_priors(design).get("sigma") == Prior("HalfStudentT", nu=3.0, sigma=s_y)
    # another family's own parameter becomes a prior class of its own, with its own key and support
    phi = Parameter("phi", "positive", lambda y: ("HalfNormal", {"sigma": 2.0}))
    other = dataclasses.replace(design, family=dataclasses.replace(GAUSSIAN, params=(phi,)))
    table = make_priors(other, {"phi": "Normal(0, 5)"}).table()
    assert table["class"].iloc[-1] == "phi" and table["prior"].iloc[-1] == "HalfNormal(sigma=5)"
    assert "sigma" not in set(table["class"])
    assert str(make_priors(other).get("phi")) == "HalfNormal(sigma=2)"
    with pytest.raises(PriorError, match="no parameter matches prior key"):
        make_priors(other, {"sigma": "HalfNormal(1)"})


# --- the later stages, on a synthetic posterior --------------------------------------------------


@pytest.fixture(scope="module")
def fake_fit(data):
    from hierbayes.model import Model
    from hierbayes.results import FitResult
    from hierbayes.sampling import Diagnostics

    design = make_design("y ~ x + (1 | g)", data)
    rng = np.random.default_rng(3)
    C, D = 2, 40
    block = design.blocks[0]
    posterior = xr.Dataset(
        {
            names.FIXED: (("chain", "draw", names.TERM), rng.normal(size=(C, D, 2))),
            names.sd(block): (("chain", "draw", names.effect_dim(block)), np.abs(rng.normal(size=(C, D, 1)))),
            names.effects(block): (("chain", "draw", "g", names.effect_dim(block)), rng.normal(size=(C, D, 6, 1))),
            names.SIGMA: (("chain", "draw"), 0.5 + np.abs(rng.normal(size=(C, D)))),
        },
        coords={"chain": range(C), "draw": range(D), names.TERM: list(design.fixed_terms),
                names.effect_dim(block): list(block.terms), "g": list(design.factors["g"].levels)},
    )  # fmt: skip
    built = Model(design=design, priors=make_priors(design), method="full", integrated=(), parameterization={})
    return FitResult(built=built, idata=xr.DataTree.from_dict({"posterior": posterior}), sampler="nutpie",
                     diagnostics=Diagnostics(0, 1.0, 400.0, 400.0, "b", "b", ()))  # fmt: skip


def test_variance_reads_the_residual_variance_from_the_family(fake_fit):
    from hierbayes.variance import residual_variance

    sigma = fake_fit.posterior[names.SIGMA].values
    np.testing.assert_allclose(residual_variance(fake_fit), sigma**2)
    vc = fake_fit.variance_components(draws=True)
    np.testing.assert_allclose(vc.sel(level="Residual", quantity="variance").values, sigma**2)
    assert fake_fit.varcorr().iloc[-1]["vcov"] == pytest.approx((sigma**2).mean())


def test_posterior_predictive_draws_go_through_the_family(fake_fit):
    mean = fake_fit.predict(draws=True).values
    pp = fake_fit.predict(kind="pp", draws=True, random_seed=5).values
    noise = np.random.default_rng(5).standard_normal(mean.shape) * fake_fit.posterior[names.SIGMA].values[..., None]
    np.testing.assert_allclose(pp, mean + noise)


def test_summary_and_report_name_the_family(fake_fit):
    from hierbayes.report import _model_line

    assert fake_fit.summary().splitlines()[0] == "Bayesian linear mixed model (Gaussian), NUTS via nutpie"
    assert _model_line(fake_fit, "").startswith("Family: Gaussian (identity link). Fit: NUTS via nutpie")
    renamed = dataclasses.replace(GAUSSIAN, title="Normal")
    design = dataclasses.replace(fake_fit.design, family=renamed)
    other = dataclasses.replace(fake_fit, built=dataclasses.replace(fake_fit.built, design=design))
    assert other.summary().startswith("Bayesian linear mixed model (Normal), NUTS via nutpie")
    assert _model_line(other, "").startswith("Family: Normal (identity link).")


def test_family_is_a_frozen_declarative_entry():
    assert isinstance(GAUSSIAN, Family)
    with pytest.raises(dataclasses.FrozenInstanceError):
        GAUSSIAN.name = "normal"
