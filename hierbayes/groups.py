"""Group-level answers: shrinkage (no, complete and partial pooling side by side) and ranks.

Shrinkage, per level of one grouping factor and per group-level term of that factor:

- ``no_pooling``: the group's own estimate. The group's rows alone are regressed by least
  squares on the factor's group-level columns (Z), after taking off everything else the
  model explains (X beta and the other factors' effects, at their posterior means); the
  fixed effect is added back, so it is on the scale of ``coef()``. Where Z has no other
  covariates than the intercept's and the slope's, this is exactly the separate
  per-group regression (lme4's ``lmList``). NaN where the group cannot estimate it alone
  (too few rows, or a covariate constant within the group).
- ``complete_pooling``: the least-squares estimate that ignores the groups (the same for
  every group).
- Other families (binomial, Poisson...): the same on the link scale, by maximum likelihood
  instead of least squares: each group's own GLM fit (iteratively reweighted least squares,
  Fisher scoring) with the rest of the linear predictor as an offset, and the pooled GLM.
  NaN where a group's estimate runs off (all successes or none, all-zero counts).
- ``mean``, ``sd``, ``lower``, ``upper``: the partial-pooling posterior (as ``coef()``).

Ranks: in every posterior draw the groups are ranked by their coefficient for a term
(rank 1 = largest, or smallest with ``descending=False``); the table gives each group's
rank distribution. Unlike ranking point estimates, this says how sure the ranking is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from . import names
from .summarize import SAMPLE_DIMS, as_draws

__all__ = ["shrinkage", "ranks"]


def shrinkage(fit, group=None, term=None, prob=0.95, interval="hdi"):
    """No-pooling, complete-pooling and partial-pooling estimates per group (see module doc)."""
    design = fit.design
    factor = one_factor(fit, group, "shrinkage")
    blocks = [b for b in design.blocks if b.group == factor]
    terms = design.group_terms(factor)
    terms_wanted = terms if term is None else [group_term(term, terms, factor)]
    post = fit.posterior
    codes = design.factors[factor].codes
    levels = design.factors[factor].levels

    beta = post[names.FIXED].mean(SAMPLE_DIMS).values
    offset = design.X @ beta + (0.0 if design.offset is None else design.offset)
    for block in design.blocks:
        if block.group != factor:
            r = post[names.effects(block)].mean(SAMPLE_DIMS).values
            offset = offset + (r[design.factors[block.group].codes] * block.Z).sum(axis=1)
    Z = np.column_stack([b.Z for b in blocks])
    params = {p: post[p].mean(SAMPLE_DIMS).values for p in design.family.param_names}
    deviation = _per_group_fit(design, params, Z, offset, codes, len(levels))
    base = 0.0 if design.offset is None else design.offset
    pooled = (_per_group_fit(design, params, design.X, base, np.zeros(design.n_obs, dtype=int), 1)[0]
              if design.X.shape[1] else np.zeros(0))  # fmt: skip
    fixed = dict(zip(design.fixed_terms, beta))
    pooled = dict(zip(design.fixed_terms, pooled))
    sizes = np.bincount(codes, minlength=len(levels))

    partial = fit.coef(factor, prob=prob, interval=interval).set_index(["level", "term"])
    rows = []
    for k, t in enumerate(terms):
        if t not in terms_wanted:
            continue
        for j, level in enumerate(levels):
            p = partial.loc[(level, t)]
            rows.append({
                "grp": factor, "level": level, "term": t, "n": int(sizes[j]),
                "no_pooling": fixed.get(t, 0.0) + deviation[j, k],
                "complete_pooling": pooled.get(t, 0.0),
                "mean": p["mean"], "sd": p["sd"], "lower": p["lower"], "upper": p["upper"],
            })  # fmt: skip
    return pd.DataFrame(rows)


def _per_group_fit(design, params, Z, offset, codes, n_groups, iterations: int = 50):
    """Per group, the coefficients of Z with ``offset`` fixed: least squares for the identity
    link, else the family's maximum likelihood by Fisher scoring (see the module docstring)."""
    family, y = design.family, design.y
    if family.link == "identity" and not family.discrete:
        return _per_group_least_squares(Z, y - offset, codes, n_groups)
    n = design.trials if family.has_trials else 1.0
    b = np.zeros((n_groups, Z.shape[1]))
    for _ in range(iterations):
        eta = offset + np.einsum("nk,nk->n", Z, b[codes])
        mu = family.mean(eta)
        slope = n * (family.mean(eta + 1e-6) - family.mean(eta - 1e-6)) / 2e-6  # dE[y]/deta
        variance = np.maximum(family.variance(mu, params, design.trials), 1e-12)
        weight = np.sqrt(np.maximum(slope**2 / variance, 1e-12))
        working = (y - n * mu) / np.where(np.abs(slope) > 1e-12, slope, 1e-12)  # Fisher scoring step
        step = _per_group_least_squares(Z * weight[:, None], working * weight, codes, n_groups)
        b = b + np.nan_to_num(step)
        if np.nanmax(np.abs(step), initial=0.0) < 1e-8:
            break
    b[np.abs(b) > 15] = np.nan  # ran off: the group's data do not bound it (separation)
    return b


