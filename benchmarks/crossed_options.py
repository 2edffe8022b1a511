"""What the other ways to fit crossed factors would cost, on ``run.py crossed``'s design
(73,000 rows, 3,000 subjects x 1,100 items, ``y ~ x + (1 | subject) + (1 | item)``).

    .venv/bin/python benchmarks/crossed_options.py

1. Every factor integrated out (the lme4 route): each log density needs the Cholesky factor of
   I + Lambda'Z'Z Lambda (4,100 x 4,100). Eliminating the subjects (a diagonal block) leaves
   the items' Schur complement, dense here (each subject sees about 24 of the 1,100 items),
   so a log density costs a dense 1,100 x 1,100 Cholesky and its gradient an inverse.
2. The items' effects drawn exactly given the rest (subjects integrated out), alternating with
   NUTS on the rest: the same dense 1,100 x 1,100 Gaussian, one Cholesky a draw.
3. A blocked Gibbs sampler (a prototype, not in the package): the subjects' and the items'
   effects drawn exactly given everything else (each group on its own: one pass over the
   rows), then b, the SDs and sigma given the effects (flat priors here, so conjugate draws);
   optionally a move along the ridge b_0 + mean(effects), delta ~ N(mean, tau^2 / J).
   Centred Gibbs mixes well when every group is well informed (here 24 and 66 rows a group),
   badly when groups are poorly informed (the funnel), so a package route would need the
   choice ``choose_parameterization`` makes, the package's priors (slice draws of the SDs),
   correlated blocks and SBC.

Prints one line per option; the figures are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import simulate_crossed  # noqa: E402


def dense_costs(subject, item, sds=(0.5, 0.3), sigma=1.0, repeats=5) -> dict:
    """Seconds for the items' Schur complement, its Cholesky factor and its inverse (one core
    when run with OPENBLAS_NUM_THREADS=1)."""
    n = len(subject)
    Z = sp.hstack([sp.csr_matrix((np.full(n, sds[0]), (np.arange(n), subject))),
                   sp.csr_matrix((np.full(n, sds[1]), (np.arange(n), item)))]).tocsc()  # fmt: skip
    A = (sp.eye(Z.shape[1]) + Z.T @ Z / sigma**2).tocsc()
    J = subject.max() + 1
    D, C = A[:J, :J].diagonal(), A[:J, J:]
    times = {}
    start = time.perf_counter()
    for _ in range(repeats):
        S = A[J:, J:].toarray() - (C.T @ sp.diags(1 / D) @ C).toarray()
    times["schur"] = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        np.linalg.cholesky(S)
    times["cholesky"] = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        np.linalg.inv(S)
    times["inverse"] = (time.perf_counter() - start) / repeats
    times["density"] = float(np.mean(S != 0))
    return times


@numba.njit(cache=True)
def _sweep(y, x, subject, item, n_s, n_i, xtx, b, s, it, theta, shift):
    """One Gibbs sweep (flat priors on b, the SDs and sigma)."""
    n = y.shape[0]
    for effects, codes, counts, other, other_codes, k in ((s, subject, n_s, it, item, 0),
                                                          (it, item, n_i, s, subject, 1)):  # fmt: skip
        tau2, s2 = theta[k] ** 2, theta[2] ** 2
        R = np.zeros(effects.shape[0])
        for r in range(n):
            R[codes[r]] += y[r] - b[0] - b[1] * x[r] - other[other_codes[r]]
        for j in range(effects.shape[0]):
            precision = counts[j] / s2 + 1 / tau2
            effects[j] = R[j] / s2 / precision + np.random.normal() / np.sqrt(precision)
    r0, r1 = 0.0, 0.0
    for r in range(n):
        e = y[r] - s[subject[r]] - it[item[r]]
        r0 += e
        r1 += e * x[r]
    a, c, d = xtx[0], xtx[1], xtx[2]
    det = a * d - c * c
    s2 = theta[2] ** 2
    v00, v01, v11 = s2 * d / det, -s2 * c / det, s2 * a / det
    l00 = np.sqrt(v00)
    l10 = v01 / l00
    z0, z1 = np.random.normal(), np.random.normal()
    b[0] = (d * r0 - c * r1) / det + l00 * z0
    b[1] = (a * r1 - c * r0) / det + l10 * z0 + np.sqrt(v11 - l10 * l10) * z1
    if shift:  # along the ridge b_0 + mean(effects): the exact conditional of the shift
        for effects, k in ((s, 0), (it, 1)):
            delta = effects.mean() + np.random.normal() * theta[k] / np.sqrt(effects.shape[0])
            effects -= delta
            b[0] += delta
    for effects, k in ((s, 0), (it, 1)):
        theta[k] = np.sqrt((effects * effects).sum() / 2 / np.random.gamma((effects.shape[0] - 1) / 2, 1.0))
    rss = 0.0
    for r in range(n):
        e = y[r] - b[0] - b[1] * x[r] - s[subject[r]] - it[item[r]]
        rss += e * e
    theta[2] = np.sqrt(rss / 2 / np.random.gamma((n - 1) / 2, 1.0))


@numba.njit(cache=True)
def _chain(seed, sweeps, y, x, subject, item, n_s, n_i, xtx, shift):
    np.random.seed(seed)
    b, theta = np.array([np.mean(y), 0.0]), np.array([1.0, 1.0, np.std(y)])
    s, it = np.zeros(n_s.shape[0]), np.zeros(n_i.shape[0])
    out = np.empty((sweeps, 5))
    for t in range(sweeps):
        _sweep(y, x, subject, item, n_s, n_i, xtx, b, s, it, theta, shift)
        out[t, :2], out[t, 2:] = b, theta
    return out


def gibbs(data, shift: bool, chains=4, warmup=1000, draws=1000) -> tuple[float, dict]:
    """Seconds for ``chains`` chains one after another on one core, and each scalar's (posterior
    mean, bulk ESS, R-hat)."""
    import arviz_stats as azs

    subject = data["subject"].str[1:].astype(np.int64).to_numpy()
    item = data["item"].str[1:].astype(np.int64).to_numpy()
    y, x = data["y"].to_numpy(), data["x"].to_numpy()
    args = (y, x, subject, item, np.bincount(subject).astype(float), np.bincount(item).astype(float),
            np.array([len(y), x.sum(), x @ x]), shift)  # fmt: skip
    _chain(0, 2, *args)  # compile
    start = time.perf_counter()
    out = np.stack([_chain(c + 1, warmup + draws, *args)[warmup:] for c in range(chains)])
    wall = time.perf_counter() - start
    names = ["b[(Intercept)]", "b[x]", "sd_subject", "sd_item", "sigma"]
    ds = xr.Dataset({k: (("chain", "draw"), out[..., j]) for j, k in enumerate(names)})
    ess, rhat = azs.ess(ds), azs.rhat(ds)
    return wall, {k: (float(ds[k].mean()), float(ess[k]), float(rhat[k])) for k in names}


def main():
    data, _ = simulate_crossed()
    subject = data["subject"].str[1:].astype(np.int64).to_numpy()
    item = data["item"].str[1:].astype(np.int64).to_numpy()
    costs = dense_costs(subject, item)
    print(f"items' Schur complement: {100 * costs['density']:.0f}% nonzero, built in {costs['schur'] * 1e3:.0f} ms; "
          f"Cholesky {costs['cholesky'] * 1e3:.1f} ms, inverse {costs['inverse'] * 1e3:.1f} ms")  # fmt: skip
    for shift in (False, True):
        wall, table = gibbs(data, shift)
        print(f"Gibbs prototype, shift moves {'on' if shift else 'off'}: 4 chains x 2,000 sweeps {wall:.2f} s "
              f"({wall / 8000 * 1e3:.2f} ms a sweep, one core)")  # fmt: skip
        for name, (mean, ess, rhat) in table.items():
            print(f"    {name:16s} mean {mean:.4f}  bulk ESS {ess:5.0f}  R-hat {rhat:.3f}")


if __name__ == "__main__":
    main()
