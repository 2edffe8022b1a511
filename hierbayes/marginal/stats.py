"""What the integrated-out model needs from the data, and which factors it integrates out.

Design -> ``SufficientStats`` (per group of the factor with the most levels: Z'Z, Z'X, Z'y,
and the totals X'X, X'y, y'y) and, with two nested factors, ``NestedStats`` (per inner
group: its outer group, Z'U, U'U, U'X, U'y; per outer group: n, y'y, X'y, X'X). All by
``np.bincount``, once per design: the model, the sampler and the draws afterwards read them.

Which factors are integrated out depends on the design alone, never on the sampler: one
grouping factor, or two nested ones (``(1 | a/b)``), are integrated out entirely; with
crossed factors the one with the most levels is, and the others' effects are sampled
(Lai, Domke & Sheldon 2024).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SufficientStats", "sufficient_stats", "NestedStats", "nested_stats", "marginal_applies", "nested_factors",
    "largest_factor", "integrated_factors", "integrated_blocks", "sampled_blocks", "factor_Z", "response_shift",
]  # fmt: skip


@dataclass(frozen=True)
class SufficientStats:
    """What the marginal likelihood needs from the data, computed once: cross-products of y - c
    (c = ``response_shift``), so that y'y - 2 b'X'y + b'X'X b does not cancel away the digits
    of a response whose mean dwarfs its residual SD; the kernels take c off the intercept."""

    n: int
    yty: float
    Xty: np.ndarray = field(repr=False)  # (p,)
    XtX: np.ndarray = field(repr=False)  # (p, p)
    ZtZ: np.ndarray = field(repr=False)  # (J, q, q)
    ZtX: np.ndarray = field(repr=False)  # (J, q, p)
    Zty: np.ndarray = field(repr=False)  # (J, q)
    # per group, for the pointwise (per-group) log-likelihood after sampling
    n_j: np.ndarray = field(repr=False)  # (J,)
    yty_j: np.ndarray = field(repr=False)  # (J,)
    Xty_j: np.ndarray = field(repr=False)  # (J, p)
    XtX_j: np.ndarray = field(repr=False)  # (J, p, p)


def marginal_applies(design) -> tuple[bool, str]:
    """Whether the group effects can be integrated out here, and if not, why."""
    if not design.blocks:
        return False, "the model has no group-level effects"
    if not design.family.integrates_exactly:
        return False, f"the {design.family.name} family's group effects cannot be integrated out exactly"
    if design.offset is not None:
        return False, "the model has an offset (the integrated-out kernels take none yet)"
    return True, ""


def nested_factors(design) -> tuple[str, str] | None:
    """(outer, inner) when the blocks sit on exactly two grouping factors and every level of
    one (the inner, ``a:b`` of ``(1 | a/b)``) lies within a single level of the other."""
    factors = list(dict.fromkeys(b.group for b in design.blocks))
    if len(factors) != 2:
        return None
    outer, inner = sorted(factors, key=lambda f: design.factors[f].n_levels)
    inner_codes, outer_codes = design.factors[inner].codes, design.factors[outer].codes
    outer_of = np.zeros(design.factors[inner].n_levels, dtype=np.int64)
    outer_of[inner_codes] = outer_codes
    if design.factors[inner].n_levels == design.factors[outer].n_levels or np.any(outer_of[inner_codes] != outer_codes):
        return None
    return outer, inner


@dataclass(frozen=True)
class NestedStats:
    """Two nested factors (Z: the inner factor's columns, U: the outer factor's): per inner
    group c its outer group, Z'U, U'U, U'X, U'y; per outer group s: n, y'y, X'y, X'X, U'U,
    U'X, U'y, and its inner groups (``by_outer[outer_start[s]:outer_start[s + 1]]``). The
    inner groups' Z'Z, Z'X, Z'y are ``SufficientStats``'s (the inner factor has more levels)."""

    outer_of: np.ndarray
    ZtU: np.ndarray
    UtU: np.ndarray
    UtX: np.ndarray
    Uty: np.ndarray
    n_s: np.ndarray
    yty_s: np.ndarray
    Xty_s: np.ndarray
    XtX_s: np.ndarray
    UtU_s: np.ndarray
    UtX_s: np.ndarray
    Uty_s: np.ndarray
    by_outer: np.ndarray  # the inner groups sorted by outer group (stable)
    outer_start: np.ndarray  # where each outer group's inner groups start in by_outer, and C


def response_shift(design) -> float:
    """c, taken off y in the statistics and off the intercept in the kernels (the likelihood
    depends on y - X b only): the response's mean with an intercept, else 0. A response of mean
    1e6 and residual SD 1 lost every digit of r'r without it (London shifted by 1e6: R-hat 4.3)."""
    return float(np.mean(design.y)) if design.has_intercept else 0.0


