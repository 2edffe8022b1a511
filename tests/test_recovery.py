"""Parameter recovery on realistic designs (simulated truths, the default integrated-out path):
groups of very unequal size (1 to 200 rows, some with one row), few groups (5) and many groups
(2,000). Each design is simulated once with a fixed seed; the same seed gives the same draws, so
these checks are deterministic. Tolerance: every true parameter lies inside its 99% equal-tailed
interval, and the group effects' 90% intervals cover the truth for 80-97% of the groups."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

pytestmark = pytest.mark.sampling

TRUTH = {"(Intercept)": 1.0, "x": 0.5, "sd_int": 0.6, "sd_x": 0.3, "cor": 0.4, "sigma": 1.0}


def simulate(sizes, seed):
    """y = 1 + 0.5 x + b0_j + b1_j x + e, (b0, b1) ~ N(0, [0.6, 0.3] with correlation 0.4)."""
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes)
    codes = np.repeat(np.arange(sizes.size), sizes)
    sd = np.array([TRUTH["sd_int"], TRUTH["sd_x"]])
    cov = np.outer(sd, sd) * np.array([[1, TRUTH["cor"]], [TRUTH["cor"], 1]])
    effects = rng.multivariate_normal(np.zeros(2), cov, sizes.size)
    x = rng.normal(size=codes.size)
    y = (TRUTH["(Intercept)"] + effects[codes, 0] + (TRUTH["x"] + effects[codes, 1]) * x
         + rng.normal(0, TRUTH["sigma"], codes.size))  # fmt: skip
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in codes]}), effects


def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", hb.SamplingWarning)  # a poor fit fails loudly
        return hb.fit("y ~ x + (x | g)", data, random_seed=5, progressbar=False)


def check_parameters(result, skip=()):
    fixed = result.fixef(prob=0.99)
    for term in ("(Intercept)", "x"):
        assert fixed.loc[term, "lower"] < TRUTH[term] < fixed.loc[term, "upper"], term
    vc = result.varcorr(prob=0.99)
    rows = {"sd_int": (vc.var1 == "(Intercept)") & (vc.var2 == ""), "sd_x": (vc.var1 == "x") & (vc.var2 == ""),
            "cor": vc.var2 == "x", "sigma": vc.grp == "Residual"}  # fmt: skip
    for name, row in rows.items():
        if name not in skip:
            lower, upper = vc.loc[row, ["lower", "upper"]].iloc[0]
            assert lower < TRUTH[name] < upper, name


def group_coverage(result, effects):
    ranef = result.ranef(prob=0.9).set_index(["level", "term"])
    truth = pd.Series(effects.reshape(-1), index=pd.MultiIndex.from_product(
        [[f"g{j}" for j in range(len(effects))], ["(Intercept)", "x"]]))  # fmt: skip
    got = ranef.loc[truth.index]
    return float(((got["lower"] < truth) & (truth < got["upper"])).mean())


def test_unbalanced_groups_of_1_to_200_rows():
    rng = np.random.default_rng(1)
    sizes = np.concatenate([[1] * 10, rng.integers(2, 20, 40), rng.integers(50, 201, 10)])
    data, effects = simulate(sizes, seed=11)
    result = fit(data)
    check_parameters(result)
    assert 0.8 <= group_coverage(result, effects) <= 0.97


def test_five_groups():
    """Five groups say little about the SDs and nothing precise about the correlation; the
    intervals must still hold the truth (they are wide, as they should be)."""
    data, _ = simulate([40] * 5, seed=12)
    result = fit(data)
    check_parameters(result)
    vc = result.varcorr(prob=0.95)
    cor = vc[vc.var2 == "x"].iloc[0]
    assert cor["upper"] - cor["lower"] > 0.8  # five groups cannot pin a correlation down


def test_two_thousand_groups():
    data, effects = simulate([10] * 2000, seed=13)
    result = fit(data)
    check_parameters(result)
    vc = result.varcorr()
    sd_int = vc[(vc.var1 == "(Intercept)") & (vc.var2 == "")].iloc[0]
    assert abs(sd_int["mean"] - TRUTH["sd_int"]) < 0.05  # many groups: the SD is pinned down
    assert 0.85 <= group_coverage(result, effects) <= 0.95
