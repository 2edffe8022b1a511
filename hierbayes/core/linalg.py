"""Small dense linear algebra in numba for the per-group steps: a Cholesky factor, a solve
with it, and a lower-triangular block times a vector. Loops rather than LAPACK: the matrices
are q x q with q of 1 to 4, and the same code serves complex numbers (complex-step gradients).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cholesky", "chol_solve", "lower_times"]


@numba.njit(cache=True, error_model="numpy")
def chol_solve(L, rhs):
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
def cholesky(M, L):
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
def lower_times(lam, start, x, out):
    """out = L x for the lower-triangular block of ``lam`` starting at row and column ``start``
    (the size of ``x``): a group's effects Lambda eta from its standardised draw."""
    for a in range(x.shape[0]):
        t = 0.0
        for m in range(a + 1):
            t += lam[start + a, start + m] * x[m]
        out[a] = t