def nested_stats(design) -> NestedStats:
    """The sufficient statistics of two nested factors (see ``NestedStats``), by ``np.bincount``."""
    outer, inner = nested_factors(design)
    Z = np.column_stack([b.Z for b in design.blocks if b.group == inner])
    U = np.column_stack([b.Z for b in design.blocks if b.group == outer])
    X, y = design.X, design.y - response_shift(design)
    codes, C = design.factors[inner].codes, design.factors[inner].n_levels
    outer_codes, S = design.factors[outer].codes, design.factors[outer].n_levels
    outer_of = np.zeros(C, dtype=np.int64)
    outer_of[codes] = outer_codes

    def cross(A, B, by, n):  # per group: A_g' B_g, (n, a, b)
        out = np.empty((n, A.shape[1], B.shape[1]))
        for i in range(A.shape[1]):
            for k in range(B.shape[1]):
                out[:, i, k] = np.bincount(by, weights=A[:, i] * B[:, k], minlength=n)
        return out

    y1 = y[:, None]
    return NestedStats(
        outer_of=outer_of, ZtU=cross(Z, U, codes, C), UtU=cross(U, U, codes, C), UtX=cross(U, X, codes, C),
        Uty=cross(U, y1, codes, C)[..., 0], n_s=np.bincount(outer_codes, minlength=S).astype(float),
        yty_s=np.bincount(outer_codes, weights=y * y, minlength=S), Xty_s=cross(X, y1, outer_codes, S)[..., 0],
        XtX_s=cross(X, X, outer_codes, S), UtU_s=cross(U, U, outer_codes, S), UtX_s=cross(U, X, outer_codes, S),
        Uty_s=cross(U, y1, outer_codes, S)[..., 0], by_outer=np.argsort(outer_of, kind="stable"),
        outer_start=np.concatenate([[0], np.cumsum(np.bincount(outer_of, minlength=S))]),
    )  # fmt: skip


def largest_factor(design) -> str:
    """The grouping factor with the most levels: its per-group statistics are ``SufficientStats``."""
    factors = list(dict.fromkeys(b.group for b in design.blocks))
    return max(factors, key=lambda f: design.factors[f].n_levels)


def integrated_factors(design) -> tuple[str, ...]:
    """The factors whose effects are integrated out: both of two nested ones (outer, inner),
    else the one with the most levels."""
    return nested_factors(design) or (largest_factor(design),)


def integrated_blocks(design, factors=None) -> list:
    """The integrated factors' blocks (or ``factors``') in Lambda's order: the largest factor's
    (the inner one of two nested factors), then the outer factor's."""
    factor = largest_factor(design)
    factors = integrated_factors(design) if factors is None else factors
    first = [b for b in design.blocks if b.group == factor]
    return first + [b for b in design.blocks if b.group != factor and b.group in factors]


def sampled_blocks(design) -> list:
    """Blocks of the factors that are not integrated out (crossed designs): sampled as in the full model."""
    integrated = integrated_factors(design)
    return [b for b in design.blocks if b.group not in integrated]


def factor_Z(design) -> np.ndarray:
    """The Z columns of the largest factor's blocks, side by side."""
    factor = largest_factor(design)
    return np.column_stack([b.Z for b in design.blocks if b.group == factor])


_STATS: dict[int, tuple] = {}  # id(design) -> (weak reference, stats): computed once a design


def sufficient_stats(design) -> SufficientStats:
    """Per-group cross-products by one pass of ``np.bincount`` per pair of columns (once per
    design: the model, the sampler and the draws afterwards all read them)."""
    key = id(design)
    hit = _STATS.get(key)
    if hit is not None and hit[0]() is design:
        return hit[1]
    stats = _sufficient_stats(design)
    _STATS[key] = (weakref.ref(design, lambda _, key=key: _STATS.pop(key, None)), stats)
    return stats


def _sufficient_stats(design) -> SufficientStats:
    factor = design.factors[largest_factor(design)]
    codes, J = factor.codes, factor.n_levels
    Z, X, y = factor_Z(design), design.X, design.y - response_shift(design)
    q, p = Z.shape[1], X.shape[1]

    def per_group(weights):
        return np.bincount(codes, weights=weights, minlength=J)

    ZtZ = np.empty((J, q, q))
    for a in range(q):
        for b in range(a, q):
            ZtZ[:, a, b] = ZtZ[:, b, a] = per_group(Z[:, a] * Z[:, b])
    ZtX = np.stack([np.stack([per_group(Z[:, a] * X[:, k]) for k in range(p)], axis=-1) for a in range(q)], axis=1)
    Zty = np.stack([per_group(Z[:, a] * y) for a in range(q)], axis=-1)
    XtX_j = np.empty((J, p, p))
    for a in range(p):
        for b in range(a, p):
            XtX_j[:, a, b] = XtX_j[:, b, a] = per_group(X[:, a] * X[:, b])
    Xty_j = np.stack([per_group(X[:, k] * y) for k in range(p)], axis=-1).reshape(J, p)
    return SufficientStats(n=len(y), yty=float(y @ y), Xty=X.T @ y, XtX=X.T @ X, ZtZ=ZtZ,
                           ZtX=ZtX.reshape(J, q, p), Zty=Zty, n_j=np.bincount(codes, minlength=J).astype(float),
                           yty_j=per_group(y * y), Xty_j=Xty_j, XtX_j=XtX_j)  # fmt: skip

