"""The PyMC model: names, dims, and its likelihood checked by hand at a random point."""

import numpy as np
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.model import build_model
from hierbayes.parameterization import choose_parameterization, information_ratio
from hierbayes.design import make_design


def _random_point(model, seed):
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in model.initial_point().items()}


def _evaluate(model, point, names):
    """Values of named variables at a point of the sampler's (transformed) space."""
    outputs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")
    return dict(zip(names, fn(point)))


@pytest.mark.parametrize(
    "formula",
    [
        "normexam ~ standLRT + (1 | school)",  # well-informed groups: centred
        "normexam ~ standLRT + sex + (standLRT | school)",
        "normexam ~ standLRT + (standLRT || school)",
        "normexam ~ 0 + sex + (1 | school) + (0 + standLRT | school)",
        "normexam ~ standLRT + (1 + sex | school) + (1 | vr)",
    ],
)
def test_likelihood_matches_a_hand_computation(london, formula):
    design = make_design(formula, london)
    model = build_model(design)
    point = _random_point(model, seed=len(formula))
    names = ["b", "sigma"] + [f"{p}_{blk.name}" for blk in design.blocks for p in ("r", "sd")]
    names += [f"z_{blk.name}" for blk in design.blocks if f"z_{blk.name}" in model.named_vars]
    names += [f"L_{blk.name}" for blk in design.blocks if blk.correlated]
    v = _evaluate(model, point, names)

    mu = design.X @ v["b"]
    for blk in design.blocks:
        r = v[f"r_{blk.name}"]
        if f"z_{blk.name}" in v:  # non-centred: r = diag(sd) L z
            L = v[f"L_{blk.name}"] if blk.correlated else np.eye(blk.size)
            np.testing.assert_allclose(r, (v[f"z_{blk.name}"] @ L.T) * v[f"sd_{blk.name}"], rtol=1e-10)
        mu = mu + (r[design.factors[blk.group].codes] * blk.Z).sum(axis=1)
    expected = stats.norm.logpdf(design.y, mu, v["sigma"]).sum()

    obs = model.observed_RVs[0]
    loglik = model.compile_fn(model.logp(vars=[obs]), inputs=model.value_vars, on_unused_input="ignore")
    assert float(loglik(point)) == pytest.approx(expected, rel=1e-9)


def test_names_dims_and_coords_follow_the_design(london):
    model = build_model(make_design("normexam ~ standLRT + sex + (standLRT | school)", london))
    assert {v.name for v in model.free_RVs} == {"Intercept_c_std", "beta_std", "sd_school", "z_school", "L_school", "sigma"}
    assert model.named_vars_to_dims["b"] == ("term",)
    assert model.named_vars_to_dims["r_school"] == ("school", "school__effect")
    assert model.coords["term"] == ("(Intercept)", "standLRT", "sexM")
    assert model.coords["school"][:2] == ("1", "2") and len(model.coords["school"]) == 65
    assert model.coords["school__effect"] == ("(Intercept)", "standLRT")


def test_intercept_is_reported_on_the_data_scale(london):
    """b[(Intercept)] = Intercept_c - mean(x) . beta: the centring is undone."""
    design = make_design("normexam ~ standLRT + sex + (1 | school)", london)
    model = build_model(design)
    point = _random_point(model, seed=3)
    v = _evaluate(model, point, ["b", "Intercept_c", "beta"])
    means = design.X[:, 1:].mean(axis=0)
    assert v["b"][0] == pytest.approx(v["Intercept_c"] - means @ v["beta"])
    np.testing.assert_allclose(v["b"][1:], v["beta"])


def test_mixed_prior_families_on_one_class_still_build(london):
    design = make_design("normexam ~ standLRT + sex + (standLRT | school)", london)
    model = build_model(design, {"b_sexM": "StudentT(3, 0, 1)", "sd_school__standLRT": "Exponential(10)"})
    names = {v.name for v in model.free_RVs}
    assert {"beta_std[0]", "beta_std[1]", "sd_school[0]", "sd_school[1]"} <= names
    assert model.named_vars_to_dims["sd_school"] == ("school__effect",)


def test_build_returns_an_unsampled_model_users_can_edit(london):
    model = hb.build("normexam ~ standLRT + (1 | school)", london)
    with model:  # e.g. add a derived quantity before sampling
        import pymc as pm

        pm.Deterministic("icc", model["sd_school"][0] ** 2 / (model["sd_school"][0] ** 2 + model["sigma"] ** 2))
    assert "icc" in model.named_vars


def test_unknown_family_is_refused_before_building(london):
    with pytest.raises(ValueError, match="unknown family 'gamma'; available: gaussian"):
        hb.fit("normexam ~ standLRT + (1 | school)", london, family="gamma")


