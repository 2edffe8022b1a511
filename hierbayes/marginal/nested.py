"""Two nested factors, both integrated out: log-likelihood and its gradient (numba).

Inner group c (classes: Z, Lambda1) within outer group s (schools: U, Lambda2). Per class,
with M_c = sigma^2 I + Lambda1' Z'Z Lambda1 and W_c = (sigma^2 I + Z G1 Z')^{-1}, Woodbury
gives r'W r, U'W r and U'W U; summed over the classes of a school they give
B_s = U_s'W U_s and u_s = U_s'W r_s, and with K_s = I + Lambda2' B_s Lambda2, g_s = Lambda2' u_s:

    log|V_s|          = sum_c [(n_c - q1) log sigma^2 + log|M_c|] + log|K_s|
    r_s'V_s^{-1} r_s  = sum_c r_c'W_c r_c - g_s' K_s^{-1} g_s

With one effect per class (the common case: class intercepts) the gradient is written by hand
(``nested_q1_loglik_grad``) and the draws have their own kernel (``nested_draws``): both
take U_s'U_s, U_s'X and U_s'y per outer group from the buffer (so a class adds only its
Woodbury correction), visit each outer group's classes together, compute log m_c once per
distinct Z'Z (class sizes repeat), and the gradient keeps one or two outer effects in scalars
(55 us against 240 us for the earlier class-by-class version on 100k pupils in 4,000 classes
in 500 schools). With several effects per class the gradient is ``nested_slopes``'s, which
shares the outer groups' solve (``outer_solve``, ``outer_solve_2``) with the q1 = 1 kernels;
``nested_loglik`` (complex-safe, with the per-class step ``inner_group``) is the reference
the hand-written gradients are tested against, and the general draws' per-class step.

Takes the packed buffer (``layout``) and (b, Lambda, sigma); returns log-likelihoods and
gradients. The per-class and per-school steps are public for ``nested_draws``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core.linalg import chol_solve, cholesky
from .kernels import centred, totals_residual
from ..core.layout import (
    H_J, H_N, H_NA, H_NOUTER, H_P, H_Q, H_Q1, OFF_A_COUNTS, OFF_A_INDEX, OFF_A_VALUES, OFF_BY_OUTER, OFF_N_C,
    OFF_OUTER_OF, OFF_OUTER_START, OFF_UTU, OFF_UTU_S, OFF_UTX, OFF_UTX_S, OFF_UTY, OFF_UTY_S, OFF_ZTU, OFF_ZTX,
    OFF_ZTY, OFF_ZTZ,
)  # fmt: skip

__all__ = ["nested_loglik", "nested_q1_loglik_grad", "nested_offsets", "outer_offsets", "inner_group", "outer_totals",
           "outer_solve", "outer_solve_2", "outer_totals_2", "class_residual", "less_class"]


@numba.njit(cache=True, error_model="numpy")
def nested_offsets(buf):
    """Where the sections start: outer_of, n_c, Z'Z, Z'U, U'U, Z'X, U'X, Z'y, U'y."""
    return (int(buf[OFF_OUTER_OF]), int(buf[OFF_N_C]), int(buf[OFF_ZTZ]), int(buf[OFF_ZTU]), int(buf[OFF_UTU]),
            int(buf[OFF_ZTX]), int(buf[OFF_UTX]), int(buf[OFF_ZTY]), int(buf[OFF_UTY]))  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def inner_group(c, b, lam, s2, buf, L, M, rhs, wY, zr, ur, u_s, B_s):
    """Inner group c's share of the nested likelihood (any dtype; see ``nested_loglik``).

    Fills L (the Cholesky factor of M_c) and rhs = M_c^{-1} Lambda1' [Z'r | Z'U]; adds
    U'W r to ``u_s`` and U'W U to ``B_s`` (its outer group's rows); returns
    (log det(sigma^2 I + Z G1 Z'), w' M_c^{-1} w). M, wY, zr, ur are work space."""
    p, q1 = int(buf[H_P]), int(buf[H_Q1])
    q2 = int(buf[H_Q]) - q1
    _, n_c, A, ZU, UU, ZX, UX, Zy, Uy = nested_offsets(buf)
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
    logdet = (buf[n_c + c] - q1) * np.log(s2) + cholesky(M, L)
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
    chol_solve(L, rhs)  # rhs = M^{-1} [w | Y]
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
def nested_loglik(b, lam, sigma, buf):
    """The log-likelihood with both factors integrated out (see the module docstring); complex-safe."""
    b = centred(b, buf)  # the statistics are of y - c
    p, Q, q1, C, S = int(buf[H_P]), int(buf[H_Q]), int(buf[H_Q1]), int(buf[H_J]), int(buf[H_NOUTER])
    q2 = Q - q1
    outer_of = nested_offsets(buf)[0]
    s2 = sigma * sigma
    zero = 0.0 * sigma
    rtr = totals_residual(buf, b, np.empty(p, dtype=b.dtype))
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
        ld, wmw = inner_group(c, b, lam, s2, buf, L, M, rhs, wY, zr, ur, u[s], B[s])
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
        outer += cholesky(K, LK)
        gg = g.copy()
        chol_solve(LK, gg)
        for a in range(q2):
            outer -= g[a, 0] * gg[a, 0]
    n = buf[H_N]
    return -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)


