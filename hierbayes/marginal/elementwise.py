"""q x q linear algebra whose entries are vectors (one per group): Cholesky and triangular solves.

Written element by element so that the same code runs on NumPy arrays (the exact draws of
crossed designs, ``draws``) and on PyTensor vectors (their log-likelihood, ``graph``):
PyTensor's batched (Blockwise) linear algebra over J small matrices was 20-40x slower.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cholesky", "forward", "backward"]


def cholesky(M):
    """Lower Cholesky factor of a q x q matrix (list of lists) whose entries are vectors."""
    q = len(M)
    L = [[None] * q for _ in range(q)]
    for i in range(q):
        for k in range(i + 1):
            s = M[i][k] - sum(L[i][m] * L[k][m] for m in range(k))
            L[i][k] = (np.sqrt(s) if isinstance(s, np.ndarray | float) else s**0.5) if i == k else s / L[k][k]
    return L


def forward(L, u):
    """Solve L w = u by forward substitution, element by element."""
    w = []
    for i in range(len(u)):
        w.append((u[i] - sum(L[i][m] * w[m] for m in range(i))) / L[i][i])
    return w


def backward(L, v):
    """Solve L' x = v by back substitution, element by element."""
    q = len(v)
    x = [None] * q
    for i in reversed(range(q)):
        x[i] = (v[i] - sum(L[m][i] * x[m] for m in range(i + 1, q))) / L[i][i]
    return x
