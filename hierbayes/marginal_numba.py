"""The marginal model's log density and gradient written in numba, compiled once per machine.

The PyMC route to nutpie generates and compiles new code for every model: about 10 s on this
machine for London schools, most of it LLVM, and numba cannot cache it across processes.
For the common cases (Gaussian, every block on one grouping factor or on two nested ones)
this module gives nutpie
a log density whose code is the same for every model: the model is data, packed into one
float64 buffer, so numba's on-disk cache (``cache=True``) serves it in a new process.

Unconstrained parameters, in order: ``Intercept_c`` (the intercept at the predictors' means),
``beta`` (slopes), then per block the log SDs and, for a correlated block, the canonical
partial correlations as atanh values (the Stan/LKJ Cholesky transform), and log sigma.

The likelihood uses M_j = sigma^2 I + Lambda' A_j Lambda with A_j = Z_j'Z_j and
c_j = Z_j'(y_j - X_j b), w_j = Lambda' c_j, v_j = M_j^{-1} w_j:

    log p(y) = -1/2 [N log 2 pi + (N - J q) log sigma^2 + sum_j log|M_j|
                     + (r'r - sum_j w_j' v_j) / sigma^2]

(matrix determinant lemma and Woodbury; the same density as ``marginal.add_marginal_likelihood``)
with its gradient in b, Lambda and sigma written out by hand:

    d/db      = (X'r - sum_j Z_jX_j' Lambda v_j) / sigma^2
    d/dLambda = sum_j -A_j Lambda M_j^{-1} + (c_j v_j' - A_j Lambda v_j v_j') / sigma^2
    d/dsigma2 = -1/2 [(N - J q)/sigma^2 + sum_j tr M_j^{-1} - (r'r - sum_j w_j'v_j)/sigma^4
                      + sum_j v_j'v_j / sigma^2]

The map from the unconstrained parameters to (b, Lambda, sigma), the priors and the
Jacobians involve a few dozen numbers; their derivatives are taken by complex-step
differentiation (exact to rounding for these analytic functions), so no prior needs a
hand-written gradient.

Two nested factors (classes within schools) are both integrated out: Woodbury per class,
then again per school on the classes' sums (``_nested_loglik``). Its gradient is written by
hand when classes have one effect (``_nested_q1_loglik_grad``, the common case) and taken by
complex step through the whole likelihood otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["PackedModel", "pack_model", "run_nutpie", "PRIOR_CODES"]

PRIOR_CODES = {
    "Normal": 0, "StudentT": 1, "Cauchy": 2, "Laplace": 3, "HalfNormal": 4, "HalfStudentT": 5,
    "HalfCauchy": 6, "Exponential": 7, "Gamma": 8, "InverseGamma": 9,
}  # fmt: skip
STEP = 1e-30  # complex step
HEADER = 24

# header positions
_LEN, _NDIM, _P, _J, _Q, _NBLOCKS, _HASINT, _INTCOL, _N, _YTY, _NEXP = range(11)
_OFF_BLOCKS, _OFF_PRIORS, _OFF_SLOPES, _OFF_MEANS, _OFF_XTX, _OFF_XTY = range(11, 17)
_OFF_ZTZ, _OFF_ZTX, _OFF_ZTY = range(17, 20)
_NESTED, _Q1, _NOUTER, _OFF_NESTED = range(20, 24)  # two nested factors: see _nested_loglik


@numba.njit(cache=True, error_model="numpy")
def _prior_logp(code, a, b, c, x):
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
def _unpack(x, buf, b, lam, out_sigma):
    """Unconstrained x -> b (p), Lambda (q x q, zeroed first), sigma (out_sigma[0]); returns
    the log prior plus the log Jacobian. Works for float64 and complex128 x alike."""
    p, q = int(buf[_P]), int(buf[_Q])
    has_int, int_col = int(buf[_HASINT]), int(buf[_INTCOL])
    priors, slopes, means = int(buf[_OFF_PRIORS]), int(buf[_OFF_SLOPES]), int(buf[_OFF_MEANS])
    lp = 0.0 * x[0]
    k = 0  # position in x
    pr = 0  # position in the prior table (one row of 4 per scalar parameter)
    n_slopes = p - has_int
    for i in range(n_slopes):
        beta = x[has_int + i]
        b[int(buf[slopes + i])] = beta
        row = priors + 4 * (has_int + i)
        lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], beta)
    if has_int:
        icpt = x[0]
        lp += _prior_logp(int(buf[priors]), buf[priors + 1], buf[priors + 2], buf[priors + 3], icpt)
        shift = 0.0 * x[0]
        for i in range(n_slopes):
            shift += buf[means + i] * x[1 + i]
        b[int_col] = icpt - shift
    k = p
    pr = p
    for i in range(q):
        for j in range(q):
            lam[i, j] = 0.0
    blocks = int(buf[_OFF_BLOCKS])
    for blk in range(int(buf[_NBLOCKS])):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        correlated, eta = buf[blocks + 4 * blk + 2] > 0, buf[blocks + 4 * blk + 3]
        sd_pos = k
        for i in range(size):
            u = x[k]
            sd = np.exp(u)
            row = priors + 4 * pr
            lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], sd) + u
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
    u = x[k]
    out_sigma[0] = np.exp(u)
    row = priors + 4 * pr
    lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], out_sigma[0]) + u
    return lp


@numba.njit(cache=True, error_model="numpy")
def _loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """The marginal log-likelihood at (b, Lambda, sigma); fills its gradient in b and Lambda
    and returns (loglik, d loglik / d sigma)."""
    p, q, J = int(buf[_P]), int(buf[_Q]), int(buf[_J])
    n, yty = buf[_N], buf[_YTY]
    XtX, Xty = int(buf[_OFF_XTX]), int(buf[_OFF_XTY])
    s2 = sigma * sigma
    # X'r and r'r from the totals
    Xtr = np.empty(p)
    rtr = yty
    for a in range(p):
        xb = 0.0
        for c in range(p):
            xb += buf[XtX + a * p + c] * b[c]
        Xtr[a] = buf[Xty + a] - xb
        rtr -= 2 * buf[Xty + a] * b[a] - b[a] * xb
    g_b[:] = 0.0
    g_lam[:, :] = 0.0
    if q == 1:
        logdet, quad, trace, vtv = _groups_q1(lam, s2, b, buf, g_b, g_lam)
    elif q == 2:
        logdet, quad, trace, vtv = _groups_q2(lam, s2, b, buf, g_b, g_lam)
    elif q == 3:
        logdet, quad, trace, vtv = _groups_q3(lam, s2, b, buf, g_b, g_lam)
    else:
        logdet, quad, trace, vtv = _groups(lam, s2, b, buf, g_b, g_lam)
    for c in range(p):
        g_b[c] = (Xtr[c] + g_b[c]) / s2
    nq = n - J * q
    resid = rtr - quad
    loglik = -0.5 * (n * math.log(2 * math.pi) + nq * math.log(s2) + logdet + resid / s2)
    d_s2 = -0.5 * (nq / s2 + trace - resid / (s2 * s2) + vtv / s2)
    return loglik, 2 * sigma * d_s2


@numba.njit(cache=True, error_model="numpy")
def _groups(lam, s2, b, buf, g_b, g_lam):
    """Sums over groups of log|M_j|, w_j'v_j, tr M_j^{-1} and v_j'v_j, and the groups' parts
    of the gradient (added to g_b and g_lam); any q, by loops."""
    p, q, J = int(buf[_P]), int(buf[_Q]), int(buf[_J])
    ZtZ, ZtX, Zty = int(buf[_OFF_ZTZ]), int(buf[_OFF_ZTX]), int(buf[_OFF_ZTY])
    cvec = np.empty(q)
    AL = np.empty((q, q))
    M = np.empty((q, q))
    L = np.empty((q, q))
    Minv = np.empty((q, q))
    w = np.empty(q)
    v = np.empty(q)
    Lv = np.empty(q)
    logdet = 0.0
    quad = 0.0
    trace = 0.0
    vtv = 0.0
    for j in range(J):
        A = buf[ZtZ + j * q * q : ZtZ + (j + 1) * q * q]
        for a in range(q):  # c_j = Z'y - Z'X b
            s = buf[Zty + j * q + a]
            base = ZtX + (j * q + a) * p
            for c in range(p):
                s -= buf[base + c] * b[c]
            cvec[a] = s
        for a in range(q):  # A Lambda (Lambda lower triangular)
            for c in range(q):
                s = 0.0
                for m in range(c, q):
                    s += A[a * q + m] * lam[m, c]
                AL[a, c] = s
        for a in range(q):  # M = sigma^2 I + Lambda' A Lambda
            for c in range(a + 1):
                s = s2 if a == c else 0.0
                for m in range(a, q):
                    s += lam[m, a] * AL[m, c]
                M[a, c] = s
                M[c, a] = s
        logdet += _cholesky(M, L)
        for a in range(q):  # w = Lambda' c
            s = 0.0
            for m in range(a, q):
                s += lam[m, a] * cvec[m]
            w[a] = s
        for a in range(q):  # M^{-1}
            for c in range(q):
                Minv[a, c] = 1.0 if a == c else 0.0
        _chol_solve(L, Minv)
        for a in range(q):
            s = 0.0
            for c in range(q):
                s += Minv[a, c] * w[c]
            v[a] = s
            quad += w[a] * s
            trace += Minv[a, a]
            vtv += s * s
        for a in range(q):  # Lambda v, then d/db: - Z_jX_j' Lambda v / sigma^2
            s = 0.0
            for c in range(a + 1):
                s += lam[a, c] * v[c]
            Lv[a] = s
        for a in range(q):
            base = ZtX + (j * q + a) * p
            for c in range(p):
                g_b[c] -= buf[base + c] * Lv[a]
        # d/dLambda (lower part only): -A Lambda M^{-1} + (c v' - A Lambda v v') / sigma^2
        for a in range(q):
            ALv = 0.0
            for m in range(q):
                ALv += AL[a, m] * v[m]
            for c in range(a + 1):
                s = 0.0
                for m in range(q):
                    s += AL[a, m] * Minv[m, c]
                g_lam[a, c] += -s + (cvec[a] * v[c] - ALv * v[c]) / s2
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups_q1(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for one effect per group, in closed form."""
    p, J = int(buf[_P]), int(buf[_J])
    ZtZ, ZtX, Zty = int(buf[_OFF_ZTZ]), int(buf[_OFF_ZTX]), int(buf[_OFF_ZTY])
    l = lam[0, 0]
    logdet = quad = trace = vtv = g = 0.0
    for j in range(J):
        a = buf[ZtZ + j]
        c = buf[Zty + j]
        for k in range(p):
            c -= buf[ZtX + j * p + k] * b[k]
        al = a * l
        m = s2 + l * al
        v = l * c / m
        logdet += math.log(m)
        quad += l * c * v
        trace += 1.0 / m
        vtv += v * v
        lv = l * v
        for k in range(p):
            g_b[k] -= buf[ZtX + j * p + k] * lv
        g += -al / m + (c - al * v) * v / s2
    g_lam[0, 0] = g
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups_q2(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for two effects per group, in closed form (M_j inverted as a 2 x 2)."""
    p, J = int(buf[_P]), int(buf[_J])
    ZtZ, ZtX, Zty = int(buf[_OFF_ZTZ]), int(buf[_OFF_ZTX]), int(buf[_OFF_ZTY])
    l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
    logdet = quad = trace = vtv = 0.0
    g00 = g10 = g11 = 0.0
    for j in range(J):
        a00, a01, a11 = buf[ZtZ + 4 * j], buf[ZtZ + 4 * j + 1], buf[ZtZ + 4 * j + 3]
        row0, row1 = ZtX + 2 * j * p, ZtX + (2 * j + 1) * p
        c0, c1 = buf[Zty + 2 * j], buf[Zty + 2 * j + 1]
        for k in range(p):
            c0 -= buf[row0 + k] * b[k]
            c1 -= buf[row1 + k] * b[k]
        al00, al01 = a00 * l00 + a01 * l10, a01 * l11  # A Lambda
        al10, al11 = a01 * l00 + a11 * l10, a11 * l11
        t00, t11 = l00 * al00 + l10 * al10, l11 * al11  # T = Lambda' A Lambda
        m00, m01, m11 = s2 + t00, l00 * al01 + l10 * al11, s2 + t11  # M = sigma^2 I + T
        # |M| = s2^2 + s2 tr T + |Lambda|^2 |A|: no cancellation when T is large and near rank one
        det = s2 * (s2 + t00 + t11) + (l00 * l11) ** 2 * max(a00 * a11 - a01 * a01, 0.0)
        i00, i01, i11 = m11 / det, -m01 / det, m00 / det  # M^{-1}
        w0, w1 = l00 * c0 + l10 * c1, l11 * c1
        v0, v1 = i00 * w0 + i01 * w1, i01 * w0 + i11 * w1
        logdet += math.log(det)
        quad += w0 * v0 + w1 * v1
        trace += i00 + i11
        vtv += v0 * v0 + v1 * v1
        lv0, lv1 = l00 * v0, l10 * v0 + l11 * v1
        for k in range(p):
            g_b[k] -= buf[row0 + k] * lv0 + buf[row1 + k] * lv1
        r0 = c0 - (al00 * v0 + al01 * v1)  # c - A Lambda v
        r1 = c1 - (al10 * v0 + al11 * v1)
        g00 += -(al00 * i00 + al01 * i01) + r0 * v0 / s2
        g10 += -(al10 * i00 + al11 * i01) + r1 * v0 / s2
        g11 += -(al10 * i01 + al11 * i11) + r1 * v1 / s2
    g_lam[0, 0], g_lam[1, 0], g_lam[1, 1] = g00, g10, g11
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups_q3(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for three effects per group, in closed form (M_j inverted by cofactors)."""
    p, J = int(buf[_P]), int(buf[_J])
    ZtZ, ZtX, Zty = int(buf[_OFF_ZTZ]), int(buf[_OFF_ZTX]), int(buf[_OFF_ZTY])
    l00, l10, l11, l20, l21, l22 = lam[0, 0], lam[1, 0], lam[1, 1], lam[2, 0], lam[2, 1], lam[2, 2]
    logdet = quad = trace = vtv = 0.0
    g00 = g10 = g11 = g20 = g21 = g22 = 0.0
    for j in range(J):
        A = ZtZ + 9 * j
        a00, a01, a02, a11, a12, a22 = buf[A], buf[A + 1], buf[A + 2], buf[A + 4], buf[A + 5], buf[A + 8]
        row0, row1, row2 = ZtX + 3 * j * p, ZtX + (3 * j + 1) * p, ZtX + (3 * j + 2) * p
        c0, c1, c2 = buf[Zty + 3 * j], buf[Zty + 3 * j + 1], buf[Zty + 3 * j + 2]
        for k in range(p):
            c0 -= buf[row0 + k] * b[k]
            c1 -= buf[row1 + k] * b[k]
            c2 -= buf[row2 + k] * b[k]
        # A Lambda
        al00 = a00 * l00 + a01 * l10 + a02 * l20
        al10 = a01 * l00 + a11 * l10 + a12 * l20
        al20 = a02 * l00 + a12 * l10 + a22 * l20
        al01, al11, al21 = a01 * l11 + a02 * l21, a11 * l11 + a12 * l21, a12 * l11 + a22 * l21
        al02, al12, al22 = a02 * l22, a12 * l22, a22 * l22
        # M = sigma^2 I + Lambda' A Lambda
        m00 = s2 + l00 * al00 + l10 * al10 + l20 * al20
        m01 = l00 * al01 + l10 * al11 + l20 * al21
        m02 = l00 * al02 + l10 * al12 + l20 * al22
        m11 = s2 + l11 * al11 + l21 * al21
        m12 = l11 * al12 + l21 * al22
        m22 = s2 + l22 * al22
        k00, k01, k02 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
        k11, k12, k22 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
        det = m00 * k00 + m01 * k01 + m02 * k02
        i00, i01, i02, i11, i12, i22 = k00 / det, k01 / det, k02 / det, k11 / det, k12 / det, k22 / det
        w0, w1, w2 = l00 * c0 + l10 * c1 + l20 * c2, l11 * c1 + l21 * c2, l22 * c2
        v0 = i00 * w0 + i01 * w1 + i02 * w2
        v1 = i01 * w0 + i11 * w1 + i12 * w2
        v2 = i02 * w0 + i12 * w1 + i22 * w2
        logdet += math.log(det)
        quad += w0 * v0 + w1 * v1 + w2 * v2
        trace += i00 + i11 + i22
        vtv += v0 * v0 + v1 * v1 + v2 * v2
        lv0, lv1, lv2 = l00 * v0, l10 * v0 + l11 * v1, l20 * v0 + l21 * v1 + l22 * v2
        for k in range(p):
            g_b[k] -= buf[row0 + k] * lv0 + buf[row1 + k] * lv1 + buf[row2 + k] * lv2
        r0 = (c0 - (al00 * v0 + al01 * v1 + al02 * v2)) / s2  # (c - A Lambda v) / sigma^2
        r1 = (c1 - (al10 * v0 + al11 * v1 + al12 * v2)) / s2
        r2 = (c2 - (al20 * v0 + al21 * v1 + al22 * v2)) / s2
        g00 += r0 * v0 - (al00 * i00 + al01 * i01 + al02 * i02)
        g10 += r1 * v0 - (al10 * i00 + al11 * i01 + al12 * i02)
        g11 += r1 * v1 - (al10 * i01 + al11 * i11 + al12 * i12)
        g20 += r2 * v0 - (al20 * i00 + al21 * i01 + al22 * i02)
        g21 += r2 * v1 - (al20 * i01 + al21 * i11 + al22 * i12)
        g22 += r2 * v2 - (al20 * i02 + al21 * i12 + al22 * i22)
    g_lam[0, 0], g_lam[1, 0], g_lam[1, 1] = g00, g10, g11
    g_lam[2, 0], g_lam[2, 1], g_lam[2, 2] = g20, g21, g22
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def logp_and_grad(x, buf, grad):
    """Log posterior density (up to a constant) at unconstrained x; fills ``grad``."""
    nested = buf[_NESTED] > 0
    if nested and int(buf[_Q1]) > 1:
        return _nested_logp_and_grad(x, buf, grad)
    n_dim, p, q = x.shape[0], int(buf[_P]), int(buf[_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    lp_prior = _unpack(x, buf, b, lam, sig)
    g_b = np.empty(p)
    g_lam = np.empty((q, q))
    if not (np.isfinite(lp_prior) and 0.0 < sig[0] * sig[0] < np.inf and np.all(np.isfinite(lam))):
        grad[:] = 0.0  # outside what double precision can represent: a rejected point
        return -np.inf
    if nested:
        loglik, g_sigma = _nested_q1_loglik_grad(b, lam, sig[0], buf, g_b, g_lam)
    else:
        loglik, g_sigma = _loglik_grad(b, lam, sig[0], buf, g_b, g_lam)
    # chain rule through the small map x -> (b, Lambda, sigma) and the prior, by complex step
    xc = x.astype(np.complex128)
    bc = np.zeros(p, dtype=np.complex128)
    lamc = np.zeros((q, q), dtype=np.complex128)
    sigc = np.zeros(1, dtype=np.complex128)
    for i in range(n_dim):
        xc[i] = x[i] + 1j * STEP
        lpc = _unpack(xc, buf, bc, lamc, sigc)
        g = lpc.imag
        for c in range(p):
            g += g_b[c] * bc[c].imag
        for a in range(q):
            for c in range(a + 1):
                g += g_lam[a, c] * lamc[a, c].imag
        g += g_sigma * sigc[0].imag
        grad[i] = g / STEP
        xc[i] = x[i]
    return loglik + lp_prior


@numba.njit(cache=True, error_model="numpy")
def expand(x, buf, out):
    """The draws to keep: b (p), Lambda (q x q, row-major), sigma."""
    p, q = int(buf[_P]), int(buf[_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    _unpack(x, buf, b, lam, sig)
    out[:p] = b
    for a in range(q):
        for c in range(q):
            out[p + a * q + c] = lam[a, c]
    out[p + q * q] = sig[0]


@numba.njit(cache=True, error_model="numpy")
def _nested_offsets(buf):
    p, q1, C = int(buf[_P]), int(buf[_Q1]), int(buf[_J])
    q2 = int(buf[_Q]) - q1
    outer_of = int(buf[_OFF_NESTED])
    n_c = outer_of + C
    A = n_c + C
    ZU = A + C * q1 * q1
    UU = ZU + C * q1 * q2
    ZX = UU + C * q2 * q2
    UX = ZX + C * q1 * p
    Zy = UX + C * q2 * p
    Uy = Zy + C * q1
    return outer_of, n_c, A, ZU, UU, ZX, UX, Zy, Uy


@numba.njit(cache=True, error_model="numpy")
def _chol_solve(L, rhs):
    """Overwrite ``rhs`` (k x m) with (L L')^{-1} rhs; L lower triangular (any dtype)."""
    k, m = rhs.shape
    for col in range(m):
        for a in range(k):
            t = rhs[a, col]
            for i in range(a):
                t -= L[a, i] * rhs[i, col]
            rhs[a, col] = t / L[a, a]
        for a in range(k - 1, -1, -1):
            t = rhs[a, col]
            for i in range(a + 1, k):
                t -= L[i, a] * rhs[i, col]
            rhs[a, col] = t / L[a, a]


@numba.njit(cache=True, error_model="numpy")
def _cholesky(M, L):
    """L = the lower Cholesky factor of M (any dtype); returns log det M."""
    k = M.shape[0]
    logdet = 0.0 * M[0, 0]
    for a in range(k):
        for c in range(a + 1):
            t = M[a, c]
            for i in range(c):
                t -= L[a, i] * L[c, i]
            if a == c:
                L[a, a] = np.sqrt(t)
            else:
                L[a, c] = t / L[c, c]
        logdet += 2 * np.log(L[a, a])
    return logdet


@numba.njit(cache=True, error_model="numpy")
def _inner_group(c, b, lam, s2, buf, L, M, rhs, wY, zr, ur, u_s, B_s):
    """Inner group c's share of the nested likelihood (any dtype; see ``_nested_loglik``).

    Fills L (the Cholesky factor of M_c) and rhs = M_c^{-1} Lambda1' [Z'r | Z'U]; adds
    U'W r to ``u_s`` and U'W U to ``B_s`` (its outer group's rows); returns
    (log det(sigma^2 I + Z G1 Z'), w' M_c^{-1} w). M, wY, zr, ur are work space."""
    p, q1 = int(buf[_P]), int(buf[_Q1])
    q2 = int(buf[_Q]) - q1
    _, n_c, A, ZU, UU, ZX, UX, Zy, Uy = _nested_offsets(buf)
    zero = 0.0 * s2
    for a in range(q1):
        t = buf[Zy + c * q1 + a] + zero
        for k in range(p):
            t -= buf[ZX + (c * q1 + a) * p + k] * b[k]
        zr[a] = t
    for a in range(q2):
        t = buf[Uy + c * q2 + a] + zero
        for k in range(p):
            t -= buf[UX + (c * q2 + a) * p + k] * b[k]
        ur[a] = t
    for a in range(q1):  # M = sigma^2 I + Lambda1' A Lambda1
        for k in range(a + 1):
            t = s2 if a == k else zero
            for m in range(a, q1):
                for n in range(k, q1):
                    t += lam[m, a] * buf[A + (c * q1 + m) * q1 + n] * lam[n, k]
            M[a, k] = t
            M[k, a] = t
    logdet = (buf[n_c + c] - q1) * np.log(s2) + _cholesky(M, L)
    for a in range(q1):  # rhs = Lambda1' [Z'r | Z'U]
        t = zero
        for m in range(a, q1):
            t += lam[m, a] * zr[m]
        rhs[a, 0] = t
        for k in range(q2):
            t = zero
            for m in range(a, q1):
                t += lam[m, a] * buf[ZU + (c * q1 + m) * q2 + k]
            rhs[a, 1 + k] = t
    wY[:, :] = rhs
    _chol_solve(L, rhs)  # rhs = M^{-1} [w | Y]
    wMw = zero
    for a in range(q1):
        wMw += wY[a, 0] * rhs[a, 0]
    for k in range(q2):
        t = ur[k]
        for a in range(q1):
            t -= wY[a, 1 + k] * rhs[a, 0]
        u_s[k] += t / s2
        for m in range(q2):
            t = buf[UU + (c * q2 + k) * q2 + m] + zero
            for a in range(q1):
                t -= wY[a, 1 + k] * rhs[a, 1 + m]
            B_s[k, m] += t / s2
    return logdet, wMw


@numba.njit(cache=True, error_model="numpy")
def _nested_loglik(b, lam, sigma, buf):
    """Marginal log-likelihood with two nested factors both integrated out (complex-safe).

    Inner group c (Z, Lambda1) within outer group s (U, Lambda2). Per c, with
    M_c = sigma^2 I + Lambda1' Z'Z Lambda1 and W_c = (sigma^2 I + Z G1 Z')^{-1}:
    r'W r, U'W r and U'W U follow from Woodbury; summed over the c in s they give B_s = U_s'W U_s
    and u_s = U_s'W r_s, and with K_s = I + Lambda2' B_s Lambda2, g_s = Lambda2' u_s:
        log|V_s| = sum_c [(n_c - q1) log sigma^2 + log|M_c|] + log|K_s|
        r_s'V_s^{-1} r_s = sum_c r_c'W_c r_c - g_s' K_s^{-1} g_s
    """
    p, Q, q1, C, S = int(buf[_P]), int(buf[_Q]), int(buf[_Q1]), int(buf[_J]), int(buf[_NOUTER])
    q2 = Q - q1
    outer_of = _nested_offsets(buf)[0]
    XtX, Xty = int(buf[_OFF_XTX]), int(buf[_OFF_XTY])
    s2 = sigma * sigma
    zero = 0.0 * sigma
    rtr = buf[_YTY] + zero
    for a in range(p):
        xb = zero
        for c in range(p):
            xb += buf[XtX + a * p + c] * b[c]
        rtr += -2 * buf[Xty + a] * b[a] + b[a] * xb
    dt = lam.dtype
    B = np.zeros((S, q2, q2), dtype=dt)
    u = np.zeros((S, q2), dtype=dt)
    M = np.empty((q1, q1), dtype=dt)
    L = np.zeros((q1, q1), dtype=dt)
    rhs = np.empty((q1, 1 + q2), dtype=dt)  # [w | Lambda1' Z'U], then M^{-1} times it
    wY = np.empty((q1, 1 + q2), dtype=dt)  # a copy of it before the solve
    zr = np.empty(q1, dtype=dt)
    ur = np.empty(q2, dtype=dt)
    logdet = zero
    wMw = zero
    for c in range(C):
        s = int(buf[outer_of + c])
        ld, wmw = _inner_group(c, b, lam, s2, buf, L, M, rhs, wY, zr, ur, u[s], B[s])
        logdet += ld
        wMw += wmw
    K = np.empty((q2, q2), dtype=dt)
    LK = np.zeros((q2, q2), dtype=dt)
    g = np.empty((q2, 1), dtype=dt)
    outer = zero
    for s in range(S):
        for a in range(q2):  # K = I + Lambda2' B Lambda2, g = Lambda2' u (Lambda2 = lam[q1:, q1:])
            for k in range(q2):
                t = 1.0 + zero if a == k else zero
                for m in range(a, q2):
                    for n in range(k, q2):
                        t += lam[q1 + m, q1 + a] * B[s, m, n] * lam[q1 + n, q1 + k]
                K[a, k] = t
            t = zero
            for m in range(a, q2):
                t += lam[q1 + m, q1 + a] * u[s, m]
            g[a, 0] = t
        outer += _cholesky(K, LK)
        gg = g.copy()
        _chol_solve(LK, gg)
        for a in range(q2):
            outer -= g[a, 0] * gg[a, 0]
    n = buf[_N]
    return -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)


@numba.njit(cache=True, error_model="numpy")
def _nested_q1_loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """``_nested_loglik`` when the inner factor has one effect (class intercepts), with its
    gradient in b, Lambda and sigma by hand (reverse mode, two passes over the inner groups).
    Same conventions as ``_loglik_grad``; phi_c = l1^2 / m_c, m_c = sigma^2 + l1^2 Z'Z."""
    p, Q, C, S = int(buf[_P]), int(buf[_Q]), int(buf[_J]), int(buf[_NOUTER])
    q2 = Q - 1
    outer_of, n_c, A, ZU, UU, ZX, UX, Zy, Uy = _nested_offsets(buf)
    XtX, Xty = int(buf[_OFF_XTX]), int(buf[_OFF_XTY])
    n = buf[_N]
    s2 = sigma * sigma
    l1 = lam[0, 0]
    l1sq = l1 * l1
    Xtr = np.empty(p)
    rtr = buf[_YTY]
    for a in range(p):
        xb = 0.0
        for c in range(p):
            xb += buf[XtX + a * p + c] * b[c]
        Xtr[a] = buf[Xty + a] - xb
        rtr += -2 * buf[Xty + a] * b[a] + b[a] * xb
    u = np.zeros((S, q2))
    B = np.zeros((S, q2, q2))
    logdet = (n - C) * math.log(s2)
    wMw = 0.0
    for c in range(C):  # pass 1: per outer group, u = U'W r and B = U'W U (times sigma^2 for now)
        s = int(buf[outer_of + c])
        zr = buf[Zy + c]
        for k in range(p):
            zr -= buf[ZX + c * p + k] * b[k]
        m = s2 + l1sq * buf[A + c]
        phi = l1sq / m
        logdet += math.log(m)
        wMw += phi * zr * zr
        for k in range(q2):
            t = buf[Uy + c * q2 + k]
            for i in range(p):
                t -= buf[UX + (c * q2 + k) * p + i] * b[i]
            zu_k = buf[ZU + c * q2 + k]
            u[s, k] += t - phi * zu_k * zr
            for j in range(q2):
                B[s, k, j] += buf[UU + (c * q2 + k) * q2 + j] - phi * zu_k * buf[ZU + c * q2 + j]
    u /= s2
    B /= s2
    # per outer group: K = I + L2' B L2, g = L2' u, h = K^{-1} g, and the adjoints of u and B
    L2 = lam[1:, 1:]
    u_bar = np.empty((S, q2))
    B_bar = np.empty((S, q2, q2))
    g_L2 = np.zeros((q2, q2))
    K = np.empty((q2, q2))
    LK = np.zeros((q2, q2))
    rhs = np.empty((q2, q2 + 1))  # [I | g] -> [K^{-1} | h]
    g = np.empty(q2)
    BL = np.empty((q2, q2))
    outer = 0.0
    s2_bar = 0.0
    for s in range(S):
        for a in range(q2):
            for k in range(q2):
                t = 0.0
                for m in range(q2):
                    t += B[s, a, m] * L2[m, k]
                BL[a, k] = t
        for a in range(q2):
            for k in range(q2):
                t = 1.0 if a == k else 0.0
                for m in range(q2):
                    t += L2[m, a] * BL[m, k]
                K[a, k] = t
                rhs[a, k] = 1.0 if a == k else 0.0
            t = 0.0
            for m in range(q2):
                t += L2[m, a] * u[s, m]
            rhs[a, q2] = t
        outer += _cholesky(K, LK)
        for a in range(q2):
            g[a] = rhs[a, q2]
        _chol_solve(LK, rhs)
        for a in range(q2):
            outer -= g[a] * rhs[a, q2]
        for a in range(q2):  # u_bar = L2 h;  B_bar = -1/2 L2 (K^{-1} + h h') L2'
            t = 0.0
            for m in range(q2):
                t += L2[a, m] * rhs[m, q2]
            u_bar[s, a] = t
        for a in range(q2):
            for k in range(q2):
                t = 0.0
                for m in range(q2):
                    for i in range(q2):
                        t += L2[a, m] * (rhs[m, i] + rhs[m, q2] * rhs[i, q2]) * L2[k, i]
                B_bar[s, a, k] = -0.5 * t
        for a in range(q2):  # d/dL2: -(B L2 K^{-1} - u h' + B L2 h h')
            for k in range(q2):
                t = u[s, a] * rhs[k, q2]
                for m in range(q2):
                    t -= BL[a, m] * (rhs[m, k] + rhs[m, q2] * rhs[k, q2])
                g_L2[a, k] += t
        for a in range(q2):  # u and B carry 1 / sigma^2
            s2_bar -= u_bar[s, a] * u[s, a] / s2
            for k in range(q2):
                s2_bar -= B_bar[s, a, k] * B[s, a, k] / s2
    u_bar /= s2  # now adjoints of the sums before dividing by sigma^2
    B_bar /= s2
    for c in range(p):
        g_b[c] = Xtr[c] / s2
    l1_bar = 0.0
    for c in range(C):  # pass 2: the inner groups' share of the gradient
        s = int(buf[outer_of + c])
        zr = buf[Zy + c]
        for k in range(p):
            zr -= buf[ZX + c * p + k] * b[k]
        a_c = buf[A + c]
        m = s2 + l1sq * a_c
        inv = 1.0 / m
        phi = l1sq * inv
        uzu = 0.0
        zBz = 0.0
        for k in range(q2):
            zu_k = buf[ZU + c * q2 + k]
            uzu += u_bar[s, k] * zu_k
            for j in range(q2):
                zBz += B_bar[s, k, j] * zu_k * buf[ZU + c * q2 + j]
        zr_bar = phi * zr / s2 - phi * uzu
        for k in range(p):
            g_b[k] -= zr_bar * buf[ZX + c * p + k]
        for j in range(q2):
            for k in range(p):
                g_b[k] -= u_bar[s, j] * buf[UX + (c * q2 + j) * p + k]
        phi_bar = 0.5 * zr * zr / s2 - zr * uzu - zBz
        m_bar = -0.5 * inv
        l1_bar += phi_bar * 2 * l1 * s2 * inv * inv + m_bar * 2 * l1 * a_c
        s2_bar += phi_bar * (-l1sq * inv * inv) + m_bar
    s2_bar += -0.5 * (n - C) / s2 + 0.5 * (rtr - wMw) / (s2 * s2)
    g_lam[:, :] = 0.0
    g_lam[0, 0] = l1_bar
    for a in range(q2):
        for k in range(q2):
            g_lam[1 + a, 1 + k] = g_L2[a, k]
    loglik = -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)
    return loglik, 2 * sigma * s2_bar


@numba.njit(cache=True, error_model="numpy")
def _nested_logp_and_grad(x, buf, grad):
    """``logp_and_grad`` for two nested factors: the gradient by complex step throughout."""
    n_dim, p, q = x.shape[0], int(buf[_P]), int(buf[_Q])
    xc = x.astype(np.complex128)
    bc = np.zeros(p, dtype=np.complex128)
    lamc = np.zeros((q, q), dtype=np.complex128)
    sigc = np.zeros(1, dtype=np.complex128)
    value = 0.0
    for i in range(n_dim):
        xc[i] = x[i] + 1j * STEP
        lp = _unpack(xc, buf, bc, lamc, sigc) + _nested_loglik(bc, lamc, sigc[0], buf)
        grad[i] = lp.imag / STEP
        value = lp.real
        xc[i] = x[i]
    return value


@numba.njit(cache=True, parallel=True, error_model="numpy")
def draw_effects(b, lam, sigma, z, ZtZ, ZtX, Zty, n_j, yty_j, Xty_j, XtX_j, effects, loglik):
    """For each draw s and group j: b_j = Lambda_s (v + sigma L^{-T} z_sj), with M = L L' and
    v = M^{-1} Lambda' c_j (an exact draw of the group effects given the draw's parameters),
    and the group's marginal log-likelihood. Fills ``effects`` (S, J, q) and ``loglik`` (S, J)."""
    S, J, q = z.shape
    p = b.shape[1]
    for s in numba.prange(S):  # draws in parallel
        c = np.empty(q)
        AL = np.empty((q, q))
        L = np.empty((q, q))
        w = np.empty(q)
        eta = np.empty(q)
        s2 = sigma[s] * sigma[s]
        lm = lam[s]
        for j in range(J):
            rtr = yty_j[j]
            for a in range(p):
                xb = 0.0
                for k in range(p):
                    xb += XtX_j[j, a, k] * b[s, k]
                rtr += -2 * Xty_j[j, a] * b[s, a] + b[s, a] * xb
            for a in range(q):
                t = Zty[j, a]
                for k in range(p):
                    t -= ZtX[j, a, k] * b[s, k]
                c[a] = t
            for a in range(q):
                for k in range(q):
                    t = 0.0
                    for m in range(k, q):
                        t += ZtZ[j, a, m] * lm[m, k]
                    AL[a, k] = t
            logdet = 0.0
            for a in range(q):  # Cholesky of M = sigma^2 I + Lambda' A Lambda
                for k in range(a + 1):
                    t = s2 if a == k else 0.0
                    for m in range(a, q):
                        t += lm[m, a] * AL[m, k]
                    for m in range(k):
                        t -= L[a, m] * L[k, m]
                    L[a, k] = math.sqrt(t) if a == k else t / L[k, k]
                logdet += 2 * math.log(L[a, a])
            quad = 0.0
            for a in range(q):  # forward: L w = Lambda' c
                t = 0.0
                for m in range(a, q):
                    t += lm[m, a] * c[m]
                for m in range(a):
                    t -= L[a, m] * w[m]
                w[a] = t / L[a, a]
                quad += w[a] * w[a]
            loglik[s, j] = -0.5 * (n_j[j] * math.log(2 * math.pi) + (n_j[j] - q) * math.log(s2) + logdet
                                   + (rtr - quad) / s2)  # fmt: skip
            for a in range(q - 1, -1, -1):  # backward: L' eta = w + sigma z
                t = w[a] + sigma[s] * z[s, j, a]
                for m in range(a + 1, q):
                    t -= L[m, a] * eta[m]
                eta[a] = t / L[a, a]
            for a in range(q):
                t = 0.0
                for m in range(a + 1):
                    t += lm[a, m] * eta[m]
                effects[s, j, a] = t


@numba.njit(cache=True, parallel=True, error_model="numpy")
def draw_nested_effects(b, lam, sigma, z_in, z_out, buf, n_s, yty_s, Xty_s, XtX_s, eff_in, eff_out, loglik):
    """Exact draws with two nested factors, per posterior draw: the outer effects given y with
    the inner ones integrated out, eta2 ~ N(K^{-1} g, K^{-1}) (see ``_nested_loglik``), then the
    inner ones given those, v_c - M_c^{-1} Lambda1' Z'U b_outer + sigma L_c^{-T} z; and each
    outer group's marginal log-likelihood. Fills eff_in (S, C, q1), eff_out (S, S_out, q2), loglik."""
    S, C, q1 = z_in.shape
    S_out, q2 = z_out.shape[1], z_out.shape[2]
    p = b.shape[1]
    outer_of = _nested_offsets(buf)[0]
    for d in numba.prange(S):
        lm, s2, bb = lam[d], sigma[d] * sigma[d], b[d]
        Ls = np.zeros((C, q1, q1))
        v = np.empty((C, q1))
        V = np.empty((C, q1, q2))
        B = np.zeros((S_out, q2, q2))
        u = np.zeros((S_out, q2))
        logdet = np.zeros(S_out)
        wMw = np.zeros(S_out)
        M = np.empty((q1, q1))
        rhs = np.empty((q1, 1 + q2))
        wY = np.empty((q1, 1 + q2))
        zr = np.empty(q1)
        ur = np.empty(q2)
        for c in range(C):
            s = int(buf[outer_of + c])
            ld, wmw = _inner_group(c, bb, lm, s2, buf, Ls[c], M, rhs, wY, zr, ur, u[s], B[s])
            logdet[s] += ld
            wMw[s] += wmw
            for a in range(q1):
                v[c, a] = rhs[a, 0]
                for k in range(q2):
                    V[c, a, k] = rhs[a, 1 + k]
        K = np.empty((q2, q2))
        LK = np.zeros((q2, q2))
        f = np.empty(q2)
        eta = np.empty(q2)
        for s in range(S_out):
            for a in range(q2):
                for k in range(q2):
                    t = 1.0 if a == k else 0.0
                    for m in range(a, q2):
                        for n in range(k, q2):
                            t += lm[q1 + m, q1 + a] * B[s, m, n] * lm[q1 + n, q1 + k]
                    K[a, k] = t
            logdet_k = _cholesky(K, LK)
            quad = 0.0
            for a in range(q2):  # f = LK^{-1} g, g = Lambda2' u
                t = 0.0
                for m in range(a, q2):
                    t += lm[q1 + m, q1 + a] * u[s, m]
                for m in range(a):
                    t -= LK[a, m] * f[m]
                f[a] = t / LK[a, a]
                quad += f[a] * f[a]
            rtr = yty_s[s]
            for a in range(p):
                xb = 0.0
                for k in range(p):
                    xb += XtX_s[s, a, k] * bb[k]
                rtr += -2 * Xty_s[s, a] * bb[a] + bb[a] * xb
            loglik[d, s] = -0.5 * (n_s[s] * math.log(2 * math.pi) + logdet[s] + logdet_k + (rtr - wMw[s]) / s2 - quad)
            for a in range(q2 - 1, -1, -1):  # LK' eta = f + z
                t = f[a] + z_out[d, s, a]
                for m in range(a + 1, q2):
                    t -= LK[m, a] * eta[m]
                eta[a] = t / LK[a, a]
            for a in range(q2):
                t = 0.0
                for m in range(a + 1):
                    t += lm[q1 + a, q1 + m] * eta[m]
                eff_out[d, s, a] = t
        e1 = np.empty(q1)
        for c in range(C):
            s = int(buf[outer_of + c])
            L = Ls[c]
            for a in range(q1 - 1, -1, -1):  # L' e = sigma z + L' (v - V b_outer)
                t = 0.0
                for m in range(a, q1):
                    mean = v[c, m]
                    for k in range(q2):
                        mean -= V[c, m, k] * eff_out[d, s, k]
                    t += L[m, a] * mean
                t += sigma[d] * z_in[d, c, a]
                for m in range(a + 1, q1):
                    t -= L[m, a] * e1[m]
                e1[a] = t / L[a, a]
            for a in range(q1):
                t = 0.0
                for m in range(a + 1):
                    t += lm[a, m] * e1[m]
                eff_in[d, c, a] = t


_LOGP_SIG = numba.types.int64(
    numba.types.uint64, numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip
_EXPAND_SIG = numba.types.int64(
    numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip


@numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, data_):
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[_LEN]),), np.float64)
    if dim != int(head[_NDIM]):
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = logp_and_grad(x, buf, out)
    logp[0] = value
    for i in range(dim):
        if not np.isfinite(out[i]):
            return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, n_expanded, x_, out_, data_):
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[_LEN]),), np.float64)
    if dim != int(head[_NDIM]) or n_expanded != int(head[_NEXP]):
        return -1
    expand(numba.carray(x_, (dim,)), buf, numba.carray(out_, (n_expanded,)))
    return 0


