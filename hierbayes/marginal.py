"""The Gaussian fast path: group effects integrated out of the sampler, drawn exactly afterwards.

For a Gaussian model whose blocks all share one grouping factor, y_j ~ N(X_j beta, V_j) with
V_j = sigma^2 I + Z_j G Z_j'. With Lambda the (lower-triangular) Cholesky factor of G, the
residual r_j = y_j - X_j beta, Mt_j = I + Lambda' Z_j'Z_j Lambda / sigma^2 (eigenvalues >= 1,
G is never inverted) and u_j = Lambda' Z_j' r_j / sigma^2:

    log|V_j|            = n_j log sigma^2 + log|Mt_j|
    r_j' V_j^{-1} r_j   = r_j'r_j / sigma^2 - u_j' Mt_j^{-1} u_j

(matrix determinant lemma and Woodbury identity). Everything comes from per-group sufficient
statistics Z_j'Z_j, Z_j'X_j, Z_j'y_j and the totals X'X, X'y, y'y, computed once, so a
gradient costs O(J q^3) whatever the number of rows. The q x q Cholesky factor of Mt_j and
the triangular solve are written out element by element on length-J vectors: PyTensor's
batched (Blockwise) linear algebra over J small matrices was 20-40x slower (shared notes).

With two nested factors, ``hierbayes.marginal_numba`` integrates both out (``nested_stats``,
``draw_nested_group_effects``). Otherwise, with several grouping factors (crossed; nested
when the PyMC-built model runs), the factor with the most levels is integrated out and the
others are sampled as in the full model (Lai, Domke & Sheldon 2024):
the residual then subtracts their effects row by row, so a gradient costs O(n) again, but
the largest set of group effects, and its funnel, leave the sampler.

NUTS samples only beta, the SDs, the LKJ correlations and sigma (and the other factors' effects). Afterwards, for every
posterior draw, b_j = Lambda eta_j with eta_j ~ N(Mt_j^{-1} u_j, Mt_j^{-1}): exact draws from
the conditional posterior of the group effects, stored as ``r_<block>`` like the full
model's, so every table, plot and prediction works the same.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

__all__ = [
    "SufficientStats", "sufficient_stats", "marginal_applies", "packed_applies", "nested_factors", "integrated_factor", "add_marginal_likelihood",
    "draw_group_effects",
]  # fmt: skip


@dataclass(frozen=True)
class SufficientStats:
    """What the marginal likelihood needs from the data, computed once."""

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
    return True, ""


def packed_applies(design, priors) -> bool:
    """Whether ``hierbayes.marginal_numba`` can sample the marginal model (no code generation):
    every block on one factor, or on two nested factors (both integrated out there), and
    every prior a scalar."""
    if not design.blocks or (sampled_blocks(design) and nested_factors(design) is None):
        return False
    return all(isinstance(v, float) for e in priors.entries for _, v in e.prior.params)


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
    """Per inner group c (Z: the inner factor's columns, U: the outer factor's): the outer
    group it lies in, n_c, Z'Z, Z'U, U'U, Z'X, U'X, Z'y, U'y; per outer group: n, y'y, X'y, X'X."""

    outer_of: np.ndarray
    n_c: np.ndarray
    ZtZ: np.ndarray
    ZtU: np.ndarray
    UtU: np.ndarray
    ZtX: np.ndarray
    UtX: np.ndarray
    Zty: np.ndarray
    Uty: np.ndarray
    n_s: np.ndarray
    yty_s: np.ndarray
    Xty_s: np.ndarray
    XtX_s: np.ndarray


def nested_stats(design) -> NestedStats:
    """The sufficient statistics of two nested factors (see ``NestedStats``), by ``np.bincount``."""
    outer, inner = nested_factors(design)
    Z = np.column_stack([b.Z for b in design.blocks if b.group == inner])
    U = np.column_stack([b.Z for b in design.blocks if b.group == outer])
    X, y = design.X, design.y
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
        outer_of=outer_of, n_c=np.bincount(codes, minlength=C).astype(float), ZtZ=cross(Z, Z, codes, C),
        ZtU=cross(Z, U, codes, C), UtU=cross(U, U, codes, C), ZtX=cross(Z, X, codes, C), UtX=cross(U, X, codes, C),
        Zty=cross(Z, y1, codes, C)[..., 0], Uty=cross(U, y1, codes, C)[..., 0],
        n_s=np.bincount(outer_codes, minlength=S).astype(float), yty_s=np.bincount(outer_codes, weights=y * y, minlength=S),
        Xty_s=cross(X, y1, outer_codes, S)[..., 0], XtX_s=cross(X, X, outer_codes, S),
    )  # fmt: skip


def integrated_factor(design) -> str:
    """The grouping factor whose effects are integrated out: the one with the most levels."""
    factors = list(dict.fromkeys(b.group for b in design.blocks))
    return max(factors, key=lambda f: design.factors[f].n_levels)


def integrated_blocks(design) -> list:
    factor = integrated_factor(design)
    return [b for b in design.blocks if b.group == factor]


def sampled_blocks(design) -> list:
    """Blocks of the other grouping factors: sampled as in the full model."""
    factor = integrated_factor(design)
    return [b for b in design.blocks if b.group != factor]


def factor_Z(design) -> np.ndarray:
    """The Z columns of the integrated factor's blocks, side by side."""
    return np.column_stack([b.Z for b in integrated_blocks(design)])


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
    factor = design.factors[integrated_factor(design)]
    codes, J = factor.codes, factor.n_levels
    Z, X, y = factor_Z(design), design.X, design.y
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


