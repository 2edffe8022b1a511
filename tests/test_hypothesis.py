"""fit.hypothesis (brms's hypothesis()) and fixef(rope=): against direct computation on the draws."""

import numpy as np
import pytest
from scipy import stats

from hierbayes.hypothesis import HypothesisError, prior_draws

pytestmark = pytest.mark.sampling


@pytest.fixture(scope="module")
def rs(fits):
    return fits("london_rs_ml")[0]


def test_one_sided_hypotheses_are_posterior_probabilities(rs):
    b = rs.posterior["b"].sel(term="standLRT").values.reshape(-1)
    a = rs.posterior["b"].sel(term="(Intercept)").values.reshape(-1)
    table = rs.hypothesis(["standLRT > 0.55", "Intercept + 2 * standLRT < 1", "`standLRT` - 0.5 > 0"], prob=0.9)
    p = np.mean(b > 0.55)
    assert table.loc[0, "Post.Prob"] == pytest.approx(p)
    assert table.loc[0, "Evid.Ratio"] == pytest.approx(p / (1 - p))
    assert table.loc[0, "CI.Lower"] == pytest.approx(np.quantile(b - 0.55, 0.1)) and table.loc[0, "CI.Upper"] == np.inf
    assert table.loc[1, "Estimate"] == pytest.approx(np.mean(a + 2 * b - 1))
    assert table.loc[1, "Post.Prob"] == pytest.approx(np.mean(a + 2 * b < 1))
    assert table.loc[2, "Star"] == "*" and table.loc[2, "Hypothesis"] == "(`standLRT` - 0.5) > 0"


def test_point_hypothesis_is_the_savage_dickey_ratio(rs):
    b = rs.posterior["b"].sel(term="standLRT").values.reshape(-1)
    prior = prior_draws(rs).sel(term="standLRT").values.reshape(-1)
    # the posterior is close to normal; the prior on the data's scale is normal: the ratio of densities
    value = float(np.mean(b))
    expected = stats.norm.pdf(value, b.mean(), b.std()) / stats.norm.pdf(value, prior.mean(), prior.std())
    row = rs.hypothesis(f"standLRT = {value}").iloc[0]
    assert row["Evid.Ratio"] == pytest.approx(expected, rel=0.15)
    assert row["Post.Prob"] == pytest.approx(row["Evid.Ratio"] / (1 + row["Evid.Ratio"]))
    far = rs.hypothesis("standLRT = 0").iloc[0]  # 0 is 25 posterior SDs away: no draw near it
    assert far["Evid.Ratio"] < 1e-6 and far["Star"] == "*"
    assert any("normal approximation" in n for n in rs.hypothesis("standLRT = 0").attrs["notes"])


def test_fixef_with_rope_adds_direction_and_share_in_rope(rs):
    table = rs.fixef(rope=(-0.1, 0.1))
    b = rs.posterior["b"].sel(term="(Intercept)").values.reshape(-1)
    assert table.loc["(Intercept)", "pd"] == pytest.approx(max(np.mean(b > 0), np.mean(b < 0)))
    assert table.loc["standLRT", "in_rope"] == 0  # the slope is about 0.56
    wide = rs.fixef(rope={"(Intercept)": (-5, 5)})
    assert wide.loc["(Intercept)", "in_rope"] == 100 and np.isnan(wide.loc["standLRT", "in_rope"])
    with pytest.raises(ValueError, match="sexM"):
        rs.fixef(rope={"sexM": (-1, 1)})


@pytest.mark.parametrize("text, message", [
    ("sexM > 0", "'sexM' is not a fixed effect; they are \\(Intercept\\), standLRT"),
    ("standLRT", "no comparison"),
    ("standLRT ** 2 > 0", "only \\+ - \\* / and numbers"),
    ("standLRT > 0 > 1", "one of <, > or ="),
    ("__import__('os') > 0", "'__import__' is not a fixed effect"),
])  # fmt: skip
def test_unreadable_hypotheses_say_why(rs, text, message):
    with pytest.raises(HypothesisError, match=message):
        rs.hypothesis(text)
