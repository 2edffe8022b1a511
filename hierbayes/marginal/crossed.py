"""Crossed factors of a Gaussian model (identity link) with the factor of the most levels
integrated out exactly and the others' effects sampled: the likelihood NUTS samples, and
afterwards the integrated factor's effects drawn exactly given each posterior draw.

With W = [X | Z_K] (the fixed effects' columns and one column per sampled effect), t = (b, r)
the coefficients of W, e = y - offset - W t, and per group j of the integrated factor
A_j = Z_j'Z_j, c_j = Z_j'e_j and G = Lambda Lambda':

    y_j | b, r ~ N(offset_j + W_j t, sigma^2 I + Z_j G Z_j')

by the Woodbury steps of ``marginal.kernels``. Every quantity comes from cross-products packed
once (``cross_products``), so a gradient never visits the rows:

    e'e = y'y - 2 t'W'y + t'W'W t,   c_j = Z_j'y - (Z'W)_j t,
    d/dt = (W'y - W'W t - sum_j (Z'W)_j' Lambda v_j) / sigma^2

(y for y - offset - c and b with c taken off the intercept, c the response's mean: see
``marginal.stats.response_shift``; Lambda v_j the group's conditional mean of its effects).
W'W and Z'W are sparse, an entry per pair of effects that share a row, so a gradient costs
O(their entries), fewer than the rows' when a subject sees an item more than once (73k rows,
3,000 subjects x 1,100 items: 0.49 -> 0.15 ms against the row loops); Z'W is kept whole when
mostly full (``WHOLE_ABOVE``), which spares the loops their gathers.

The intercepts of a sampled, centred block are partially centred on x_0 (the intercept at the
predictors' means): x holds a_j = r_j + w (x_0 - c), c as above (near x_0's posterior, so
that w moving with Lambda and sigma moves the a_j little), with, per block k whose first term
is the intercept (integrated or sampled), A_k = Lambda_kk^2 / J_k (the prior variance of the
mean of its J_k intercepts) and

    w_k = A_k / (sigma^2 / n + sum_m A_m),

the regression of r_kj on x_0 in the posterior: the data fix x_0 plus the means of every
factor's intercepts, and only their priors tell those apart (Papaspiliopoulos, Roberts &
Skold 2007 on partial centring). Not centred (w = 0) the intercept traded off against the
items' mean, which the diagonal mass matrix cannot follow (73k rows, 3,000 subjects x 1,100
items: intercept ESS 1,450 of 4,000; with w, min ESS over every parameter 3,500); fully
centred (w = 1) is worse still here. w depends on Lambda and sigma, so their gradient gains a term
(``partial_adjoint``); the map x -> r stays triangular with a unit diagonal (Jacobian 1).

Afterwards ``draw_integrated`` draws group j's effects from their conditional posterior given
each draw, and the group's log-likelihood, by the one-factor path's ``kernels.group_draw`` on
c_j and e_j'e_j from the rows (``rows.linear_predictor``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import sparse

from .kernels import centred, group_draw, woodbury_gradient, woodbury_q1, woodbury_q2, woodbury_system
from ..core.layout import (
    H_NBLOCKS, H_NINT, H_NSMALL, H_ROWS, H_X0, H_YTY, OFF_BLOCKS, OFF_GROUPS, OFF_PARTIAL, OFF_STARTS, OFF_WTW, OFF_WTW_PTR,
    OFF_WTY, OFF_Y, OFF_ZTW, OFF_ZTW_PTR, OFF_ZTY, OFF_ZTZ, H_ZTW_FULL,
)  # fmt: skip
from ..core.rows import linear_predictor, row_views

__all__ = ["integrated_likelihood", "cross_products", "partial_weights", "partial_adjoint", "draw_integrated"]

# Z'W is packed whole (m values a row) when more than this share of its entries is nonzero, as
# when every subject sees every item: a gradient of the maximal crossed design 21 -> 13 us
WHOLE_ABOVE = 0.5


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


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sparse_rows(buf, at_ptr, at_pairs, n_rows):
    """Views of a sparse matrix packed by ``cross_products``: each row's first entry (and the
    end), and the (column, value) pairs."""
    ptr = buf[int(buf[at_ptr]) : int(buf[at_ptr]) + n_rows + 1]
    return ptr, buf[int(buf[at_pairs]) : int(buf[at_pairs]) + 2 * int(ptr[n_rows])]


@numba.njit(cache=True, error_model="numpy")
def integrated_likelihood(buf, b, r, sigma, lam, g_b, g_r, g_lam):
    """Gaussian, identity link, the leading ``H_NINT`` blocks' factor integrated out: sum over
    its groups j of log N(e_j | 0, sigma^2 I + Z_j G Z_j'), by ``kernels.woodbury_q1`` /
    ``woodbury_q2`` / ``woodbury_system`` on A_j and c_j from the packed cross-products. Adds
    the gradient in b, r and Lambda; returns (log-likelihood, d/dsigma)."""
    n, n_int, p = int(buf[H_ROWS]), int(buf[H_NINT]), b.shape[0]
    _, _, _, _, start, size, _ = row_views(buf)
    qi = start[n_int - 1] + size[n_int - 1]  # the integrated columns of Lambda
    J = int(buf[int(buf[OFF_GROUPS])])
    m = p + r.shape[0]
    # the sections as views: indexing them is 1.5x faster than the buffer at an offset
    wtw_ptr, wtw = _sparse_rows(buf, OFF_WTW_PTR, OFF_WTW, m)
    full = buf[H_ZTW_FULL] > 0  # Z'W whole, m values a row (see ``cross_products``)
    if full:
        ztw_ptr, ztw = buf[:0], buf[int(buf[OFF_ZTW]) : int(buf[OFF_ZTW]) + J * qi * m]
    else:
        ztw_ptr, ztw = _sparse_rows(buf, OFF_ZTW_PTR, OFF_ZTW, J * qi)
    wty, zty = buf[int(buf[OFF_WTY]) : int(buf[OFF_WTY]) + m], buf[int(buf[OFF_ZTY]) : int(buf[OFF_ZTY]) + J * qi]
    ztz = int(buf[OFF_ZTZ])
    t = np.empty(m)
    t[:p] = centred(b, buf)  # the cross-products are of y - offset - c
    t[p:] = r
    g = np.empty(m)
    rtr = buf[H_YTY]
    for a in range(m):  # e'e and W'e = W'y - W'W t
        acc = 0.0
        for k in range(int(wtw_ptr[a]), int(wtw_ptr[a + 1])):
            acc += wtw[2 * k + 1] * t[int(wtw[2 * k])]
        rtr += t[a] * (acc - 2.0 * wty[a])
        g[a] = wty[a] - acc
    # three sweeps (c for every group, the Woodbury steps, the way back): 1.6x faster than a
    # group at a time at 73k rows
    c = np.empty(J * qi)
    for row in range(J * qi):  # c_j = Z_j'y - (Z'W)_j t
        acc = zty[row]
        if full:
            for k in range(m):
                acc -= ztw[row * m + k] * t[k]
        else:
            for k in range(int(ztw_ptr[row]), int(ztw_ptr[row + 1])):
                acc -= ztw[2 * k + 1] * t[int(ztw[2 * k])]
        c[row] = acc
    Lv, w, v = np.empty(J * qi), np.empty(qi), np.empty(qi)
    AL, M, L, Minv = np.empty((qi, qi)), np.empty((qi, qi)), np.empty((qi, qi)), np.empty((qi, qi))
    lam_i, g_lam_i = lam[:qi, :qi], g_lam[:qi, :qi]
    s2 = sigma * sigma
    logdet = quad = trace = vtv = 0.0
    for j in range(J):
        A, at = ztz + j * qi * qi, j * qi
        if qi == 1:
            dl, dq, dt, dv, Lv[at], dg = woodbury_q1(buf[A], c[at], lam[0, 0], s2)
            g_lam[0, 0] += dg
        elif qi == 2:
            dl, dq, dt, dv, Lv[at], Lv[at + 1], d00, d10, d11 = woodbury_q2(
                buf[A], buf[A + 1], buf[A + 3], c[at], c[at + 1], lam[0, 0], lam[1, 0], lam[1, 1], s2)  # fmt: skip
            g_lam[0, 0] += d00
            g_lam[1, 0] += d10
            g_lam[1, 1] += d11
        else:
            dl = woodbury_system(buf, A, lam_i, s2, AL, M, L)
            dq, dt, dv = woodbury_gradient(c[at : at + qi], AL, L, lam_i, s2, Minv, w, v, Lv[at : at + qi], g_lam_i)
        logdet += dl
        quad += dq
        trace += dt
        vtv += dv
    for row in range(J * qi):  # less (Z'W)_j' Lambda v_j
        if full:
            for k in range(m):
                g[k] -= ztw[row * m + k] * Lv[row]
        else:
            for k in range(int(ztw_ptr[row]), int(ztw_ptr[row + 1])):
                g[int(ztw[2 * k])] -= ztw[2 * k + 1] * Lv[row]
    for a in range(p):
        g_b[a] += g[a] / s2
    for a in range(p, m):
        g_r[a - p] += g[a] / s2
    nq = n - J * qi
    resid = rtr - quad
    loglik = -0.5 * (n * math.log(2 * math.pi) + nq * math.log(s2) + logdet + resid / s2)
    d_s2 = -0.5 * (nq / s2 + trace - resid / (s2 * s2) + vtv / s2)
    return loglik, 2 * sigma * d_s2


@numba.njit(cache=True, error_model="numpy")
def partial_weights(buf, lam, sigma, w):
    """w_k into ``w`` (per block; 0 unless its intercepts are partially centred) and returns
    T = sigma^2 / n + sum_m A_m (see the module docstring)."""
    blocks, groups, codes = int(buf[OFF_BLOCKS]), int(buf[OFF_GROUPS]), int(buf[OFF_PARTIAL])
    total = sigma * sigma / buf[H_ROWS]
    for blk in range(int(buf[H_NBLOCKS])):
        s = int(buf[blocks + 4 * blk])
        w[blk] = lam[s, s] * lam[s, s] / buf[groups + 3 * blk] if buf[codes + blk] > 0 else 0.0
        total += w[blk]
    for blk in range(int(buf[H_NBLOCKS])):
        w[blk] = w[blk] / total if buf[codes + blk] == 2 else 0.0
    return total


@numba.njit(cache=True, error_model="numpy")
def partial_adjoint(x, buf, lam, sigma, w, total, grad, g_lam, g_theta):
    """The gradient's terms through w: with S_k the sum of d log p / d r over block k's
    intercepts (already in ``grad``), adds -(x_0 - c) sum_k S_k dw_k/d(Lambda_mm, sigma) into
    ``g_lam`` and ``g_theta[0]``; returns the term of d/dx_0, -sum_k w_k S_k."""
    blocks, groups, codes = int(buf[OFF_BLOCKS]), int(buf[OFF_GROUPS]), int(buf[OFF_PARTIAL])
    n_small, n_blocks = int(buf[H_NSMALL]), int(buf[H_NBLOCKS])
    x0 = x[0] - buf[H_X0]
    sums = np.zeros(n_blocks)
    sw = 0.0
    for blk in range(n_blocks):
        if buf[codes + blk] == 2:
            size, n_groups = int(buf[blocks + 4 * blk + 1]), int(buf[groups + 3 * blk])
            at = int(buf[groups + 3 * blk + 1])
            for j in range(n_groups):
                sums[blk] += grad[n_small + at + j * size]
            sw += w[blk] * sums[blk]
    for blk in range(n_blocks):  # d(sum_k S_k w_k)/dA_m = (S_m [if shifted] - sum_k S_k w_k) / T
        if buf[codes + blk] > 0:
            s = int(buf[blocks + 4 * blk])
            g_lam[s, s] -= x0 * (sums[blk] - sw) / total * 2 * lam[s, s] / buf[groups + 3 * blk]
    g_theta[0] += x0 * sw / total * 2 * sigma / buf[H_ROWS]  # through sigma^2 / n
    return -sw


def cross_products(y, X, Z, codes, blocks: list, n_groups: list, n_int: int) -> dict:
    """The sections ``integrated_likelihood`` reads (rows in any order), by header slot: per
    integrated group Z'y and its rows of Z'W, W'y, W'W (sparse rows of (column, value) pairs),
    and y'y under ``H_YTY``. ``blocks``: (first column in Z, size) per block, the first
    ``n_int`` integrated out (one factor's, Z's leading columns), the others' effects in W in
    block order, group after group; ``n_groups``: each block's number of groups."""
    n = len(y)
    rows = np.arange(n)

    def columns(blk):  # block ``blk``'s effects as sparse columns, a group's together
        at, size = blocks[blk]
        place = codes[:, blk].astype(np.int64)[:, None] * size + np.arange(size)
        return sparse.csr_matrix((np.ravel(Z[:, at : at + size]), (np.repeat(rows, size), np.ravel(place))),
                                 shape=(n, n_groups[blk] * size))  # fmt: skip

    qi = sum(size for _, size in blocks[:n_int])  # the integrated factor's effects, a group's together
    place = codes[:, 0].astype(np.int64)[:, None] * qi + np.arange(qi)
    Zi = sparse.csr_matrix((np.ravel(Z[:, :qi]), (np.repeat(rows, qi), np.ravel(place))), shape=(n, n_groups[0] * qi))
    W = sparse.hstack([sparse.csr_matrix(X), *(columns(blk) for blk in range(n_int, len(blocks)))]).tocsr()

    def pairs(matrix):
        matrix = matrix.tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix.indptr, np.column_stack([matrix.indices, matrix.data])

    wtw_ptr, wtw = pairs(W.T @ W)
    ztw = Zi.T @ W
    if ztw.nnz > WHOLE_ABOVE * ztw.shape[0] * ztw.shape[1]:  # no column indices to gather through
        ztw_ptr, ztw, full = (), ztw.toarray(), 1.0
    else:
        (ztw_ptr, ztw), full = pairs(ztw), 0.0
    return {H_YTY: float(y @ y), H_ZTW_FULL: full, OFF_ZTY: Zi.T @ y, OFF_WTY: W.T @ y, OFF_WTW_PTR: wtw_ptr,
            OFF_WTW: wtw, OFF_ZTW_PTR: ztw_ptr, OFF_ZTW: ztw}  # fmt: skip


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