# --- the model as data, and sampling it with nutpie --------------------------------------------


@dataclass(frozen=True)
class PackedModel:
    """The packed buffer nutpie's callbacks read, and how to read the draws back."""

    buffer: np.ndarray
    parameters: tuple[str, ...]  # names of the unconstrained numbers, for messages
    start: np.ndarray  # a sensible unconstrained starting point (before jitter)
    jitter: np.ndarray  # half-width of the uniform jitter of each start value
    p: int
    q: int
    blocks: tuple = ()  # in Lambda's order

    @property
    def nested(self) -> bool:
        return bool(self.buffer[_NESTED])

    @property
    def n_dim(self) -> int:
        return len(self.parameters)

    @property
    def n_expanded(self) -> int:
        return self.p + self.q * self.q + 1

    def logp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at unconstrained ``x`` (for tests and checks)."""
        grad = np.empty(self.n_dim)
        return float(logp_and_grad(np.asarray(x, dtype=float), self.buffer, grad)), grad

    def loglik(self, x: np.ndarray) -> float:
        """The marginal log-likelihood alone at unconstrained ``x`` (for tests)."""
        b, lam, sigma = self.natural(x)
        if self.nested:
            return float(_nested_loglik(b, lam, sigma, self.buffer))
        loglik, _ = _loglik_grad(b, lam, sigma, self.buffer, np.empty(self.p), np.empty((self.q, self.q)))
        return float(loglik)

    def natural(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(b, Lambda, sigma) at unconstrained ``x``."""
        out = np.empty(self.n_expanded)
        expand(np.asarray(x, dtype=float), self.buffer, out)
        q = self.q
        return out[: self.p], out[self.p : self.p + q * q].reshape(q, q), float(out[-1])

    def initial_point(self, seed) -> np.ndarray:
        """``start`` jittered; where the density or its gradient is not finite there (nutpie
        cannot start from such a point), jittered again with half the spread, then ``start``."""
        rng = np.random.default_rng(seed)
        for k in range(8):
            x = self.start + rng.uniform(-1, 1, self.n_dim) * self.jitter / 2**k
            value, grad = self.logp(x)
            if np.isfinite(value) and np.all(np.isfinite(grad)):
                return x
        return self.start.copy()


