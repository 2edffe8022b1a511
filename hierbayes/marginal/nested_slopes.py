"""Two nested factors, both integrated out, with several effects per inner group
(``(x | school/class)``): the log-likelihood's gradient by hand (reverse mode).

Notation as in ``nested``. Per class c, with G_c = [Z'r | Z'U] (q1 x (1 + q2)),
F_c = Lambda1' G_c = [w | Y], M_c = sigma^2 I + Lambda1' Z'Z Lambda1 and H_c = M_c^{-1} F_c, the
class's outer group s has the unscaled sums u~_s = U'r - sum_c Y'M^{-1}w and
B~_s = U'U - sum_c Y'M^{-1}Y, and the log-likelihood holds the class through

    -1/2 log|M_c| + tr(Omega_s F_c' M_c^{-1} F_c),
    Omega_s = [[1 / (2 sigma^2), -u_bar'/2], [-u_bar/2, -B_bar]],

the first entry from r'W r = (r'r - w'M^{-1}w) / sigma^2, and u_bar, B_bar the derivatives of
the log-likelihood in u~_s and B~_s (``nested.outer_solve``). Hence, per class,

    F_bar = 2 H Omega,        M_bar = -1/2 M^{-1} - H Omega H',
    Lambda1_bar += 2 Z'Z Lambda1 M_bar + G F_bar',
    (Z'r)_bar = Lambda1 F_bar[:, 0],   sigma^2_bar += tr M_bar,

and b's gradient is X'r / sigma^2 - sum_s U'X_s' u_bar_s - sum_c Z'X_c' (Z'r)_bar_c. Each outer
group's classes are visited twice: their sums (keeping H_c and M_c^{-1}), then, after the outer
solve, their share of the gradient. With one effect per class ``nested_q1_loglik_grad`` is the
faster special case (scalars, one log per distinct class size); with two effects per class
and one or two per outer group (``(x | a/b)``, ``(1 | a) + (x | a:b)``) the per-class steps
are written out in scalars (``_outer_group_2x``: about 6x faster than the loops).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core.linalg import chol_solve, cholesky
from .kernels import centred, totals_residual
from ..core.layout import H_J, H_N, H_NOUTER, H_P, H_Q, H_Q1
from .nested import nested_offsets, outer_offsets, outer_solve, outer_solve_2, outer_totals, outer_totals_2

__all__ = ["nested_loglik_grad", "class_2x"]


@numba.njit(cache=True, error_model="numpy")
def nested_loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """``nested.nested_loglik`` and its gradient in b, Lambda and sigma for any q1 (see the
    module docstring); the conventions of ``kernels.loglik_grad``."""
    b = centred(b, buf)  # the statistics are of y - c
    p, Q, q1, C, S = int(buf[H_P]), int(buf[H_Q]), int(buf[H_Q1]), int(buf[H_J]), int(buf[H_NOUTER])
    q2 = Q - q1
    starts = outer_offsets(buf)[4]
    n = buf[H_N]
    s2 = sigma * sigma
    Xtr = np.empty(p)
    rtr = totals_residual(buf, b, Xtr)
    most = 0
    for s in range(S):
        most = max(most, int(buf[starts + s + 1] - buf[starts + s]))
    keep = np.empty((most, 11))  # per class of an outer group, for its second visit (``_outer_group_2x``)
    G, H, Minv = np.empty((most, q1, 1 + q2)), np.empty((most, q1, 1 + q2)), np.empty((most, q1, q1))
    work = np.empty((3 + 6 * q2, q2 + 1))  # for outer_solve
    g_L, l1_bar, gb = np.zeros((max(q2, 2), max(q2, 2))), np.zeros((q1, q1)), np.zeros(p)
    logdet = (n - C * q1) * math.log(s2)
    wMw, outer, s2_bar = 0.0, 0.0, 0.0
    for s in range(S):
        j0, j1 = int(buf[starts + s]), int(buf[starts + s + 1])
        if q1 == 2 and q2 == 2:  # constant arguments: inlined copies without branches on them
            lm, w, o, sb = _outer_group_2x(s, j0, j1, b, lam, s2, buf, True, keep, g_L, l1_bar, gb)
        elif q1 == 2 and q2 == 1:
            lm, w, o, sb = _outer_group_2x(s, j0, j1, b, lam, s2, buf, False, keep, g_L, l1_bar, gb)
        else:
            lm, w, o, sb = _outer_group_any(s, j0, j1, b, lam, s2, buf, G, H, Minv, work, g_L, l1_bar, gb)
        logdet += lm
        wMw += w
        outer += o
        s2_bar += sb
    for k in range(p):
        g_b[k] = Xtr[k] / s2 + gb[k]
    s2_bar += -0.5 * (n - C * q1) / s2 + 0.5 * (rtr - wMw) / (s2 * s2)
    g_lam[:, :] = 0.0
    g_lam[:q1, :q1] = l1_bar
    g_lam[q1:, q1:] = g_L[:q2, :q2]
    loglik = -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)
    return loglik, 2 * sigma * s2_bar


@numba.njit(cache=True, error_model="numpy")
def class_2x(c, b, l00, l10, l11, s2, buf, two):
    """Class c's step with two effects a class and two (``two``) or one a school, in scalars:
    (Z'r, det M, M, M^{-1}, H = M^{-1} F, (w'M^{-1}w and its Woodbury corrections to u0, u1,
    B00, B01, B11)), F = Lambda1'[Z'r | Z'U], M = sigma^2 I + Lambda1'Z'Z Lambda1. Not marked
    for inlining: inlined into the parallel draws, numba's array analysis fails on its tuples
    (and the gradient measured the same either way, 150-200 us, within this machine's noise)."""
    p, q2 = b.shape[0], 2 if two else 1
    _, _, A, ZU, _, ZX, _, Zy, _ = nested_offsets(buf)
    r0, r1 = buf[Zy + 2 * c], buf[Zy + 2 * c + 1]
    for k in range(p):
        r0 -= buf[ZX + 2 * c * p + k] * b[k]
        r1 -= buf[ZX + (2 * c + 1) * p + k] * b[k]
    a00, a01, a11 = buf[A + 4 * c], buf[A + 4 * c + 1], buf[A + 4 * c + 3]
    p00, p01, p10, p11 = a00 * l00 + a01 * l10, a01 * l11, a01 * l00 + a11 * l10, a11 * l11  # Z'Z Lambda1
    M00, M01, M11 = s2 + l00 * p00 + l10 * p10, l00 * p01 + l10 * p11, s2 + l11 * p11
    det = M00 * M11 - M01 * M01
    i00, i01, i11 = M11 / det, -M01 / det, M00 / det
    z00, z10 = buf[ZU + 2 * c * q2], buf[ZU + (2 * c + 1) * q2]
    z01, z11 = (buf[ZU + 2 * c * q2 + 1], buf[ZU + (2 * c + 1) * q2 + 1]) if two else (0.0, 0.0)
    f0w, f1w = l00 * r0 + l10 * r1, l11 * r1  # F = Lambda1' G, a column at a time
    f0a, f1a = l00 * z00 + l10 * z10, l11 * z10
    f0b, f1b = l00 * z01 + l10 * z11, l11 * z11
    h0w, h1w = i00 * f0w + i01 * f1w, i01 * f0w + i11 * f1w  # H = M^{-1} F
    h0a, h1a = i00 * f0a + i01 * f1a, i01 * f0a + i11 * f1a
    h0b, h1b = i00 * f0b + i01 * f1b, i01 * f0b + i11 * f1b
    less = (f0w * h0w + f1w * h1w, f0a * h0w + f1a * h1w, f0b * h0w + f1b * h1w, f0a * h0a + f1a * h1a,
            f0a * h0b + f1a * h1b, f0b * h0b + f1b * h1b)  # fmt: skip
    return r0, r1, det, (M00, M01, M11), (i00, i01, i11), (h0w, h1w, h0a, h1a, h0b, h1b), less


@numba.njit(cache=True, error_model="numpy", inline="always")
def _outer_group_2x(s, j0, j1, b, lam, s2, buf, two, keep, g_L, l1_bar, gb):
    """Outer group s's share of ``nested_loglik_grad`` with two effects a class and two
    (``two``) or one a school, in scalars (one: a zero second column of Z'U and U'X). Keeps 11
    numbers a class in ``keep`` (M^{-1}, H, Z'r); adds to g_L, l1_bar and gb; returns
    (sum of log|M_c|, sum of w'M^{-1}w, log|K| - g'K^{-1}g, d/dsigma^2)."""
    p = b.shape[0]
    q2 = 2 if two else 1
    _, _, A, ZU, _, ZX, _, _, _ = nested_offsets(buf)
    UU, UX, Uy, by_outer, _, _, _, _ = outer_offsets(buf)
    l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
    m00, m01 = lam[2, 2], lam[2, 3] if two else 0.0
    m10, m11 = (lam[3, 2], lam[3, 3]) if two else (0.0, 1.0)
    u0, u1, b00, b01, b11 = outer_totals_2(s, b, buf, UU, UX, Uy, two)
    logm, wMw = 0.0, 0.0
    for j in range(j0, j1):  # the classes' sums
        c = int(buf[by_outer + j])
        r0, r1, det, _, (i00, i01, i11), (h0w, h1w, h0a, h1a, h0b, h1b), less = class_2x(c, b, l00, l10, l11, s2,
                                                                                         buf, two)  # fmt: skip
        logm += math.log(det)
        wMw += less[0]
        u0, u1, b00, b01, b11 = u0 - less[1], u1 - less[2], b00 - less[3], b01 - less[4], b11 - less[5]
        row = keep[j - j0]
        row[0], row[1], row[2], row[3], row[4], row[5] = i00, i01, i11, h0w, h1w, h0a
        row[6], row[7], row[8], row[9], row[10] = h1a, h0b, h1b, r0, r1
    value, s2_bar, ub0, ub1, bb00, bb01, bb11 = outer_solve_2(u0, u1, b00, b01, b11, m00, m01, m10, m11, s2, g_L)
    for k in range(p):
        gb[k] -= ub0 * buf[UX + s * q2 * p + k]
        if two:
            gb[k] -= ub1 * buf[UX + (s * q2 + 1) * p + k]
    o00, o01, o02, o11, o12, o22 = 0.5 / s2, -0.5 * ub0, -0.5 * ub1, -bb00, -bb01, -bb11  # Omega
    L00, L10, L11 = 0.0, 0.0, 0.0
    for j in range(j0, j1):  # the classes' share of the gradient
        c = int(buf[by_outer + j])
        row = keep[j - j0]
        i00, i01, i11, h0w, h1w, h0a = row[0], row[1], row[2], row[3], row[4], row[5]
        h1a, h0b, h1b, r0, r1 = row[6], row[7], row[8], row[9], row[10]
        x0w, x1w = h0w * o00 + h0a * o01 + h0b * o02, h1w * o00 + h1a * o01 + h1b * o02  # H Omega
        x0a, x1a = h0w * o01 + h0a * o11 + h0b * o12, h1w * o01 + h1a * o11 + h1b * o12
        x0b, x1b = h0w * o02 + h0a * o12 + h0b * o22, h1w * o02 + h1a * o12 + h1b * o22
        mb00 = -0.5 * i00 - (x0w * h0w + x0a * h0a + x0b * h0b)  # M_bar = -1/2 M^{-1} - H Omega H'
        mb01 = -0.5 * i01 - (x0w * h1w + x0a * h1a + x0b * h1b)
        mb11 = -0.5 * i11 - (x1w * h1w + x1a * h1a + x1b * h1b)
        s2_bar += mb00 + mb11
        a00, a01, a11 = buf[A + 4 * c], buf[A + 4 * c + 1], buf[A + 4 * c + 3]
        p00, p01, p10, p11 = a00 * l00 + a01 * l10, a01 * l11, a01 * l00 + a11 * l10, a11 * l11
        z00, z10 = buf[ZU + 2 * c * q2], buf[ZU + (2 * c + 1) * q2]
        z01, z11 = (buf[ZU + 2 * c * q2 + 1], buf[ZU + (2 * c + 1) * q2 + 1]) if two else (0.0, 0.0)
        L00 += p00 * mb00 + p01 * mb01 + r0 * x0w + z00 * x0a + z01 * x0b  # Z'Z Lambda1 M_bar + G (H Omega)'
        L10 += p10 * mb00 + p11 * mb01 + r1 * x0w + z10 * x0a + z11 * x0b
        L11 += p10 * mb01 + p11 * mb11 + r1 * x1w + z10 * x1a + z11 * x1b
        zb0, zb1 = 2 * l00 * x0w, 2 * (l10 * x0w + l11 * x1w)  # (Z'r)_bar = Lambda1 F_bar[:, 0]
        for k in range(p):
            gb[k] -= zb0 * buf[ZX + 2 * c * p + k] + zb1 * buf[ZX + (2 * c + 1) * p + k]
    l1_bar[0, 0] += 2 * L00
    l1_bar[1, 0] += 2 * L10
    l1_bar[1, 1] += 2 * L11
    return logm, wMw, value, s2_bar


@numba.njit(cache=True, error_model="numpy")
def _outer_group_any(s, j0, j1, b, lam, s2, buf, G, H, Minv, work, g_L, l1_bar, gb):
    """Outer group s's share of ``nested_loglik_grad`` for any q1 and q2, with loops (G, H,
    M^{-1}: a row per class of the group; ``work``: see ``nested.outer_solve``); returns what
    ``_outer_group_2x`` returns."""
    p, q1 = b.shape[0], int(buf[H_Q1])
    q2 = int(buf[H_Q]) - q1
    _, _, A, ZU, _, ZX, _, Zy, _ = nested_offsets(buf)
    UUs, UXs, Uys, by_outer, _, _, _, _ = outer_offsets(buf)
    L1, L2 = lam[:q1, :q1], lam[q1:, q1:]
    M, LM, F = np.empty((q1, q1)), np.zeros((q1, q1)), np.empty((q1, 1 + q2))
    HO, Mb, Om = np.empty((q1, 1 + q2)), np.empty((q1, q1)), np.empty((1 + q2, 1 + q2))
    u, u_bar = work[0, :q2], work[1, :q2]
    B, B_bar = work[3 : 3 + q2, :q2], work[3 + q2 : 3 + 2 * q2, :q2]
    logm, wMw, s2_bar = 0.0, 0.0, 0.0
    outer_totals(s, b, buf, UUs, UXs, Uys, u, B)
    for j in range(j0, j1):  # the classes' sums
        c = int(buf[by_outer + j])
        Gj, Hj, Mi = G[j - j0], H[j - j0], Minv[j - j0]
        for a in range(q1):
            t = buf[Zy + c * q1 + a]
            for k in range(p):
                t -= buf[ZX + (c * q1 + a) * p + k] * b[k]
            Gj[a, 0] = t
            for k in range(q2):
                Gj[a, 1 + k] = buf[ZU + (c * q1 + a) * q2 + k]
        for a in range(q1):  # M = sigma^2 I + Lambda1' Z'Z Lambda1
            for k in range(a + 1):
                t = s2 if a == k else 0.0
                for m in range(a, q1):
                    for i in range(k, q1):
                        t += L1[m, a] * buf[A + (c * q1 + m) * q1 + i] * L1[i, k]
                M[a, k] = t
                M[k, a] = t
        logm += cholesky(M, LM)
        for a in range(q1):  # F = Lambda1' G
            for k in range(1 + q2):
                t = 0.0
                for m in range(a, q1):
                    t += L1[m, a] * Gj[m, k]
                F[a, k] = t
                Hj[a, k] = t
            for k in range(q1):
                Mi[a, k] = 1.0 if a == k else 0.0
        chol_solve(LM, Hj)
        chol_solve(LM, Mi)
        for a in range(q1):
            wMw += F[a, 0] * Hj[a, 0]
        for k in range(q2):
            t = 0.0
            for a in range(q1):
                t += F[a, 1 + k] * Hj[a, 0]
            u[k] -= t
            for m in range(q2):
                t = 0.0
                for a in range(q1):
                    t += F[a, 1 + k] * Hj[a, 1 + m]
                B[k, m] -= t
    value, sb = outer_solve(u, B, L2, s2, work, g_L)
    s2_bar += sb
    for k in range(p):
        for i in range(q2):
            gb[k] -= u_bar[i] * buf[UXs + (s * q2 + i) * p + k]
    Om[0, 0] = 0.5 / s2
    for k in range(q2):
        Om[0, 1 + k] = -0.5 * u_bar[k]
        Om[1 + k, 0] = -0.5 * u_bar[k]
        for m in range(q2):
            Om[1 + k, 1 + m] = -B_bar[k, m]
    for j in range(j0, j1):  # the classes' share of the gradient
        c = int(buf[by_outer + j])
        Gj, Hj, Mi = G[j - j0], H[j - j0], Minv[j - j0]
        for a in range(q1):  # H Omega (F_bar / 2)
            for k in range(1 + q2):
                t = 0.0
                for m in range(1 + q2):
                    t += Hj[a, m] * Om[m, k]
                HO[a, k] = t
        for a in range(q1):  # M_bar = -1/2 M^{-1} - H Omega H'
            for k in range(q1):
                t = -0.5 * Mi[a, k]
                for m in range(1 + q2):
                    t -= HO[a, m] * Hj[k, m]
                Mb[a, k] = t
            s2_bar += Mb[a, a]
        for a in range(q1):  # Lambda1_bar += 2 Z'Z Lambda1 M_bar + G F_bar' (lower triangle)
            for k in range(a + 1):
                t = 0.0
                for m in range(q1):
                    zz = buf[A + (c * q1 + a) * q1 + m]
                    for i in range(m + 1):
                        t += zz * L1[m, i] * Mb[i, k]
                for i in range(1 + q2):
                    t += Gj[a, i] * HO[k, i]
                l1_bar[a, k] += 2 * t
        for a in range(q1):  # (Z'r)_bar = Lambda1 F_bar[:, 0], into b's gradient
            t = 0.0
            for m in range(a + 1):
                t += L1[a, m] * HO[m, 0]
            t *= 2
            for k in range(p):
                gb[k] -= t * buf[ZX + (c * q1 + a) * p + k]
    return logm, wMw, value, s2_bar
