"""Stage 4: Design + Priors -> Model: what is sampled, built in PyMC only when asked for.

``make_model`` decides, from the design alone, the method (``marginal``: group effects
integrated out, see ``hierbayes.marginal``; ``full``: all sampled; ``gibbs``: crossed
one-term blocks whose groups are all well informed, drawn by ``hierbayes.gibbs`` instead of
NUTS), which factors are integrated out, and how sampled group effects are parameterised; it
packs the model as data for the numba kernels: the sufficient statistics where group effects
are integrated out (one grouping factor, or two nested ones; ``hierbayes.marginal``), the rows
where effects are sampled (any family and blocks; ``hierbayes.sampled``; with crossed factors
of a Gaussian model, the largest factor's effects integrated out there and the others'
sampled), or the rows and codes a Gibbs sweep reads. The ``Model`` it returns builds its
``pymc.Model`` on first use: the default samplers run the packed model directly and never
need one.

Parameters of the PyMC model (names from ``hierbayes.names``): ``b`` (sampled as
``Intercept_c`` and ``beta``), ``sd_<block>``, ``L_<block>`` ~ LKJ(eta) and ``cor_<block>``
for a correlated block, ``r_<block>`` = diag(sd) L z_j (``z_<block>`` standard normal,
non-centred) for sampled group effects, and ``sigma``.

Non-centred sampling suits groups that the data say little about; when every group is well
informed (many rows per group against a large between-group SD) the centred form
r_j ~ Normal(0, sd) mixes far better (Betancourt & Girolami 2013). ``parameterization="auto"``
picks centred for one-term blocks whose typical group information ratio n_j tau^2 / sigma^2,
estimated by moments from least-squares residuals, exceeds 1; correlated blocks stay
non-centred. Users can force either, for all blocks or by block name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import names
from .design import DataError, Design
from .gibbs import GibbsModel, gibbs_applies, pack_gibbs
from .lazy import LazyModule
from .marginal.density import PackedModel, pack_model
from .marginal.laplace import LAPLACE_FAMILIES
from .marginal.stats import integrated_blocks, integrated_factors, marginal_applies, sampled_blocks
from .priors import Prior, Priors, make_priors
from .sampled.density import SampledModel, pack_sampled, priors_packable

pm, pt = LazyModule("pymc"), LazyModule("pytensor.tensor")

__all__ = ["Model", "make_model", "build_model", "choose_method", "choose_parameterization", "information_ratio"]


PARAMETERIZATIONS = ("auto", "centered", "noncentered")


METHODS = ("auto", "marginal", "full", "laplace", "gibbs")
# method="auto" samples crossed factors by Gibbs when every block's information ratio exceeds
# this (centred NUTS needs 1): in the crossed SBC class, Gibbs fits of true ratios 1-3 had bulk
# ESS down to 7 of 1000 draws; run.py crossed's design estimates 4.4 (true 6)
GIBBS_INFORMATION = 3.0
# ... and every factor has this many groups: with fewer, the ratio's estimate is noisy and the
# SD's posterior reaches down to where centred Gibbs sticks (the crossed SBC class, 8 x 10
# groups: a fit estimated above 3, true 0.7, R-hat 1.23)
GIBBS_GROUPS = 20


@dataclass(frozen=True)
class Model:
    """What NUTS samples: the design, its priors, the method, the factors whose effects are
    integrated out (empty for ``full``), how sampled blocks are parameterised, and the packed
    model where the numba kernels apply. ``pymc`` builds the PyMC model on first use."""

    design: Design = field(repr=False)
    priors: Priors = field(repr=False)
    method: str
    integrated: tuple[str, ...]
    parameterization: dict = field(repr=False)
    packed: PackedModel | SampledModel | GibbsModel | None = field(default=None, repr=False)

    @cached_property
    def pymc(self) -> pm.Model:
        """The ``pymc.Model`` (built once, on first use); change it freely before sampling."""
        if self.method == "laplace":
            raise ValueError("method='laplace' has no PyMC model: its Laplace step runs in hierbayes' own kernels, "
                             "sampled by nutpie; build the model with method='full' to change it in PyMC")  # fmt: skip
        if self.method == "marginal":
            return _marginal_model(self)
        with pm.Model(coords=_coords(self.design)) as model:
            mu, _ = _fixed_part(self.design, self.priors)
            for block in self.design.blocks:
                mu = mu + _group_part(self.design, block, self.priors, self.parameterization[block.name])
            if self.design.offset is not None:
                mu = mu + self.design.offset
            family = self.design.family
            params = {p.name: _variable(p.name, [self.priors.get(p.name)]) for p in family.params}
            family.observe(names.observed(self.design.response), mu, params, self.design.y, self.design.trials)
        return model


def make_model(design: Design, priors: Priors | dict | None = None, method: str = "auto",
               parameterization: str | dict = "auto") -> Model:
    """Decide how ``design`` is sampled (see the module docstring); builds nothing in PyMC yet."""
    priors = make_priors(design, priors)
    asked, method = method, choose_method(design, method)
    _coords(design)  # a grouping factor named like a posterior variable fails here, before sampling
    crossed = method == "marginal" and len(integrated_factors(design)) < len({b.group for b in design.blocks})
    if method == "gibbs" or (asked == "auto" and crossed and parameterization == "auto"):  # no NUTS
        ok, why = gibbs_applies(design, priors)
        many = min(design.factors[b.group].n_levels for b in design.blocks) >= GIBBS_GROUPS
        if ok and (method == "gibbs" or (many and _well_informed(design, GIBBS_INFORMATION))):
            return Model(design, priors, "gibbs", (), dict.fromkeys((b.name for b in design.blocks), "centered"),
                         pack_gibbs(design, priors))  # fmt: skip
        if method == "gibbs":
            raise ValueError(f"method='gibbs' does not apply: {why}; use method='auto'")
    integrated = integrated_factors(design) if method == "marginal" else ()
    sampled = sampled_blocks(design) if method == "marginal" else design.blocks
    if method == "laplace":
        integrated, sampled = (design.blocks[0].group,), ()
    packed = None
    packable = priors_packable(priors)  # correlated blocks can be centred where nutpie runs the packed model
    chosen = choose_parameterization(design, parameterization, sampled, correlated_centred=packable)
    if method == "marginal" and not sampled:
        packed = pack_model(design, priors)
    elif method in ("full", "laplace"):
        packed = pack_sampled(design, priors, chosen, laplace=method == "laplace")
    elif packable:  # crossed factors: the largest integrated out, the others sampled
        packed = pack_sampled(design, priors, chosen, integrated=tuple(integrated_blocks(design)))
    return Model(design, priors, method, integrated, chosen, packed)


def choose_method(design: Design, method: str = "auto") -> str:
    """``marginal`` (group effects integrated out) where it applies, else ``full``;
    ``laplace`` only when asked for, and where it applies."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if method == "laplace":
        family = design.family
        if (family.name, family.link) not in LAPLACE_FAMILIES:
            served = ", ".join(f"{f} ({link} link)" for f, link in sorted(LAPLACE_FAMILIES))
            raise ValueError(f"method='laplace' serves {served}, not the {family.label} family; use method='full'"
                             + (" (a Gaussian model's effects are integrated out exactly by the default method)"
                                if family.integrates_exactly else ""))  # fmt: skip
        groups = sorted({b.group for b in design.blocks})
        if len(groups) != 1:
            raise ValueError(f"method='laplace' integrates out the effects of one grouping factor, and "
                             f"{design.spec.formula!r} has {len(groups)} ({', '.join(groups) or 'none'}); "
                             "use method='full'")  # fmt: skip
        return method
    ok, why = marginal_applies(design)
    if method == "marginal" and not ok:
        raise ValueError(f"method='marginal' does not apply: {why}; use method='full'")
    if method == "auto":
        return "marginal" if ok else "full"
    return method


