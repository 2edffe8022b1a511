"""The PyMC model of a ``Model`` (``Model.pymc``), built on first use: the default methods run
packed kernels and never need it; ``methods.pymc`` samples it, and users change it first.

Parameters (names from ``hierbayes.names``): ``b`` (sampled as ``Intercept_c`` and ``beta``,
standardised by the response's scale), ``sd_<block>``, ``L_<block>`` ~ LKJ(eta) and
``cor_<block>`` for a correlated block, ``r_<block>`` = diag(sd) L z_j (``z_<block>``
standard normal, non-centred) or r_j ~ Normal(0, sd) (centred, one-term blocks) for sampled
group effects, and the family's own parameters. With ``method="marginal"`` the integrated
factors' effects are integrated out: the kernels through PyTensor's Op, crossed designs in
PyTensor arithmetic (``marginal.graph``).
"""

from __future__ import annotations

import numpy as np

from . import names
from .design import DataError
from .lazy import LazyModule
from .marginal.stats import integrated_blocks, sampled_blocks
from .priors import Prior

pm, pt = LazyModule("pymc"), LazyModule("pytensor.tensor")

__all__ = ["build_pymc", "coords"]


def build_pymc(model) -> pm.Model:
    """The ``pymc.Model`` of ``model`` (a ``model.Model``)."""
    if model.method == "laplace":
        raise ValueError("method='laplace' has no PyMC model: its Laplace step runs in hierbayes' own kernels, "
                         "sampled by nutpie; build the model with method='full' to change it in PyMC")  # fmt: skip
    if model.method == "marginal":
        return _marginal_model(model)
    design = model.design
    with pm.Model(coords=coords(design)) as pymc_model:
        mu, _ = _fixed_part(design, model.priors)
        for block in design.blocks:
            mu = mu + _group_part(design, block, model.priors, model.parameterization[block.name])
        if design.offset is not None:
            mu = mu + design.offset
        family = design.family
        params = {p.name: _variable(p.name, [model.priors.get(p.name)]) for p in family.params}
        family.observe(names.observed(design.response), mu, params, design.y, design.trials)
    return pymc_model


def coords(design) -> dict:
    coords: dict[str, tuple[str, ...]] = {names.TERM: design.fixed_terms}
    for factor in design.factors:
        if factor in names.RESERVED:
            raise DataError(
                f"grouping factor {factor!r} has the name of a posterior variable or dimension "
                f"({', '.join(names.RESERVED)}); rename the column, e.g. data.rename(columns={{{factor!r}: "
                f"{factor + '_group'!r}}})"
            )
    for block in design.blocks:
        coords[block.group] = design.factors[block.group].levels
        coords[names.effect_dim(block)] = block.terms
        if block.correlated:
            coords[names.effect_dim_bis(block)] = block.terms
    return coords


def _marginal_model(model) -> pm.Model:
    """Fixed effects, SDs, LKJ correlations and sigma, with the integrated factors' effects
    integrated out (the numba kernels through an Op, or PyTensor arithmetic with crossed
    factors, whose other effects are sampled as in the full model)."""
    from .marginal.graph import add_crossed_likelihood, add_integrated_likelihood  # imports PyMC: on first use

    design, priors = model.design, model.priors
    blocks, others = integrated_blocks(design), sampled_blocks(design)
    q = sum(b.size for b in blocks)
    with pm.Model(coords=coords(design)) as pymc_model:
        mu, b = _fixed_part(design, priors, rows=bool(others))
        for block in others:
            mu = mu + _group_part(design, block, priors, model.parameterization[block.name])
        # Lambda = blockdiag(diag(sd) L) entry by entry; None marks a structural zero
        Lambda: list[list] = [[None] * q for _ in range(q)]
        start = 0
        for block in blocks:
            sd = _variable(names.sd(block), [priors.get("sd", block.name, t) for t in block.terms],
                           dims=names.effect_dim(block))  # fmt: skip
            chol = _correlation(block, priors) if block.correlated else None
            for i in range(block.size):
                for k in range(i + 1):
                    if chol is not None:
                        Lambda[start + i][start + k] = sd[i] * chol[i, k]
                    elif i == k:
                        Lambda[start + i][start + i] = sd[i]
            start += block.size
        sigma = _variable(names.SIGMA, [priors.get("sigma")])
        if others:
            add_crossed_likelihood(design, Lambda, sigma, mu)
        else:
            add_integrated_likelihood(model.packed, b, Lambda, sigma)
    return pymc_model


def _correlation(block, priors):
    """The block's LKJ Cholesky factor, with its correlation matrix kept as ``cor_<block>``."""
    eta = priors.get("cor", block.name).kwargs["eta"]
    chol = pm.LKJCorr(names.chol(block), n=block.size, eta=eta)
    pm.Deterministic(names.cor(block), chol @ chol.T, dims=(names.effect_dim(block), names.effect_dim_bis(block)))
    return chol


