"""Exact group effects after sampling, and the pointwise (per-group) log-likelihood.

NUTS sampled only the fixed effects, SDs, correlations and sigma (and, with crossed factors,
the smaller factors' effects). For every posterior draw, the integrated factor's effects are
drawn from their exact conditional posterior, b_j = Lambda eta_j with
eta_j ~ N(Mt_j^{-1} u_j, Mt_j^{-1}) (notation of ``graph.add_crossed_likelihood``), and stored
as ``r_<block>`` like the full model's, so every table, plot and prediction works the same.
With them comes each group's marginal log-likelihood log N(y_j | X_j b, V_j): LOO over
these terms leaves out a whole group.

``complete``: (Design, posterior, PackedModel or None) -> ({``r_<block>``: draws},
log-likelihood draws with dims (chain, draw, group)). One factor: ``kernels.draw_effects``;
two nested: ``nested.draw_nested_effects`` (the outer factor's effects with the inner ones
integrated out, then the inner ones given them; log-likelihood per outer group); crossed:
``crossed.draw_integrated``, or NumPy on chunks of draws, element-wise in q
(``elementwise``), where PyMC sampled the model.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import sparse

from .. import names
from .crossed import draw_integrated
from ..summarize import block_cholesky
from .elementwise import backward, cholesky, forward
from .kernels import draw_effects
from .nested_draws import draw_nested_effects
from .stats import (
    factor_Z, integrated_blocks, largest_factor, nested_factors, nested_stats, response_shift,
    sampled_blocks, sufficient_stats,
)  # fmt: skip

__all__ = ["complete", "lambda_draws", "draw_group_effects", "draw_nested_group_effects"]


def complete(design, posterior: xr.Dataset, packed=None, random_seed=None):
    """The integrated factors' exact effects and the per-group log-likelihood (see above);
    ``packed`` (the model's ``PackedModel``) is needed with two nested factors."""
    if nested_factors(design) is not None:
        return draw_nested_group_effects(design, posterior, packed, random_seed=random_seed)
    return draw_group_effects(design, posterior, packed, random_seed=random_seed)


def lambda_draws(design, posterior: xr.Dataset, blocks=None) -> np.ndarray:
    """Draws of Lambda for the integrated blocks (or ``blocks``): (chain, draw, q, q)."""
    return block_cholesky(posterior, integrated_blocks(design) if blocks is None else blocks)


def draw_group_effects(design, posterior: xr.Dataset, packed=None, random_seed=None, chunk: int = 100):
    """Exact draws of every block's group effects given each posterior draw: ``r_<block>``,
    and each group's marginal log-likelihood log N(y_j | X_j beta, V_j) per draw.

    Returns ({``r_<block>``: draws}, log-likelihood draws with dims (chain, draw, group)).
    One factor: the compiled kernel on ``packed``'s buffer; crossed factors: the compiled
    ``crossed.draw_integrated`` on the sampled model's rows, or, where PyMC sampled the
    model (``packed`` None), NumPy on chunks of draws, element-wise in q.
    """
    rng = np.random.default_rng(random_seed)
    s = sufficient_stats(design)
    J, q = s.Zty.shape
    b = posterior[names.FIXED].transpose(*names.SAMPLE_DIMS, names.TERM).values
    sigma = posterior[names.SIGMA].transpose(*names.SAMPLE_DIMS).values
    lam = lambda_draws(design, posterior)
    shape = b.shape[:2]
    b, sigma, lam = b.reshape(-1, b.shape[-1]), sigma.reshape(-1), lam.reshape(-1, q, q)
    XtX_j = s.XtX_j.reshape(J, -1)
    effects = np.empty((len(b), J, q))
    loglik = np.empty((len(b), J))
    if getattr(packed, "n_integrated", 0):  # crossed, on the sampled model's packed rows: compiled
        r = [posterior[names.effects(block)].transpose(*names.SAMPLE_DIMS, ...).values.reshape(len(b), -1)
             for block in packed.sampled_blocks]  # fmt: skip
        draw_integrated(packed.buffer, b, lam, sigma, np.concatenate(r, axis=1), rng.standard_normal((len(b), J, q)),
                        effects, loglik)  # fmt: skip
    else:
        residuals = _Residuals(design, posterior, b)
        for start in range(0, len(b), chunk):
            sl = slice(start, start + chunk)
            if not residuals.others:  # one grouping factor: compiled, from the sufficient statistics
                z = rng.standard_normal((len(b[sl]), J, q))
                draw_effects(b[sl], lam[sl], sigma[sl], z, packed.buffer, s.n_j, s.yty_j, s.Xty_j, XtX_j, effects[sl],
                             loglik[sl])  # fmt: skip
                continue
            s2 = sigma[sl, None] ** 2  # (S, 1)
            Ztr, rtr = residuals.cross_products(sl, s)  # (S, J, q), (S, J)
            u = np.einsum("sjk,ska->sja", Ztr, lam[sl]) / s2[..., None]  # Lambda' Z'r / sigma^2
            K = np.einsum("ska,sjkc->sjac", lam[sl], np.einsum("jkl,slc->sjkc", s.ZtZ, lam[sl])) / s2[..., None, None]
            M = [[K[..., a, c] + (a == c) for c in range(q)] for a in range(q)]
            L = cholesky(M)
            # mean m = Mt^{-1} u: forward then backward substitution; draw = m + L^{-T} z
            w = forward(L, [u[..., a] for a in range(q)])
            logdet = 2 * sum(np.log(L[a][a]) for a in range(q))
            loglik[sl] = -0.5 * (s.n_j[None] * np.log(2 * np.pi * s2) + logdet + rtr / s2 - sum(wa**2 for wa in w))
            z = rng.standard_normal((*u.shape[:2], q))
            eta = backward(L, [w[a] + z[..., a] for a in range(q)])
            eta = np.stack(eta, axis=-1)  # (S, J, q)
            effects[sl] = np.einsum("sac,sjc->sja", lam[sl], eta)
    effects = effects.reshape(*shape, J, q)
    factor = largest_factor(design)
    levels = list(design.factors[factor].levels)
    out, start = {}, 0
    for block in integrated_blocks(design):
        values = effects[..., start : start + block.size]
        out[names.effects(block)] = xr.DataArray(
            values, dims=("chain", "draw", factor, names.effect_dim(block)),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values, factor: levels,
                    names.effect_dim(block): list(block.terms)},
        )  # fmt: skip
        start += block.size
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values, factor: levels}
    return out, xr.DataArray(loglik.reshape(*shape, J), dims=("chain", "draw", factor), coords=coords)