@numba.njit(cache=True, error_model="numpy")
def outer_offsets(buf):
    """Where the per-outer-group sections start: U'U, U'X, U'y, the inner groups by outer
    group and where each outer group's start; the distinct Z'Z, their counts, each class's."""
    return (int(buf[OFF_UTU_S]), int(buf[OFF_UTX_S]), int(buf[OFF_UTY_S]), int(buf[OFF_BY_OUTER]),
            int(buf[OFF_OUTER_START]), int(buf[OFF_A_VALUES]), int(buf[OFF_A_COUNTS]), int(buf[OFF_A_INDEX]))  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def nested_q1_loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """``nested_loglik`` when the inner factor has one effect (class intercepts), with its
    gradient in b, Lambda and sigma by hand (reverse mode). Same conventions as ``loglik_grad``.

    With m_c = sigma^2 + l1^2 Z'Z and phi_c = l1^2 / m_c, outer group s's sums are
    B_s = (U'U - sum_c phi_c Z'U Z'U') / sigma^2 and u_s = (U'r - sum_c phi_c Z'r Z'U) / sigma^2.
    Each outer group is done whole, its classes visited twice (the sums; then, with the
    adjoints u_bar_s and B_bar_s of the outer solve, the classes' share of the gradient) while
    they are in cache. m_c depends on the class only through Z'Z, whose few distinct values
    (class sizes) get one log each; the adjoint of phi is summed per distinct value."""
    b = centred(b, buf)  # the statistics are of y - c
    p, Q, C, S, NA = int(buf[H_P]), int(buf[H_Q]), int(buf[H_J]), int(buf[H_NOUTER]), int(buf[H_NA])
    q2 = Q - 1
    ZX = nested_offsets(buf)[5]
    _, _, _, by_outer, starts, a_val, a_cnt, _ = outer_offsets(buf)
    n = buf[H_N]
    s2 = sigma * sigma
    l1 = lam[0, 0]
    l1sq = l1 * l1
    Xtr = np.empty(p)
    rtr = totals_residual(buf, b, Xtr)
    phi = np.empty(NA)
    inv = np.empty(NA)
    logdet = (n - C) * math.log(s2)
    for k in range(NA):
        m = s2 + l1sq * buf[a_val + k]
        inv[k] = 1.0 / m
        phi[k] = l1sq * inv[k]
        logdet += buf[a_cnt + k] * math.log(m)
    zr = np.empty(C)  # Z'r per class (by outer group), then zr_bar
    phi_bar = np.zeros(NA)  # d loglik / d phi, summed over the classes sharing each Z'Z
    g_L = np.zeros((max(q2, 2), max(q2, 2)))  # d/dLambda2
    gb = np.zeros(p)  # b's adjoint through the outer groups' U'X
    work = np.empty((3 + 6 * q2, q2 + 1))  # for _outer_group
    wMw, outer, s2_bar = 0.0, 0.0, 0.0
    for s in range(S):
        j0, j1 = int(buf[starts + s]), int(buf[starts + s + 1])
        if q2 == 2:  # a constant argument, so that the inlined copy has no branches on it
            w, o, sb = _outer_group_2(s, j0, j1, b, lam, s2, buf, True, phi, zr, phi_bar, g_L, gb)
        elif q2 == 1:
            w, o, sb = _outer_group_2(s, j0, j1, b, lam, s2, buf, False, phi, zr, phi_bar, g_L, gb)
        else:
            w, o, sb = _outer_group(s, j0, j1, b, lam, s2, buf, q2, phi, zr, phi_bar, g_L, gb, work)
        wMw += w
        outer += o
        s2_bar += sb
    for k in range(p):
        g_b[k] = Xtr[k] / s2 + gb[k]
    for k in range(p):  # a column at a time: the sum in a register, not a store-to-load chain
        t = 0.0
        for j in range(C):
            t += zr[j] * buf[ZX + int(buf[by_outer + j]) * p + k]
        g_b[k] -= t
    l1_bar = 0.0
    for k in range(NA):
        cnt, a = buf[a_cnt + k], buf[a_val + k]
        l1_bar += phi_bar[k] * 2 * l1 * s2 * inv[k] * inv[k] - cnt * inv[k] * l1 * a
        s2_bar += -phi_bar[k] * l1sq * inv[k] * inv[k] - 0.5 * cnt * inv[k]
    s2_bar += -0.5 * (n - C) / s2 + 0.5 * (rtr - wMw) / (s2 * s2)
    g_lam[:, :] = 0.0
    g_lam[0, 0] = l1_bar
    for a in range(q2):
        for k in range(q2):
            g_lam[1 + a, 1 + k] = g_L[a, k]
    loglik = -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)
    return loglik, 2 * sigma * s2_bar


