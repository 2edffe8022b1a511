"""No input crashes the sampler: the integrated-out log density never raises or returns NaN
where double precision can represent the model, and a sampler's internal failure becomes
``hb.SamplingError``."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.marginal.density import pack_model
from hierbayes.sampling import sampler_errors

# Simulated from y ~ x + (x | g) with parameters drawn from these priors (12 groups, 151 rows):
# with random_seed=6 it once killed nutpie (ZeroDivisionError in the log density, then a Rust
# panic, "bad initial gradient").
PANIC_DATA = Path(__file__).parent / "data" / "init_panic.csv"
PANIC_PRIORS = {"Intercept": "Normal(0, 1)", "b": "Normal(0, 1)", "sd": "HalfNormal(1)", "cor": "LKJ(2)",
                "sigma": "HalfNormal(1)"}  # fmt: skip


@pytest.fixture(scope="module")
def packed():
    design = hb.make_design("y ~ x + (x | g)", pd.read_csv(PANIC_DATA))
    return pack_model(design, hb.make_priors(design, PANIC_PRIORS))


def test_log_density_at_extreme_parameters_is_finite_or_minus_infinity(packed, capfd):
    x0 = packed.initial_point(1)
    for i in range(packed.n_dim):
        for value in (-800, -400, -50, -20, 20, 50, 400, 800):
            x = x0.copy()
            x[i] = value
            lp, grad = packed.logp(x)  # raises nothing
            assert not np.isnan(lp), (packed.parameters[i], value)
            if np.isfinite(lp):
                assert np.all(np.isfinite(grad)), (packed.parameters[i], value)
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_large_slope_sd_keeps_a_finite_density(packed):
    """log sd = 20 made the 2 x 2 determinant cancel to zero (a division by zero in numba)."""
    x = packed.initial_point(1)
    x[packed.parameters.index("log sd_g[x]")] = 20.0
    lp, grad = packed.logp(x)
    assert np.isfinite(lp) and np.all(np.isfinite(grad))


def test_initial_points_are_valid(packed):
    for seed in range(50):
        lp, grad = packed.logp(packed.initial_point(seed))
        assert np.isfinite(lp) and np.all(np.isfinite(grad))


@pytest.mark.sampling
def test_the_reproducer_fits_without_a_panic(capfd):
    fit = hb.fit("y ~ x + (x | g)", data=pd.read_csv(PANIC_DATA), priors=PANIC_PRIORS, random_seed=6,
                 progressbar=False)  # fmt: skip
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "panicked" not in err
    assert fit.diagnostics.divergences == 0 and fit.diagnostics.max_rhat < 1.01


class _Panic(BaseException):
    """Stands for pyo3_runtime.PanicException, which derives from BaseException."""


def test_a_sampler_panic_becomes_a_sampling_error():
    with pytest.raises(hb.SamplingError, match="nutpie sampler stopped with an internal error .*bad initial"):
        with sampler_errors("nutpie"):
            raise _Panic("Could not initialize state because of bad initial gradient")
    with pytest.raises(KeyboardInterrupt):  # interrupts and ordinary errors pass through
        with sampler_errors("nutpie"):
            raise KeyboardInterrupt
    with pytest.raises(ValueError):
        with sampler_errors("nutpie"):
            raise ValueError("bad draws")
