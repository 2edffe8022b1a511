"""Crossed factors of a Gaussian model (identity link) with the factor of the most levels
integrated out exactly and the others' effects sampled: the likelihood NUTS samples, and
afterwards the integrated factor's effects drawn exactly given each posterior draw.

With e = y - eta (eta without the integrated blocks, ``rows.linear_predictor``), per group j
of the integrated factor, A_j = Z_j'Z_j, c_j = Z_j'e_j and G = Lambda Lambda':

    y_j | b, other effects ~ N(eta_j, sigma^2 I + Z_j G Z_j')

by the Woodbury steps of ``marginal.kernels``; its gradient in eta_i is
(e_i - Z_i Lambda v_j) / sigma^2 with Lambda v_j the group's conditional mean of its effects.
Afterwards ``draw_integrated`` draws group j's effects from their conditional posterior given
each draw, and the group's log-likelihood, by the one-factor path's ``kernels.group_draw`` on
c_j and e_j'e_j.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..marginal.kernels import group_draw, woodbury_gradient, woodbury_q1, woodbury_q2, woodbury_system
from ..marginal.layout import H_NINT, H_ROWS, OFF_GROUPS, OFF_STARTS, OFF_Y, OFF_ZTZ
from .rows import back, linear_predictor, row_views

__all__ = ["integrated_likelihood", "draw_integrated"]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _residuals(y, e, Z, lo, hi, c):
    """Rows lo..hi of one group: e_i (eta_i on entry) becomes the residual y_i - eta_i, c the
    group's Z'e (the first ``c.shape[0]`` columns of Z: the integrated blocks'); returns e'e.
    Inlined: a call a group cost the gradient about 5% at 73k rows."""
    qi = c.shape[0]
    c[:] = 0.0
    c0 = c1 = rtr = 0.0
    for i in range(lo, hi):
        e[i] = y[i] - e[i]
        rtr += e[i] * e[i]
        if qi <= 2:  # one and two effects written out
            c0 += Z[i, 0] * e[i]
            c1 += Z[i, qi - 1] * e[i]
        else:
            for a in range(qi):
                c[a] += Z[i, a] * e[i]
    if qi <= 2:
        c[0], c[qi - 1] = c0, c1
    return rtr


@numba.njit(cache=True, error_model="numpy")
def integrated_likelihood(buf, b, r, sigma, lam, g_b, g_r, g_lam):
    """Gaussian, identity link, the leading ``H_NINT`` blocks' factor integrated out: sum over
    its groups j of log N(e_j | 0, sigma^2 I + Z_j G Z_j') with e = y - eta (eta without those
    blocks), by ``kernels.woodbury_system`` / ``woodbury_gradient`` on A_j = Z_j'Z_j and
    c_j = Z_j'e_j. Adds the gradient in b, r and Lambda; returns (log-likelihood, d/dsigma).
    Per row, d/deta_i = (e_i - Z_i Lambda v_j) / sigma^2 (the residual after the group's
    conditional mean of its effects)."""
    n, n_int = int(buf[H_ROWS]), int(buf[H_NINT])
    y_at, starts, ztz = int(buf[OFF_Y]), int(buf[OFF_STARTS]), int(buf[OFF_ZTZ])
    _, _, Z, _, start, size, _ = row_views(buf)
    y = buf[y_at : y_at + n]
    qi = start[n_int - 1] + size[n_int - 1]  # the integrated columns of Lambda
    J = int(buf[int(buf[OFF_GROUPS])])
    e = np.empty(n)
    linear_predictor(buf, b, r, e)
    cvec, w, v, Lv = np.zeros(qi), np.empty(qi), np.empty(qi), np.empty(qi)
    AL, M, L, Minv = np.empty((qi, qi)), np.empty((qi, qi)), np.empty((qi, qi)), np.empty((qi, qi))
    lam_i, g_lam_i = lam[:qi, :qi], g_lam[:qi, :qi]
    s2 = sigma * sigma
    logdet = quad = trace = vtv = rtr = 0.0
    for j in range(J):
        first, last = int(buf[starts + j]), int(buf[starts + j + 1])
        rtr += _residuals(y, e, Z, first, last, cvec)
        A = ztz + j * qi * qi
        if qi == 1:
            dl, dq, dt, dv, Lv[0], dg = woodbury_q1(buf[A], cvec[0], lam[0, 0], s2)
            g_lam[0, 0] += dg
        elif qi == 2:
            dl, dq, dt, dv, Lv[0], Lv[1], d00, d10, d11 = woodbury_q2(buf[A], buf[A + 1], buf[A + 3], cvec[0], cvec[1],
                                                                      lam[0, 0], lam[1, 0], lam[1, 1], s2)  # fmt: skip
            g_lam[0, 0] += d00
            g_lam[1, 0] += d10
            g_lam[1, 1] += d11
        else:
            dl = woodbury_system(buf, A, lam_i, s2, AL, M, L)
            dq, dt, dv = woodbury_gradient(cvec, AL, L, lam_i, s2, Minv, w, v, Lv, g_lam_i)
        logdet += dl
        quad += dq
        trace += dt
        vtv += dv
        for i in range(first, last):  # e_i becomes d log p / d eta_i = (e_i - Z_i Lambda v_j) / sigma^2
            if qi == 1:
                e[i] = (e[i] - Z[i, 0] * Lv[0]) / s2
            elif qi == 2:
                e[i] = (e[i] - Z[i, 0] * Lv[0] - Z[i, 1] * Lv[1]) / s2
            else:
                fitted = 0.0
                for a in range(qi):
                    fitted += Z[i, a] * Lv[a]
                e[i] = (e[i] - fitted) / s2
    back(buf, e, g_b, g_r)
    nq = n - J * qi
    resid = rtr - quad
    loglik = -0.5 * (n * math.log(2 * math.pi) + nq * math.log(s2) + logdet + resid / s2)
    d_s2 = -0.5 * (nq / s2 + trace - resid / (s2 * s2) + vtv / s2)
    return loglik, 2 * sigma * d_s2


@numba.njit(cache=True, parallel=True, error_model="numpy")
def draw_integrated(buf, b, lam, sigma, r, z, effects, loglik):
    """For each posterior draw s (in parallel) of b (S, p), the integrated blocks' Lambda
    (S, qi, qi), sigma (S,) and the sampled effects r (S, as in x): the integrated factor's
    effects (S, J, qi) from their exact conditional posterior with standard normals z
    (S, J, qi), and each group's log-likelihood (S, J), by ``kernels.group_draw`` on the
    residuals of the rows without them."""
    n, n_int = int(buf[H_ROWS]), int(buf[H_NINT])
    y_at, starts, ztz = int(buf[OFF_Y]), int(buf[OFF_STARTS]), int(buf[OFF_ZTZ])
    _, _, Z, _, start, size, _ = row_views(buf)
    y = buf[y_at : y_at + n]
    qi = start[n_int - 1] + size[n_int - 1]
    J = int(buf[int(buf[OFF_GROUPS])])
    for s in numba.prange(b.shape[0]):
        e = np.empty(n)
        linear_predictor(buf, b[s], r[s], e)
        c, w, eta = np.empty(qi), np.empty(qi), np.empty(qi)
        AL, M, L = np.empty((qi, qi)), np.empty((qi, qi)), np.empty((qi, qi))
        for j in range(J):
            lo, hi = int(buf[starts + j]), int(buf[starts + j + 1])
            rtr = _residuals(y, e, Z, lo, hi, c)
            loglik[s, j] = group_draw(buf, ztz + j * qi * qi, c, rtr, hi - lo, lam[s], sigma[s], z[s, j], AL, M, L, w,
                                      eta, effects[s, j])  # fmt: skip