def test_auto_parameterization_centres_only_well_informed_one_term_blocks(london):
    pen = hb.datasets.load("penicillin")
    design = make_design("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    # samples are measured on 24 plates each; plates' effects are small against the samples'
    assert choose_parameterization(design) == {"plate": "noncentered", "sample": "centered"}
    assert information_ratio(design, design.blocks[1]) > 1 > information_ratio(design, design.blocks[0])
    rs = make_design("normexam ~ standLRT + (standLRT | school)", london)
    assert choose_parameterization(rs) == {"school": "noncentered"}  # correlated: non-centred
    assert choose_parameterization(design, {"sample": "noncentered"})["sample"] == "noncentered"
    with pytest.raises(ValueError, match="unknown block"):
        choose_parameterization(design, {"herd": "centered"})
    with pytest.raises(ValueError, match="only its non-centred form"):
        choose_parameterization(rs, "centered")


def test_parameterization_applies_to_the_sampled_blocks_only(london):
    """The model decides, before any PyMC model exists, what is integrated out and how the
    rest is sampled: a parameterisation for integrated-out blocks is not needed (as before
    the restructure, it is not checked); for sampled ones it is."""
    rs = make_design("normexam ~ standLRT + (standLRT | school)", london)
    marginal = hb.make_model(rs, parameterization="centered")
    assert marginal.method == "marginal" and marginal.integrated == ("school",) and marginal.parameterization == {}
    assert marginal.packed is not None and "pymc" not in marginal.__dict__  # the PyMC model is not built yet
    # the packed sampled model centres a correlated block around its fixed effects
    full = hb.make_model(rs, method="full", parameterization="centered")
    assert full.parameterization == {"school": "centered"} and full.packed.parameters[-1].startswith("a_school[")
    pen = make_design("diameter ~ 1 + (1 | plate) + (1 | sample)", hb.datasets.load("penicillin"))
    crossed = hb.make_model(pen)  # plate (24 levels) integrated out, sample (6) sampled, well informed
    assert crossed.integrated == ("plate",) and crossed.parameterization == {"sample": "centered"}
    # its centred intercepts partially centred on the intercept (a_j = r_j + w (b_0 - c))
    assert crossed.packed.n_integrated == 1 and crossed.packed.parameters[-1].startswith("a_sample[")


def test_fixed_effects_are_sampled_standardised_under_the_same_priors(london):
    """Intercept_c and beta are sampled with the response's scale divided out
    (x = loc + scale z): the log density of z is the declared prior's at x plus log(scale),
    for a Normal and a StudentT prior alike, so the posterior is unchanged."""
    from scipy import stats

    from hierbayes.families import response_scale

    design = make_design("normexam ~ standLRT + sex + (1 | school)", london)
    resolved = hb.make_priors(design, {"b_sexM": "StudentT(3, 0.2, 1)", "Intercept": "Normal(1, 2)"})
    model = build_model(design, resolved)
    point = model.initial_point()  # the slopes' priors differ in family: one scalar each
    point["beta_std[0]"], point["beta_std[1]"], point["Intercept_c_std"] = np.array(0.3), np.array(-1.2), np.array(0.7)
    rvs = [model["beta_std[0]"], model["beta_std[1]"], model["Intercept_c_std"]]
    logp = model.compile_logp(vars=rvs, sum=False)(point)
    s_y, X = response_scale(design.y), design.X
    x_icpt = design.y.mean() + s_y * 0.7
    assert float(logp[2]) == pytest.approx(stats.norm.logpdf(x_icpt, 1, 2) + np.log(s_y), rel=1e-10)
    expected = 0.0
    for k, (term, z) in enumerate(zip(["standLRT", "sexM"], [0.3, -1.2]), start=1):
        scale = s_y / X[:, k].std()
        prior = resolved.get("b", coef=term).kwargs
        dist = stats.norm(prior["mu"], prior["sigma"]) if "nu" not in prior else stats.t(prior["nu"], prior["mu"], prior["sigma"])
        expected += dist.logpdf(scale * z) + np.log(scale)
    # PyMC's StudentT log density and scipy's differ by about 4e-9 (their log-gamma constants)
    assert float(logp[0] + logp[1]) == pytest.approx(expected, abs=1e-8)


def test_import_leaves_pymc_and_the_plotting_libraries_for_later():
    """``import hierbayes`` loads neither PyMC, PyTensor, matplotlib nor arviz-plots (about
    1.4 s together; a default fit needs none of them); the plot functions load matplotlib
    at first use and are listed by ``dir``."""
    import subprocess
    import sys

    code = ("import sys, hierbayes as hb\n"
            "print(sorted(m for m in ('pymc', 'pytensor', 'matplotlib', 'arviz_plots') if m in sys.modules))\n"
            "print(callable(hb.plot_forest), 'matplotlib' in sys.modules, 'plot_forest' in dir(hb))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "True True True"]
    with pytest.raises(AttributeError, match="no attribute 'plot_nothing'"):
        hb.plot_nothing  # noqa: B018
