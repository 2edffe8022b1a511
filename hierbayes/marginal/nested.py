"""Two nested factors, both integrated out: log-likelihood, its gradient and exact draws (numba).

Inner group c (classes: Z, Lambda1) within outer group s (schools: U, Lambda2). Per class,
with M_c = sigma^2 I + Lambda1' Z'Z Lambda1 and W_c = (sigma^2 I + Z G1 Z')^{-1}, Woodbury
gives r'W r, U'W r and U'W U; summed over the classes of a school they give
B_s = U_s'W U_s and u_s = U_s'W r_s, and with K_s = I + Lambda2' B_s Lambda2, g_s = Lambda2' u_s:

    log|V_s|          = sum_c [(n_c - q1) log sigma^2 + log|M_c|] + log|K_s|
    r_s'V_s^{-1} r_s  = sum_c r_c'W_c r_c - g_s' K_s^{-1} g_s

One per-class step (``_inner_group``) serves the log-likelihood and the draws. The gradient
is written by hand when classes have one effect (``nested_q1_loglik_grad``, the common case);
otherwise ``density`` takes it by complex step through ``nested_loglik``.

Takes the packed buffer (``layout``) and (b, Lambda, sigma); returns log-likelihoods,
gradients, and draws of both factors' effects written into arrays the caller owns.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .kernels import chol_solve, cholesky, lower_times, residual_ss, totals_residual
from .layout import (
    H_J, H_N, H_NOUTER, H_P, H_Q, H_Q1, OFF_N_C, OFF_OUTER_OF, OFF_UTU, OFF_UTX, OFF_UTY, OFF_ZTU, OFF_ZTX, OFF_ZTY,
    OFF_ZTZ,
)  # fmt: skip

__all__ = ["nested_loglik", "nested_q1_loglik_grad", "draw_nested_effects"]


@numba.njit(cache=True, error_model="numpy")
def _nested_offsets(buf):
    """Where the sections start: outer_of, n_c, Z'Z, Z'U, U'U, Z'X, U'X, Z'y, U'y."""
    return (int(buf[OFF_OUTER_OF]), int(buf[OFF_N_C]), int(buf[OFF_ZTZ]), int(buf[OFF_ZTU]), int(buf[OFF_UTU]),
            int(buf[OFF_ZTX]), int(buf[OFF_UTX]), int(buf[OFF_ZTY]), int(buf[OFF_UTY]))  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def _inner_group(c, b, lam, s2, buf, L, M, rhs, wY, zr, ur, u_s, B_s):
    """Inner group c's share of the nested likelihood (any dtype; see ``nested_loglik``).

    Fills L (the Cholesky factor of M_c) and rhs = M_c^{-1} Lambda1' [Z'r | Z'U]; adds
    U'W r to ``u_s`` and U'W U to ``B_s`` (its outer group's rows); returns
    (log det(sigma^2 I + Z G1 Z'), w' M_c^{-1} w). M, wY, zr, ur are work space."""
    p, q1 = int(buf[H_P]), int(buf[H_Q1])
    q2 = int(buf[H_Q]) - q1
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


@numba.njit(cache=True, error_model="numpy", inline="always")
def _class_q1(c, b, l1, s2, buf, L, v, V, u_s, B_s):
    """``_inner_group`` written out for one inner effect (M_c the scalar m = sigma^2 + l1^2 Z'Z;
    six times faster in the draws): fills L = sqrt(m), v = l1 Z'r / m, V = l1 Z'U / m, adds to
    u_s and B_s, and returns the same pair."""
    p, q2 = int(buf[H_P]), int(buf[H_Q]) - 1
    _, n_c, A, ZU, UU, ZX, UX, Zy, Uy = _nested_offsets(buf)
    zr = buf[Zy + c]
    for k in range(p):
        zr -= buf[ZX + c * p + k] * b[k]
    m = s2 + l1 * l1 * buf[A + c]
    L[0, 0] = math.sqrt(m)
    v[0] = l1 * zr / m
    for k in range(q2):
        V[k] = l1 * buf[ZU + c * q2 + k] / m
    for k in range(q2):
        t = buf[Uy + c * q2 + k]
        for i in range(p):
            t -= buf[UX + (c * q2 + k) * p + i] * b[i]
        u_s[k] += (t - l1 * buf[ZU + c * q2 + k] * v[0]) / s2
        for j in range(q2):
            B_s[k, j] += (buf[UU + (c * q2 + k) * q2 + j] - l1 * buf[ZU + c * q2 + k] * V[j]) / s2
    return (buf[n_c + c] - 1) * math.log(s2) + math.log(m), l1 * zr * v[0]