@numba.njit(cache=True, error_model="numpy", inline="always")
def class_residual(j, b, buf, ZX, Zy, by_outer, a_idx, phi, zr):
    """The j-th class in outer-group order: (its index c, Z'r = Z'y - Z'X b, which is also
    kept in zr[j], and its phi). The sections' offsets come as arguments: read from ``buf``
    here they would be read again for every class."""
    c = int(buf[by_outer + j])
    r = buf[Zy + c]
    for k in range(b.shape[0]):
        r -= buf[ZX + c * b.shape[0] + k] * b[k]
    zr[j] = r
    return c, r, phi[int(buf[a_idx + c])]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _outer_group_2(s, j0, j1, b, lam, s2, buf, two, phi, zr, phi_bar, g_L, gb):
    """Outer group s's share of ``nested_q1_loglik_grad`` when it has two effects (``two``)
    or one (then a second column of zeros and a unit diagonal in Lambda2, which add nothing),
    in scalars: loops of length 1 or 2 over arrays cost twice as much. Writes zr_bar of its
    classes into ``zr``; adds to phi_bar, g_L (d/dLambda2) and gb (b's adjoint through U'X);
    returns its (w'M^{-1}w, log|K| - g'K^{-1}g, d/dsigma^2)."""
    p = b.shape[0]
    q2 = 2 if two else 1
    _, _, _, ZU, _, ZX, _, Zy, _ = nested_offsets(buf)
    UU, UX, Uy, by_outer, _, _, _, a_idx = outer_offsets(buf)
    l00, l01 = lam[1, 1], lam[1, 2] if two else 0.0
    l10, l11 = (lam[2, 1], lam[2, 2]) if two else (0.0, 1.0)
    u0, u1, b00, b01, b11 = outer_totals_2(s, b, buf, UU, UX, Uy, two)
    wMw = 0.0
    for j in range(j0, j1):  # the classes' shares of u and B
        c, r, f = class_residual(j, b, buf, ZX, Zy, by_outer, a_idx, phi, zr)
        wMw += f * r * r
        z0 = buf[ZU + c * q2]
        z1 = buf[ZU + c * q2 + 1] if two else 0.0
        u0 -= f * r * z0
        u1 -= f * r * z1
        b00 -= f * z0 * z0
        b01 -= f * z0 * z1
        b11 -= f * z1 * z1
    value, s2_bar, ub0, ub1, bb00, bb01, bb11 = outer_solve_2(u0, u1, b00, b01, b11, l00, l01, l10, l11, s2, g_L)
    for k in range(p):
        gb[k] -= ub0 * buf[UX + s * q2 * p + k]
        if two:
            gb[k] -= ub1 * buf[UX + (s * q2 + 1) * p + k]
    for j in range(j0, j1):  # the classes' share of the gradient
        c = int(buf[by_outer + j])
        ia = int(buf[a_idx + c])
        z0 = buf[ZU + c * q2]
        z1 = buf[ZU + c * q2 + 1] if two else 0.0
        r = zr[j]
        uzu = ub0 * z0 + ub1 * z1
        phi_bar[ia] += 0.5 * r * r / s2 - r * uzu - (bb00 * z0 * z0 + 2 * bb01 * z0 * z1 + bb11 * z1 * z1)
        zr[j] = phi[ia] * (r / s2 - uzu)
    return wMw, value, s2_bar