def pack_model(design, priors) -> PackedModel:
    """Pack ``design``'s sufficient statistics and ``priors`` into one float64 buffer."""
    from .marginal import integrated_blocks, nested_factors, nested_stats, sufficient_stats

    s = sufficient_stats(design)
    X, terms = design.X, design.fixed_terms
    p = X.shape[1]
    J, q = s.Zty.shape
    nested = nested_factors(design)
    blocks = integrated_blocks(design)  # with two nested factors: the inner one's, then the outer's
    if nested:
        blocks = blocks + [b for b in design.blocks if b.group == nested[0]]
    has_int = int(design.has_intercept)
    int_col = terms.index("(Intercept)") if has_int else -1
    slopes = [k for k in range(p) if k != int_col]
    means = X[:, slopes].mean(axis=0) if slopes else np.zeros(0)

    prior_rows, names = [], []
    if has_int:
        prior_rows.append(_prior_row(priors.get("Intercept")))
        names.append("Intercept_c")
    for k in slopes:
        prior_rows.append(_prior_row(priors.get("b", coef=terms[k])))
        names.append(f"beta[{terms[k]}]")
    block_rows, start = [], 0
    cor_names = []
    for block in blocks:
        for term in block.terms:
            prior_rows.append(_prior_row(priors.get("sd", block.name, term)))
            names.append(f"log sd_{block.name}[{term}]")
        eta = priors.get("cor", block.name).kwargs["eta"] if block.correlated else 0.0
        block_rows.append([start, block.size, float(block.correlated), eta])
        cor_names.append([f"atanh cpc_{block.name}[{block.terms[i]},{block.terms[j]}]"
                          for i in range(block.size) for j in range(i)] if block.correlated else [])  # fmt: skip
        start += block.size
    prior_rows.append(_prior_row(priors.get("sigma")))
    # unconstrained order: fixed, then per block its log SDs and its correlations, then sigma
    ordered = names[:p]
    k = p
    for block, cors in zip(blocks, cor_names):
        ordered += names[k : k + block.size] + cors
        k += block.size
    ordered.append("log sigma")

    per_group = [s.ZtZ.ravel(), s.ZtX.ravel(), s.Zty.ravel()]
    header = np.zeros(HEADER)
    if nested:
        per_group = [np.zeros(0)] * 3
        ns = nested_stats(design)
        q = sum(b.size for b in blocks)
        header[[_NESTED, _Q1, _NOUTER]] = [1, s.Zty.shape[1], len(ns.n_s)]
        nested_section = np.concatenate([np.asarray(a, dtype=float).ravel() for a in (
            ns.outer_of, ns.n_c, ns.ZtZ, ns.ZtU, ns.UtU, ns.ZtX, ns.UtX, ns.Zty, ns.Uty)])  # fmt: skip
    sections = [
        np.asarray(block_rows, dtype=float).ravel(), np.asarray(prior_rows, dtype=float).ravel(),
        np.asarray(slopes, dtype=float), means, s.XtX.ravel(), s.Xty, *per_group,
    ]  # fmt: skip
    header[[_NDIM, _P, _J, _Q, _NBLOCKS, _HASINT, _INTCOL, _N, _YTY]] = [
        len(ordered), p, J, q, len(blocks), has_int, int_col, s.n, s.yty,
    ]  # fmt: skip
    header[_NEXP] = p + q * q + 1
    offset = HEADER
    for pos, section in zip(range(_OFF_BLOCKS, _OFF_ZTY + 1), sections):
        header[pos] = offset
        offset += len(section)
    if nested:
        sections.append(nested_section)
        header[_OFF_NESTED] = offset
        offset += len(nested_section)
    header[_LEN] = offset
    buffer = np.ascontiguousarray(np.concatenate([header, *sections]))
    buffer.flags.writeable = False
    start_x, jitter = _start(design, blocks, slopes, int_col, means, len(ordered))
    return PackedModel(buffer, tuple(ordered), start_x, jitter, p, q, tuple(blocks))


