"""A group-level SD whose posterior piles up at zero (lme4's singular fit) gets a note."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.variance import sds_at_zero


def _data(group_sd, seed=3, n_groups=30, per_group=10):
    """Group effects of SD ``group_sd``; the noise is centred within each group, so with
    group_sd = 0 the group means agree exactly (lme4: a singular fit)."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=codes.size)
    noise = rng.normal(0, 1, codes.size)
    noise -= (np.bincount(codes, noise) / per_group)[codes]
    y = 1 + 0.5 * x + rng.normal(0, group_sd, n_groups)[codes] + noise
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in codes]})


def test_the_rule_on_known_draws():
    import xarray as xr

    class Block:
        name, terms = "g", ("(Intercept)",)

    rng = np.random.default_rng(0)
    def posterior(draws):
        return xr.Dataset({"sd_g": (("chain", "draw", "g__effect"), draws.reshape(2, -1, 1))},
                          coords={"g__effect": ["(Intercept)"]})  # fmt: skip

    assert sds_at_zero(posterior(np.abs(rng.normal(0, 0.1, 2000))), [Block]) == ["sd_g[(Intercept)]"]
    assert sds_at_zero(posterior(rng.normal(1.0, 0.1, 2000)), [Block]) == []


@pytest.mark.sampling
def test_summary_notes_a_variance_at_zero_and_only_then():
    settings = dict(draws=500, tune=500, chains=2, random_seed=2, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.SamplingWarning)
        none = hb.fit("y ~ x + (1 | g)", _data(group_sd=0.0), **settings)
        some = hb.fit("y ~ x + (1 | g)", _data(group_sd=0.8), **settings)
    assert "sd_g[(Intercept)] is highest at 0" in none.summary()
    assert "singular" not in some.summary()
