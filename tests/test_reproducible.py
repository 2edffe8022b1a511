"""The same seed gives the same draws: in one process and in two fresh ones, on the
integrated-out path (numba model) and on the full path (PyMC model compiled by nutpie)."""

import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import hierbayes as hb

pytestmark = pytest.mark.sampling

FORMULA = "Reaction ~ Days + (Days | Subject)"
SETTINGS = dict(draws=200, tune=200, chains=4, random_seed=11, progressbar=False)

# prints one digest of every posterior variable per path
SCRIPT = f"""
import hashlib, warnings
import hierbayes as hb
warnings.simplefilter("ignore")
for method in ("marginal", "full"):
    fit = hb.fit({FORMULA!r}, hb.datasets.load("sleepstudy"), method=method, **{SETTINGS!r})
    post = fit.posterior
    print(method, hashlib.sha256(b"".join(post[v].values.tobytes() for v in sorted(post.data_vars))).hexdigest())
"""


def _digests(fit) -> str:
    post = fit.posterior
    return hashlib.sha256(b"".join(post[v].values.tobytes() for v in sorted(post.data_vars))).hexdigest()


def test_two_fresh_processes_give_identical_draws():
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
            for _ in range(2)]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (dict(line.split() for line in run.stdout.splitlines()) for run in runs)
    assert set(first) == {"marginal", "full"}
    assert first == second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.SamplingWarning)  # 200 draws: low ESS is expected
        here = {m: _digests(hb.fit(FORMULA, hb.datasets.load("sleepstudy"), method=m, **SETTINGS))
                for m in ("marginal", "full")}  # fmt: skip
    assert here == first  # and this process (the full model possibly from the compile cache) agrees


def test_another_seed_gives_other_draws(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.SamplingWarning)
        a = hb.fit(FORMULA, sleepstudy, **SETTINGS)
        b = hb.fit(FORMULA, sleepstudy, **{**SETTINGS, "random_seed": 12})
    assert not np.array_equal(a.posterior["b"].values, b.posterior["b"].values)
