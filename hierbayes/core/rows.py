"""The rows of a sampled model (``density``'s buffer) in numba: the linear predictor and the
way back from d log p / d eta to the fixed and group effects, shared by every likelihood of
``hierbayes.sampled`` (each family's, and the crossed one with a factor integrated out).

    eta_i = offset_i + X_i b + sum over the sampled blocks k of Z_ik r_k[g_k(i)]
    d/db = X'd,  d/dr_kj = sum over group j's rows of Z_ik d_i

With no factor integrated out the rows are sorted by the first block's groups, so its effects
are read and its sums kept once a group; the other blocks go through each row's group code.
"""

from __future__ import annotations

import numba
import numpy as np

from .layout import (
    H_NBLOCKS, H_NINT, H_P, H_Q, H_ROWS, OFF_BLOCKS, OFF_CODES, OFF_GROUPS, OFF_OFFSET, OFF_STARTS, OFF_X, OFF_ZROWS,
)  # fmt: skip

__all__ = ["block_places", "row_views", "linear_predictor", "back"]


@numba.njit(cache=True, error_model="numpy")
def block_places(buf):
    """Per block: its first column in Lambda, its size, where its effects lie in r."""
    n_blocks, blocks, groups = int(buf[H_NBLOCKS]), int(buf[OFF_BLOCKS]), int(buf[OFF_GROUPS])
    start, size, at = np.empty(n_blocks, np.int64), np.empty(n_blocks, np.int64), np.empty(n_blocks, np.int64)
    for blk in range(n_blocks):
        start[blk], size[blk] = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        at[blk] = int(buf[groups + 3 * blk + 1])
    return start, size, at


@numba.njit(cache=True, error_model="numpy")
def row_views(buf):
    """Views of the rows: offset, X (n x p), Z (n x q), the group codes (n x blocks), and
    where each block's columns start in Z, its size, where its effects lie in r."""
    n, p, q, n_blocks = int(buf[H_ROWS]), int(buf[H_P]), int(buf[H_Q]), int(buf[H_NBLOCKS])
    off_at, x_at, z_at, codes_at = int(buf[OFF_OFFSET]), int(buf[OFF_X]), int(buf[OFF_ZROWS]), int(buf[OFF_CODES])
    start, size, at = block_places(buf)
    return (buf[off_at : off_at + n], buf[x_at : x_at + n * p].reshape((n, p)), buf[z_at : z_at + n * q].reshape((n, q)),
            buf[codes_at : codes_at + n * n_blocks].reshape((n, n_blocks)), start, size, at)  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def linear_predictor(buf, b, r, eta):
    """eta_i = offset_i + X_i b + the sampled blocks' Z_i r, for every row (the integrated
    blocks, the first ``H_NINT``, left out). With none integrated the rows are sorted by the
    first block's groups, so its effects are read once a group; the other blocks' through
    each row's code. Blocks of one and two terms are written out (a loop of two costs more
    than the arithmetic)."""
    offset, X, Z, codes, start, size, at = row_views(buf)
    n, p, n_blocks, first = X.shape[0], X.shape[1], codes.shape[1], int(buf[H_NINT])
    lead = first == 0 and n_blocks > 0
    s0, sz, a0 = (start[0], size[0], at[0]) if lead else (0, 0, 0)
    starts = int(buf[OFF_STARTS])
    for j in range(int(buf[int(buf[OFF_GROUPS])]) if lead else 1):
        lo, hi = (int(buf[starts + j]), int(buf[starts + j + 1])) if lead else (0, n)
        r0 = r[a0 + j * sz] if sz > 0 else 0.0
        r1 = r[a0 + j * sz + 1] if sz > 1 else 0.0
        for i in range(lo, hi):
            value = offset[i]
            for k in range(p):
                value += X[i, k] * b[k]
            if sz == 1:
                value += Z[i, s0] * r0
            elif sz == 2:
                value += Z[i, s0] * r0 + Z[i, s0 + 1] * r1
            else:
                for c in range(sz):
                    value += Z[i, s0 + c] * r[a0 + j * sz + c]
            eta[i] = value
    for blk in range(first + lead, n_blocks):
        s1, sz1, a1 = start[blk], size[blk], at[blk]
        for i in range(n):
            base = a1 + int(codes[i, blk]) * sz1
            if sz1 == 1:
                eta[i] += Z[i, s1] * r[base]
            elif sz1 == 2:
                eta[i] += Z[i, s1] * r[base] + Z[i, s1 + 1] * r[base + 1]
            else:
                for c in range(sz1):
                    eta[i] += Z[i, s1 + c] * r[base + c]


@numba.njit(cache=True, error_model="numpy")
def back(buf, d, g_b, g_r):
    """Adds d log p / d eta (``d``, per row) through to b (X'd) and the sampled effects, in
    the order of ``linear_predictor`` (the first block's sums kept a group at a time)."""
    offset, X, Z, codes, start, size, at = row_views(buf)
    n, p, n_blocks, first = X.shape[0], X.shape[1], codes.shape[1], int(buf[H_NINT])
    lead = first == 0 and n_blocks > 0
    s0, sz, a0 = (start[0], size[0], at[0]) if lead else (0, 0, 0)
    starts = int(buf[OFF_STARTS])
    for k in range(p):  # X'd a column at a time: the sum stays in a register
        acc = 0.0
        for i in range(n):
            acc += X[i, k] * d[i]
        g_b[k] += acc
    for j in range(int(buf[int(buf[OFF_GROUPS])]) if lead else 0):
        lo, hi = int(buf[starts + j]), int(buf[starts + j + 1])
        g0 = g1 = 0.0
        for i in range(lo, hi):
            di = d[i]
            if sz == 1:
                g0 += Z[i, s0] * di
            elif sz == 2:
                g0 += Z[i, s0] * di
                g1 += Z[i, s0 + 1] * di
            else:
                for c in range(sz):
                    g_r[a0 + j * sz + c] += Z[i, s0 + c] * di
        if sz > 0 and sz <= 2:
            g_r[a0 + j * sz] += g0
        if sz == 2:
            g_r[a0 + j * sz + 1] += g1
    for blk in range(first + lead, n_blocks):
        s1, sz1, a1 = start[blk], size[blk], at[blk]
        for i in range(n):
            base = a1 + int(codes[i, blk]) * sz1
            if sz1 == 1:
                g_r[base] += Z[i, s1] * d[i]
            elif sz1 == 2:
                g_r[base] += Z[i, s1] * d[i]
                g_r[base + 1] += Z[i, s1 + 1] * d[i]
            else:
                for c in range(sz1):
                    g_r[base + c] += Z[i, s1 + c] * d[i]