@numba.njit(cache=True, error_model="numpy")
def nested_loglik(b, lam, sigma, buf):
    """The log-likelihood with both factors integrated out (see the module docstring); complex-safe."""
    p, Q, q1, C, S = int(buf[H_P]), int(buf[H_Q]), int(buf[H_Q1]), int(buf[H_J]), int(buf[H_NOUTER])
    q2 = Q - q1
    outer_of = _nested_offsets(buf)[0]
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
        outer += cholesky(K, LK)
        gg = g.copy()
        chol_solve(LK, gg)
        for a in range(q2):
            outer -= g[a, 0] * gg[a, 0]
    n = buf[H_N]
    return -0.5 * (n * math.log(2 * math.pi) + logdet + outer + (rtr - wMw) / s2)


@numba.njit(cache=True, error_model="numpy")
def nested_q1_loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """``nested_loglik`` when the inner factor has one effect (class intercepts), with its
    gradient in b, Lambda and sigma by hand (reverse mode, two passes over the inner groups).
    Same conventions as ``loglik_grad``; phi_c = l1^2 / m_c, m_c = sigma^2 + l1^2 Z'Z."""
    p, Q, C, S = int(buf[H_P]), int(buf[H_Q]), int(buf[H_J]), int(buf[H_NOUTER])
    q2 = Q - 1
    outer_of, n_c, A, ZU, UU, ZX, UX, Zy, Uy = _nested_offsets(buf)
    n = buf[H_N]
    s2 = sigma * sigma
    l1 = lam[0, 0]
    l1sq = l1 * l1
    Xtr = np.empty(p)
    rtr = totals_residual(buf, b, Xtr)
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
        outer += cholesky(K, LK)
        for a in range(q2):
            g[a] = rhs[a, q2]
        chol_solve(LK, rhs)
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




@numba.njit(cache=True, parallel=True, error_model="numpy")
def draw_nested_effects(b, lam, sigma, z_in, z_out, buf, n_s, yty_s, Xty_s, XtX_s, eff_in, eff_out, loglik):
    """Exact draws with two nested factors, per posterior draw: the outer effects given y with
    the inner ones integrated out, eta2 ~ N(K^{-1} g, K^{-1}) (see ``nested_loglik``), then the
    inner ones given those, v_c - M_c^{-1} Lambda1' Z'U b_outer + sigma L_c^{-T} z; and each
    outer group's marginal log-likelihood (X'X per outer group flattened to (S_out, p p)). Fills eff_in
    (S, C, q1), eff_out (S, S_out, q2), loglik."""
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
        Xtr = np.empty(p)
        for c in range(C):
            s = int(buf[outer_of + c])
            if q1 == 1:
                ld, wmw = _class_q1(c, bb, lm[0, 0], s2, buf, Ls[c], v[c], V[c, 0], u[s], B[s])
            else:
                ld, wmw = _inner_group(c, bb, lm, s2, buf, Ls[c], M, rhs, wY, zr, ur, u[s], B[s])
                for a in range(q1):
                    v[c, a] = rhs[a, 0]
                    for k in range(q2):
                        V[c, a, k] = rhs[a, 1 + k]
            logdet[s] += ld
            wMw[s] += wmw
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
            logdet_k = cholesky(K, LK)
            quad = 0.0
            for a in range(q2):  # f = LK^{-1} g, g = Lambda2' u
                t = 0.0
                for m in range(a, q2):
                    t += lm[q1 + m, q1 + a] * u[s, m]
                for m in range(a):
                    t -= LK[a, m] * f[m]
                f[a] = t / LK[a, a]
                quad += f[a] * f[a]
            rtr = residual_ss(yty_s[s], Xty_s[s], XtX_s[s], bb, Xtr)
            loglik[d, s] = -0.5 * (n_s[s] * math.log(2 * math.pi) + logdet[s] + logdet_k + (rtr - wMw[s]) / s2 - quad)
            for a in range(q2 - 1, -1, -1):  # LK' eta = f + z
                t = f[a] + z_out[d, s, a]
                for m in range(a + 1, q2):
                    t -= LK[m, a] * eta[m]
                eta[a] = t / LK[a, a]
            lower_times(lm, q1, eta, eff_out[d, s])
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
            lower_times(lm, 0, e1, eff_in[d, c])