def add_marginal_likelihood(design, b, Lambda, sigma, mu_rows=None, name: str = "marginal_loglik"):
    """Add the integrated-out likelihood of ``design`` to the model in context (a Potential).

    ``b``: fixed effects on the data's scale (p,); ``Lambda``: the Cholesky factor of the
    integrated factor's G as a q x q list of lists of scalars, ``None`` for structural zeros
    (a block-diagonal G leaves many); ``sigma``: the residual SD; ``mu_rows``: with other
    factors sampled, X beta plus their effects for every row (else None: sufficient
    statistics only). Every per-group quantity is a length-J vector, so the graph is
    element-wise arithmetic (no batched linear algebra). Returns the per-group terms.
    """
    s = sufficient_stats(design)
    q = s.ZtZ.shape[1]
    sigma2 = sigma**2
    if mu_rows is None:
        # Z_j' r_j = Z_j'y_j - Z_j'X_j b per column of Z;  r'r = y'y - 2 b'X'y + b'X'X b
        Ztr = [s.Zty[:, k] - pt.dot(s.ZtX[:, k, :], b) for k in range(q)]
        rtr = s.yty - 2 * pt.dot(b, s.Xty) + pt.dot(b, pt.dot(s.XtX, b))
    else:  # the residual row by row, summed per group
        factor = design.factors[integrated_factor(design)]
        r = design.y - mu_rows
        Z = factor_Z(design)
        Ztr = [pt.inc_subtensor(pt.zeros(factor.n_levels)[factor.codes], Z[:, k] * r) for k in range(q)]
        rtr = pt.sum(r**2)
    nonzero = [[k for k in range(q) if Lambda[k][a] is not None] for a in range(q)]  # rows of column a
    u = [sum(Ztr[k] * Lambda[k][a] for k in nonzero[a]) / sigma2 for a in range(q)]
    M = [[None] * q for _ in range(q)]
    for a in range(q):
        for c in range(a + 1):
            K = sum(Lambda[k][a] * Lambda[m][c] * s.ZtZ[:, k, m] for k in nonzero[a] for m in nonzero[c])
            M[a][c] = M[c][a] = float(a == c) + K / sigma2
    chol = _cholesky(M)
    w = _forward(chol, u)
    logdet = 2 * sum(pt.log(chol[a][a]) for a in range(q))
    quad_correction = sum(wa**2 for wa in w)
    # per group: -0.5 (n_j log 2 pi sigma^2 + log|Mt_j| - u'Mt^{-1}u); the r_j'r_j / sigma^2
    # part is only needed in total, so it is added once
    per_group = -0.5 * (s.n_j * pt.log(2 * np.pi * sigma2) + logdet - quad_correction)
    total = pt.sum(per_group) - 0.5 * rtr / sigma2
    pm.Potential(name, total)
    return per_group


def _cholesky(M):
    """Lower Cholesky factor of a q x q matrix whose entries are vectors (one per group)."""
    q = len(M)
    L = [[None] * q for _ in range(q)]
    for i in range(q):
        for k in range(i + 1):
            s = M[i][k] - sum(L[i][m] * L[k][m] for m in range(k))
            L[i][k] = _sqrt(s) if i == k else s / L[k][k]
    return L


def _forward(L, u):
    """Solve L w = u by forward substitution, element by element."""
    w = []
    for i in range(len(u)):
        w.append((u[i] - sum(L[i][m] * w[m] for m in range(i))) / L[i][i])
    return w


