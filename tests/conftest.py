import warnings

import pytest

import hierbayes as hb
from hierbayes.methods.warm import forget_stale_kernels

forget_stale_kernels()  # numba's cache keys a kernel on its own file only: drop kernels of changed callees

REFERENCE = hb.datasets.LME4_REFERENCE  # lme4's fits of the shipped data, shipped with them


@pytest.fixture(scope="session")
def london():
    return hb.datasets.load("london_exam")


@pytest.fixture(scope="session")
def sleepstudy():
    return hb.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def lme4_reference():
    """lme4's fits of the shipped data, by model name."""
    return hb.datasets.lme4_reference()


# The data set of each reference model, and the longer runs some need.
REFERENCE_DATA = {
    "london_ri_ml": "london_exam",
    "london_rs_ml": "london_exam",
    "london_null_reml": "london_exam",
    "sleepstudy_rs_reml": "sleepstudy",
    "sleepstudy_uncorr_reml": "sleepstudy",
    "orthodont_reml": "orthodont",
    "penicillin_crossed_reml": "penicillin",
}
# Orthodont's slope SD is weakly identified (4 visits a child): at the defaults the fit warns
# (R-hat about 1.03) and advises a longer run; this is that run.
SETTINGS = {"orthodont_reml": dict(tune=2000, draws=2000, target_accept=0.95)}


@pytest.fixture(scope="session")
def fits(lme4_reference):
    """``fits(name) -> (fit, lme4 record)``: each reference model fitted once per session,
    lazily, and shared by every test module that reads it."""
    cache = {}

    def get(name):
        ref = lme4_reference[name]
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("error", hb.SamplingWarning)  # a bad fit fails loudly
                cache[name] = hb.fit(ref["formula"], hb.datasets.load(REFERENCE_DATA[name]), random_seed=20261124,
                                     progressbar=False, **SETTINGS.get(name, {}))  # fmt: skip
        return cache[name], ref

    return get
