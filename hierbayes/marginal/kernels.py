"""One grouping factor integrated out: the per-group Woodbury step in numba.

For y_j ~ N(X_j b, sigma^2 I + Z_j G Z_j') with G = Lambda Lambda' (Lambda lower triangular),
A_j = Z_j'Z_j, c_j = Z_j'(y_j - X_j b), M_j = sigma^2 I + Lambda' A_j Lambda, w_j = Lambda' c_j
and v_j = M_j^{-1} w_j (matrix determinant lemma and Woodbury identity; G is never inverted):

    log p(y) = -1/2 [N log 2 pi + (N - J q) log sigma^2 + sum_j log|M_j|
                     + (r'r - sum_j w_j' v_j) / sigma^2]

with its gradient written out by hand:

    d/db      = (X'r - sum_j Z_jX_j' Lambda v_j) / sigma^2
    d/dLambda = sum_j -A_j Lambda M_j^{-1} + (c_j v_j' - A_j Lambda v_j v_j') / sigma^2
    d/dsigma2 = -1/2 [(N - J q)/sigma^2 + sum_j tr M_j^{-1} - (r'r - sum_j w_j'v_j)/sigma^4
                      + sum_j v_j'v_j / sigma^2]

Everything comes from per-group sufficient statistics (``stats``) packed in the buffer
(``layout``), so a gradient costs O(J q^3) whatever the number of rows. q = 1, 2, 3 have
closed forms (``_groups_q1``..``_groups_q3``); larger q runs the general loops (``_groups``). ``draw_effects`` is the same step
per posterior draw, giving the exact conditional draw b_j = Lambda (v_j + sigma L_j^{-T} z)
and the group's own marginal log-likelihood.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core.layout import (
    H_HASINT, H_INTCOL, H_J, H_N, H_P, H_Q, H_X0, H_YTY, OFF_XTX, OFF_XTY, OFF_ZTX, OFF_ZTY, OFF_ZTZ,
)  # fmt: skip
from ..core.linalg import chol_solve, cholesky, lower_times

__all__ = ["loglik_grad", "centred", "residual_ss", "totals_residual", "woodbury_system", "woodbury_gradient", "woodbury_q1",
           "woodbury_q2", "group_draw", "draw_effects"]


@numba.njit(cache=True, error_model="numpy")
def loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """The marginal log-likelihood at (b, Lambda, sigma); fills its gradient in b and Lambda
    and returns (loglik, d loglik / d sigma)."""
    b = centred(b, buf)
    p, q, J = int(buf[H_P]), int(buf[H_Q]), int(buf[H_J])
    n = buf[H_N]
    s2 = sigma * sigma
    Xtr = np.empty(p)
    rtr = totals_residual(buf, b, Xtr)
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


@numba.njit(cache=True, error_model="numpy", inline="always")
def centred(b, buf):
    """b with c (``H_X0``) taken off the intercept: the statistics are of y - c
    (``stats.response_shift``). Any dtype."""
    out = b.copy()
    if buf[H_HASINT] > 0:
        out[int(buf[H_INTCOL])] -= buf[H_X0]
    return out


@numba.njit(cache=True, error_model="numpy")
def residual_ss(yty, Xty, XtX, b, Xtr):
    """r'r = y'y - 2 b'X'y + b'X'X b (X'X flattened row-major) and X'r = X'y - X'X b into
    ``Xtr``, from cross-products of any set of rows (any dtype)."""
    p = b.shape[0]
    rtr = yty + 0.0 * b[0]
    for a in range(p):
        xb = 0.0 * b[0]
        for c in range(p):
            xb += XtX[a * p + c] * b[c]
        Xtr[a] = Xty[a] - xb
        rtr += -2 * Xty[a] * b[a] + b[a] * xb
    return rtr


@numba.njit(cache=True, error_model="numpy")
def totals_residual(buf, b, Xtr):
    """``residual_ss`` over all rows, from the packed totals."""
    p, XtX, Xty = int(buf[H_P]), int(buf[OFF_XTX]), int(buf[OFF_XTY])
    return residual_ss(buf[H_YTY], buf[Xty : Xty + p], buf[XtX : XtX + p * p], b, Xtr)


@numba.njit(cache=True, error_model="numpy")
def _group_c(j, b, buf, c):
    """Group j's c = Z'y - Z'X b from the packed statistics."""
    p, q = int(buf[H_P]), int(buf[H_Q])
    ZtX, Zty = int(buf[OFF_ZTX]), int(buf[OFF_ZTY])
    for a in range(q):
        s = buf[Zty + j * q + a]
        base = ZtX + (j * q + a) * p
        for k in range(p):
            s -= buf[base + k] * b[k]
        c[a] = s


@numba.njit(cache=True, error_model="numpy")
def _group_system(j, lam, s2, b, buf, c, AL, M, L):
    """Group j's Woodbury system from the packed statistics: c = Z'y - Z'X b, then
    ``woodbury_system``; returns log|M|. The per-group step of the general-q log density."""
    q = int(buf[H_Q])
    _group_c(j, b, buf, c)
    return woodbury_system(buf, int(buf[OFF_ZTZ]) + j * q * q, lam, s2, AL, M, L)


@numba.njit(cache=True, error_model="numpy")
def woodbury_system(A, at, lam, s2, AL, M, L):
    """A Lambda (A = Z'Z, q x q row-major in ``A`` from ``at``), M = sigma^2 I + Lambda' A
    Lambda and its Cholesky factor L; returns log|M|."""
    q = AL.shape[0]
    for a in range(q):  # A Lambda (Lambda lower triangular)
        for k in range(q):
            s = 0.0
            for m in range(k, q):
                s += A[at + a * q + m] * lam[m, k]
            AL[a, k] = s
    for a in range(q):  # M = sigma^2 I + Lambda' A Lambda
        for k in range(a + 1):
            s = s2 if a == k else 0.0
            for m in range(a, q):
                s += lam[m, a] * AL[m, k]
            M[a, k] = s
            M[k, a] = s
    return cholesky(M, L)


@numba.njit(cache=True, error_model="numpy")
def woodbury_gradient(c, AL, L, lam, s2, Minv, w, v, Lv, g_lam):
    """After ``woodbury_system``: w = Lambda' c, v = M^{-1} w and Lambda v (the group's
    effects' conditional mean, into ``Lv``); adds the group's d/dLambda (lower part),
    -A Lambda M^{-1} + (c v' - A Lambda v v') / sigma^2, into ``g_lam``; returns (w'v,
    tr M^{-1}, v'v)."""
    q = c.shape[0]
    for a in range(q):  # w = Lambda' c
        s = 0.0
        for m in range(a, q):
            s += lam[m, a] * c[m]
        w[a] = s
    for a in range(q):  # M^{-1}
        for k in range(q):
            Minv[a, k] = 1.0 if a == k else 0.0
    chol_solve(L, Minv)
    quad = trace = vtv = 0.0
    for a in range(q):
        s = 0.0
        for k in range(q):
            s += Minv[a, k] * w[k]
        v[a] = s
        quad += w[a] * s
        trace += Minv[a, a]
        vtv += s * s
    for a in range(q):
        s = 0.0
        for k in range(a + 1):
            s += lam[a, k] * v[k]
        Lv[a] = s
    for a in range(q):
        ALv = 0.0
        for m in range(q):
            ALv += AL[a, m] * v[m]
        for k in range(a + 1):
            s = 0.0
            for m in range(q):
                s += AL[a, m] * Minv[m, k]
            g_lam[a, k] += -s + (c[a] * v[k] - ALv * v[k]) / s2
    return quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups(lam, s2, b, buf, g_b, g_lam):
    """Sums over groups of log|M_j|, w_j'v_j, tr M_j^{-1} and v_j'v_j, and the groups' parts
    of the gradient (added to g_b and g_lam); any q, by loops."""
    p, q, J = int(buf[H_P]), int(buf[H_Q]), int(buf[H_J])
    ZtX = int(buf[OFF_ZTX])
    cvec, w, v, Lv = np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    AL, M, L, Minv = np.empty((q, q)), np.empty((q, q)), np.empty((q, q)), np.empty((q, q))
    logdet = quad = trace = vtv = 0.0
    for j in range(J):
        logdet += _group_system(j, lam, s2, b, buf, cvec, AL, M, L)
        dq, dt, dv = woodbury_gradient(cvec, AL, L, lam, s2, Minv, w, v, Lv, g_lam)
        quad += dq
        trace += dt
        vtv += dv
        for a in range(q):  # d/db: - Z_jX_j' Lambda v / sigma^2
            base = ZtX + (j * q + a) * p
            for k in range(p):
                g_b[k] -= buf[base + k] * Lv[a]
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def woodbury_q1(a, c, l, s2):
    """One group's Woodbury step for one effect (A = a, c, Lambda = l) in closed form:
    (log M, w v, 1 / M, v^2, Lambda v, its d/dLambda)."""
    al = a * l
    m = s2 + l * al
    v = l * c / m
    return math.log(m), l * c * v, 1.0 / m, v * v, l * v, -al / m + (c - al * v) * v / s2


@numba.njit(cache=True, error_model="numpy")
def woodbury_q2(a00, a01, a11, c0, c1, l00, l10, l11, s2):
    """One group's Woodbury step for two effects in closed form (M inverted as a 2 x 2):
    (log|M|, w'v, tr M^{-1}, v'v, Lambda v (2), d/dLambda at (0,0), (1,0), (1,1))."""
    al00, al01 = a00 * l00 + a01 * l10, a01 * l11  # A Lambda
    al10, al11 = a01 * l00 + a11 * l10, a11 * l11
    t00, t11 = l00 * al00 + l10 * al10, l11 * al11  # T = Lambda' A Lambda
    m00, m01, m11 = s2 + t00, l00 * al01 + l10 * al11, s2 + t11  # M = sigma^2 I + T
    # |M| = s2^2 + s2 tr T + |Lambda|^2 |A|: no cancellation when T is large and near rank one
    det = s2 * (s2 + t00 + t11) + (l00 * l11) ** 2 * max(a00 * a11 - a01 * a01, 0.0)
    i00, i01, i11 = m11 / det, -m01 / det, m00 / det  # M^{-1}
    w0, w1 = l00 * c0 + l10 * c1, l11 * c1
    v0, v1 = i00 * w0 + i01 * w1, i01 * w0 + i11 * w1
    r0 = c0 - (al00 * v0 + al01 * v1)  # c - A Lambda v
    r1 = c1 - (al10 * v0 + al11 * v1)
    return (math.log(det), w0 * v0 + w1 * v1, i00 + i11, v0 * v0 + v1 * v1, l00 * v0, l10 * v0 + l11 * v1,
            -(al00 * i00 + al01 * i01) + r0 * v0 / s2, -(al10 * i00 + al11 * i01) + r1 * v0 / s2,
            -(al10 * i01 + al11 * i11) + r1 * v1 / s2)  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def _groups_q1(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for one effect per group (``woodbury_q1``)."""
    p, J = int(buf[H_P]), int(buf[H_J])
    ZtZ, ZtX, Zty = int(buf[OFF_ZTZ]), int(buf[OFF_ZTX]), int(buf[OFF_ZTY])
    l = lam[0, 0]
    logdet = quad = trace = vtv = g = 0.0
    for j in range(J):
        c = buf[Zty + j]
        for k in range(p):
            c -= buf[ZtX + j * p + k] * b[k]
        dl, dq, dt, dv, lv, dg = woodbury_q1(buf[ZtZ + j], c, l, s2)
        logdet += dl
        quad += dq
        trace += dt
        vtv += dv
        g += dg
        for k in range(p):
            g_b[k] -= buf[ZtX + j * p + k] * lv
    g_lam[0, 0] = g
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups_q2(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for two effects per group (``woodbury_q2``)."""
    p, J = int(buf[H_P]), int(buf[H_J])
    ZtZ, ZtX, Zty = int(buf[OFF_ZTZ]), int(buf[OFF_ZTX]), int(buf[OFF_ZTY])
    l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
    logdet = quad = trace = vtv = 0.0
    g00 = g10 = g11 = 0.0
    for j in range(J):
        row0, row1 = ZtX + 2 * j * p, ZtX + (2 * j + 1) * p
        c0, c1 = buf[Zty + 2 * j], buf[Zty + 2 * j + 1]
        for k in range(p):
            c0 -= buf[row0 + k] * b[k]
            c1 -= buf[row1 + k] * b[k]
        dl, dq, dt, dv, lv0, lv1, d00, d10, d11 = woodbury_q2(buf[ZtZ + 4 * j], buf[ZtZ + 4 * j + 1],
                                                              buf[ZtZ + 4 * j + 3], c0, c1, l00, l10, l11, s2)  # fmt: skip
        logdet += dl
        quad += dq
        trace += dt
        vtv += dv
        g00 += d00
        g10 += d10
        g11 += d11
        for k in range(p):
            g_b[k] -= buf[row0 + k] * lv0 + buf[row1 + k] * lv1
    g_lam[0, 0], g_lam[1, 0], g_lam[1, 1] = g00, g10, g11
    return logdet, quad, trace, vtv


@numba.njit(cache=True, error_model="numpy")
def _groups_q3(lam, s2, b, buf, g_b, g_lam):
    """``_groups`` for three effects per group, in closed form (M_j inverted by cofactors)."""
    p, J = int(buf[H_P]), int(buf[H_J])
    ZtZ, ZtX, Zty = int(buf[OFF_ZTZ]), int(buf[OFF_ZTX]), int(buf[OFF_ZTY])
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
def group_draw(A, at, c, rtr, n, lam, sigma, z, AL, M, L, w, eta, out):
    """One group's exact draw and marginal log-likelihood from its Z'Z (q x q row-major in
    ``A`` from ``at``), c = Z'r and r'r (r: its n rows' residuals without its own effects):
    with M = sigma^2 I + Lambda'A Lambda = L L', out = Lambda (v + sigma L^{-T} z),
    v = M^{-1} Lambda'c; returns log N(r | 0, sigma^2 I + Z Lambda Lambda' Z'). One effect in
    closed form (the loops cost 130 against 20 ns a group: 3,000 groups x 4,000 draws 1.6 -> 0.7 s)."""
    q = c.shape[0]
    s2 = sigma * sigma
    if q == 1:
        l = lam[0, 0]
        m = s2 + l * l * A[at]
        root = math.sqrt(m)
        w0 = l * c[0] / root
        out[0] = l * (w0 + sigma * z[0]) / root
        return -0.5 * (n * math.log(2 * math.pi) + (n - 1) * math.log(s2) + math.log(m) + (rtr - w0 * w0) / s2)
    logdet = woodbury_system(A, at, lam, s2, AL, M, L)
    quad = 0.0
    for a in range(q):  # forward: L w = Lambda' c
        t = 0.0
        for m in range(a, q):
            t += lam[m, a] * c[m]
        for m in range(a):
            t -= L[a, m] * w[m]
        w[a] = t / L[a, a]
        quad += w[a] * w[a]
    for a in range(q - 1, -1, -1):  # backward: L' eta = w + sigma z
        t = w[a] + sigma * z[a]
        for m in range(a + 1, q):
            t -= L[m, a] * eta[m]
        eta[a] = t / L[a, a]
    lower_times(lam, 0, eta, out)
    return -0.5 * (n * math.log(2 * math.pi) + (n - q) * math.log(s2) + logdet + (rtr - quad) / s2)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def draw_effects(b, lam, sigma, z, buf, n_j, yty_j, Xty_j, XtX_j, effects, loglik):
    """For each draw s and group j, ``group_draw`` from the packed statistics (the group's own
    y'y, X'y and X'X, flattened to (J, p p), give r'r). Fills ``effects`` (S, J, q) and
    ``loglik`` (S, J)."""
    S, J, q = z.shape
    p = b.shape[1]
    ztz = int(buf[OFF_ZTZ])
    for s in numba.prange(S):  # draws in parallel
        c, w, eta = np.empty(q), np.empty(q), np.empty(q)
        AL, M, L = np.empty((q, q)), np.empty((q, q)), np.empty((q, q))
        Xtr = np.empty(p)
        bb = centred(b[s], buf)
        for j in range(J):
            rtr = residual_ss(yty_j[j], Xty_j[j], XtX_j[j], bb, Xtr)
            _group_c(j, bb, buf, c)
            loglik[s, j] = group_draw(buf, ztz + j * q * q, c, rtr, n_j[j], lam[s], sigma[s], z[s, j], AL, M, L, w,
                                      eta, effects[s, j])  # fmt: skip
