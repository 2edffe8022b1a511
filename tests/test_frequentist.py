"""statsmodels' REML/ML fits of our designs against lme4, and reference numbers from elsewhere.

No sampling here: these test the frequentist side that ``compare_frequentist`` shows.
Tolerances are the issue's: fixed effects to 1e-3, variance components to 1e-2 (relative for
variances, absolute for correlations).
"""

import ast

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import hierbayes as hb
from hierbayes.frequentist import reference_fit

from conftest import REFERENCE, REFERENCE_DATA

LME4_MODELS = ["london_ri_ml", "london_rs_ml", "london_rs_sex_ml", "london_rs_full_ml", "london_rs_reml",
               "london_null_reml", "sleepstudy_rs_reml", "sleepstudy_uncorr_reml", "penicillin_crossed_reml"]  # fmt: skip


def _design(ref):
    data = hb.datasets.load(REFERENCE_DATA.get(ref["name"], "london_exam"))
    reference = {"schgend": "mixed"} if "schgend" in ref["formula"] else None  # lme4's level order
    return hb.make_design(ref["formula"], data, reference=reference)


@pytest.mark.parametrize("name", LME4_MODELS)
def test_statsmodels_reproduces_lme4(lme4_reference, name):
    ref = lme4_reference[name]
    result = hb.fit_mixedlm(_design(ref), ref["method"])
    table = result.table
    fixed = table[table.kind == "fixed"].set_index("var1")
    assert list(fixed.index) == list(ref["fixef"])
    for term, value in ref["fixef"].items():
        assert fixed.loc[term, "estimate"] == pytest.approx(value, abs=1e-3), term
        assert fixed.loc[term, "se"] == pytest.approx(ref["fixef_se"][term], rel=1e-2), term
    rows = ast.literal_eval(ref["varcorr"]) if isinstance(ref["varcorr"], str) else ref["varcorr"]
    assert len(rows) == len(table) - len(fixed)
    for row in rows:
        var1, var2 = row["var1"] or "", row["var2"] or ""
        got = table[(table.grp == row["grp"]) & (table.var1 == var1) & (table.var2 == var2)].iloc[0]
        if var2:
            assert got["estimate"] == pytest.approx(row["sdcor"], abs=1e-2), row
        else:
            assert got["vcov"] == pytest.approx(row["vcov"], rel=1e-2), row
    assert result.log_lik == pytest.approx(ref["logLik"], abs=1e-2)


def test_wald_intervals_contain_the_estimate_and_are_ordered(lme4_reference):
    table = hb.fit_mixedlm(_design(lme4_reference["sleepstudy_rs_reml"]), "REML").table
    sds = table[table.kind.isin(["fixed", "sd", "cor"])]
    assert (sds["lower"] < sds["estimate"]).all() and (sds["estimate"] < sds["upper"]).all()
    cor = table[table.kind == "cor"].iloc[0]
    assert -1 < cor["lower"] and cor["upper"] < 1


def _nested_data(seed=4):
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(6):
        ua = rng.normal(0, 1.0)
        for b in range(4):
            ub = rng.normal(0, 0.6)
            for _ in range(5):
                x = rng.normal()
                rows.append({"a": f"A{a}", "b": f"B{b}", "x": x, "y": 2 + 0.5 * x + ua + ub + rng.normal(0, 0.8)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a/b)", "y ~ x + (x | a) + (1 | a:b)", "y ~ x + (1 | a) + (1 | b)"])
def test_ml_log_likelihood_equals_the_dense_normal_density(formula):
    """Nested (variance components within groups), correlated + nested, and crossed designs:
    statsmodels' maximised log-likelihood must be the dense N(X beta, sigma^2 I + Z G Z')
    log-density at its own estimates, assembled here from our design."""
    design = hb.make_design(formula, _nested_data())
    result = hb.fit_mixedlm(design, "ML")
    t = result.table
    beta = t[t.kind == "fixed"]["estimate"].to_numpy()
    sigma = t[t.kind == "sigma"]["estimate"].iloc[0]
    V = sigma**2 * np.eye(design.n_obs)
    for block in design.blocks:
        rows = t[t.grp == block.name]
        sd = rows[rows.kind == "sd"].set_index("var1")["estimate"].reindex(block.terms).to_numpy()
        cor = np.eye(block.size)
        for _, r in rows[rows.kind == "cor"].iterrows():
            i, j = block.terms.index(r["var1"]), block.terms.index(r["var2"])
            cor[i, j] = cor[j, i] = r["estimate"]
        G = np.outer(sd, sd) * cor
        codes = design.factors[block.group].codes
        same = codes[:, None] == codes[None, :]
        V += same * (block.Z @ G @ block.Z.T)
    dense = multivariate_normal(design.X @ beta, V).logpdf(design.y)
    assert result.log_lik == pytest.approx(dense, abs=1e-6)


def test_crossed_correlated_effects_are_refused_clearly():
    data = _nested_data()
    with pytest.raises(hb.UnsupportedStructure, match="'b' is crossed with it"):
        hb.fit_mixedlm(hb.make_design("y ~ x + (x | a) + (1 | b)", data))
    with pytest.raises(hb.UnsupportedStructure, match="one grouping factor only"):
        hb.fit_mixedlm(hb.make_design("y ~ x + (x | a) + (x | b)", data))
    with pytest.raises(ValueError, match="method must be 'REML' or 'ML'"):
        hb.fit_mixedlm(hb.make_design("y ~ x + (1 | a)", data), "MLE")


def test_reference_from_the_lme4_json_picks_formula_and_method(lme4_reference):
    design = _design(lme4_reference["london_rs_ml"])
    for method in ("ML", "REML"):
        got = reference_fit(REFERENCE, design, method)
        want = lme4_reference[f"london_rs_{method.lower()}"]
        assert got.method == method
        fixed = got.table[got.table.kind == "fixed"].set_index("var1")["estimate"]
        assert fixed["standLRT"] == want["fixef"]["standLRT"]
    with pytest.raises(ValueError, match="no reference record has the formula"):
        reference_fit(REFERENCE, hb.make_design("normexam ~ sex + (1|school)", hb.datasets.load("london_exam")))


def test_flat_reference_names_parameters_as_priors_do(lme4_reference):
    design = _design(lme4_reference["london_rs_ml"])
    got = reference_fit({"standLRT": 0.55, "sd_school__standLRT": {"estimate": 0.12, "se": 0.02},
                         "cor_school__(Intercept)__standLRT": 0.5, "sigma": 0.74}, design).table  # fmt: skip
    assert set(got.kind) == {"fixed", "sd", "cor", "sigma"}
    assert got[got.kind == "sd"]["se"].iloc[0] == 0.02
    with pytest.raises(ValueError, match="unknown parameter 'sd_pupil'.*sd_school__standLRT"):
        reference_fit({"sd_pupil": 1.0}, design)
