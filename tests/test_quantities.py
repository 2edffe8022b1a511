"""What users fit a multilevel model for: ICC, R², variance components and their reduction,
shrinkage, ranks, predictions and the frequentist side by side, from real NUTS fits.

Reference models are fitted once per session (conftest ``fits``). Quantities are checked
against lme4's numbers where lme4 gives them, and otherwise against the same quantity
computed by hand from the posterior draws (exact), or against simulated truth.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

pytestmark = pytest.mark.sampling


def _vc(ref, grp, var1=""):
    import ast

    rows = ast.literal_eval(ref["varcorr"]) if isinstance(ref["varcorr"], str) else ref["varcorr"]
    return next(r["vcov"] for r in rows if r["grp"] == grp and (r["var1"] or "") == var1)


# --- ICC and variance components --------------------------------------------------------------


def _lme4_icc(ref):
    return _vc(ref, "school", "(Intercept)") / (_vc(ref, "school", "(Intercept)") + _vc(ref, "Residual"))


def test_london_random_intercept_icc_matches_lme4(fits):
    fit, ref = fits("london_ri_ml")
    lme4 = _lme4_icc(ref)
    assert lme4 == pytest.approx(0.140, abs=5e-4)
    icc = fit.icc().set_index("icc")
    assert icc.loc["school", "mean"] == pytest.approx(lme4, abs=0.03)
    assert icc.loc["adjusted", "mean"] == icc.loc["school", "mean"]  # one factor: the same thing
    assert icc.loc["conditional", "mean"] < icc.loc["adjusted", "mean"]  # standLRT explains variance
    assert icc.loc["school", "lower"] < lme4 < icc.loc["school", "upper"]


def test_london_empty_model_icc_matches_lme4(fits):
    fit, ref = fits("london_null_reml")
    lme4 = _lme4_icc(ref)
    assert lme4 == pytest.approx(0.168, abs=5e-4)
    icc = fit.icc().set_index("icc")
    assert icc.loc["adjusted", "mean"] == pytest.approx(lme4, abs=0.03)
    # no fixed covariates: conditional and adjusted ICC coincide
    assert icc.loc["conditional", "mean"] == pytest.approx(icc.loc["adjusted", "mean"], abs=1e-12)


def test_icc_is_computed_draw_by_draw(fits):
    fit, _ = fits("london_ri_ml")
    post = fit.posterior
    tau2, sigma2 = post["sd_school"].sel(school__effect="(Intercept)") ** 2, post["sigma"] ** 2
    by_hand = (tau2 / (tau2 + sigma2)).values
    draws = fit.icc(draws=True)
    np.testing.assert_allclose(draws.sel(icc="school").values, by_hand, rtol=1e-12)
    assert draws.dims == ("chain", "draw", "icc")


def test_random_slope_icc_at_chosen_covariates_and_warning_without(fits):
    fit, _ = fits("london_rs_ml")
    post = fit.posterior
    s = post["sd_school"]
    s0, s1 = s.sel(school__effect="(Intercept)"), s.sel(school__effect="standLRT")
    rho = post["cor_school"].sel(school__effect="(Intercept)", school__effect_bis="standLRT")
    sigma2 = post["sigma"] ** 2
    for x in (0.0, 1.5):
        var = s0**2 + 2 * x * rho * s0 * s1 + x**2 * s1**2
        got = fit.icc(at={"standLRT": x}).set_index("icc").loc["school", "mean"]
        assert got == pytest.approx(float((var / (var + sigma2)).mean()), rel=1e-10)
    with pytest.warns(UserWarning, match=r"depends on standLRT .*at=\{'standLRT': 0\}"):
        averaged = fit.icc().set_index("icc").loc["school", "mean"]
    x = fit.design.data["standLRT"].to_numpy()
    var = s0**2 + 2 * x.mean() * rho * s0 * s1 + (x**2).mean() * s1**2  # mean over rows of z'Gz
    assert averaged == pytest.approx(float((var / (var + sigma2)).mean()), rel=1e-10)
    with pytest.raises(ValueError, match=r"at= names \['sex'\]"):
        fit.icc(at={"standLRT": 0, "sex": "F"})
    with pytest.raises(ValueError, match=r"at= needs a value for \['standLRT'\]"):
        fit.icc(at={})


def test_crossed_icc_has_one_row_per_factor_and_shares_add_up(fits):
    fit, ref = fits("penicillin_crossed_reml")
    icc = fit.icc(draws=True)
    assert list(icc["icc"].values) == ["plate", "sample", "adjusted", "conditional"]
    np.testing.assert_allclose(icc.sel(icc="plate") + icc.sel(icc="sample"), icc.sel(icc="adjusted"), rtol=1e-12)
    vc = fit.variance_components(draws=True)
    np.testing.assert_allclose(vc.sel(quantity="proportion").sum("level"), 1.0, rtol=1e-12)
    table = fit.variance_components().set_index(["level", "quantity"])
    assert table.loc[("Residual", "variance"), "mean"] == pytest.approx(_vc(ref, "Residual"), rel=0.15)


def test_blocks_on_one_factor_add_up_to_its_variance(fits):
    fit, _ = fits("sleepstudy_uncorr_reml")  # (Days || Subject): blocks Subject and Subject.1
    icc = fit.icc(at={"Days": 0})
    assert list(icc["icc"]) == ["Subject", "adjusted", "conditional"]
    tau0 = fit.posterior["sd_Subject"].sel(Subject__effect="(Intercept)") ** 2
    sigma2 = fit.posterior["sigma"] ** 2
    assert icc.set_index("icc").loc["Subject", "mean"] == pytest.approx(float((tau0 / (tau0 + sigma2)).mean()), rel=1e-10)
    at5 = fit.icc(at={"Days": 5}).set_index("icc").loc["Subject", "mean"]
    assert at5 > icc.set_index("icc").loc["Subject", "mean"]  # the slope variance adds at day 5


# --- R² ---------------------------------------------------------------------------------------


def test_bayes_r2_agrees_with_predictions(fits):
    fit, _ = fits("sleepstudy_rs_reml")
    r2 = fit.r2(at={"Days": 0}, draws=True)
    sigma2 = fit.posterior["sigma"].values ** 2
    for re_form, name in ((None, "bayes_conditional"), ("NA", "bayes_marginal")):
        mu = fit.predict(re_form=re_form, draws=True).values
        v = mu.var(axis=-1, ddof=1)
        np.testing.assert_allclose(r2.sel(r2=name).values, v / (v + sigma2), rtol=1e-10)


def test_nakagawa_r2_matches_the_lme4_estimates(fits):
    fit, ref = fits("london_ri_ml")
    X = fit.design.X
    var_f = np.var(X @ np.array(list(ref["fixef"].values())), ddof=1)
    tau2, sigma2 = _vc(ref, "school", "(Intercept)"), _vc(ref, "Residual")
    r2 = fit.r2().set_index("r2")
    assert r2.loc["nakagawa_marginal", "mean"] == pytest.approx(var_f / (var_f + tau2 + sigma2), abs=0.02)
    assert r2.loc["nakagawa_conditional", "mean"] == pytest.approx((var_f + tau2) / (var_f + tau2 + sigma2), abs=0.02)
    assert 0 < r2.loc["bayes_marginal", "mean"] < r2.loc["bayes_conditional", "mean"] < 1


# --- variance reduction -----------------------------------------------------------------------


def test_variance_reduction_matches_the_frequentist_reduction(fits):
    empty, _ = fits("london_null_reml")
    with_lrt, _ = fits("london_ri_ml")
    table = hb.variance_reduction(empty, with_lrt).set_index(["grp", "var1"])
    before = hb.fit_mixedlm(empty.design, "ML").table.set_index(["grp", "var1"])["vcov"]
    after = hb.fit_mixedlm(with_lrt.design, "ML").table.set_index(["grp", "var1"])["vcov"]
    for key in [("school", "(Intercept)"), ("Residual", "")]:
        assert table.loc[key, "reduction"] == pytest.approx(1 - after[key] / before[key], abs=0.1), key
        assert table.loc[key, "reduction_lower"] < table.loc[key, "reduction"] < table.loc[key, "reduction_upper"]
    assert table.loc[("school", "(Intercept)"), "var_small"] > table.loc[("school", "(Intercept)"), "var_large"]


def test_variance_reduction_needs_the_same_rows(fits):
    a, _ = fits("london_ri_ml")
    b, _ = fits("sleepstudy_rs_reml")
    with pytest.raises(ValueError, match="different data .*4059 and 180 rows"):
        hb.variance_reduction(a, b)


# --- shrinkage --------------------------------------------------------------------------------


def test_no_pooling_is_the_per_school_regression(fits):
    fit, _ = fits("london_rs_ml")
    table = fit.shrinkage()
    data = fit.design.data
    one = data[data["school"] == "1"]
    slope, intercept = np.polyfit(one["standLRT"], one["normexam"], 1)
    row = table[(table.level == "1")].set_index("term")
    assert row.loc["(Intercept)", "no_pooling"] == pytest.approx(intercept, rel=1e-8)
    assert row.loc["standLRT", "no_pooling"] == pytest.approx(slope, rel=1e-8)
    assert row.loc["standLRT", "n"] == len(one)
    pooled = np.polyfit(data["standLRT"], data["normexam"], 1)
    assert row.loc["standLRT", "complete_pooling"] == pytest.approx(pooled[0], rel=1e-8)
    coef = fit.coef("school", interval="hdi").set_index(["level", "term"])
    assert row.loc["standLRT", "mean"] == coef.loc[("1", "standLRT"), "mean"]
    # partial pooling pulls every school towards the population: less spread than no pooling
    for term in ("(Intercept)", "standLRT"):
        t = table[table.term == term]
        assert t["mean"].std() < t["no_pooling"].std()
    assert table.drop_duplicates("level")["n"].sum() == fit.design.n_obs


def test_no_pooling_with_a_common_slope(fits):
    fit, _ = fits("london_ri_ml")
    table = fit.shrinkage(term="Intercept")
    slope = float(fit.posterior["b"].sel(term="standLRT").mean())
    d = fit.design.data
    by_hand = (d["normexam"] - slope * d["standLRT"]).groupby(d["school"]).mean()
    got = table.set_index("level")["no_pooling"]
    np.testing.assert_allclose(got.loc[by_hand.index], by_hand.to_numpy(), rtol=1e-8)


def test_shrinkage_with_crossed_factors_needs_a_factor(fits):
    fit, _ = fits("penicillin_crossed_reml")
    with pytest.raises(ValueError, match="needs group=, one of 'plate', 'sample'"):
        fit.shrinkage()
    assert len(fit.shrinkage("plate")) == 24
    with pytest.raises(ValueError, match="'Days' is not a group-level term of 'plate'"):
        fit.shrinkage("plate", term="Days")


# --- ranks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_ranks():
    """30 groups of 4 to 120 pupils with known effects; group G00 is truly the best."""
    rng = np.random.default_rng(11)
    sizes = np.repeat([4, 10, 30, 120], [8, 7, 8, 7])
    rng.shuffle(sizes)
    effects = rng.normal(0, 0.5, len(sizes))
    effects[0] = effects.max() + 0.6
    rows = [{"g": f"G{j:02d}", "y": 1 + effects[j] + rng.normal(0, 1)} for j, n in enumerate(sizes) for _ in range(n)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", hb.SamplingWarning)
        fit = hb.fit("y ~ 1 + (1 | g)", pd.DataFrame(rows), random_seed=5, progressbar=False)
    return fit, dict(zip([f"G{j:02d}" for j in range(len(sizes))], effects))


def test_true_best_group_is_in_the_top_interval(simulated_ranks):
    fit, truth = simulated_ranks
    ranks = fit.ranks(term="Intercept").set_index("level")
    best = max(truth, key=truth.get)
    assert ranks.loc[best, "lower"] == 1
    assert ranks["p_top"].sum() == pytest.approx(1.0)  # exactly one group is first in each draw
    # and the posterior ranking follows the truth, as far as groups of 4 allow (about 0.75 here)
    assert np.corrcoef(ranks["rank_mean"], [-truth[g] for g in ranks.index])[0, 1] > 0.6


def test_rank_intervals_widen_for_small_groups(simulated_ranks):
    fit, _ = simulated_ranks
    ranks = fit.ranks()
    width = ranks["upper"] - ranks["lower"]
    assert width[ranks.n == 4].mean() > 1.5 * width[ranks.n == 120].mean()


def test_rank_draws_are_permutations(simulated_ranks):
    fit, _ = simulated_ranks
    draws = fit.ranks(draws=True)
    J = draws.sizes["g"]
    np.testing.assert_array_equal(np.sort(draws.values, axis=-1)[0, 0], np.arange(1, J + 1))
    up = fit.ranks(descending=False).set_index("level")["rank_mean"]
    down = fit.ranks().set_index("level")["rank_mean"]
    np.testing.assert_allclose(up.loc[down.index], J + 1 - down, rtol=1e-12)


# --- predictions ------------------------------------------------------------------------------


def test_population_predictions_are_x_beta(fits):
    fit, _ = fits("london_rs_ml")
    draws = fit.predict(re_form=np.nan, draws=True)
    b = fit.posterior["b"].transpose("chain", "draw", "term").values
    np.testing.assert_allclose(draws.values, b @ fit.design.X.T, rtol=1e-12, atol=1e-12)  # near-zero predictions: rounding


def test_group_predictions_are_x_beta_plus_z_b(fits):
    fit, _ = fits("london_rs_ml")
    d = fit.design
    draws = fit.predict(draws=True).values
    b = fit.posterior["b"].transpose("chain", "draw", "term").values
    r = fit.posterior["r_school"].transpose("chain", "draw", "school", "school__effect").values
    codes = d.factors["school"].codes
    for i in (0, 100, 4058):
        by_hand = b @ d.X[i] + r[:, :, codes[i], :] @ d.blocks[0].Z[i]
        np.testing.assert_allclose(draws[:, :, i], by_hand, rtol=1e-12)
    # newdata for a fitted row gives the same draws
    again = fit.predict(d.data.iloc[[100]], draws=True).values[:, :, 0]
    np.testing.assert_allclose(again, draws[:, :, 100], rtol=1e-12)


def test_new_levels_are_less_certain_than_any_fitted_one(fits):
    fit, _ = fits("london_rs_ml")
    schools = list(fit.design.factors["school"].levels)
    new = pd.DataFrame({"school": schools + ["a new school"], "standLRT": 0.5})
    table = fit.predict(new, random_seed=1)
    width = table["upper"] - table["lower"]
    assert width.iloc[-1] > width.iloc[:-1].max()
    # its centre is the population prediction
    population = fit.predict(new.iloc[[-1]], re_form="NA")
    assert table["mean"].iloc[-1] == pytest.approx(population["mean"].iloc[0], abs=0.03)
    pp = fit.predict(new, kind="pp", random_seed=1)
    assert ((pp["upper"] - pp["lower"]) > width).all()
    with pytest.raises(ValueError, match="'a new school'.*allow_new_levels=True"):
        fit.predict(new, allow_new_levels=False)


def test_prediction_input_errors_name_the_problem(fits):
    fit, _ = fits("london_rs_ml")
    with pytest.raises(hb.DataError, match="newdata has no column 'standLRT'"):
        fit.predict(pd.DataFrame({"school": ["1"]}))
    with pytest.raises(ValueError, match="grouping factor.*'pupil'"):
        fit.predict(re_form="(1 | pupil)")
    with pytest.raises(ValueError, match="kind must be"):
        fit.predict(kind="response")


def test_crossed_predictions_with_one_factor(fits):
    fit, _ = fits("penicillin_crossed_reml")
    draws = fit.predict(re_form="~ (1 | plate)", draws=True).values
    post = fit.posterior
    codes = fit.design.factors["plate"].codes
    r = post["r_plate"].transpose("chain", "draw", "plate", ...).values[:, :, codes, 0]
    np.testing.assert_allclose(draws, post["b"].values[..., :1] + r, rtol=1e-12)


# --- frequentist side by side -----------------------------------------------------------------


def test_compare_frequentist_table(fits, lme4_reference):
    fit, ref = fits("london_rs_ml")
    table = fit.compare_frequentist("ML")
    assert list(table["kind"]) == ["fixed", "fixed", "sd", "sd", "cor", "sigma"]
    assert table["source"].iloc[0] == "statsmodels MixedLM (ML)"
    fixed = table[table.kind == "fixed"].set_index("var1")
    for term, value in ref["fixef"].items():
        assert fixed.loc[term, "freq_estimate"] == pytest.approx(value, abs=1e-3)
    assert (table.loc[table.kind == "fixed", "diff_sd"].abs() < 1).all()
    np.testing.assert_allclose(table["diff_sd"], (table["post_mean"] - table["freq_estimate"]) / table["post_sd"])
    pasted = fit.compare_frequentist(reference=ref)
    assert pasted["source"].iloc[0] == "reference (ML)"
    np.testing.assert_allclose(pasted["freq_estimate"], table["freq_estimate"], atol=1e-3)


def test_compare_frequentist_on_crossed_factors(fits):
    fit, ref = fits("penicillin_crossed_reml")
    table = fit.compare_frequentist("REML").set_index(["kind", "grp"])
    assert table.loc[("sd", "plate"), "freq_estimate"] == pytest.approx(0.8467, abs=1e-3)
    assert table.loc[("sd", "sample"), "freq_estimate"] == pytest.approx(1.9316, abs=1e-3)


def test_loo_leaves_out_a_group_on_the_marginal_path(fits):
    fit, _ = fits("penicillin_crossed_reml")  # plate (24 levels) integrated out, sample sampled
    assert fit.method == "marginal"
    assert fit.loo(by="group").n_data_points == 24 and fit.loo().n_data_points == 144


def test_summaries_of_many_rows_are_taken_a_block_of_rows_at_a_time(fits, monkeypatch):
    """Memory stays bounded: the summaries of 4,059 rows taken 500 rows at a time equal those
    taken at once, and a new level seen in several blocks gets the same effect draws in each."""
    from hierbayes import predict as module

    fit, _ = fits("london_rs_ml")
    new = fit.design.data.iloc[:1200].copy()
    new.loc[new.index[::300], "school"] = "a new school"  # in every block of rows
    whole = fit.predict(new, random_seed=3)
    whole_link = fit.predict(kind="link")
    monkeypatch.setattr(module, "CHUNK_BYTES", 8 * 4000 * 500)
    pd.testing.assert_frame_equal(fit.predict(new, random_seed=3), whole, rtol=1e-12)
    pd.testing.assert_frame_equal(fit.predict(kind="link"), whole_link, rtol=1e-12)


def test_draws_that_cannot_fit_in_memory_are_refused_with_what_to_do(fits, monkeypatch):
    from hierbayes import summarize

    fit, _ = fits("london_rs_ml")
    monkeypatch.setattr(summarize, "_available_memory", lambda: 2**20)  # 1 MiB
    with pytest.raises(MemoryError, match=r"4,059 rows x 4,000 draws.*GiB is available: predict fewer rows"):
        fit.predict(draws=True)
    with pytest.raises(MemoryError, match=r"leave-one-row-out.*by='school'"):
        fit.loo()
    assert len(fit.predict()) == 4059  # the summaries go a block of rows at a time (256 MiB)