def _prior_row(prior) -> list[float]:
    values = [v for _, v in prior.params] + [0.0] * (3 - len(prior.params))
    return [float(PRIOR_CODES[prior.dist]), *values]


def _start(design, blocks, slopes, int_col, means, n_dim):
    """Least-squares fixed effects, SDs at a third of the response's SD, no correlation and
    the residual SD; jittered by up to a tenth of a prior-like scale (fixed effects) or by
    +-1 on the log / atanh scale, as PyMC jitters its starting points."""
    X, y = design.X, design.y
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    resid_sd = float(np.std(y - X @ coef)) or 1.0
    s_y = float(np.std(y)) or 1.0
    start, jitter = [], []
    if int_col >= 0:
        start.append(coef[int_col] + means @ coef[slopes])
        jitter.append(0.1 * s_y)
    for k in slopes:
        start.append(coef[k])
        jitter.append(0.1 * s_y / (float(np.std(X[:, k])) or 1.0))
    for block in blocks:
        for i in range(block.size):
            s_z = 1.0 if block.terms[i] == "(Intercept)" else (float(np.std(block.Z[:, i])) or 1.0)
            start.append(np.log(s_y / s_z / 3))
            jitter.append(1.0)
        n_cor = block.size * (block.size - 1) // 2 if block.correlated else 0
        start += [0.0] * n_cor
        jitter += [1.0] * n_cor
    start.append(np.log(resid_sd))
    jitter.append(1.0)
    assert len(start) == n_dim
    return np.asarray(start, dtype=float), np.asarray(jitter, dtype=float)