def build_model(
    design: Design, priors: Priors | dict | None = None, parameterization: str | dict = "auto",
    method: str = "full",
) -> pm.Model:
    """The PyMC model of ``design``; change it freely before sampling.

    ``method="marginal"`` integrates the group effects out (see ``hierbayes.marginal``): the
    model then has no ``r_<block>`` variables; ``hb.fit`` draws them exactly after sampling.
    """
    return make_model(design, priors, method, parameterization).pymc


def _coords(design: Design) -> dict:
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


def _marginal_model(model: Model) -> pm.Model:
    """Fixed effects, SDs, LKJ correlations and sigma, with the integrated factors' effects
    integrated out (the numba kernels through an Op, or PyTensor arithmetic with crossed
    factors, whose other effects are sampled as in the full model)."""
    from .marginal.graph import add_crossed_likelihood, add_integrated_likelihood  # PyTensor's Op: on first use

    design, priors = model.design, model.priors
    blocks, others = integrated_blocks(design), sampled_blocks(design)
    q = sum(b.size for b in blocks)
    with pm.Model(coords=_coords(design)) as pymc_model:
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


def _correlation(block, priors: Priors):
    """The block's LKJ Cholesky factor, with its correlation matrix kept as ``cor_<block>``."""
    eta = priors.get("cor", block.name).kwargs["eta"]
    chol = pm.LKJCorr(names.chol(block), n=block.size, eta=eta)
    pm.Deterministic(names.cor(block), chol @ chol.T, dims=(names.effect_dim(block), names.effect_dim_bis(block)))
    return chol