def _per_group_least_squares(Z, r, codes, n_groups):
    """Least-squares coefficients of r on Z within each group, (groups, q); NaN if not estimable."""
    q = Z.shape[1]
    ZtZ = np.zeros((n_groups, q, q))
    Ztr = np.zeros((n_groups, q))
    for k in range(q):
        Ztr[:, k] = np.bincount(codes, weights=Z[:, k] * r, minlength=n_groups)
        for m in range(k, q):
            ZtZ[:, k, m] = ZtZ[:, m, k] = np.bincount(codes, weights=Z[:, k] * Z[:, m], minlength=n_groups)
    out = np.full((n_groups, q), np.nan)
    scale = np.sqrt(np.maximum(np.einsum("gkk->gk", ZtZ), 1e-300))
    ok = np.linalg.cond(ZtZ / scale[:, :, None] / scale[:, None, :]) < 1e10
    if ok.any():
        out[ok] = np.linalg.solve(ZtZ[ok], Ztr[ok][..., None])[..., 0]
    return out


def ranks(fit, term="(Intercept)", group=None, descending=True, prob=0.95, draws=False):
    """Each group's posterior rank on ``term`` (1 = largest unless ``descending=False``).

    Columns: grp, level, term, n, mean (posterior mean coefficient), rank_mean, rank_median,
    lower and upper (an equal-tailed ``prob`` interval of the rank, in whole ranks), and
    ``p_top``: the probability that the group is ranked first. Sorted by median rank.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, not {prob!r}")
    design = fit.design
    factor = one_factor(fit, group, "ranks")
    terms = design.group_terms(factor)
    term = group_term(term, terms, factor)
    block = next(b for b in design.blocks if b.group == factor and term in b.terms)
    r = fit.posterior[names.effects(block)].sel({names.effect_dim(block): term}, drop=True)
    r = r.transpose(*SAMPLE_DIMS, factor)
    values = r.values
    if term in design.fixed_terms:
        values = values + fit.posterior[names.FIXED].sel({names.TERM: term}).values[..., None]
    order = rankdata(-values if descending else values, axis=-1, method="average")
    levels = design.factors[factor].levels
    da = as_draws(order, r, (factor,), {factor: list(levels)})
    if draws:
        return da
    flat = order.reshape(-1, len(levels))
    alpha = (1 - prob) / 2
    table = pd.DataFrame({
        "grp": factor, "level": list(levels), "term": term,
        "n": np.bincount(design.factors[factor].codes, minlength=len(levels)),
        "mean": values.reshape(-1, len(levels)).mean(axis=0),
        "rank_mean": flat.mean(axis=0),
        "rank_median": np.median(flat, axis=0),
        "lower": np.quantile(flat, alpha, axis=0, method="lower"),
        "upper": np.quantile(flat, 1 - alpha, axis=0, method="higher"),
        "p_top": (flat == 1).mean(axis=0),
    })  # fmt: skip
    return table.sort_values(["rank_median", "rank_mean"], kind="stable").reset_index(drop=True)


def one_factor(fit, group, what) -> str:
    """The one grouping factor ``what`` works on: ``group``, or the model's only factor."""
    factors = list(fit.design.factors)
    if not factors:
        raise ValueError(f"{what}() needs group-level effects; this model has none")
    if group is None and len(factors) > 1:
        raise ValueError(f"{what}() needs group=, one of {', '.join(map(repr, factors))}")
    return fit._factors(group)[0]  # checks the name as ranef/coef do


def group_term(term, terms, factor) -> str:
    """A group-level term of ``factor``; ``Intercept`` is accepted for ``(Intercept)``."""
    if term == "Intercept" and "(Intercept)" in terms:
        term = "(Intercept)"
    if term not in terms:
        raise ValueError(f"{term!r} is not a group-level term of {factor!r}; its terms are {terms}")
    return term