def run_nutpie(design, packed: PackedModel, *, draws, tune, chains, seed, target_accept, nuts: dict, progressbar=False):
    """NUTS by nutpie on the packed model; returns a DataTree whose posterior holds ``b``,
    ``sd_<block>``, ``L_<block>`` and ``cor_<block>`` (correlated blocks), and ``sigma``,
    with the same names and dims as the PyMC model's."""
    import time

    import nutpie
    import xarray as xr
    from nutpie.compile_pymc import CompiledPyMCModel

    p, q = packed.p, packed.q
    compiled = CompiledPyMCModel(
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc, initial_point_func=packed.initial_point,
        shared_data={}, shared_var_keys={}, user_data=packed.buffer, n_expanded=packed.n_expanded,
        shape_info=(["b", "Lambda", "sigma"], [slice(0, p), slice(p, p + q * q), slice(p + q * q, p + q * q + 1)],
                    [(p,), (q, q), ()]),
        logp_func=None, expand_func=None, _n_dim=packed.n_dim, _shapes={"b": (p,), "Lambda": (q, q), "sigma": ()},
        _coords={}, dims={}, reparameterized_names=[],
    )  # fmt: skip
    started = time.time()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                         target_accept=target_accept, save_warmup=False, **nuts)  # fmt: skip
    elapsed = time.time() - started
    raw = tree.posterior.dataset
    chain_draw = {"chain": raw["chain"].values, "draw": raw["draw"].values}
    lam = raw["Lambda"].transpose("chain", "draw", ...).values
    post = {"b": xr.DataArray(raw["b"].transpose("chain", "draw", ...).values, dims=("chain", "draw", "term"),
                              coords={**chain_draw, "term": list(design.fixed_terms)})}  # fmt: skip
    start = 0
    for block in packed.blocks:
        sl = slice(start, start + block.size)
        part = lam[:, :, sl, sl]
        sd = np.sqrt(np.einsum("cdik,cdik->cdi", part, part))  # row norms of diag(sd) L
        effect = f"{block.name}__effect"
        terms = list(block.terms)
        post[f"sd_{block.name}"] = xr.DataArray(sd, dims=("chain", "draw", effect),
                                                coords={**chain_draw, effect: terms})  # fmt: skip
        if block.correlated:
            chol = part / sd[..., None]
            bis = f"{effect}_bis"
            post[f"L_{block.name}"] = xr.DataArray(chol, dims=("chain", "draw", f"L_{block.name}_dim_0",
                                                               f"L_{block.name}_dim_1"), coords=chain_draw)  # fmt: skip
            post[f"cor_{block.name}"] = xr.DataArray(
                np.einsum("cdik,cdjk->cdij", chol, chol), dims=("chain", "draw", effect, bis),
                coords={**chain_draw, effect: terms, bis: terms},
            )
        start += block.size
    post["sigma"] = xr.DataArray(raw["sigma"].transpose("chain", "draw").values, dims=("chain", "draw"),
                                 coords=chain_draw)  # fmt: skip
    attrs = {"sampling_time": elapsed, "tuning_steps": tune, "log_density": "hierbayes.marginal_numba"}
    posterior = xr.Dataset(post, attrs=attrs)
    tree["posterior"] = xr.DataTree(posterior)
    return tree


def warm_up() -> None:
    """Compile everything here, or load it from numba's disk cache (``scripts/setup.sh`` runs
    this once after installing, so that the first fit does not wait for the compiler)."""
    one = np.ones((1, 1, 1))
    draw_effects(np.zeros((1, 1)), one.copy(), np.ones(1), np.zeros((1, 1, 1)), one.copy(), np.zeros((1, 1, 1)),
                 np.zeros((1, 1)), np.ones(1), np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1, 1)),
                 np.empty((1, 1, 1)), np.empty((1, 1)))  # fmt: skip


if __name__ == "__main__":
    warm_up()