def _sqrt(x):
    return pt.sqrt(x) if isinstance(x, pt.TensorVariable) else np.sqrt(x)


# --- exact group effects afterwards -------------------------------------------------------------


def lambda_draws(design, posterior: xr.Dataset, blocks=None) -> np.ndarray:
    """Draws of Lambda, the Cholesky factor of the integrated factor's G (or of ``blocks``,
    block-diagonal in their order): (chain, draw, q, q)."""
    blocks = integrated_blocks(design) if blocks is None else blocks
    q = sum(b.size for b in blocks)
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.zeros((chains, draws, q, q))
    start = 0
    for block in blocks:
        sd = posterior[f"sd_{block.name}"].transpose("chain", "draw", ...).values
        sl = slice(start, start + block.size)
        if block.correlated:
            chol = posterior[f"L_{block.name}"].transpose("chain", "draw", ...).values
            out[:, :, sl, sl] = sd[..., :, None] * chol
        else:
            out[:, :, sl, sl] = sd[..., :, None] * np.eye(block.size)
        start += block.size
    return out


def draw_group_effects(design, posterior: xr.Dataset, random_seed=None, chunk: int = 100):
    """Exact draws of every block's group effects given each posterior draw: ``r_<block>``,
    and each group's marginal log-likelihood log N(y_j | X_j beta, V_j) per draw.

    Returns ({``r_<block>``: draws}, log-likelihood draws with dims (chain, draw, group)).
    Vectorised over groups and over chunks of draws; the Cholesky factor and the solves are
    element-wise in q, as in the likelihood.
    """
    rng = np.random.default_rng(random_seed)
    s = sufficient_stats(design)
    J, q = s.Zty.shape
    b = posterior["b"].transpose("chain", "draw", "term").values
    sigma = posterior["sigma"].transpose("chain", "draw").values
    lam = lambda_draws(design, posterior)
    shape = b.shape[:2]
    b, sigma, lam = b.reshape(-1, b.shape[-1]), sigma.reshape(-1), lam.reshape(-1, q, q)
    residuals = _Residuals(design, posterior, b)
    effects = np.empty((len(b), J, q))
    loglik = np.empty((len(b), J))
    for start in range(0, len(b), chunk):
        sl = slice(start, start + chunk)
        if not residuals.others:  # one grouping factor: compiled, from the sufficient statistics
            from .marginal_numba import draw_effects

            z = rng.standard_normal((len(b[sl]), J, q))
            draw_effects(b[sl], lam[sl], sigma[sl], z, s.ZtZ, s.ZtX, s.Zty, s.n_j, s.yty_j, s.Xty_j, s.XtX_j,
                         effects[sl], loglik[sl])  # fmt: skip
            continue
        s2 = sigma[sl, None] ** 2  # (S, 1)
        Ztr, rtr = residuals.cross_products(sl, s)  # (S, J, q), (S, J)
        u = np.einsum("sjk,ska->sja", Ztr, lam[sl]) / s2[..., None]  # Lambda' Z'r / sigma^2
        K = np.einsum("ska,sjkc->sjac", lam[sl], np.einsum("jkl,slc->sjkc", s.ZtZ, lam[sl])) / s2[..., None, None]
        M = [[K[..., a, c] + (a == c) for c in range(q)] for a in range(q)]
        L = _cholesky(M)
        # mean m = Mt^{-1} u: forward then backward substitution; draw = m + L^{-T} z
        w = _forward(L, [u[..., a] for a in range(q)])
        logdet = 2 * sum(np.log(L[a][a]) for a in range(q))
        loglik[sl] = -0.5 * (s.n_j[None] * np.log(2 * np.pi * s2) + logdet + rtr / s2 - sum(wa**2 for wa in w))
        z = rng.standard_normal((*u.shape[:2], q))
        eta = _backward(L, [w[a] + z[..., a] for a in range(q)])
        eta = np.stack(eta, axis=-1)  # (S, J, q)
        effects[sl] = np.einsum("sac,sjc->sja", lam[sl], eta)
    effects = effects.reshape(*shape, J, q)
    factor = integrated_factor(design)
    levels = list(design.factors[factor].levels)
    out, start = {}, 0
    for block in integrated_blocks(design):
        values = effects[..., start : start + block.size]
        out[f"r_{block.name}"] = xr.DataArray(
            values, dims=("chain", "draw", factor, f"{block.name}__effect"),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values, factor: levels,
                    f"{block.name}__effect": list(block.terms)},
        )  # fmt: skip
        start += block.size
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values, factor: levels}
    return out, xr.DataArray(loglik.reshape(*shape, J), dims=("chain", "draw", factor), coords=coords)