@numba.njit(cache=True, error_model="numpy", inline="always")
def outer_totals_2(s, b, buf, UU, UX, Uy, two):
    """``outer_totals`` in scalars for two outer effects (``two``) or one: (u0, u1, B00, B01,
    B11), the second effect's zero for one."""
    p, q2 = b.shape[0], 2 if two else 1
    u0 = buf[Uy + s * q2]
    u1 = buf[Uy + s * q2 + 1] if two else 0.0
    for k in range(p):
        u0 -= buf[UX + s * q2 * p + k] * b[k]
        if two:
            u1 -= buf[UX + (s * q2 + 1) * p + k] * b[k]
    b01, b11 = (buf[UU + s * 4 + 1], buf[UU + s * 4 + 3]) if two else (0.0, 0.0)
    return u0, u1, buf[UU + s * q2 * q2], b01, b11


@numba.njit(cache=True, error_model="numpy", inline="always")
def outer_totals(s, b, buf, UU, UX, Uy, u, B):
    """Outer group s's U'r = U'y - U'X b into u and U'U into B, from the per-outer-group sums
    (``UU``, ``UX``, ``Uy``: their offsets); its classes' corrections come after."""
    p, q2 = b.shape[0], u.shape[0]
    for k in range(q2):
        t = buf[Uy + s * q2 + k]
        for i in range(p):
            t -= buf[UX + (s * q2 + k) * p + i] * b[i]
        u[k] = t
        for i in range(q2):
            B[k, i] = buf[UU + (s * q2 + k) * q2 + i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def less_class(c, r, f, buf, ZU, u, B):
    """Takes class c's Woodbury share off its outer group's sums: u -= phi Z'r Z'U and
    B -= phi Z'U Z'U' (f = phi, r = Z'r)."""
    q2 = u.shape[0]
    for k in range(q2):
        zk = buf[ZU + c * q2 + k]
        u[k] -= f * r * zk
        for i in range(q2):
            B[k, i] -= f * zk * buf[ZU + c * q2 + i]


@numba.njit(cache=True, error_model="numpy")
def _outer_group(s, j0, j1, b, lam, s2, buf, q2, phi, zr, phi_bar, g_L, gb, work):
    """``_outer_group_2`` for three or more outer effects, with loops (``work``: 3 + 6 q2 rows
    of q2 + 1 numbers for u, u_bar, g, B, B_bar, K, its Cholesky factor, B L and the solve)."""
    p = b.shape[0]
    _, _, _, ZU, _, ZX, _, Zy, _ = nested_offsets(buf)
    UU, UX, Uy, by_outer, _, _, _, a_idx = outer_offsets(buf)
    u, u_bar = work[0, :q2], work[1, :q2]
    B, B_bar = work[3 : 3 + q2, :q2], work[3 + q2 : 3 + 2 * q2, :q2]
    outer_totals(s, b, buf, UU, UX, Uy, u, B)
    wMw = 0.0
    for j in range(j0, j1):
        c, r, f = class_residual(j, b, buf, ZX, Zy, by_outer, a_idx, phi, zr)
        wMw += f * r * r
        less_class(c, r, f, buf, ZU, u, B)
    value, s2_bar = outer_solve(u, B, lam[1:, 1:], s2, work, g_L)
    for k in range(p):
        for i in range(q2):
            gb[k] -= u_bar[i] * buf[UX + (s * q2 + i) * p + k]
    for j in range(j0, j1):
        c = int(buf[by_outer + j])
        ia = int(buf[a_idx + c])
        r = zr[j]
        uzu, zBz = 0.0, 0.0
        for k in range(q2):
            zk = buf[ZU + c * q2 + k]
            uzu += u_bar[k] * zk
            for i in range(q2):
                zBz += B_bar[k, i] * zk * buf[ZU + c * q2 + i]
        phi_bar[ia] += 0.5 * r * r / s2 - r * uzu - zBz
        zr[j] = phi[ia] * (r / s2 - uzu)
    return wMw, value, s2_bar


@numba.njit(cache=True, error_model="numpy")
def outer_solve(u, B, L, s2, work, g_L):
    """An outer group's solve and its adjoints, from its unscaled sums u (U'W r sigma^2) and B
    (U'W U sigma^2), which are scaled here: returns (log|K| - g'K^{-1}g, d/dsigma^2 through u
    and B); leaves d loglik/du and d loglik/dB (for the unscaled sums) in ``work`` rows 1 and
    3 + q2 .. 3 + 2 q2 (see ``_outer_group``) and adds d/dLambda2 to ``g_L``."""
    q2 = u.shape[0]
    u_bar, g = work[1, :q2], work[2, :q2]
    B_bar, K = work[3 + q2 : 3 + 2 * q2, :q2], work[3 + 2 * q2 : 3 + 3 * q2, :q2]
    LK, BL, rhs = work[3 + 3 * q2 : 3 + 4 * q2, :q2], work[3 + 4 * q2 : 3 + 5 * q2, :q2], work[3 + 5 * q2 :, :]
    u /= s2
    B /= s2
    for a in range(q2):  # K = I + L'B L, g = L'u
        for k in range(q2):
            t = 0.0
            for m in range(q2):
                t += B[a, m] * L[m, k]
            BL[a, k] = t
    for a in range(q2):
        for k in range(q2):
            t = 1.0 if a == k else 0.0
            for m in range(q2):
                t += L[m, a] * BL[m, k]
            K[a, k] = t
            rhs[a, k] = 1.0 if a == k else 0.0
        t = 0.0
        for m in range(q2):
            t += L[m, a] * u[m]
        rhs[a, q2] = t
        g[a] = t
    value = cholesky(K, LK)
    chol_solve(LK, rhs)  # [K^{-1} | h]
    for a in range(q2):
        value -= g[a] * rhs[a, q2]
    for a in range(q2):  # u_bar = L h;  B_bar = -1/2 L (K^{-1} + h h') L'
        t = 0.0
        for m in range(q2):
            t += L[a, m] * rhs[m, q2]
        u_bar[a] = t
        for k in range(q2):
            t = 0.0
            for m in range(q2):
                for i in range(q2):
                    t += L[a, m] * (rhs[m, i] + rhs[m, q2] * rhs[i, q2]) * L[k, i]
            B_bar[a, k] = -0.5 * t
    for a in range(q2):  # d/dL: u h' - B L (K^{-1} + h h')
        for k in range(q2):
            t = u[a] * rhs[k, q2]
            for m in range(q2):
                t -= BL[a, m] * (rhs[m, k] + rhs[m, q2] * rhs[k, q2])
            g_L[a, k] += t
    s2_bar = 0.0
    for a in range(q2):
        s2_bar -= u_bar[a] * u[a] / s2
        for k in range(q2):
            s2_bar -= B_bar[a, k] * B[a, k] / s2
    u_bar /= s2
    B_bar /= s2
    return value, s2_bar


@numba.njit(cache=True, error_model="numpy", inline="always")
def outer_solve_2(u0, u1, b00, b01, b11, l00, l01, l10, l11, s2, g_L):
    """``outer_solve`` for one or two outer effects, in scalars (for one: u1, b01, b11 zero,
    and Lambda2 with a unit second diagonal and zero off-diagonals): returns
    (log|K| - g'K^{-1}g, d/dsigma^2, u_bar, B_bar), the last two for the unscaled sums."""
    u0, u1, b00, b01, b11 = u0 / s2, u1 / s2, b00 / s2, b01 / s2, b11 / s2
    c00, c01 = b00 * l00 + b01 * l10, b00 * l01 + b01 * l11  # C = B L
    c10, c11 = b01 * l00 + b11 * l10, b01 * l01 + b11 * l11
    k00, k01, k11 = 1.0 + l00 * c00 + l10 * c10, l00 * c01 + l10 * c11, 1.0 + l01 * c01 + l11 * c11
    g0, g1 = l00 * u0 + l10 * u1, l01 * u0 + l11 * u1
    det = k00 * k11 - k01 * k01
    i00, i01, i11 = k11 / det, -k01 / det, k00 / det  # K^{-1}
    h0, h1 = i00 * g0 + i01 * g1, i01 * g0 + i11 * g1
    w00, w01, w11 = i00 + h0 * h0, i01 + h0 * h1, i11 + h1 * h1  # W = K^{-1} + h h'
    ub0, ub1 = l00 * h0 + l01 * h1, l10 * h0 + l11 * h1  # u_bar = L h
    e00, e01 = l00 * w00 + l01 * w01, l00 * w01 + l01 * w11  # B_bar = -1/2 L W L'
    e10, e11 = l10 * w00 + l11 * w01, l10 * w01 + l11 * w11
    bb00, bb01, bb11 = -0.5 * (e00 * l00 + e01 * l01), -0.5 * (e00 * l10 + e01 * l11), -0.5 * (e10 * l10 + e11 * l11)
    g_L[0, 0] += u0 * h0 - (c00 * w00 + c01 * w01)  # u h' - C W
    g_L[0, 1] += u0 * h1 - (c00 * w01 + c01 * w11)
    g_L[1, 0] += u1 * h0 - (c10 * w00 + c11 * w01)
    g_L[1, 1] += u1 * h1 - (c10 * w01 + c11 * w11)
    s2_bar = -(ub0 * u0 + ub1 * u1 + bb00 * b00 + 2 * bb01 * b01 + bb11 * b11) / s2
    ub0, ub1, bb00, bb01, bb11 = ub0 / s2, ub1 / s2, bb00 / s2, bb01 / s2, bb11 / s2
    return math.log(det) - g0 * h0 - g1 * h1, s2_bar, ub0, ub1, bb00, bb01, bb11