def _fixed_part(design: Design, priors: Priors, rows: bool = True):
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


def choose_parameterization(design: Design, parameterization: str | dict = "auto", blocks=None,
                            correlated_centred: bool = False) -> dict[str, str]:  # fmt: skip
    """``centered`` or ``noncentered`` for every block, or for ``blocks`` (those sampled), see
    the module docstring. ``correlated_centred``: the model can centre a correlated block too
    (the packed sampled model can; the PyMC model cannot)."""
    block_names = [b.name for b in design.blocks]
    if isinstance(parameterization, dict):
        unknown = set(parameterization) - set(block_names)
        if unknown:
            raise ValueError(f"parameterization given for unknown block(s) {sorted(unknown)}; blocks: {block_names}")
        wanted = {n: parameterization.get(n, "auto") for n in block_names}
    else:
        wanted = dict.fromkeys(block_names, parameterization)
    chosen = {}
    working = None  # residuals and weights of the fixed part, computed once if any block needs them
    for block in design.blocks if blocks is None else blocks:
        how = wanted[block.name]
        if how not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, not {how!r}")
        if how == "centered" and block.correlated and not correlated_centred:
            raise ValueError(f"block {block.name!r} is correlated; only its non-centred form is built")
        if how == "auto":
            well_informed = False
            if block.size == 1 or correlated_centred:
                if working is None:
                    working = _working_residuals(design)
                well_informed = min(information_ratio(design, block, working, k) for k in range(block.size)) > 1.0
            how = "centered" if well_informed else "noncentered"
        chosen[block.name] = how
    return chosen


def _well_informed(design: Design, above: float) -> bool:
    """Whether every block's every term has an information ratio over ``above``."""
    working = _working_residuals(design)
    return all(information_ratio(design, b, working, k) > above for b in design.blocks for k in range(b.size))


def information_ratio(design: Design, block, working: tuple | None = None, term: int = 0) -> float:
    """Median over groups of the information about a group's effect on the block's ``term``
    (its column), times that effect's variance tau^2, by moments: n_j tau^2 / sigma^2 for a
    Gaussian model, n_j w tau^2 for a GLMM (w: the information of one row on the link scale).
    A block is centred when every term's ratio exceeds 1.

    From working residuals e (weights w) of the fixed part, per group the weighted slope of e
    on z estimates b_j with variance tau^2 + 1 / sum(w z^2); tau^2 is their variance less the
    mean sampling variance (an overestimate of the noise when other effects are present,
    which leans to non-centred)."""
    e, w = _working_residuals(design) if working is None else working
    codes = design.factors[block.group].codes
    z = block.Z[:, term]
    szz = np.bincount(codes, weights=w * z * z)
    sze = np.bincount(codes, weights=w * z * e)
    ok = szz > 0
    if not ok.any():
        return 0.0
    b_hat = sze[ok] / szz[ok]
    tau2 = max(float(b_hat.var()) - float(np.mean(1 / szz[ok])), 0.0)
    return float(np.median(szz[ok]) * tau2)


def _working_residuals(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """(e, w): least-squares residuals of the fixed part and weight 1 / their variance for
    the identity link; otherwise the working residuals (y/n - mu0) / mu'(eta0) of the
    intercept-only fit and the weights n mu'(eta0)^2 / V(mu0) (V: the binomial's or the
    Poisson's variance function)."""
    family, y = design.family, design.y
    if family.link == "identity" and not family.has_trials and family.name in ("gaussian", "student_t"):
        X = design.X
        e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0] if X.shape[1] else y - y.mean()
        variance = float(e.var())
        return e, np.full(len(e), 1 / variance if variance > 0 else 0.0)
    eta0 = family.link_scale(y, design.trials)[0]
    mu0 = float(family.mean(eta0))
    slope = float(family.mean(eta0 + 1e-6) - family.mean(eta0 - 1e-6)) / 2e-6
    n = design.trials if design.trials is not None else np.ones(len(y))
    per_trial = mu0 * (1 - mu0) if family.name in ("bernoulli", "binomial") else max(mu0, 1e-12)
    return (y / n - mu0) / slope, n * slope**2 / per_trial


def _group_part(design: Design, block, priors: Priors, how: str):
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
