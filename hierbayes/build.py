"""Stage 4: Design + Priors -> pymc.Model (non-centred, LKJ prior per correlated block).

Parameters in the posterior, named as brms names them:

- ``b`` (dim ``term``): every fixed effect on the data's scale, ``(Intercept)`` included.
  Sampled as ``Intercept_c`` (the intercept at the predictors' means) and ``beta`` (slopes).
- ``sd_<block>`` (dim ``<block>__effect``): group-level SDs.
- ``cor_<block>``: the correlation matrix of a correlated block, with Cholesky factor
  ``L_<block>`` ~ LKJ(eta).
- ``r_<block>`` (dims ``<group>``, ``<block>__effect``): the group deviations
  b_j = diag(sd) L z_j, with ``z_<block>`` standard normal (non-centred).
- ``sigma``: the residual SD.
"""

from __future__ import annotations

import re

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .design import Design
from .priors import Prior, Priors, make_priors

__all__ = ["build_model"]


def build_model(design: Design, priors: Priors | dict | None = None) -> pm.Model:
    """The PyMC model of ``design``; change it freely before sampling."""
    priors = make_priors(design, priors)
    coords: dict[str, tuple[str, ...]] = {"term": design.fixed_terms}
    for block in design.blocks:
        coords[block.group] = design.factors[block.group].levels
        coords[f"{block.name}__effect"] = block.terms
        if block.correlated:
            coords[f"{block.name}__effect_bis"] = block.terms

    with pm.Model(coords=coords) as model:
        mu = _fixed_part(design, priors)
        for block in design.blocks:
            mu = mu + _group_part(design, block, priors)
        sigma = _variable("sigma", [priors.get("sigma")])
        name = design.response if re.fullmatch(r"[A-Za-z_]\w*", design.response) else "y"
        pm.Normal(name, mu=mu, sigma=sigma, observed=design.y)
    return model


def _fixed_part(design: Design, priors: Priors):
    """X beta, with the intercept sampled at the predictors' means (better geometry)."""
    X, terms = design.X, design.fixed_terms
    slopes = [k for k, t in enumerate(terms) if t != "(Intercept)"]
    beta = None
    if slopes:
        pm.Model.get_context().add_coord("beta_term", [terms[k] for k in slopes])
        beta = _variable("beta", [priors.get("b", coef=terms[k]) for k in slopes], dims="beta_term")
    if not design.has_intercept:
        if beta is None:
            return pt.zeros(design.n_obs)
        pm.Deterministic("b", beta, dims="term")
        return pt.dot(X[:, slopes], beta)

    means = X[:, slopes].mean(axis=0)
    intercept_c = _variable("Intercept_c", [priors.get("Intercept")])
    if beta is None:
        pm.Deterministic("b", intercept_c[None], dims="term")
        return intercept_c * pt.ones(design.n_obs)
    intercept = intercept_c - pt.dot(means, beta)
    parts = [None] * len(terms)
    parts[terms.index("(Intercept)")] = intercept[None]
    for j, k in enumerate(slopes):
        parts[k] = beta[j : j + 1]
    pm.Deterministic("b", pt.concatenate(parts), dims="term")
    return intercept_c + pt.dot(X[:, slopes] - means, beta)


def _group_part(design: Design, block, priors: Priors):
    """Z_j b_j for every row, with b_j = diag(sd) L z_j."""
    effect = f"{block.name}__effect"
    sd = _variable(
        f"sd_{block.name}", [priors.get("sd", block.name, t) for t in block.terms], dims=effect
    )
    z = pm.Normal(f"z_{block.name}", 0.0, 1.0, dims=(block.group, effect))
    if block.correlated:
        eta = priors.get("cor", block.name).kwargs["eta"]
        chol = pm.LKJCorr(f"L_{block.name}", n=block.size, eta=eta)
        pm.Deterministic(f"cor_{block.name}", chol @ chol.T, dims=(effect, f"{effect}_bis"))
        r = pt.dot(z, chol.T) * sd
    else:
        r = z * sd
    r = pm.Deterministic(f"r_{block.name}", r, dims=(block.group, effect))
    codes = design.factors[block.group].codes
    if block.size == 1:
        return r[codes, 0] * block.Z[:, 0]
    return (r[codes] * block.Z).sum(axis=1)


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