def draw_nested_group_effects(design, posterior: xr.Dataset, packed, random_seed=None, chunk: int = 100):
    """``draw_group_effects`` when two nested factors were both integrated out (``packed``:
    the ``marginal_numba.PackedModel`` that was sampled): exact draws of the outer factor's
    effects with the inner ones integrated out, then of the inner ones given them; the
    log-likelihood is per outer group."""
    from .marginal_numba import draw_nested_effects

    rng = np.random.default_rng(random_seed)
    outer, inner = nested_factors(design)
    ns = nested_stats(design)
    q = packed.q
    q1 = sum(b.size for b in packed.blocks if b.group == inner)
    C, S_out = len(ns.n_c), len(ns.n_s)
    b = posterior["b"].transpose("chain", "draw", "term").values
    sigma = posterior["sigma"].transpose("chain", "draw").values
    lam = lambda_draws(design, posterior, packed.blocks)
    shape = b.shape[:2]
    b, sigma, lam = b.reshape(-1, b.shape[-1]), sigma.reshape(-1), lam.reshape(-1, q, q)
    eff_in, eff_out = np.empty((len(b), C, q1)), np.empty((len(b), S_out, q - q1))
    loglik = np.empty((len(b), S_out))
    for start in range(0, len(b), chunk):
        sl = slice(start, start + chunk)
        n = len(b[sl])
        z_in, z_out = rng.standard_normal((n, C, q1)), rng.standard_normal((n, S_out, q - q1))
        draw_nested_effects(b[sl], lam[sl], sigma[sl], z_in, z_out, packed.buffer, ns.n_s, ns.yty_s, ns.Xty_s,
                            ns.XtX_s, eff_in[sl], eff_out[sl], loglik[sl])  # fmt: skip
    chain_draw = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    out, starts = {}, {inner: 0, outer: 0}
    for block in packed.blocks:
        values = eff_in if block.group == inner else eff_out
        values = values.reshape(*shape, *values.shape[1:])
        k = starts[block.group]
        out[f"r_{block.name}"] = xr.DataArray(
            values[..., k : k + block.size], dims=("chain", "draw", block.group, f"{block.name}__effect"),
            coords={**chain_draw, block.group: list(design.factors[block.group].levels),
                    f"{block.name}__effect": list(block.terms)},
        )  # fmt: skip
        starts[block.group] += block.size
    coords = {**chain_draw, outer: list(design.factors[outer].levels)}
    return out, xr.DataArray(loglik.reshape(*shape, S_out), dims=("chain", "draw", outer), coords=coords)


class _Residuals:
    """Per draw and group: Z_j' r_j and r_j' r_j, with r = y - X beta - (other factors' effects)."""

    def __init__(self, design, posterior, b):
        self.design, self.b = design, b
        self.others = []
        for block in sampled_blocks(design):
            r = posterior[f"r_{block.name}"].transpose("chain", "draw", ...).values
            self.others.append((r.reshape(-1, *r.shape[2:]), design.factors[block.group].codes, block.Z))

    def cross_products(self, sl, s):
        b = self.b[sl]
        if not self.others:  # from the sufficient statistics alone
            Ztr = s.Zty[None] - np.einsum("jqp,sp->sjq", s.ZtX, b)
            rtr = s.yty_j[None] - 2 * np.einsum("jp,sp->sj", s.Xty_j, b) + np.einsum("sp,jpk,sk->sj", b, s.XtX_j, b)
            return Ztr, rtr
        d = self.design
        r = d.y[None] - b @ d.X.T  # (S, n)
        for draws, codes, Z in self.others:
            r = r - np.einsum("snk,nk->sn", draws[sl][:, codes, :], Z)
        factor = d.factors[integrated_factor(d)]
        Z = factor_Z(d)
        J = factor.n_levels
        Ztr = np.stack([_group_sums(r * Z[:, k], factor.codes, J) for k in range(Z.shape[1])], axis=-1)
        return Ztr, _group_sums(r**2, factor.codes, J)


def _group_sums(values, codes, n_groups):
    """Sums over the last axis by group: (S, n) -> (S, J)."""
    from scipy import sparse

    indicator = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes)))
    return np.asarray((indicator @ values.T).T)


def _backward(L, v):
    """Solve L' x = v by back substitution, element by element."""
    q = len(v)
    x = [None] * q
    for i in reversed(range(q)):
        x[i] = (v[i] - sum(L[m][i] * x[m] for m in range(i + 1, q))) / L[i][i]
    return x