def draw_nested_group_effects(design, posterior: xr.Dataset, packed, random_seed=None, chunk: int = 100):
    """``draw_group_effects`` when two nested factors were both integrated out (``packed``:
    the model's ``density.PackedModel``): exact draws of the outer factor's
    effects with the inner ones integrated out, then of the inner ones given them; the
    log-likelihood is per outer group."""
    rng = np.random.default_rng(random_seed)
    outer, inner = nested_factors(design)
    ns = nested_stats(design)
    q = packed.q
    q1 = sum(b.size for b in packed.blocks if b.group == inner)
    C, S_out = len(ns.outer_of), len(ns.n_s)
    b = posterior[names.FIXED].transpose(*names.SAMPLE_DIMS, names.TERM).values
    sigma = posterior[names.SIGMA].transpose(*names.SAMPLE_DIMS).values
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
                            ns.XtX_s.reshape(S_out, -1), eff_in[sl], eff_out[sl], loglik[sl])  # fmt: skip
    chain_draw = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    out, starts = {}, {inner: 0, outer: 0}
    for block in packed.blocks:
        values = eff_in if block.group == inner else eff_out
        values = values.reshape(*shape, *values.shape[1:])
        k = starts[block.group]
        out[names.effects(block)] = xr.DataArray(
            values[..., k : k + block.size], dims=("chain", "draw", block.group, names.effect_dim(block)),
            coords={**chain_draw, block.group: list(design.factors[block.group].levels),
                    names.effect_dim(block): list(block.terms)},
        )  # fmt: skip
        starts[block.group] += block.size
    coords = {**chain_draw, outer: list(design.factors[outer].levels)}
    return out, xr.DataArray(loglik.reshape(*shape, S_out), dims=("chain", "draw", outer), coords=coords)


class _Residuals:
    """Per draw and group: Z_j' r_j and r_j' r_j, with r = y - X beta - (other factors' effects)."""

    def __init__(self, design, posterior, b):
        self.design, self.b = design, b
        # the statistics are of y - c: c off the intercept (as ``kernels.centred`` does)
        self.shift = np.array([response_shift(design) if t == "(Intercept)" else 0.0 for t in design.fixed_terms])
        self.others = []
        for block in sampled_blocks(design):
            r = posterior[names.effects(block)].transpose(*names.SAMPLE_DIMS, ...).values
            self.others.append((r.reshape(-1, *r.shape[2:]), design.factors[block.group].codes, block.Z))

    def cross_products(self, sl, s):
        b = self.b[sl]
        if not self.others:  # from the sufficient statistics alone
            b = b - self.shift
            Ztr = s.Zty[None] - np.einsum("jqp,sp->sjq", s.ZtX, b)
            rtr = s.yty_j[None] - 2 * np.einsum("jp,sp->sj", s.Xty_j, b) + np.einsum("sp,jpk,sk->sj", b, s.XtX_j, b)
            return Ztr, rtr
        d = self.design
        r = d.y[None] - b @ d.X.T  # (S, n)
        for draws, codes, Z in self.others:
            r = r - np.einsum("snk,nk->sn", draws[sl][:, codes, :], Z)
        factor = d.factors[largest_factor(d)]
        Z = factor_Z(d)
        J = factor.n_levels
        Ztr = np.stack([_group_sums(r * Z[:, k], factor.codes, J) for k in range(Z.shape[1])], axis=-1)
        return Ztr, _group_sums(r**2, factor.codes, J)


def _group_sums(values, codes, n_groups):
    """Sums over the last axis by group: (S, n) -> (S, J)."""
    indicator = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes)))
    return np.asarray((indicator @ values.T).T)
