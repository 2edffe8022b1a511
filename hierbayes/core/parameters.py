"""The small parameters every packed model shares, on the unconstrained scale NUTS samples:
``Intercept_c`` (the intercept at the predictors' means), the slopes (times their scale
``OFF_SCALES`` where the model packs one), per block the log SDs and, for a correlated block,
the canonical partial correlations as atanh values (the Stan/LKJ Cholesky transform), then the
log of each of the family's own parameters theta (sigma; sigma, nu; shape).

``unpack`` maps them to (b, Lambda = blockdiag(diag(sd) L), theta) and returns the log prior
plus the log Jacobian; it works on complex numbers too, so the densities differentiate this
small map by complex step (``STEP``; exact to rounding for these analytic functions) and no
prior needs a hand-written gradient. ``prior_row`` writes a prior as the row the kernels read
(``layout.PRIOR_CODES``); ``prior_logp`` evaluates it. ``initial_point`` is nutpie's start.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .layout import H_HASINT, H_INTCOL, H_NBLOCKS, H_NTHETA, H_P, H_Q, OFF_BLOCKS, OFF_MEANS, OFF_PRIORS, OFF_SCALES, OFF_SLOPES, PRIOR_CODES  # fmt: skip

__all__ = ["STEP", "prior_logp", "unpack", "prior_row", "priors_packable", "initial_point"]

STEP = 1e-30  # complex step


@numba.njit(cache=True, error_model="numpy")
def prior_logp(code, a, b, c, x):
    """Log density of a prior at x (complex-safe: no comparisons on x except Laplace's sign)."""
    if code == 0:  # Normal(mu=a, sigma=b)
        z = (x - a) / b
        return -0.5 * z * z - math.log(b) - 0.5 * math.log(2 * math.pi)
    if code == 1 or code == 5:  # StudentT(nu=a, mu=b, sigma=c) / HalfStudentT(nu=a, sigma=b)
        nu, mu, s = a, (b if code == 1 else 0.0), (c if code == 1 else b)
        z = (x - mu) / s
        const = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(s)
        if code == 5:
            const += math.log(2.0)
        return const - (nu + 1) / 2 * np.log(1 + z * z / nu)
    if code == 2 or code == 6:  # Cauchy(alpha=a, beta=b) / HalfCauchy(beta=a)
        loc, s = (a, b) if code == 2 else (0.0, a)
        z = (x - loc) / s
        const = -math.log(math.pi * s) + (math.log(2.0) if code == 6 else 0.0)
        return const - np.log(1 + z * z)
    if code == 3:  # Laplace(mu=a, b=b)
        d = x - a
        sign = 1.0 if d.real >= 0 else -1.0
        return -math.log(2 * b) - d * sign / b
    if code == 4:  # HalfNormal(sigma=a)
        z = x / a
        return -0.5 * z * z - math.log(a) + 0.5 * math.log(2 / math.pi)
    if code == 7:  # Exponential(lam=a)
        return math.log(a) - a * x
    if code == 8:  # Gamma(alpha=a, beta=b), rate b
        return a * math.log(b) - math.lgamma(a) + (a - 1) * np.log(x) - b * x
    # 9: InverseGamma(alpha=a, beta=b)
    return a * math.log(b) - math.lgamma(a) - (a + 1) * np.log(x) - b / x


@numba.njit(cache=True, error_model="numpy")
def unpack(x, buf, b, lam, theta):
    """Unconstrained x -> b (p), Lambda (q x q, zeroed first), the family's own parameters
    theta (``H_NTHETA`` of them: sigma; or sigma, nu; or shape); returns the log prior plus the
    log Jacobian. Slopes are x times their scale (``OFF_SCALES``, 1 where absent). Works for
    float64 and complex128 x alike."""
    p, q = int(buf[H_P]), int(buf[H_Q])
    has_int, int_col = int(buf[H_HASINT]), int(buf[H_INTCOL])
    priors, slopes, means = int(buf[OFF_PRIORS]), int(buf[OFF_SLOPES]), int(buf[OFF_MEANS])
    scales = int(buf[OFF_SCALES])
    lp = 0.0 * x[0]
    n_slopes = p - has_int
    for i in range(n_slopes):
        beta = x[has_int + i] * (buf[scales + i] if scales > 0 else 1.0)
        b[int(buf[slopes + i])] = beta
        row = priors + 4 * (has_int + i)
        lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], beta)
    if has_int:
        icpt = x[0]
        lp += prior_logp(int(buf[priors]), buf[priors + 1], buf[priors + 2], buf[priors + 3], icpt)
        shift = 0.0 * x[0]
        for i in range(n_slopes):
            shift += buf[means + i] * b[int(buf[slopes + i])]
        b[int_col] = icpt - shift
    k = p
    pr = p
    for i in range(q):
        for j in range(q):
            lam[i, j] = 0.0
    blocks = int(buf[OFF_BLOCKS])
    for blk in range(int(buf[H_NBLOCKS])):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        correlated, eta = buf[blocks + 4 * blk + 2] > 0, buf[blocks + 4 * blk + 3]
        sd_pos = k
        for i in range(size):
            u = x[k]
            sd = np.exp(u)
            row = priors + 4 * pr
            lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], sd) + u
            k += 1
            pr += 1
        if not correlated:
            for i in range(size):
                lam[start + i, start + i] = np.exp(x[sd_pos + i])
            continue
        # Cholesky factor of the correlation matrix from canonical partial correlations
        for i in range(size):
            sd_i = np.exp(x[sd_pos + i])
            rem = 1.0 + 0.0 * x[0]  # 1 - sum of squares so far in row i
            for j in range(i):
                y = x[k]
                k += 1
                z = np.tanh(y)
                sign = 1.0 if y.real >= 0 else -1.0
                # log(1 - tanh(y)^2) = 2 (log 2 - |y| - log1p(exp(-2|y|))), stable for large |y|
                lp += 2 * (math.log(2.0) - y * sign - np.log(1 + np.exp(-2 * y * sign)))
                lp += 0.5 * np.log(rem)
                l_ij = z * np.sqrt(rem)
                rem = rem - l_ij * l_ij
                lam[start + i, start + j] = sd_i * l_ij
            lam[start + i, start + i] = sd_i * np.sqrt(rem)
            if i > 0:  # LKJ density of the Cholesky factor
                lp += (size - i - 1 + 2 * eta - 2) * 0.5 * np.log(rem)
    for t in range(int(buf[H_NTHETA])):
        u = x[k]
        theta[t] = np.exp(u)
        row = priors + 4 * pr
        lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], theta[t]) + u
        k += 1
        pr += 1
    return lp


def prior_row(prior) -> list[float]:
    """[code, a, b, c]; code -1 where the kernels cannot evaluate the prior."""
    if prior.dist not in PRIOR_CODES or not all(isinstance(v, float) for _, v in prior.params):
        return [-1.0, 0.0, 0.0, 0.0]
    values = [v for _, v in prior.params] + [0.0] * (3 - len(prior.params))
    return [float(PRIOR_CODES[prior.dist]), *values]


def priors_packable(priors) -> bool:
    """Whether the kernels evaluate every prior of ``priors`` (the LKJ ones always)."""
    return all(prior_row(e.prior)[0] >= 0 for e in priors.entries if e.cls != "cor")


def initial_point(model, seed) -> np.ndarray:
    """``model.start`` jittered; where the density or its gradient is not finite there (nutpie
    cannot start from such a point), jittered again with half the spread, then ``start``."""
    rng = np.random.default_rng(seed)
    for k in range(8):
        x = model.start + rng.uniform(-1, 1, model.n_dim) * model.jitter / 2**k
        value, grad = model.logp(x)
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            return x
    return model.start.copy()