def _fixed_part(design, priors, rows: bool = True):
    """(X beta for every row, or None without ``rows``; the fixed effects ``b`` on the data's
    scale), with the intercept sampled at the predictors' means (better geometry)."""
    X, terms = design.X, design.fixed_terms
    slopes = [k for k, t in enumerate(terms) if t != "(Intercept)"]
    loc, s_y = design.family.link_scale(design.y, design.trials)  # mean(y), sd(y) for the identity link
    beta = None
    if slopes:
        pm.Model.get_context().add_coord(names.SLOPE_TERM, [terms[k] for k in slopes])
        s_x = np.array([float(np.std(X[:, k])) or 1.0 for k in slopes])
        beta = _scaled_variable(names.SLOPES, [priors.get("b", coef=terms[k]) for k in slopes], 0.0, s_y / s_x,
                                dims=names.SLOPE_TERM)  # fmt: skip
    if not design.has_intercept:
        if beta is None:
            raise ValueError("the model has no fixed effects; add an intercept (1) or a predictor")
        b = pm.Deterministic(names.FIXED, beta, dims=names.TERM)
        return (pt.dot(X[:, slopes], beta) if rows else None), b

    means = X[:, slopes].mean(axis=0)
    intercept_c = _scaled_variable(names.INTERCEPT_C, [priors.get("Intercept")], loc, s_y)
    if beta is None:
        b = pm.Deterministic(names.FIXED, intercept_c[None], dims=names.TERM)
        return (intercept_c * pt.ones(design.n_obs) if rows else None), b
    intercept = intercept_c - pt.dot(means, beta)
    parts = [None] * len(terms)
    parts[terms.index("(Intercept)")] = intercept[None]
    for j, k in enumerate(slopes):
        parts[k] = beta[j : j + 1]
    b = pm.Deterministic(names.FIXED, pt.concatenate(parts), dims=names.TERM)
    return (intercept_c + pt.dot(X[:, slopes] - means, beta) if rows else None), b


def _group_part(design, block, priors, how: str):
    """Z_j b_j for every row, with b_j = diag(sd) L z_j (non-centred) or b_j ~ N(0, sd); a
    correlated block is built non-centred here whatever ``how`` says (only the packed model
    centres one)."""
    how = "noncentered" if block.correlated else how
    effect = names.effect_dim(block)
    sd = _variable(names.sd(block), [priors.get("sd", block.name, t) for t in block.terms], dims=effect)
    if how == "centered":  # sampled as r / s_y (see _scaled_variable)
        s_y = design.family.link_scale(design.y, design.trials)[1]
        r_std = pm.Normal(names.standardized(names.effects(block)), 0.0, sd / s_y, dims=(block.group, effect))
        r = pm.Deterministic(names.effects(block), s_y * r_std, dims=(block.group, effect))
    else:
        z = pm.Normal(names.std_normal(block), 0.0, 1.0, dims=(block.group, effect))
        if block.correlated:
            r = pt.dot(z, _correlation(block, priors).T) * sd
        else:
            r = z * sd
        r = pm.Deterministic(names.effects(block), r, dims=(block.group, effect))
    codes = design.factors[block.group].codes
    if block.size == 1:
        return r[codes, 0] * block.Z[:, 0]
    return (r[codes] * block.Z).sum(axis=1)


# the location and scale parameters of the real-valued priors: x = loc + scale z keeps the family
LOCATION_SCALE = {"Normal": ("mu", "sigma"), "StudentT": ("mu", "sigma"), "Cauchy": ("alpha", "beta"),
                  "Laplace": ("mu", "b")}  # fmt: skip


def _scaled_variable(name: str, priors: list[Prior], loc, scale, dims=None):
    """``_variable`` sampled as (x - loc) / scale, named ``<name>_std``, with ``name`` its
    Deterministic on the data's scale: the same prior and posterior, but PyMC's start jitter
    (+-1) and nutpie's first mass matrix then fit a response on any scale (1e-6 or 1e6)."""
    if not all(p.dist in LOCATION_SCALE for p in priors):
        return _variable(name, priors, dims)
    loc = np.broadcast_to(np.asarray(loc, dtype=float), (len(priors),))
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (len(priors),))
    standard = []
    for prior, m, s in zip(priors, loc, scale):
        loc_key, scale_key = LOCATION_SCALE[prior.dist]
        kwargs = prior.kwargs
        kwargs[loc_key], kwargs[scale_key] = (kwargs[loc_key] - m) / s, kwargs[scale_key] / s
        standard.append(Prior(prior.dist, **kwargs))
    z = _variable(names.standardized(name), standard, dims)
    if dims is None:
        return pm.Deterministic(name, loc[0] + scale[0] * z)
    return pm.Deterministic(name, loc + scale * z, dims=dims)


def _variable(name: str, priors: list[Prior], dims=None):
    """One random variable for a list of priors: a vector when they share a family.

    Priors of different families get one scalar variable each (``name[k]``), stacked.
    """
    family = {(p.dist, tuple(k for k, _ in p.params)) for p in priors}
    if dims is None:  # a scalar parameter
        (prior,) = priors
        return _rv(name, prior.dist, prior.kwargs)
    if len(family) == 1:
        params = {k: np.array([p.kwargs[k] for p in priors]) for k in priors[0].kwargs}
        return _rv(name, priors[0].dist, params, dims=dims)
    parts = [_rv(f"{name}[{k}]", p.dist, p.kwargs) for k, p in enumerate(priors)]
    return pm.Deterministic(name, pt.stack(parts), dims=dims)


def _rv(name, dist, params, dims=None):
    return getattr(pm, dist)(name, **params, dims=dims)
